"""Loss aggregation (incl. gradient accumulation) and the DAPO extras."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from rlinf_algos import AGGREGATIONS, aggregate, dynamic_sampling_filter, overlong_penalty

T = torch.tensor

LOSS = T([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
MASK = T([[1, 1, 0], [1, 0, 0]])


def close(a, b, tol=1e-6):
    torch.testing.assert_close(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64),
                               atol=tol, rtol=tol)


@pytest.mark.parametrize("mode, expected", [
    ("token-mean", 7 / 3),
    ("seq-mean-token-sum", (3 + 4) / 2),
    ("seq-mean-token-mean", (1.5 + 4) / 2),
    ("seq-mean-token-sum-norm", (3 / 3 + 4 / 3) / 2),
])
def test_modes_hand_computed(mode, expected):
    close(aggregate(LOSS, MASK, mode), expected)


def test_sum_norm_uses_the_generation_budget():
    close(aggregate(LOSS, MASK, "seq-mean-token-sum-norm", max_tokens=10), (3 + 4) / 10 / 2)


@settings(max_examples=80, deadline=None)
@given(st.data(), st.sampled_from(sorted(AGGREGATIONS)))
def test_two_micro_batches_with_accumulation_equal_one_batch(data, mode):
    b = data.draw(st.integers(2, 6))
    t = data.draw(st.integers(1, 5))
    split = data.draw(st.integers(1, b - 1))
    loss = T(data.draw(st.lists(st.floats(-5, 5, width=32), min_size=b * t, max_size=b * t)), dtype=torch.float64).view(b, t)
    mask = T(data.draw(st.lists(st.booleans(), min_size=b * t, max_size=b * t))).view(b, t)
    weights = loss.clone().requires_grad_()
    full = aggregate(weights, mask, mode)
    (g_full,) = torch.autograd.grad(full, weights)
    # sequences with at least one valid token (fully masked rows do not count)
    counts = {"global_tokens": int(mask.sum()), "global_seqs": int(mask.any(1).sum()), "max_tokens": t}
    w2 = loss.clone().requires_grad_()
    micro = [aggregate(w2[:split], mask[:split], mode, **counts), aggregate(w2[split:], mask[split:], mode, **counts)]
    for m in micro:
        m.backward()  # gradient accumulation
    close(sum(m.detach() for m in micro), full.detach(), tol=1e-9)
    close(w2.grad, g_full, tol=1e-9)


def test_unknown_count_keyword_is_an_error_not_ignored():
    with pytest.raises(TypeError):
        aggregate(LOSS, MASK, "token-mean", global_token=3)


def test_dynamic_sampling_drops_groups_with_equal_rewards():
    scores = T([1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.5, 0.7])
    res = dynamic_sampling_filter(scores, group_size=2, target_groups=4)
    assert res.keep.tolist() == [False, False, True, True, False, False, True, True]
    assert (res.kept_groups, res.dropped_groups, res.prompts_needed) == (2, 2, 2)
    banded = dynamic_sampling_filter(scores, group_size=2, lower_bound=0.55)
    assert banded.keep.tolist() == [False] * 6 + [True, True]
    assert banded.prompts_needed == 3
    with pytest.raises(ValueError, match="group_size=3 does not divide the batch of 8 rows"):
        dynamic_sampling_filter(scores, group_size=3)


def test_overlong_penalty_hand_computed():
    lengths = T([5, 6, 8, 10, 12])
    close(overlong_penalty(lengths, max_response_length=10, overlong_buffer_len=4), [0.0, 0.0, -0.5, -1.0, -1.0])
    close(overlong_penalty(lengths, max_response_length=10, overlong_buffer_len=4, penalty_factor=0.5),
          [0.0, 0.0, -0.25, -0.5, -0.5])
    with pytest.raises(ValueError, match="overlong_buffer_len must be in 1..max_response_length"):
        overlong_penalty(lengths, max_response_length=10, overlong_buffer_len=0)
