"""Advantage estimators against hand-computed values, a plain-loop reference, and properties."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import discounted_loop, gae_loop
from rlinf_algos import discounted_returns, dr_grpo, gae, grpo, reinforce_plus_plus, reinforce_plus_plus_baseline, rloo

T = torch.tensor


def close(a, b, tol=1e-5):
    torch.testing.assert_close(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64),
                               atol=tol, rtol=tol)


# --- GAE: hand-computed


def test_gae_hand_computed():
    adv, ret = gae(rewards=T([[1.0, 2.0, 3.0]]), values=T([[0.5, 1.0, 1.5]]), gamma=0.9, gae_lambda=0.8)
    # deltas: 1+0.9*1-0.5=1.4, 2+0.9*1.5-1=2.35, 3-1.5=1.5; A2=1.5, A1=2.35+0.72*1.5, A0=1.4+0.72*A1
    close(adv, [[3.8696, 3.43, 1.5]])
    close(ret, [[4.3696, 4.43, 3.0]])


def test_gae_truncation_bootstraps_from_final_observation_and_termination_does_not():
    kw = dict(rewards=T([[1.0, 1.0]]), values=T([[2.0, 3.0]]), gamma=0.5, gae_lambda=1.0, last_values=T([4.0]))
    adv_trunc, _ = gae(**kw, truncated=T([[True, False]]), truncated_values=T([[5.0, 0.0]]))
    # step 1: 1 + 0.5*4 - 3 = 0; step 0: 1 + 0.5*5 - 2 = 1.5, recursion stops at the boundary
    close(adv_trunc, [[1.5, 0.0]])
    adv_term, _ = gae(**kw, terminated=T([[True, False]]))
    close(adv_term, [[-1.0, 0.0]])  # 1 + 0 - 2
    adv_none, _ = gae(**kw)  # no boundary: 1 + 0.5*3 - 2 + 0.5*0 = 0.5
    close(adv_none, [[0.5, 0.0]])


def test_gae_requires_values_for_truncated_steps():
    with pytest.raises(ValueError, match="truncated has true entries but truncated_values is None"):
        gae(rewards=T([[1.0]]), values=T([[0.0]]), truncated=T([[True]]))


def test_gae_skips_masked_steps():
    adv, ret = gae(rewards=T([[1.0, 9.0, 2.0]]), values=T([[0.0, 7.0, 0.0]]), mask=T([[True, False, True]]))
    close(adv, [[3.0, 0.0, 2.0]])
    close(ret, [[3.0, 0.0, 2.0]])


def test_gae_chunk_level_sums_rewards_over_the_chunk():
    rewards = T([[[1.0, 1.0], [0.0, 2.0]]])  # (B=1, S=2, C=2)
    adv, ret = gae(rewards=rewards, values=T([[1.0, 1.0]]), level="chunk")
    # chunk rewards [2, 2]; A1 = 2 - 1 = 1; A0 = 2 + 1 - 1 + 1 = 3
    close(adv, [[[3.0, 3.0], [1.0, 1.0]]])
    close(ret, [[[4.0, 4.0], [2.0, 2.0]]])


def test_gae_action_level_treats_each_action_as_a_step():
    rewards = T([[[1.0, 1.0], [0.0, 2.0]]])
    adv, _ = gae(rewards=rewards, values=torch.zeros(1, 2, 2), gamma=0.5, level="action", terminated=T([[True, False]]))
    # flat rewards [1, 1, 0, 2], done after action 1: A3=2, A2=0+0.5*2=1, A1=1, A0=1+0.5*1
    close(adv, [[[1.5, 1.0], [1.0, 2.0]]])
    # a (B, S) chunk mask covers every action of the chunk
    adv_m, ret_m = gae(rewards=rewards, values=torch.zeros(1, 2, 2), gamma=0.5, level="action",
                       terminated=T([[True, False]]), mask=T([[True, False]]))
    close(adv_m, [[[1.5, 1.0], [0.0, 0.0]]])
    close(ret_m, adv_m)


def test_gae_level_shape_errors():
    with pytest.raises(ValueError, match="level='token' takes rewards of shape \\(B, T\\)"):
        gae(rewards=torch.zeros(1, 2, 2), values=torch.zeros(1, 2))
    with pytest.raises(ValueError, match="level must be one of token, chunk, action"):
        gae(rewards=torch.zeros(1, 2), values=torch.zeros(1, 2), level="step")


# --- GAE and returns against the plain loop


@st.composite
def rollouts(draw):
    b = draw(st.integers(1, 4))
    t = draw(st.integers(1, 7))
    floats = st.floats(-3, 3, allow_nan=False, width=32)
    rewards = draw(st.lists(st.lists(floats, min_size=t, max_size=t), min_size=b, max_size=b))
    values = draw(st.lists(st.lists(floats, min_size=t, max_size=t), min_size=b, max_size=b))
    mask = draw(st.lists(st.lists(st.booleans(), min_size=t, max_size=t), min_size=b, max_size=b))
    if draw(st.booleans()):
        mask[0] = [False] * t  # an all-masked row
    term = draw(st.lists(st.lists(st.booleans(), min_size=t, max_size=t), min_size=b, max_size=b))
    trunc = [[(not a) and c for a, c in zip(ra, rc, strict=True)]
             for ra, rc in zip(term, draw(st.lists(st.lists(st.booleans(), min_size=t, max_size=t), min_size=b, max_size=b)), strict=True)]
    tvals = draw(st.lists(st.lists(floats, min_size=t, max_size=t), min_size=b, max_size=b))
    last = draw(st.lists(floats, min_size=b, max_size=b))
    gamma = draw(st.floats(0, 1))
    lam = draw(st.floats(0, 1))
    return rewards, values, mask, term, trunc, tvals, last, gamma, lam


@settings(max_examples=150, deadline=None)
@given(rollouts())
def test_gae_matches_plain_loop(case):
    rewards, values, mask, term, trunc, tvals, last, gamma, lam = case
    d = torch.float64
    adv, ret = gae(rewards=T(rewards, dtype=d), values=T(values, dtype=d), mask=T(mask), gamma=gamma, gae_lambda=lam,
                   terminated=T(term), truncated=T(trunc), truncated_values=T(tvals, dtype=d), last_values=T(last, dtype=d))
    expected = gae_loop(rewards, values, mask, gamma, lam, term, trunc, tvals, last)
    close(adv, expected, tol=1e-9)
    close(ret, [[(a + v) if m else 0.0 for a, v, m in zip(ar, vr, mr, strict=True)]
                for ar, vr, mr in zip(expected, values, mask, strict=True)], tol=1e-9)


@settings(max_examples=100, deadline=None)
@given(rollouts())
def test_discounted_returns_match_plain_loop(case):
    rewards, _, mask, *_, gamma, _ = case
    ret = discounted_returns(rewards=T(rewards, dtype=torch.float64), mask=T(mask), gamma=gamma)
    close(ret, discounted_loop(rewards, mask, gamma), tol=1e-9)


@settings(max_examples=100, deadline=None)
@given(rollouts())
def test_gae_properties(case):
    rewards, values, mask, *_ = case
    r, v, m = T(rewards, dtype=torch.float64), T(values, dtype=torch.float64), T(mask)
    # lambda = 1: discounted return minus value
    adv, _ = gae(rewards=r, values=v, mask=m, gamma=0.9, gae_lambda=1.0)
    close(adv, torch.where(m, discounted_returns(rewards=r, mask=m, gamma=0.9) - v, 0.0), tol=1e-9)
    # gamma = 0: r - V
    adv0, _ = gae(rewards=r, values=v, mask=m, gamma=0.0, gae_lambda=0.7)
    close(adv0, torch.where(m, r - v, 0.0), tol=1e-12)
    # masked positions change nothing
    noise_r = torch.where(m, r, r + 100.0)
    noise_v = torch.where(m, v, torch.full_like(v, float("nan")))
    adv_noisy, _ = gae(rewards=noise_r, values=noise_v, mask=m, gamma=0.9, gae_lambda=0.8)
    adv_clean, _ = gae(rewards=r, values=v, mask=m, gamma=0.9, gae_lambda=0.8)
    close(adv_noisy, adv_clean, tol=1e-12)


# --- group estimators


SCORES = T([1.0, 0.0, 0.0, 1.0, 2.0, 2.0])


def test_grpo_hand_computed_and_dr_grpo():
    adv, ret = grpo(rewards=SCORES, group_size=3)
    s = math.sqrt(1 / 3)  # unbiased std of [1, 0, 0] and of [1, 2, 2]
    close(adv, [2 / 3 / s, -1 / 3 / s, -1 / 3 / s, -2 / 3 / s, 1 / 3 / s, 1 / 3 / s], tol=1e-5)
    assert ret is adv
    close(grpo(rewards=SCORES, group_size=3, norm_by_std=False)[0], [2 / 3, -1 / 3, -1 / 3, -2 / 3, 1 / 3, 1 / 3])
    close(dr_grpo(rewards=SCORES, group_size=3)[0], [2 / 3, -1 / 3, -1 / 3, -2 / 3, 1 / 3, 1 / 3])


def test_grpo_broadcasts_over_the_response_mask_and_sums_token_rewards():
    mask = T([[1, 1, 0], [1, 0, 0]], dtype=torch.float32)
    adv, _ = grpo(rewards=T([3.0, 1.0]), mask=mask, group_size=2, norm_by_std=False)
    close(adv, [[1.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    token_rewards = T([[0.0, 3.0, 50.0], [1.0, 50.0, 50.0]])  # masked 50s are ignored
    adv2, _ = grpo(rewards=token_rewards, mask=mask, group_size=2, norm_by_std=False)
    close(adv2, adv)


def test_rloo_hand_computed():
    close(rloo(rewards=SCORES, group_size=3)[0], [1.0, -0.5, -0.5, -1.0, 0.5, 0.5])


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5), st.integers(2, 6), st.data())
def test_group_advantages_have_zero_mean_per_group(groups, size, data):
    scores = T(data.draw(st.lists(st.floats(-5, 5, width=32), min_size=groups * size, max_size=groups * size)),
               dtype=torch.float64)
    for fn in (grpo, rloo, dr_grpo):
        adv, _ = fn(rewards=scores, group_size=size)
        close(adv.view(groups, size).mean(1), torch.zeros(groups), tol=1e-9)


def test_reinforce_plus_plus_hand_computed():
    adv, ret = reinforce_plus_plus(rewards=T([[0.0, 1.0], [1.0, 0.0]]), gamma=0.5)
    close(ret, [[0.5, 1.0], [1.0, 0.0]])
    dev = T([-0.125, 0.375, 0.375, -0.625])
    std = math.sqrt(0.6875 / 3)
    close(adv.flatten(), dev / std, tol=1e-5)


def test_reinforce_plus_plus_puts_scores_on_the_last_valid_token():
    mask = T([[True, True, False], [True, False, False]])
    _, ret = reinforce_plus_plus(rewards=T([1.0, 2.0]), mask=mask, gamma=0.5)
    close(ret, [[0.5, 1.0, 0.0], [2.0, 0.0, 0.0]])


def test_reinforce_plus_plus_baseline_hand_computed():
    adv, _ = reinforce_plus_plus_baseline(rewards=T([1.0, 3.0, 2.0, 2.0]), group_size=2)
    std = math.sqrt(2 / 3)
    close(adv, [-1 / std, 1 / std, 0.0, 0.0], tol=1e-5)
    mask = T([[True, True], [True, False], [True, True], [False, False]])
    adv_m, _ = reinforce_plus_plus_baseline(rewards=T([1.0, 3.0, 2.0, 2.0]), mask=mask, group_size=2)
    assert torch.all(adv_m[~mask] == 0)
    close(adv_m[mask].mean(), 0.0, tol=1e-6)


# --- bad input


def test_bad_inputs_get_one_clear_error():
    with pytest.raises(ValueError, match=r"values has shape \(2, 3\) but rewards has shape \(2, 4\)"):
        gae(rewards=torch.zeros(2, 4), values=torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"mask has shape \(2, 3\) but rewards has shape \(2, 4\)"):
        gae(rewards=torch.zeros(2, 4), values=torch.zeros(2, 4), mask=torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask of dtype torch.float32 holds values other than 0 and 1"):
        gae(rewards=torch.zeros(1, 2), values=torch.zeros(1, 2), mask=T([[0.5, 1.0]]))
    with pytest.raises(ValueError, match="mask must be bool \\(or 0/1 integer/float\\), got dtype torch.complex64"):
        gae(rewards=torch.zeros(1, 2), values=torch.zeros(1, 2), mask=torch.ones(1, 2, dtype=torch.complex64))
    with pytest.raises(ValueError, match="group_size=3 does not divide the batch of 4 rows"):
        grpo(rewards=torch.zeros(4), group_size=3)
    with pytest.raises(ValueError, match="group_size must be an integer >= 2"):
        rloo(rewards=torch.zeros(4), group_size=1)
    with pytest.raises(ValueError, match=r"rewards holds NaN or inf \(first at index \(0, 1\), shape \(1, 2\)\)"):
        gae(rewards=T([[0.0, float("nan")]]), values=torch.zeros(1, 2))
    with pytest.raises(ValueError, match="rewards holds NaN"):
        grpo(rewards=T([0.0, float("nan")]), group_size=2)
    with pytest.raises(ValueError, match="rewards must be a floating-point tensor, got dtype torch.int64"):
        grpo(rewards=T([0, 1]), group_size=2)
    # NaN at a masked position is fine
    adv, _ = gae(rewards=T([[0.0, float("nan")]]), values=torch.zeros(1, 2), mask=T([[True, False]]))
    assert torch.isfinite(adv).all()
