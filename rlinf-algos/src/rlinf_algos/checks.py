"""Input checks shared by every estimator and loss: one clear ``ValueError`` naming the argument."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch
from torch import Tensor

#: Whether :func:`check_finite` checks (see :func:`finite_checks`).
_FINITE_CHECKS: contextvars.ContextVar[bool] = contextvars.ContextVar("rlinf_algos_finite_checks", default=True)


@contextlib.contextmanager
def finite_checks(enabled: bool) -> Iterator[None]:
    """Turn :func:`check_finite` on or off within the block (it is on by default).

    Off, the losses and estimators skip their NaN / inf checks, a host sync each: for a caller that
    checked its fixed inputs once (e.g. once per training step rather than per mini-batch) and lets a
    non-finite model output show as a non-finite loss, whose optimizer step the training backend skips.
    """
    token = _FINITE_CHECKS.set(bool(enabled))
    try:
        yield
    finally:
        _FINITE_CHECKS.reset(token)

_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def as_mask(mask: Tensor | None, like: Tensor, name: str = "mask", like_name: str = "rewards") -> Tensor:
    """Return ``mask`` as a bool tensor of ``like``'s shape (all-true when ``None``).

    Accepts bool masks, and integer or floating masks whose values are all 0 or 1.
    """
    if mask is None:
        return torch.ones_like(like, dtype=torch.bool)
    if not isinstance(mask, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(mask).__name__}")
    if mask.shape != like.shape:
        raise ValueError(f"{name} has shape {tuple(mask.shape)} but {like_name} has shape {tuple(like.shape)}; they must match")
    return bool_mask(mask, name)


def bool_mask(mask: Tensor, name: str = "mask") -> Tensor:
    """``mask`` as bool: bool masks as they are, integer or floating masks whose values are all 0 or 1."""
    if mask.dtype == torch.bool:
        return mask
    if not (mask.is_floating_point() or mask.dtype in _INT_DTYPES):
        raise ValueError(f"{name} must be bool (or 0/1 integer/float), got dtype {mask.dtype}")
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError(f"{name} of dtype {mask.dtype} holds values other than 0 and 1; pass a bool mask (mask.bool())")
    return mask.bool()


def check_tensor(x: Tensor, name: str, *, ndim: tuple[int, ...] | None = None) -> None:
    """``x`` is a floating tensor (with one of ``ndim`` dimensions)."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if ndim is not None and x.dim() not in ndim:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndim))} dimensions, got shape {tuple(x.shape)}")


def check_same_shape(ref_name: str, ref: Tensor, **others: Tensor | None) -> None:
    """Every tensor in ``others`` (when not ``None``) has ``ref``'s shape."""
    for name, x in others.items():
        if x is not None and tuple(x.shape) != tuple(ref.shape):
            raise ValueError(f"{name} has shape {tuple(x.shape)} but {ref_name} has shape {tuple(ref.shape)}; they must match")


def check_finite(x: Tensor, name: str, mask: Tensor | None = None) -> None:
    """No NaN or inf in ``x`` (at positions where ``mask`` is true); nothing under ``finite_checks(False)``."""
    if not _FINITE_CHECKS.get():
        return
    bad = ~torch.isfinite(x)
    if mask is not None:
        bad = bad & mask
    if bool(bad.any()):
        where = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"{name} holds NaN or inf (first at index {where}, shape {tuple(x.shape)})")


def check_group_size(batch: int, group_size: int, name: str = "group_size", minimum: int = 1) -> int:
    """``group_size`` is an int >= ``minimum`` that divides ``batch``; returns the number of groups."""
    if not isinstance(group_size, int) or group_size < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {group_size!r}")
    if batch % group_size:
        raise ValueError(
            f"{name}={group_size} does not divide the batch of {batch} rows; rows must come in whole, contiguous groups"
        )
    return batch // group_size
