"""Shared pieces of the megatron backend tests: configs, batches, a policy-gradient loss."""

from __future__ import annotations

from typing import Any

import torch

VOCAB = "0123456789+=-*"


def make_config(model_dir: str, *, micro_batch_size: int = 2, megatron: dict[str, Any] | None = None,
                optim: dict[str, Any] | None = None, lr_sched: dict[str, Any] | None = None, seed: int = 1):
    from omegaconf import OmegaConf

    return OmegaConf.create({
        "actor": {"training_backend": "megatron", "micro_batch_size": micro_batch_size, "seed": seed,
                  "model": {"model_path": model_dir, "precision": "fp32"},
                  "optim": {"lr": 1e-3, "clip_grad": 1.0, **(optim or {})},
                  "lr_sched": {"lr_decay_style": "constant", **(lr_sched or {})},
                  "megatron": dict(megatron or {})},
        "runner": {"max_steps": 4}, "algorithm": {"n_minibatches": 1, "update_epoch": 1},
    })


def random_batch(rows: int, *, vocab: int, prompt: int = 5, response: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """Left-padded prompts and right-padded responses of varied lengths, as the flows build them."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (rows, prompt + response), generator=g)
    attn = torch.ones(rows, prompt + response, dtype=torch.long)
    resp_mask = torch.ones(rows, response, dtype=torch.long)
    for r in range(rows):
        lp = int(torch.randint(0, prompt - 1, (1,), generator=g))
        lr = int(torch.randint(0, response, (1,), generator=g))
        attn[r, :lp] = 0
        ids[r, :lp] = 0
        if lr:
            attn[r, -lr:] = 0
            resp_mask[r, -lr:] = 0
            ids[r, -lr:] = 0
    return {"input_ids": ids, "attention_mask": attn, "response_mask": resp_mask,
            "advantages": torch.randn(rows, response, generator=g) * resp_mask,
            "old_log_probs": torch.zeros(rows, response)}


def critic_batch() -> dict[str, torch.Tensor]:
    """A value-regression batch: random returns on the response tokens, old values 0."""
    batch = random_batch(8, vocab=17, seed=3)
    batch["old_values"] = torch.zeros_like(batch["advantages"])
    batch["returns"] = torch.randn(batch["advantages"].shape, generator=torch.Generator().manual_seed(1)) * batch["response_mask"]
    return batch


class PGLoss:
    """Token-mean policy gradient with an entropy term: exercises log-probs and entropy gradients."""

    with_entropy = True

    def __call__(self, outputs, mb):
        mask = mb["response_mask"].float()
        pg = -(outputs["log_probs"] * mb["advantages"] * mask).sum() / mb["global_tokens"]
        ent = (outputs["entropy"] * mask).sum() / mb["global_tokens"]
        return pg - 0.01 * ent, {"entropy": ent.detach() * mb["global_tokens"] / mask.sum().clamp(min=1)}


def hf_log_probs(model_dir: str, batch: dict[str, torch.Tensor], temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference log-probs and entropy of the response tokens from the Hugging Face model."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids, attn, mask = batch["input_ids"], batch["attention_mask"], batch["response_mask"]
    resp = mask.shape[1]
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attn, position_ids=pos).logits.float() / temperature
    logits = logits[:, -resp - 1:-1]
    logp = torch.log_softmax(logits, -1)
    lp = logp.gather(-1, ids[:, -resp:, None]).squeeze(-1) * mask
    ent = -(logp.exp() * logp).sum(-1) * mask
    return lp, ent
