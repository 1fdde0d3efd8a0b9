"""DAPO extras (Yu et al. 2025, arXiv:2503.14476): dynamic sampling and overlong reward shaping."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rlinf_algos.checks import check_finite, check_group_size, check_tensor


@dataclass(frozen=True)
class DynamicSamplingResult:
    """Which rows to keep, and how many more prompts (groups) to draw to fill the batch."""

    keep: Tensor  #: (B,) bool; whole groups are kept or dropped
    kept_groups: int
    dropped_groups: int
    prompts_needed: int


def dynamic_sampling_filter(
    scores: Tensor, group_size: int, *, target_groups: int | None = None,
    lower_bound: float | None = None, upper_bound: float | None = None,
) -> DynamicSamplingResult:
    """Drop groups whose rewards are all equal (they carry no GRPO signal).

    Also drops groups whose mean reward lies outside ``[lower_bound, upper_bound]`` when given
    (RLinf's ``filter_rewards``). ``prompts_needed`` is how many more groups to generate to reach
    ``target_groups`` (default: the number of groups passed in).
    """
    check_tensor(scores, "scores", ndim=(1,))
    check_finite(scores, "scores")
    n_groups = check_group_size(scores.shape[0], group_size)
    groups = scores.view(n_groups, group_size)
    keep_group = groups.max(dim=1).values != groups.min(dim=1).values
    means = groups.mean(dim=1)
    if lower_bound is not None:
        keep_group &= means >= lower_bound
    if upper_bound is not None:
        keep_group &= means <= upper_bound
    kept = int(keep_group.sum())
    target = n_groups if target_groups is None else target_groups
    return DynamicSamplingResult(
        keep=keep_group.repeat_interleave(group_size),
        kept_groups=kept,
        dropped_groups=n_groups - kept,
        prompts_needed=max(0, target - kept),
    )


def overlong_penalty(
    response_lengths: Tensor, *, max_response_length: int, overlong_buffer_len: int, penalty_factor: float = 1.0,
) -> Tensor:
    r"""DAPO's soft overlong punishment, to add to the scores.

    With :math:`L_{max}` = ``max_response_length`` and :math:`L_{c}` = ``overlong_buffer_len``:
    0 for :math:`L \le L_{max} - L_c`; :math:`((L_{max} - L_c) - L) / L_c` inside the buffer;
    -1 beyond :math:`L_{max}`; all times ``penalty_factor``.
    """
    if overlong_buffer_len <= 0 or overlong_buffer_len > max_response_length:
        raise ValueError(
            f"overlong_buffer_len must be in 1..max_response_length ({max_response_length}), got {overlong_buffer_len}"
        )
    lengths = response_lengths.to(torch.float32)
    start = max_response_length - overlong_buffer_len
    penalty = ((start - lengths) / overlong_buffer_len).clamp(min=-1.0, max=0.0)
    return penalty * penalty_factor
