"""Context parallelism for the megatron backend's local (non-Transformer-Engine) layer spec.

Each sequence of ``T`` columns is cut into ``2 x CP`` equal chunks and CP rank ``r`` holds chunks ``r`` and
``2 x CP - 1 - r`` (megatron-core's load-balanced layout: its rotary embedding slices positions the same
way, :func:`megatron.core.models.common.embeddings.rope_utils.get_pos_emb_on_this_cp_rank`). Every layer
runs on the rank's ``T / CP`` tokens; attention all-gathers keys and values over the CP group (what
Transformer Engine calls ``cp_comm_type="all_gather"``) and attends with this rank's rows of the full
``(T, T)`` mask, so padding and causality are exactly those of one process.

megatron-core's own ``DotProductAttention`` refuses ``context_parallel_size > 1`` (its CP attention is
Transformer Engine's, CUDA only, and needs packed sequences for padding): this module is what lets the
backend's padded batches, on the CPU (gloo) as on GPUs (NCCL), run with CP > 1. Attention stays dense:
each rank holds ``(T / CP) x T`` scores per head.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.distributed as dist
from megatron.core.transformer.dot_product_attention import DotProductAttention


def local_positions(width: int, cp_size: int, cp_rank: int) -> torch.Tensor:
    """The columns (of ``width``, a multiple of ``2 x cp_size``) that CP rank ``cp_rank`` holds, in its order."""
    if width % (2 * cp_size):
        raise ValueError(f"context parallelism: width {width} is not a multiple of 2 x CP = {2 * cp_size}")
    chunk = width // (2 * cp_size)
    first, second = cp_rank * chunk, (2 * cp_size - 1 - cp_rank) * chunk
    return torch.cat([torch.arange(first, first + chunk), torch.arange(second, second + chunk)])


def _natural_order(width: int, cp_size: int) -> torch.Tensor:
    """Index that puts the concatenation of every rank's local columns (rank 0 first) back in column order."""
    held = torch.cat([local_positions(width, cp_size, r) for r in range(cp_size)])
    return torch.argsort(held)


class _GatherSequence(torch.autograd.Function):
    """All-gather along ``dim`` over the CP group into column order. Backward, ``reduce=True``: the gradient
    of the gathered tensor is summed over the group (each rank's tokens feed the other ranks' attention),
    then this rank's columns are kept; ``reduce=False``: every rank computed the same loss from the gathered
    tensor, so this rank's columns of its own gradient are the gradient of its input."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, dim: int, group: Any, reduce: bool) -> torch.Tensor:
        size, rank = dist.get_world_size(group), dist.get_rank(group)
        parts = [torch.empty_like(x) for _ in range(size)]
        dist.all_gather(parts, x.contiguous(), group=group)
        width = x.shape[dim] * size
        ctx.dim, ctx.group, ctx.reduce = dim, group, reduce
        ctx.mine = local_positions(width, size, rank).to(x.device)
        return torch.cat(parts, dim=dim).index_select(dim, _natural_order(width, size).to(x.device))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):
        if ctx.reduce:
            grad = grad.contiguous()
            dist.all_reduce(grad, group=ctx.group)
        return grad.index_select(ctx.dim, ctx.mine), None, None, None


def gather_sequence(x: torch.Tensor, *, dim: int, group: Any, reduce_grad: bool) -> torch.Tensor:
    """``x`` holding this CP rank's columns (:func:`local_positions`) along ``dim`` -> all columns in order."""
    if dist.get_world_size(group) == 1:
        return x
    return _GatherSequence.apply(x, dim, group, reduce_grad)


class ContextParallelAttention(DotProductAttention):
    """megatron-core's ``DotProductAttention`` over keys and values all-gathered across the CP group.

    Queries are this rank's ``T / CP`` tokens (``[sq, b, heads, dim]``); ``attention_mask`` holds the
    matching rows of the full mask (``[b, 1, T / CP, T]``, True = masked)."""

    def __init__(self, config: Any, *args: Any, **kwargs: Any):
        # the parent refuses CP > 1 (it cannot split the keys); it computes the same attention on gathered ones
        super().__init__(dataclasses.replace(config, context_parallel_size=1), *args, **kwargs)
        self.config = config
        from megatron.core import parallel_state as ps

        self.cp_group = ps.get_context_parallel_group()

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: Any,
                *args: Any, **kwargs: Any) -> torch.Tensor:
        key = gather_sequence(key, dim=0, group=self.cp_group, reduce_grad=True)
        value = gather_sequence(value, dim=0, group=self.cp_group, reduce_grad=True)
        return super().forward(query, key, value, attention_mask, *args, **kwargs)
