"""Helpers for the fsdp backend / huggingface engine tests: configs, batches, a loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch

VOCAB = "0123456789+= "


def make_config(model_dir: str, critic: dict | None = None, **actor):
    """A validated config whose actor section loads ``model_dir``; ``actor`` keys override (dicts merge)."""
    from rlinf_core.config import load_config

    mbs = actor.pop("micro_batch_size", 2)
    section = {"model": {"model_path": model_dir}, "micro_batch_size": mbs, "global_batch_size": 8 * mbs,
               "optim": {"lr": 1e-2, "clip_grad": 0.0}}
    for key, value in actor.items():
        if isinstance(value, dict) and isinstance(section.get(key), dict):
            section[key] = {**section[key], **value}
        else:
            section[key] = value
    return load_config({"actor": section, "critic": critic or {}})


def make_batch(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad: int = 0) -> dict:
    """The TrainingBackend layout: prompts left-padded to P, responses right-padded to R."""
    rows, plen, rlen = len(prompts), max(map(len, prompts)), max(1, max(map(len, responses)))
    ids = torch.full((rows, plen + rlen), pad, dtype=torch.long)
    attn = torch.zeros_like(ids)
    rmask = torch.zeros(rows, rlen)
    for i, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        ids[i, plen - len(p):plen] = torch.tensor(p)
        ids[i, plen:plen + len(r)] = torch.tensor(r, dtype=torch.long)
        attn[i, plen - len(p):plen + len(r)] = 1
        rmask[i, :len(r)] = 1
    return {"input_ids": ids, "attention_mask": attn, "response_mask": rmask}


def random_batch(rows: int, seed: int = 0, vocab: int = 16) -> dict:
    gen = torch.Generator().manual_seed(seed)
    prompts = [torch.randint(3, vocab, (int(torch.randint(2, 7, (1,), generator=gen)),), generator=gen).tolist()
               for _ in range(rows)]
    responses = [torch.randint(2, vocab, (int(torch.randint(1, 6, (1,), generator=gen)),), generator=gen).tolist()
                 for _ in range(rows)]
    batch = make_batch(prompts, responses)
    batch["advantages"] = torch.randn(rows, batch["response_mask"].shape[1], generator=gen)
    return batch


class PGLoss:
    """A token-mean policy-gradient loss, normalised by the step's global token count."""

    with_entropy = True

    def __call__(self, outputs, mb):
        from rlinf_algos.aggregation import token_mean

        loss = token_mean(-outputs["log_probs"] * mb["advantages"], mb["response_mask"],
                          global_tokens=mb["global_tokens"])
        assert "entropy" in outputs
        return loss, {"entropy": token_mean(outputs["entropy"], mb["response_mask"])}
