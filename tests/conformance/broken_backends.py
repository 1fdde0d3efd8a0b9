"""Deliberately broken variants of the huggingface rollout engine and the fsdp backend (``test_kit_catches.py``)."""

from __future__ import annotations

import dataclasses

import torch
from rlinf_backends_fsdp.fsdp_backend import FSDPBackend
from rlinf_backends_fsdp.hf_engine import HFRolloutEngine


class UnseededEngine(HFRolloutEngine):
    """Ignores SamplingParams.seed."""

    def generate(self, prompt_ids, sampling):
        return super().generate(prompt_ids, dataclasses.replace(sampling, seed=None))


class ProbabilityEngine(HFRolloutEngine):
    """Reports probabilities where log-probs are due."""

    def generate(self, prompt_ids, sampling):
        out = super().generate(prompt_ids, sampling)
        if out.response_logprobs is not None:
            out.response_logprobs = [[float(torch.tensor(v).exp()) for v in row] for row in out.response_logprobs]
        return out


class VersionlessEngine(HFRolloutEngine):
    """Loads new weights but keeps reporting version 0."""

    def update_weights(self, weights, version):
        super().update_weights(weights, 0)


class NoopLoadBackend(FSDPBackend):
    def load_checkpoint(self, path):
        return None


class AscentBackend(FSDPBackend):
    """Steps up the loss instead of down."""

    def train_step(self, batch, loss_fn, **kwargs):
        def flipped(outputs, mb):
            loss, metrics = loss_fn(outputs, mb)
            return -loss, metrics

        return super().train_step(batch, flipped, **kwargs)


class PaddingLeakBackend(FSDPBackend):
    """Attends to padding (an all-ones attention mask)."""

    def compute_log_probs(self, batch, **kwargs):
        return super().compute_log_probs({**batch, "attention_mask": torch.ones_like(batch["attention_mask"])}, **kwargs)
