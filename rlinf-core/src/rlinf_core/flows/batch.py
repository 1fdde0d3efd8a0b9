"""Turning generated rows into a training batch (the layout of ``interfaces.TrainingBackend``) and
splitting batches among ranks and mini-batches. Needs torch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch


def pad_rows(prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]], pad_id: int,
             response_logprobs: Sequence[Sequence[float]] | None = None) -> dict[str, torch.Tensor]:
    """``input_ids`` / ``attention_mask`` ``(B, P + R)`` (prompts left-padded, responses right-padded),
    ``response_mask`` ``(B, R)`` and, when given, the engine's ``rollout_log_probs`` ``(B, R)``."""
    b = len(prompt_ids)
    p = max(len(x) for x in prompt_ids)
    r = max(1, max(len(x) for x in response_ids))
    input_ids = torch.full((b, p + r), pad_id, dtype=torch.long)
    attention = torch.zeros((b, p + r), dtype=torch.long)
    response_mask = torch.zeros((b, r), dtype=torch.long)
    logprobs = torch.zeros((b, r), dtype=torch.float32)
    for i, (prompt, response) in enumerate(zip(prompt_ids, response_ids, strict=True)):
        input_ids[i, p - len(prompt):p] = torch.tensor(prompt, dtype=torch.long)
        attention[i, p - len(prompt):p] = 1
        if response:
            input_ids[i, p:p + len(response)] = torch.tensor(response, dtype=torch.long)
            attention[i, p:p + len(response)] = 1
            response_mask[i, :len(response)] = 1
            if response_logprobs is not None:
                logprobs[i, :len(response)] = torch.tensor(response_logprobs[i], dtype=torch.float32)
    out = {"input_ids": input_ids, "attention_mask": attention, "response_mask": response_mask}
    if response_logprobs is not None:
        out["rollout_log_probs"] = logprobs
    return out


def select(batch: Mapping[str, Any], rows: torch.Tensor | slice) -> dict[str, Any]:
    """The rows ``rows`` of every tensor of ``batch`` (non-tensors are copied as they are)."""
    return {k: (v[rows] if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


def shard(batch: Mapping[str, Any], n: int) -> list[dict[str, Any]]:
    """``n`` equal, contiguous row shards (the caller has checked divisibility)."""
    rows = next(v for v in batch.values() if isinstance(v, torch.Tensor)).shape[0]
    size = rows // n
    return [select(batch, slice(i * size, (i + 1) * size)) for i in range(n)]


def concat(parts: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
