"""Per-row group ids (index) for the group estimators, and OPO / GPG / ReMax / normalize_advantages."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from rlinf_algos import (
    dr_grpo,
    gae,
    gpg,
    grpo,
    normalize_advantages,
    opo,
    reinforce_plus_plus_baseline,
    remax,
    rloo,
)

T = torch.tensor


def close(a, b, tol=1e-6):
    torch.testing.assert_close(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64),
                               atol=tol, rtol=tol)


def plain_groups(labels):
    groups: dict = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    return groups


def grpo_loop(scores, labels, eps=1e-6, norm=True):
    out = []
    groups = plain_groups(labels)
    for i, label in enumerate(labels):
        members = [scores[j] for j in groups[label]]
        if len(members) == 1:
            mean, std = 0.0, 1.0
        else:
            mean = sum(members) / len(members)
            std = math.sqrt(sum((m - mean) ** 2 for m in members) / (len(members) - 1))
        out.append((scores[i] - mean) / (std + eps) if norm else scores[i] - mean)
    return out


def rloo_loop(scores, labels):
    groups = plain_groups(labels)
    out = []
    for i, label in enumerate(labels):
        members = groups[label]
        n = len(members)
        out.append(scores[i] if n == 1 else scores[i] - sum(scores[j] for j in members if j != i) / (n - 1))
    return out


@st.composite
def grouped(draw):
    sizes = draw(st.lists(st.integers(1, 5), min_size=1, max_size=6))
    labels = [f"uid-{g}" for g, n in enumerate(sizes) for _ in range(n)]
    perm = draw(st.permutations(range(len(labels))))
    labels = [labels[p] for p in perm]
    scores = draw(st.lists(st.floats(-3, 3, width=32), min_size=len(labels), max_size=len(labels)))
    return scores, labels


@settings(max_examples=80, deadline=None)
@given(grouped())
def test_index_groups_match_a_plain_loop(case):
    scores, labels = case
    s = T(scores, dtype=torch.float64)
    close(grpo(rewards=s, index=labels)[0], grpo_loop(scores, labels), tol=1e-9)
    close(dr_grpo(rewards=s, index=labels)[0], grpo_loop(scores, labels, norm=False), tol=1e-9)
    close(rloo(rewards=s, index=labels)[0], rloo_loop(scores, labels), tol=1e-9)
    ints = {label: 10 * k + 1 for k, label in enumerate(sorted(set(labels)))}
    for index in (T([ints[x] for x in labels]), np.array(labels, dtype=object), np.array([ints[x] for x in labels]), tuple(labels)):
        close(grpo(rewards=s, index=index)[0], grpo_loop(scores, labels), tol=1e-9)


def test_shuffling_rows_shuffles_the_advantages():
    scores = T([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 0.5, 3.0])
    labels = [0, 0, 0, 1, 1, 1, 2, 2]
    perm = torch.tensor([5, 2, 7, 0, 3, 6, 1, 4])
    for fn in (grpo, rloo, reinforce_plus_plus_baseline, opo, gpg):
        mask = torch.ones(8, 3, dtype=torch.bool)
        full, _ = fn(rewards=scores, mask=mask, index=T(labels))
        shuffled, _ = fn(rewards=scores[perm], mask=mask, index=T(labels)[perm])
        close(shuffled, full[perm])
        contiguous, _ = fn(rewards=scores[:6], mask=mask[:6], group_size=3)
        close(contiguous, fn(rewards=scores[:6], mask=mask[:6], index=T(labels[:6]))[0])


def test_singletons_follow_verl():
    scores = T([2.0, 1.0, 3.0])
    index = ["a", "b", "b"]
    close(grpo(rewards=scores, index=index)[0], [2.0 / (1 + 1e-6), -1 / (math.sqrt(2) + 1e-6), 1 / (math.sqrt(2) + 1e-6)])
    close(rloo(rewards=scores, index=index)[0], [2.0, -2.0, 2.0])  # a singleton keeps its raw reward
    close(dr_grpo(rewards=scores, index=index)[0], [2.0, -1.0, 1.0])


def test_group_input_errors():
    with pytest.raises(ValueError, match="pass index= .* or group_size="):
        grpo(rewards=torch.zeros(4))
    with pytest.raises(ValueError, match="index has 3 labels but the batch has 4 rows"):
        rloo(rewards=torch.zeros(4), index=["a", "a", "b"])
    with pytest.raises(ValueError, match=r"index must be a 1-D tensor of length 4 .* got shape \(2, 2\)"):
        grpo(rewards=torch.zeros(4), index=torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="index must hold integer group ids, got dtype torch.float32"):
        grpo(rewards=torch.zeros(4), index=torch.zeros(4))
    with pytest.raises(ValueError, match="index labels must be hashable"):
        grpo(rewards=torch.zeros(2), index=[[1], [2]])
    with pytest.raises(ValueError, match="group_size=3 does not divide the batch of 4 rows"):
        opo(rewards=torch.zeros(4), mask=torch.ones(4, 2), group_size=3)


def test_opo_length_weighted_baseline():
    # OPO: b = sum(l_i s_i) / sum(l_i); lengths 1, 3 -> b = (1*1 + 3*0) / 4
    mask = T([[True, False, False], [True, True, True], [True, True, False]])
    adv, _ = opo(rewards=T([1.0, 0.0, 5.0]), mask=mask, index=[0, 0, 1])
    close(adv, [[0.75, 0.0, 0.0], [-0.25, -0.25, -0.25], [5.0, 5.0, 0.0]])  # singleton keeps its score
    with pytest.raises(ValueError, match="opo weighs the baseline by response length: pass mask"):
        opo(rewards=T([1.0, 0.0]), index=[0, 0])


def test_gpg_scales_by_b_over_valid_rows():
    # group 0 mixed, group 1 all equal (zero advantage): M = 2, B = 4 -> alpha = 2
    scores = T([1.0, 0.0, 1.0, 1.0])
    adv, _ = gpg(rewards=scores, group_size=2)
    close(adv, [1.0, -1.0, 0.0, 0.0])  # 2 * (±0.5)
    close(gpg(rewards=scores, group_size=2, alpha=1.0, f_norm=0.5)[0], [1.0, -1.0, 0.0, 0.0])
    close(gpg(rewards=T([1.0, 0.0, 2.0, 0.0]), group_size=2)[0], [0.5, -0.5, 1.0, -1.0])  # no invalid rows: alpha 1


def test_remax_reward_to_go_minus_greedy_baseline():
    mask = T([[True, True, True], [True, False, True]])
    rewards = T([[0.0, 1.0, 2.0], [1.0, 9.0, 1.0]])
    adv, ret = remax(rewards=rewards, mask=mask, reward_baselines=T([1.0, 0.5]))
    close(ret, [[3.0, 3.0, 2.0], [2.0, 0.0, 1.0]])  # masked reward skipped
    close(adv, [[2.0, 2.0, 1.0], [1.5, 0.0, 0.5]])
    adv_s, _ = remax(rewards=T([3.0, 2.0]), mask=mask, reward_baselines=T([1.0, 0.5]))  # scores on the last token
    close(adv_s, [[2.0, 2.0, 2.0], [1.5, 0.0, 1.5]])
    with pytest.raises(ValueError, match=r"reward_baselines has shape \(3,\); expected \(2,\)"):
        remax(rewards=rewards, mask=mask, reward_baselines=torch.zeros(3))


def test_normalize_advantages_after_gae():
    rewards = T([[1.0, 2.0, 0.0], [0.5, 0.0, 0.0]])
    mask = T([[1, 1, 0], [1, 0, 0]], dtype=torch.float32)  # float 0/1 masks are accepted
    adv, _ = gae(rewards=rewards, values=torch.zeros(2, 3), mask=mask)
    close(adv, [[3.0, 2.0, 0.0], [0.5, 0.0, 0.0]])  # raw
    valid = T([3.0, 2.0, 0.5])
    expected = (valid - valid.mean()) / math.sqrt(valid.var(unbiased=True).item() + 1e-8)
    norm = normalize_advantages(adv, mask)
    close(norm[mask.bool()], expected)
    assert torch.all(norm[~mask.bool()] == 0)
    # a (B, S) mask over (B, S, C) chunk advantages
    chunk = torch.arange(12.0).view(2, 3, 2)
    m = T([[True, True, False], [True, False, False]])
    close(normalize_advantages(chunk, m), normalize_advantages(chunk, m[..., None].expand(2, 3, 2)))
