"""Masked reductions and whitening.

``mask`` is bool, or integer / floating with values 0 and 1 (anything else is an error, not a
weight); it broadcasts against the values. Results keep the values' dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlinf_algos.checks import bool_mask


def masked_sum(x: Tensor, mask: Tensor, dim: int | tuple[int, ...] | None = None) -> Tensor:
    """Sum of ``x`` where ``mask`` is true (masked positions contribute exactly 0, even if NaN)."""
    x = torch.where(bool_mask(mask), x, torch.zeros((), dtype=x.dtype, device=x.device))
    return x.sum() if dim is None else x.sum(dim)


def _count(mask: Tensor, like: Tensor, dim: int | tuple[int, ...] | None) -> Tensor:
    mask = bool_mask(mask).expand_as(like) if mask.shape != like.shape else bool_mask(mask)
    return mask.sum() if dim is None else mask.sum(dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | tuple[int, ...] | None = None) -> Tensor:
    """Mean of ``x`` over positions where ``mask`` is true (0 where nothing is valid)."""
    return masked_sum(x, mask, dim) / _count(mask, x, dim).clamp(min=1).to(x.dtype)


def masked_var(x: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance of the valid entries of ``x`` (Bessel-corrected by default; 0 with fewer than 2)."""
    mean = masked_mean(x, mask)
    count = _count(mask, x, None).to(x.dtype)
    sq = masked_sum((x - mean) ** 2, mask)
    return sq / (count - 1).clamp(min=1) if unbiased else sq / count.clamp(min=1)


def masked_whiten(x: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """``(x - mean) / sqrt(var + eps)`` over the valid entries (unbiased variance); masked entries become 0.

    With ``shift_mean=False`` the mean is added back (scale only).
    """
    mask = bool_mask(mask)
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return torch.where(mask, out, torch.zeros((), dtype=out.dtype, device=out.device))
