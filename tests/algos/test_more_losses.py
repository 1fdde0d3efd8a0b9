"""The policy losses added after PPO/GSPO, KL straight-through variants and controllers, each against
its paper's formula (values and gradients by hand); token-sum, float masks, dtypes."""

from __future__ import annotations

import math

import pytest
import torch
from rlinf_algos import (
    aggregate,
    cispo,
    clip_cov,
    dppo_kl,
    dppo_tv,
    dro,
    entropy_from_logits,
    gmpo,
    gpg_loss,
    kl_controller,
    kl_cov,
    log_probs_from_logits,
    masked_mean,
    masked_var,
    masked_whiten,
    sapo,
)
from rlinf_algos.kl import k1, k1_plus, k2, k3, k3_plus, kl_abs_plus
from rlinf_algos.kl_control import AdaptiveKLController

T = torch.tensor
D = torch.float64


def close(a, b, tol=1e-9):
    torch.testing.assert_close(torch.as_tensor(a, dtype=D), torch.as_tensor(b, dtype=D), atol=tol, rtol=tol)


def grad_of(fn, logp):
    leaf = logp.clone().requires_grad_()
    loss, metrics = fn(leaf)
    (g,) = torch.autograd.grad(loss, leaf)
    return loss.detach(), metrics, g


def test_cispo_keeps_a_gradient_on_clipped_tokens():
    old = torch.zeros(1, 3, dtype=D)
    logp = torch.log(T([[1.5, 0.5, 1.1]], dtype=D))
    adv = T([[1.0, -2.0, 3.0]], dtype=D)
    loss, m, g = grad_of(lambda lp: cispo(log_probs=lp, old_log_probs=old, advantages=adv, clip_ratio_low=0.2,
                                          clip_ratio_high=0.28), logp)
    w = T([1.28, 0.8, 1.1], dtype=D)  # clip(r, 0.8, 1.28), detached
    close(loss, (-w * adv[0] * logp[0]).mean())
    close(g[0], -w * adv[0] / 3)  # every token, clipped or not, has a gradient
    close(m["clipfrac"], 2 / 3, tol=1e-6)


def test_sapo_gate_matches_policy_gradient_at_ratio_one_and_decays():
    old = torch.zeros(1, 2, dtype=D)
    adv = T([[1.0, -1.0]], dtype=D)
    _, _, g = grad_of(lambda lp: sapo(log_probs=lp, old_log_probs=old, advantages=adv), torch.zeros(1, 2, dtype=D))
    close(g[0], -adv[0] / 2)  # = d(-A r)/dlogp at r = 1, seq-mean-token-mean over 2 tokens
    logp = torch.log(T([[2.0, 2.0]], dtype=D))
    loss, _, g2 = grad_of(lambda lp: sapo(log_probs=lp, old_log_probs=old, advantages=adv, tau_pos=1.0, tau_neg=1.05), logp)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    f = [4 / 1.0 * sig(1.0 * 1.0), 4 / 1.05 * sig(1.05 * 1.0)]
    close(loss, (-f[0] * 1.0 + f[1] * 1.0) / 2)
    for i, tau in enumerate((1.0, 1.05)):  # d/dlogp = -A * 4 sig'(tau (r-1)) r
        s = sig(tau * 1.0)
        close(g2[0, i], -adv[0, i] * 4 * s * (1 - s) * 2.0 / 2)


def test_dppo_tv_masks_tokens_that_left_the_trust_region():
    old = torch.log(T([[0.5, 0.5, 0.5, 0.5]], dtype=D))
    logp = torch.log(T([[0.55, 0.7, 0.45, 0.2]], dtype=D))
    adv = T([[1.0, 1.0, -1.0, -1.0]], dtype=D)
    loss, m, g = grad_of(lambda lp: dppo_tv(log_probs=lp, old_log_probs=old, advantages=adv, clip_ratio_low=0.1,
                                            clip_ratio_high=0.1), logp)
    # p - q = 0.05 (ok), 0.2 (A > 0, beyond 0.1: out), -0.05 (ok), -0.3 (A < 0, beyond -0.1: out)
    r = T([1.1, 1.4, 0.9, 0.4], dtype=D)
    valid = T([1.0, 0.0, 1.0, 0.0], dtype=D)
    close(loss, (-adv[0] * r * logp[0] * valid).mean())
    close(g[0], -adv[0] * r * valid / 4)
    close(m["clipfrac"], 0.5, tol=1e-6)


def test_dppo_kl_uses_the_binary_kl():
    q, p = 0.5, 0.7
    bkl = q * math.log(q / p) + (1 - q) * math.log((1 - q + 1e-8) / (1 - p + 1e-8))
    old = torch.log(T([[q, q]], dtype=D))
    logp = torch.log(T([[p, p]], dtype=D))
    adv = T([[1.0, -1.0]], dtype=D)  # A > 0 moving up: checked against the bound; A < 0 moving up: always kept
    for bound, kept in ((bkl * 1.01, [1.0, 1.0]), (bkl * 0.99, [0.0, 1.0])):
        _, m, g = grad_of(lambda lp, b=bound: dppo_kl(log_probs=lp, old_log_probs=old, advantages=adv, clip_ratio_low=b,
                                                      clip_ratio_high=b), logp)
        close(g[0], -adv[0] * (p / q) * T(kept, dtype=D) / 2)
        close(m["clipfrac"], 1 - sum(kept) / 2, tol=1e-6)


def test_dro_gradient_regresses_the_log_ratio():
    old = T([[-1.0, -2.0]], dtype=D)
    logp = T([[-0.5, -2.5]], dtype=D)
    adv = T([[1.0, 2.0]], dtype=D)
    loss, _, g = grad_of(lambda lp: dro(log_probs=lp, old_log_probs=old, advantages=adv, dro_beta=0.4), logp)
    rho = logp - old
    close(loss, (-(logp * adv - 0.2 * rho**2)).mean())
    close(g, -(adv - 0.4 * rho) / 2)
    with pytest.raises(ValueError, match="dro_beta must be > 0"):
        dro(log_probs=logp, old_log_probs=old, advantages=adv, dro_beta=0.0)


def test_gpg_loss_is_plain_policy_gradient():
    logp = T([[-1.0, -0.5]], dtype=D)
    adv = T([[2.0, -1.0]], dtype=D)
    loss, m, g = grad_of(lambda lp: gpg_loss(log_probs=lp, advantages=adv), logp)
    close(loss, (2.0 - 0.5) / 2)
    close(g, -adv / 2)
    assert m == {}


def test_gmpo_geometric_mean_of_clipped_token_ratios():
    old = torch.zeros(2, 3, dtype=D)
    logp = T([[0.1, 0.6, -0.2], [0.3, -0.5, 0.0]], dtype=D)
    adv = T([[1.0] * 3, [-2.0] * 3], dtype=D)
    mask = T([[True, True, True], [True, True, False]])
    loss, m, g = grad_of(lambda lp: gmpo(log_probs=lp, old_log_probs=old, advantages=adv, mask=mask, clip_ratio_low=0.4),
                         logp)
    # row 0 (A > 0): min(rho, clip(rho)) = 0.1, 0.4, -0.2; row 1 (A < 0): max(rho, clip(rho)) = 0.3, -0.4
    s0, s1 = math.exp((0.1 + 0.4 - 0.2) / 3), math.exp((0.3 - 0.4) / 2)
    close(loss, (-1.0 * s0 + 2.0 * s1) / 2)
    close(g[0], [-s0 / 3 / 2, 0.0, -s0 / 3 / 2])  # the clipped token has no gradient
    close(g[1], [2 * s1 / 2 / 2, 0.0, 0.0])
    close(m["clipfrac"], 2 / 5, tol=1e-6)
    close(m["clipfrac_pos"], 1 / 5, tol=1e-6)
    # a fully masked row does not count in the mean over sequences
    mask3 = torch.cat([mask, torch.zeros(1, 3, dtype=torch.bool)])
    loss3, _ = gmpo(log_probs=torch.cat([logp, torch.zeros(1, 3, dtype=D)]), old_log_probs=torch.zeros(3, 3, dtype=D),
                    advantages=torch.cat([adv, torch.ones(1, 3, dtype=D)]), mask=mask3, clip_ratio_low=0.4)
    close(loss3, loss)


def test_clip_cov_drops_high_covariance_tokens_only_outside_the_ppo_clip():
    old = torch.zeros(1, 4, dtype=D)
    logp = T([[0.0, 0.05, -0.1, 0.5]], dtype=D)  # ratios 1, 1.05, 0.90, 1.65
    adv = T([[-1.0, 0.0, -1.0, 2.0]], dtype=D)
    # cov_t = (A_t - 0) * (logp_t - 0.1125) = 0.11, 0, 0.21, 0.78: token 3 is PPO-clipped (r 1.65 > 1.2, A > 0),
    # so token 2 is the only candidate in (0.15, 5)
    loss, m, g = grad_of(lambda lp: clip_cov(log_probs=lp, old_log_probs=old, advantages=adv, clip_cov_ratio=0.25,
                                             clip_cov_lb=0.15, clip_cov_ub=5.0), logp)
    assert g[0, 2] == 0 and g[0, 0] != 0 and g[0, 3] == 0
    close(m["cov_clipfrac"], 0.25, tol=1e-6)
    close(m["clipfrac"], 0.25, tol=1e-6)
    close(loss, (1.0 + 0.0 + 0.0 + (-2.0 * 1.2)) / 4)


def test_kl_cov_penalises_the_top_covariance_tokens():
    old = torch.zeros(1, 4, dtype=D)
    logp = T([[0.1, -0.2, 0.3, 0.0]], dtype=D)
    adv = T([[1.0, -1.0, 2.0, 0.0]], dtype=D)
    loss, m, g = grad_of(lambda lp: kl_cov(log_probs=lp, old_log_probs=old, advantages=adv, kl_cov_ratio=0.25,
                                           ppo_kl_coef=0.5), logp)
    r = torch.exp(logp[0])
    # covariances (A - 0.5)(logp - 0.05): 0.025, 0.375, 0.375, -0.025 -> top-1 is the first of the tie (index 1)
    top = int(torch.topk((adv[0] - 0.5) * (logp[0] - 0.05), 1).indices)
    penalty = torch.zeros(4, dtype=D)
    penalty[top] = 0.5 * logp[0, top].abs()
    close(loss, (-adv[0] * r + penalty).mean())
    grad = -adv[0] * r
    grad[top] += 0.5 * torch.sign(logp[0, top])
    close(g[0], grad / 4)
    close(m["kl_cov_frac"], 0.25, tol=1e-6)


def test_kl_straight_through_variants():
    logp = T([-1.0, -0.2, -3.0], dtype=D, requires_grad=True)
    ref = T([-1.5, -0.1, -1.0], dtype=D)
    for plus, base in ((k1_plus, k1), (k3_plus, k3), (kl_abs_plus, lambda a, b: (a - b).abs())):
        value = plus(logp, ref)
        close(value, base(logp, ref))  # forward: the named estimator
        (g,) = torch.autograd.grad(value.sum(), logp)
        (g2,) = torch.autograd.grad(k2(logp, ref).sum(), logp)
        close(g, g2)  # backward: k2's gradient, log pi - log pi_ref
        close(g, (logp - ref).detach())


def test_kl_controllers():
    ctrl = kl_controller("adaptive", kl_coef=0.1, target_kl=0.05, horizon=100)
    ctrl.update(0.5, 10)  # error clipped at +0.2: 0.1 * (1 + 0.2 * 10 / 100)
    assert abs(ctrl.value - 0.1 * 1.02) < 1e-15
    ctrl.update(0.04, 50)  # error -0.2: times (1 - 0.2 * 0.5)
    assert abs(ctrl.value - 0.1 * 1.02 * 0.9) < 1e-15
    fixed = kl_controller("fixed", kl_coef=0.3)
    fixed.update(10.0, 100)
    assert fixed.value == 0.3
    with pytest.raises(ValueError, match="algorithm.kl_ctrl.type must be one of fixed, adaptive, got 'pid'"):
        kl_controller("pid")
    with pytest.raises(ValueError, match="algorithm.kl_ctrl.horizon must be > 0"):
        AdaptiveKLController(0.1, 0.05, 0)


def test_kl_controller_from_config_defaults_to_kl_beta():
    from rlinf_algos import kl_controller_from_config
    from rlinf_core.config import load_config

    cfg = load_config({"algorithm": {"kl_beta": 0.02, "kl_ctrl": {"type": "adaptive"}}})
    ctrl = kl_controller_from_config(cfg.algorithm)
    assert isinstance(ctrl, AdaptiveKLController) and ctrl.value == 0.02 and ctrl.horizon == 10000
    cfg2 = load_config({"algorithm": {"kl_beta": 0.02, "kl_ctrl": {"kl_coef": 0.5}}})
    assert kl_controller_from_config(cfg2.algorithm).value == 0.5


def test_token_sum_and_fully_masked_rows():
    loss = T([[1.0, 2.0], [4.0, 8.0], [16.0, 32.0]], dtype=D)
    mask = T([[True, False], [False, False], [True, True]])
    close(aggregate(loss, mask, "token-sum"), 1 + 16 + 32)
    # the fully masked middle row does not count as a sequence
    close(aggregate(loss, mask, "seq-mean-token-sum"), (1 + 48) / 2)
    close(aggregate(loss, mask, "seq-mean-token-mean"), (1 + 24) / 2)
    close(aggregate(loss, mask, "seq-mean-token-sum-norm"), (1 + 48) / 2 / 2)
    close(aggregate(loss, torch.zeros(3, 2, dtype=torch.bool), "seq-mean-token-mean"), 0.0)  # not NaN


def test_masked_helpers_take_float_masks_and_keep_dtype():
    x = T([[1.0, 2.0, 3.0], [4.0, 100.0, 6.0]], dtype=D)
    fmask = T([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0]], dtype=D)
    bmask = fmask.bool()
    for fn in (masked_mean, masked_var, masked_whiten):
        close(fn(x, fmask), fn(x, bmask))
        assert fn(x, fmask).dtype == D
    close(masked_mean(x, fmask, dim=1), [1.5, 5.0])
    with pytest.raises(ValueError, match="mask of dtype torch.float64 holds values other than 0 and 1"):
        masked_mean(x, fmask * 0.5)


def test_logit_helpers_keep_float64_and_upcast_half():
    logits = torch.randn(2, 3, 5, dtype=D)
    labels = torch.randint(0, 5, (2, 3))
    assert entropy_from_logits(logits).dtype == D
    assert log_probs_from_logits(logits, labels).dtype == D
    close(log_probs_from_logits(logits, labels), torch.log_softmax(logits, -1).gather(-1, labels[..., None])[..., 0], 1e-12)
    assert entropy_from_logits(logits.bfloat16()).dtype == torch.float32
    assert log_probs_from_logits(logits.bfloat16(), labels).dtype == torch.float32
