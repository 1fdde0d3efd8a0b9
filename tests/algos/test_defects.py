"""Regression tests for the three numerical defects of issue 9 (value clip fraction, k3 NaN gradient, GSPO blow-up)."""

from __future__ import annotations

import math

import torch
from rlinf_algos import gspo, value_loss
from rlinf_algos.kl import k3, k3_plus


def test_value_clipfrac_counts_only_clipped_tokens():
    # 1M float32 tokens at c = 0.5: the old v_old + clamp(v - v_old) round-off reported 0.068
    gen = torch.Generator().manual_seed(0)
    n, c = 1_000_000, 0.5
    v, v_old, ret = (torch.randn(1, n, generator=gen) for _ in range(3))
    _, metrics = value_loss(values=v, old_values=v_old, returns=ret, value_clip=c)
    # independent float64 reference: clipped where |v - v_old| > c and the clipped error is larger
    v64, old64, ret64 = v.double(), v_old.double(), ret.double()
    v_clip = torch.minimum(torch.maximum(v64, old64 - c), old64 + c)
    true = (((v_clip - ret64) ** 2 > (v64 - ret64) ** 2) & ((v64 - old64).abs() > c)).double().mean().item()
    assert abs(metrics["vf_clipfrac"].item() - true) < 1e-6
    # the old formula, for the record: its round-off counts unclipped tokens too
    old_clip = v_old + (v - v_old).clamp(-c, c)
    old_frac = ((old_clip - ret) ** 2 > (v - ret) ** 2).double().mean().item()
    assert old_frac - true > 1e-3
    # nothing clipped at all -> exactly 0
    _, none = value_loss(values=v, old_values=v, returns=ret, value_clip=c)
    assert none["vf_clipfrac"].item() == 0.0


def test_k3_gradient_is_finite_at_extreme_log_ratios():
    for dtype in (torch.float32, torch.float64):
        logp = torch.tensor([-100.0, 0.0, -1.0], dtype=dtype, requires_grad=True)
        ref = torch.tensor([0.0, -100.0, -1.5], dtype=dtype)
        for fn in (k3, k3_plus):
            value = fn(logp, ref)
            (grad,) = torch.autograd.grad(value.sum(), logp)
            assert torch.isfinite(value).all() and torch.isfinite(grad).all(), (fn.__name__, dtype)
            assert value[0].item() == 10.0  # estimate clamped to [-10, 10]
        # in range: r - 1 - log r with log r = -0.5, gradient d/dlogp = 1 - r
        close_k3 = k3(logp, ref)[2].item()
        assert abs(close_k3 - (math.exp(-0.5) - 1 + 0.5)) < 1e-6
        (g,) = torch.autograd.grad(k3(logp, ref)[2], logp)
        assert abs(g[2].item() - (1 - math.exp(-0.5))) < 1e-6


def test_gspo_caps_the_sequence_log_ratio_at_10():
    # a sequence at log-ratio 15 with A = -1: loss e^10 (not e^15 = 3.3e6) and a zero gradient
    logp = torch.zeros(1, 4, dtype=torch.float64, requires_grad=True)
    old = torch.full((1, 4), -15.0, dtype=torch.float64)
    loss, _ = gspo(log_probs=logp, old_log_probs=old, advantages=-torch.ones(1, 4, dtype=torch.float64))
    (grad,) = torch.autograd.grad(loss, logp)
    assert abs(loss.item() - math.exp(10)) < 1e-6 * math.exp(10)
    assert torch.all(grad == 0)
    # the bad sequence does not drown a normal one in the same batch
    logp2 = torch.zeros(2, 4, dtype=torch.float64, requires_grad=True)
    old2 = torch.stack([torch.full((4,), -15.0), torch.zeros(4)]).double()
    adv2 = torch.tensor([[-1.0] * 4, [1.0] * 4], dtype=torch.float64)
    loss2, _ = gspo(log_probs=logp2, old_log_probs=old2, advantages=adv2)
    (grad2,) = torch.autograd.grad(loss2, logp2)
    assert torch.all(grad2[0] == 0)
    assert torch.allclose(grad2[1], torch.full((4,), -1 / 8, dtype=torch.float64))  # seq-mean-token-mean of -A r
