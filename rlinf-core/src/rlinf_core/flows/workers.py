"""The reasoning flow's workers: each holds one component resolved through the plugin registries.

Every worker gets the experiment config as a plain container (picklable for Ray) and rebuilds it
with OmegaConf. Tensors cross workers on CPU.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rlinf_core.interfaces import SamplingParams
from rlinf_core.runtime import Worker


def _config(container: Mapping[str, Any]):
    from omegaconf import OmegaConf

    return OmegaConf.create(dict(container))


def _load(kind: str, name: str) -> Any:
    from rlinf_core.plugins import get_plugins

    return get_plugins(strict=False).registries.load(kind, name)


def model_dir(cfg: Any) -> str | None:
    """The Hugging Face directory every component loads: ``rollout.model.model_path``, else the actor's."""
    return cfg.rollout.model.model_path or cfg.actor.model.model_path


def tokenizer_dir(cfg: Any) -> str:
    path = cfg.actor.tokenizer.tokenizer_model or model_dir(cfg)
    if not path:
        raise ValueError("no tokenizer: set actor.model.model_path (a Hugging Face directory) or actor.tokenizer.tokenizer_model")
    return str(path)


def tokenizer_kwargs(cfg: Any) -> dict[str, bool]:
    """``AutoTokenizer.from_pretrained`` options from ``actor.tokenizer`` (``use_fast``, ``trust_remote_code``)."""
    tok = cfg.actor.tokenizer
    return {"use_fast": bool(tok.get("use_fast", True)), "trust_remote_code": bool(tok.get("trust_remote_code", False))}


def load_tokenizer(cfg: Any) -> Any:
    """The tokenizer of :func:`tokenizer_dir`, loaded with the options of :func:`tokenizer_kwargs`."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir(cfg), **tokenizer_kwargs(cfg))


def sampling_params(cfg: Any, *, seed: int | None = None, **overrides: Any) -> SamplingParams:
    sp = cfg.algorithm.sampling_params
    values = dict(temperature=float(sp.temperature), top_p=float(sp.top_p), top_k=int(sp.top_k),
                  max_new_tokens=int(sp.max_new_tokens or 256), repetition_penalty=float(sp.repetition_penalty),
                  do_sample=bool(sp.do_sample), logprobs=bool(cfg.rollout.return_logprobs), seed=seed)
    values.update(overrides)
    return SamplingParams(**values)


class _OnDevice(Worker):
    @property
    def device(self) -> str:
        if self.device_type == "cpu":
            return "cpu"
        return "cuda" if self.executor == "ray" else f"cuda:{self.devices[0]}"


class RolloutWorker(_OnDevice):
    """Holds the rollout engine (``rollout.rollout_backend``) and the tokenizer that decodes its output."""

    def __init__(self, config: Mapping[str, Any]):
        cfg = _config(config)
        engine_cls = _load("rollout_engine", cfg.rollout.rollout_backend)
        self.engine = engine_cls(cfg, rank=self.rank, world_size=self.world_size, device=self.device)
        self.tokenizer = load_tokenizer(cfg)
        self._incoming: list[tuple[str, Any]] = []

    def generate(self, mb: Mapping[str, Any]) -> dict[str, Any]:
        """``mb``: ``prompt_ids`` (lists) and ``sampling`` (a :class:`SamplingParams`), plus anything
        passed through (answers, group ids). Adds the engine's output and the decoded ``responses``."""
        out = self.engine.generate(mb["prompt_ids"], mb["sampling"])
        texts = self.tokenizer.batch_decode(out.response_ids, skip_special_tokens=True)
        return {**mb, "response_ids": out.response_ids, "response_logprobs": out.response_logprobs,
                "finish_reasons": out.finish_reasons, "weight_version": out.weight_version, "responses": texts}

    def receive_weights(self, bucket: list[tuple[str, Any]]) -> int:
        """Collect one bucket of ``(name, tensor)`` pairs; :meth:`commit_weights` loads them."""
        self._incoming.extend(bucket)
        return len(bucket)

    def commit_weights(self, version: int) -> int:
        weights, self._incoming = self._incoming, []
        self.engine.update_weights(iter(weights), version)
        return self.engine.weight_version

    def offload(self) -> None:
        self.engine.offload()

    def onload(self) -> None:
        self.engine.onload()

    def close(self) -> None:
        self.engine.close()


class RewardWorker(Worker):
    """Scores decoded responses with the reward function ``reward.reward_type``."""

    def __init__(self, config: Mapping[str, Any]):
        cfg = _config(config)
        self.fn = _load("reward", cfg.reward.reward_type)
        self.scale = float(cfg.reward.reward_scale)

    def score(self, mb: Mapping[str, Any]) -> dict[str, Any]:
        scores = self.fn(list(mb["responses"]), list(mb["answers"]))
        if len(scores) != len(mb["responses"]):
            raise ValueError(f"reward function returned {len(scores)} scores for {len(mb['responses'])} responses")
        return {**mb, "rewards": [float(s) * self.scale for s in scores], "correct": [float(s) > 0 for s in scores]}


class ModelWorker(_OnDevice):
    """A training backend (``actor.training_backend``) in one role: actor, critic or reference."""

    def __init__(self, config: Mapping[str, Any], role: str):
        cfg = _config(config)
        backend_cls = _load("training_backend", cfg.actor.training_backend)
        self.role = role
        self.backend = backend_cls(cfg, role=role, rank=self.rank, world_size=self.world_size, device=self.device)
        self._buckets: list[list[tuple[str, Any]]] = []

    def compute_log_probs(self, batch: Mapping[str, Any], temperature: float = 1.0, with_entropy: bool = False) -> dict[str, Any]:
        out = self.backend.compute_log_probs(batch, temperature=temperature, with_entropy=with_entropy)
        return {k: v.detach().cpu() for k, v in out.items()}

    def compute_values(self, batch: Mapping[str, Any]) -> Any:
        return self.backend.compute_values(batch).detach().cpu()

    def train_step(self, batch: Mapping[str, Any], loss_fn: Any, temperature: float = 1.0,
                   global_tokens: int | None = None, global_seqs: int | None = None) -> dict[str, float]:
        return self.backend.train_step(batch, loss_fn, temperature=temperature, global_tokens=global_tokens,
                                       global_seqs=global_seqs)

    def prepare_weights(self, bucket_bytes: int) -> int:
        """Export the full weights (a collective) into buckets of at most ``bucket_bytes``; returns
        how many buckets this rank holds (rank 0 holds them all)."""
        self._buckets, size = [[]], 0
        for name, tensor in self.backend.export_weights():
            nbytes = tensor.numel() * tensor.element_size()
            if self._buckets[-1] and size + nbytes > bucket_bytes:
                self._buckets.append([])
                size = 0
            self._buckets[-1].append((name, tensor.detach().cpu()))
            size += nbytes
        if not self._buckets[-1]:
            self._buckets.pop()
        return len(self._buckets)

    def weight_bucket(self, i: int) -> list[tuple[str, Any]]:
        bucket = self._buckets[i]
        if i == len(self._buckets) - 1:
            self._buckets = []
        return bucket

    def save_checkpoint(self, path: str) -> None:
        self.backend.save_checkpoint(path)

    def load_checkpoint(self, path: str) -> None:
        self.backend.load_checkpoint(path)

    def offload(self) -> None:
        self.backend.offload()

    def onload(self) -> None:
        self.backend.onload()
