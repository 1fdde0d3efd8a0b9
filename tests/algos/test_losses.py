"""Policy loss (PPO, clip-higher, dual clip, GSPO) and value loss against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from rlinf_algos import gspo, ppo, value_loss
from rlinf_algos.masked import masked_mean

T = torch.tensor


def close(a, b, tol=1e-6):
    torch.testing.assert_close(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64),
                               atol=tol, rtol=tol)


def _ratios(ratios, advantages, **kw):
    old = torch.zeros(1, len(ratios), dtype=torch.float64)
    logp = torch.log(T([ratios], dtype=torch.float64)).requires_grad_()
    loss, metrics = ppo(log_probs=logp, old_log_probs=old, advantages=T([advantages], dtype=torch.float64), **kw)
    return loss, metrics, logp


def test_ppo_clip_higher_hand_computed():
    loss, m, _ = _ratios([1.5, 0.5, 1.0, 1.3], [1.0, 1.0, -1.0, -1.0], clip_ratio_low=0.2, clip_ratio_high=0.28)
    # per token: max(-1.5, -1.28) = -1.28 (clipped); max(-0.5, -0.8) = -0.5; 1.0; max(1.3, 1.28) = 1.3
    close(loss, (-1.28 - 0.5 + 1.0 + 1.3) / 4)
    close(m["clipfrac"], 0.25)
    close(m["ratio_mean"], (1.5 + 0.5 + 1.0 + 1.3) / 4)
    close(m["ratio_max"], 1.5)
    close(m["ratio_min"], 0.5)
    close(m["approx_kl"], -(math.log(1.5) + math.log(0.5) + 0 + math.log(1.3)) / 4)
    # symmetric clip: token 3 (A<0, r=1.3 > 1.2) is now clipped? max(1.3, 1.2) = 1.3: not active
    loss_sym, m_sym, _ = _ratios([1.5, 0.5, 1.0, 1.3], [1.0, 1.0, -1.0, -1.0], clip_ratio_low=0.2)
    close(loss_sym, (-1.2 - 0.5 + 1.0 + 1.3) / 4)
    close(m_sym["clipfrac"], 0.25)


def test_ppo_dual_clip_bounds_negative_advantages():
    loss, m, _ = _ratios([4.0, 4.0], [-1.0, 1.0], clip_ratio_low=0.2, clip_ratio_c=3.0)
    # A<0, r=4: max(4, 1.2) = 4, dual bound 3 -> 3; A>0, r=4: max(-4, -1.2) = -1.2
    close(loss, (3.0 - 1.2) / 2)
    close(m["dual_clipfrac"], 0.5)
    with pytest.raises(ValueError, match="clip_ratio_c must be > 1"):
        _ratios([1.0], [1.0], clip_ratio_c=0.5)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_ppo_gradient_is_zero_exactly_where_the_clip_is_active(data):
    n = data.draw(st.integers(1, 12))
    ratios = data.draw(st.lists(st.floats(0.3, 2.5), min_size=n, max_size=n))
    advs = data.draw(st.lists(st.floats(0.1, 3.0) | st.floats(-3.0, -0.1), min_size=n, max_size=n))
    # keep ratios away from the clip boundaries, where the subgradient is ambiguous
    ratios = [r if min(abs(r - 0.8), abs(r - 1.28)) > 1e-3 else r + 0.01 for r in ratios]
    loss, _, logp = _ratios(ratios, advs, clip_ratio_low=0.2, clip_ratio_high=0.28)
    loss.backward()
    r, a = T(ratios, dtype=torch.float64), T(advs, dtype=torch.float64)
    active = (-a * r.clamp(0.8, 1.28)) > (-a * r)
    grad = logp.grad[0]
    assert torch.all(grad[active] == 0)
    assert torch.all(grad[~active] != 0)
    close(grad[~active], (-a * r / n)[~active], tol=1e-9)  # d/dlogp of -A r / n


def test_masked_tokens_do_not_count():
    old = torch.zeros(1, 3)
    logp = T([[math.log(1.5), 5.0, 0.0]])
    mask = T([[True, False, True]])
    loss, m = ppo(log_probs=logp, old_log_probs=old, advantages=T([[1.0, 100.0, 2.0]]), mask=mask)
    close(loss, (-1.2 - 2.0) / 2)
    close(m["ratio_max"], 1.5)


def test_gspo_uses_the_sequence_ratio_with_token_gradients():
    old = torch.zeros(2, 2, dtype=torch.float64)
    logp = T([[0.2, -0.1], [0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    adv = T([[1.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)
    loss, m = gspo(log_probs=logp, old_log_probs=old, advantages=adv, clip_ratio_low=0.5)
    s0 = math.exp(0.05)  # exp(mean(0.2, -0.1)); inside [0.5, 1.5]
    close(loss, ((-s0 - s0) / 2 + (1.0 + 1.0) / 2) / 2)  # seq-mean-token-mean
    loss.backward()
    close(logp.grad[0], [-s0 / 4, -s0 / 4])  # each token's own gradient, scaled by the sequence ratio
    close(m["ratio_mean"], (2 * s0 + 2) / 4)


def test_embodied_shapes_flatten_and_chunk_masks_expand():
    logp = torch.zeros(2, 3, 4)
    loss, _ = ppo(log_probs=logp, old_log_probs=logp, advantages=torch.ones(2, 3, 4),
                  mask=T([[True, True, False], [True, False, False]]))
    close(loss, -1.0)


def test_value_loss_clipped_and_huber():
    kw = dict(values=T([[1.5]]), old_values=T([[1.0]]), returns=T([[2.0]]))
    loss, m = value_loss(**kw)
    close(loss, 0.125)
    loss, m = value_loss(**kw, value_clip=0.2)
    close(loss, 0.32)  # clipped value 1.2: 0.5 * 0.8^2 > 0.5 * 0.5^2
    close(m["vf_clipfrac"], 1.0)
    loss, _ = value_loss(**kw, value_clip=0.2, huber_delta=0.5)
    close(loss, 0.5 * (0.8 - 0.25))
    loss, m = value_loss(values=T([[1.1]]), old_values=T([[1.0]]), returns=T([[2.0]]), value_clip=0.2)
    close(loss, 0.5 * 0.81)
    close(m["vf_clipfrac"], 0.0)


def test_loss_bad_inputs():
    with pytest.raises(ValueError, match=r"old_log_probs has shape \(1, 3\) but log_probs has shape \(1, 2\)"):
        ppo(log_probs=torch.zeros(1, 2), old_log_probs=torch.zeros(1, 3), advantages=torch.zeros(1, 2))
    with pytest.raises(ValueError, match="advantages holds NaN"):
        ppo(log_probs=torch.zeros(1, 2), old_log_probs=torch.zeros(1, 2), advantages=T([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match="loss_agg mode must be one of token-mean"):
        ppo(log_probs=torch.zeros(1, 2), old_log_probs=torch.zeros(1, 2), advantages=torch.zeros(1, 2), loss_agg="mean")
    with pytest.raises(ValueError, match="returns has shape"):
        value_loss(values=torch.zeros(1, 2), old_values=torch.zeros(1, 2), returns=torch.zeros(2, 2))


def test_masked_mean_ignores_nan_at_masked_positions():
    close(masked_mean(T([1.0, float("nan")]), T([True, False])), 1.0)
