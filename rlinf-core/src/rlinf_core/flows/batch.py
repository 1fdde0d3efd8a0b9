"""Turning generated rows into a training batch (the layout of ``interfaces.TrainingBackend``) and
splitting batches among ranks and mini-batches. Needs torch."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch


def pad_rows(prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]], pad_id: int,
             response_logprobs: Sequence[Sequence[float]] | None = None) -> dict[str, torch.Tensor]:
    """``input_ids`` / ``attention_mask`` ``(B, P + R)`` (prompts left-padded, responses right-padded),
    ``response_mask`` ``(B, R)`` and, when given, the engine's ``rollout_log_probs`` ``(B, R)``.

    Built with one scatter per part, not per row: a GRPO batch has hundreds of rows."""
    b = len(prompt_ids)
    if len(response_ids) != b or (response_logprobs is not None and len(response_logprobs) != b):
        raise ValueError(f"pad_rows: {b} prompts, {len(response_ids)} responses"
                         + ("" if response_logprobs is None else f", {len(response_logprobs)} log-prob rows"))
    plen = np.fromiter(map(len, prompt_ids), dtype=np.int64, count=b)
    rlen = np.fromiter(map(len, response_ids), dtype=np.int64, count=b)
    p = int(plen.max())
    r = max(1, int(rlen.max()))
    input_ids = np.full((b, p + r), pad_id, dtype=np.int64)
    # prompt i fills columns [p - plen[i], p); response i fills [p, p + rlen[i])
    _scatter(input_ids, prompt_ids, plen, first_col=p - plen)
    _scatter(input_ids, response_ids, rlen, first_col=np.full(b, p))
    cols = np.arange(p + r)
    attention = (cols >= (p - plen)[:, None]) & (cols < (p + rlen)[:, None])
    response_mask = np.arange(r) < rlen[:, None]
    out = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention.astype(np.int64)),
           "response_mask": torch.from_numpy(response_mask.astype(np.int64))}
    if response_logprobs is not None:
        if any(len(lp) != n for lp, n in zip(response_logprobs, rlen.tolist(), strict=True)):
            raise ValueError("pad_rows: a row's log-probs and response differ in length")
        logprobs = np.zeros((b, r), dtype=np.float32)
        _scatter(logprobs, response_logprobs, rlen, first_col=np.zeros(b, dtype=np.int64))
        out["rollout_log_probs"] = torch.from_numpy(logprobs)
    return out


def _scatter(dest: np.ndarray, rows: Sequence[Sequence[Any]], lengths: np.ndarray, first_col: np.ndarray) -> None:
    """``dest[i, first_col[i]:first_col[i] + lengths[i]] = rows[i]`` for every row, in one assignment."""
    total = int(lengths.sum())
    if total == 0:
        return
    values = np.fromiter(itertools.chain.from_iterable(rows), dtype=dest.dtype, count=total)
    row = np.repeat(np.arange(len(lengths)), lengths)
    start = np.cumsum(lengths) - lengths  # each row's offset in ``values``
    col = np.arange(total) - np.repeat(start, lengths) + np.repeat(first_col, lengths)
    dest[row, col] = values


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
