"""Group ids for the group estimators (GRPO, RLOO, ...): which rows share a prompt / initial state.

Rows are grouped by a per-row id (``index``), as in veRL and RLinf: any labels, any order, unequal
group sizes, singletons allowed, so shuffled, filtered (DAPO dynamic sampling) or gathered batches
stay correct. ``group_size`` is the contiguous special case (rows ``[0, g)``, ``[g, 2g)``, ...).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from rlinf_algos.checks import check_group_size

_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


@dataclass(frozen=True)
class Groups:
    """Dense group ids of ``B`` rows: ``ids`` ``(B,)`` int64 in ``0..num_groups-1``."""

    ids: Tensor
    num_groups: int

    @property
    def sizes(self) -> Tensor:
        """``(num_groups,)`` rows per group."""
        return torch.bincount(self.ids, minlength=self.num_groups)

    def sum(self, x: Tensor) -> Tensor:
        """``(num_groups,)`` per-group sums of the row values ``x`` ``(B,)``."""
        return x.new_zeros(self.num_groups).index_add_(0, self.ids, x)

    def mean_std(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per-row group mean, unbiased group std and group size, each ``(B,)``.

        A singleton group has mean 0 and std 1 (veRL's convention, so its GRPO advantage is the raw
        score); a group's std uses the Bessel correction.
        """
        sizes = self.sizes.to(x.dtype)
        mean = self.sum(x) / sizes.clamp(min=1)
        dev = x - mean[self.ids]
        var = self.sum(dev * dev) / (sizes - 1).clamp(min=1)
        single = sizes == 1
        mean = torch.where(single, torch.zeros_like(mean), mean)
        std = torch.where(single, torch.ones_like(var), var.sqrt())
        return mean[self.ids], std[self.ids], sizes[self.ids]


def as_groups(
    index: Tensor | Sequence[Hashable] | None, group_size: int | None, batch: int, *, device: torch.device | None = None,
    min_group_size: int = 1,
) -> Groups:
    """Resolve ``index`` (per-row group ids) or ``group_size`` (contiguous groups) into :class:`Groups`.

    ``index`` wins when both are given (``group_size`` then only names the configured size).
    ``min_group_size`` applies to the contiguous form only.
    """
    if index is not None:
        return _from_index(index, batch, device)
    if group_size is None:
        raise ValueError(
            "pass index= (the per-row group id: a (B,) int64 tensor or a sequence of labels, e.g. prompt uids) "
            "or group_size= (rows come in contiguous groups of that size)"
        )
    n_groups = check_group_size(batch, group_size, minimum=min_group_size)
    ids = torch.arange(batch, device=device) // group_size
    return Groups(ids, n_groups)


def _from_index(index: Tensor | Sequence[Hashable], batch: int, device: torch.device | None) -> Groups:
    if isinstance(index, Tensor):
        if index.dim() != 1 or index.shape[0] != batch:
            raise ValueError(
                f"index must be a 1-D tensor of length {batch} (one group id per row), got shape {tuple(index.shape)}"
            )
        if index.dtype not in _INT_DTYPES and index.dtype != torch.bool:
            raise ValueError(f"index must hold integer group ids, got dtype {index.dtype}; pass index.long() or a list of labels")
        uniq, ids = torch.unique(index, return_inverse=True)
        return Groups(ids.to(device=device or index.device, dtype=torch.long), int(uniq.numel()))
    if isinstance(index, (str, bytes)) or not hasattr(index, "__len__"):
        raise ValueError(f"index must be a (B,) tensor or a sequence of per-row labels, got {type(index).__name__}")
    if len(index) != batch:
        raise ValueError(f"index has {len(index)} labels but the batch has {batch} rows; give one group id per row")
    dtype = getattr(index, "dtype", None)
    if getattr(dtype, "kind", None) in ("i", "u", "b"):  # a numpy integer array: no per-row Python
        return _from_index(torch.as_tensor(index).long(), batch, device)
    first_seen: dict[Hashable, int] = {}
    try:
        ids = [first_seen.setdefault(label, len(first_seen)) for label in index]
    except TypeError as exc:
        raise ValueError(f"index labels must be hashable (prompt uids, ints, strings): {exc}") from None
    return Groups(torch.tensor(ids, dtype=torch.long, device=device), len(first_seen))
