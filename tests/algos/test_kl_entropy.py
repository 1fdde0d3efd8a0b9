"""KL estimators, entropy and log-probs from logits."""

from __future__ import annotations

import math

import pytest
import torch
from rlinf_algos import entropy_from_logits, kl_loss, kl_penalized_rewards, log_probs_from_logits
from rlinf_algos.kl import k1, k2, k3, kl_abs

T = torch.tensor


def close(a, b, tol=1e-6):
    torch.testing.assert_close(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64),
                               atol=tol, rtol=tol)


def test_estimators_hand_computed():
    logp, ref = T([math.log(0.5)]), T([math.log(0.25)])
    close(k1(logp, ref), [math.log(2)])
    close(k2(logp, ref), [0.5 * math.log(2) ** 2])
    close(k3(logp, ref), [0.5 + math.log(2) - 1])  # r = 0.5: r - 1 - log r
    close(kl_abs(ref, logp), [math.log(2)])
    assert k3(T([0.0]), T([50.0])).item() == 10.0  # clamped


def test_k1_and_k3_are_unbiased_for_kl():
    torch.manual_seed(0)
    p = torch.tensor([0.5, 0.3, 0.2])
    q = torch.tensor([0.2, 0.3, 0.5])
    true_kl = float((p * (p / q).log()).sum())
    samples = torch.multinomial(p, 400_000, replacement=True)
    logp, logq = p.log()[samples], q.log()[samples]
    assert abs(k1(logp, logq).mean().item() - true_kl) < 5e-3
    assert abs(k3(logp, logq).mean().item() - true_kl) < 5e-3
    assert k3(logp, logq).var() < k1(logp, logq).var()  # the low-variance one
    assert (k3(logp, logq) >= 0).all()


def test_penalty_and_loss_uses():
    kl = T([[0.5, 1.0, 9.0]])
    mask = T([[True, True, False]])
    close(kl_penalized_rewards(T([[1.0, 1.0, 1.0]]), kl, beta=0.1, mask=mask), [[0.95, 0.9, 0.0]])
    close(kl_loss(kl, mask, beta=0.1), 0.1 * 0.75)
    with pytest.raises(ValueError, match="ref_log_probs has shape"):
        k3(torch.zeros(2), torch.zeros(3))


@pytest.mark.parametrize("chunk", [1, 3, 1024])
def test_entropy_and_logprobs_match_naive_and_differentiate(chunk):
    torch.manual_seed(1)
    logits = torch.randn(2, 5, 7, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 7, (2, 5))
    naive_ent = torch.distributions.Categorical(logits=logits).entropy()
    naive_lp = torch.log_softmax(logits, -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    ent = entropy_from_logits(logits, chunk_size=chunk)
    lp = log_probs_from_logits(logits, labels, chunk_size=chunk)
    close(ent, naive_ent)
    close(lp, naive_lp)
    g_ent, = torch.autograd.grad(ent.sum() + lp.sum(), logits)
    g_naive, = torch.autograd.grad(naive_ent.sum() + naive_lp.sum(), logits)
    close(g_ent, g_naive)


def test_entropy_edge_cases():
    close(entropy_from_logits(torch.zeros(1, 4)), [math.log(4)])
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        entropy_from_logits(torch.zeros(1, 4), chunk_size=0)
    with pytest.raises(ValueError, match="labels has shape"):
        log_probs_from_logits(torch.zeros(2, 4), torch.zeros(3, dtype=torch.long))
