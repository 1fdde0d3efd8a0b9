r"""KL-divergence estimators (kind ``kl``), entropy and log-probs from logits.

Estimators of :math:`KL(\pi \| \pi_{ref})` per token from samples of :math:`\pi`
(Schulman, "Approximating KL divergence", 2020), with :math:`\log r = \log\pi_{ref} - \log\pi`:
``k1`` :math:`= -\log r` (unbiased), ``k2`` :math:`= (\log r)^2 / 2`, ``k3`` :math:`= r - 1 - \log r`
(unbiased, low variance, always >= 0; :math:`\log r` clamped to ``[-20, 20]`` before ``exp`` and the
estimate to ``[-10, 10]``, as in veRL). Each takes ``(log_probs, ref_log_probs)`` and returns a
per-token tensor; use it as a reward penalty (:func:`kl_penalized_rewards`) or a loss term
(:func:`kl_loss`).

Straight-through variants ``k1+``, ``k3+`` (``low_var_kl+``), ``abs+``: the forward value of the
named estimator with the gradient of ``k2``, whose expected gradient is the true KL gradient
(the expected gradients of ``k1`` and ``k3`` are not).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from rlinf_algos.aggregation import Count, aggregate
from rlinf_algos.checks import as_mask, check_same_shape, check_tensor

K3_CLAMP = 10.0
LOG_RATIO_CLAMP = 20.0


def _log_ratio(log_probs: Tensor, ref_log_probs: Tensor) -> Tensor:
    check_tensor(log_probs, "log_probs")
    check_tensor(ref_log_probs, "ref_log_probs")
    check_same_shape("log_probs", log_probs, ref_log_probs=ref_log_probs)
    return ref_log_probs - log_probs


def k1(log_probs: Tensor, ref_log_probs: Tensor) -> Tensor:
    r""":math:`\log\pi - \log\pi_{ref}`."""
    return -_log_ratio(log_probs, ref_log_probs)


def k2(log_probs: Tensor, ref_log_probs: Tensor) -> Tensor:
    r""":math:`\frac{1}{2}(\log\pi - \log\pi_{ref})^2`."""
    return 0.5 * _log_ratio(log_probs, ref_log_probs).square()


def k3(log_probs: Tensor, ref_log_probs: Tensor) -> Tensor:
    r""":math:`\exp(\log r) - \log r - 1`, :math:`\log r = \log\pi_{ref} - \log\pi` clamped to ±20, the result to ±10.

    The clamps keep the value and the gradient finite at extreme log-ratios (the gradient is 0
    where a clamp is active).
    """
    log_r = _log_ratio(log_probs, ref_log_probs).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    return (torch.exp(log_r) - log_r - 1.0).clamp(-K3_CLAMP, K3_CLAMP)


def kl_abs(log_probs: Tensor, ref_log_probs: Tensor) -> Tensor:
    r""":math:`|\log\pi - \log\pi_{ref}|`."""
    return _log_ratio(log_probs, ref_log_probs).abs()


def _straight_through(value: Tensor, log_probs: Tensor, ref_log_probs: Tensor) -> Tensor:
    """``value`` forward, the gradient of ``k2`` backward."""
    grad_path = k2(log_probs, ref_log_probs)
    return grad_path - grad_path.detach() + value.detach()


def k1_plus(log_probs: Tensor, ref_log_probs: Tensor) -> Tensor:
    """``k1+``: the value of :func:`k1`, the gradient of :func:`k2` (straight-through)."""
    return _straight_through(k1(log_probs, ref_log_probs), log_probs, ref_log_probs)


def k3_plus(log_probs: Tensor, ref_log_probs: Tensor) -> Tensor:
    """``k3+`` (``low_var_kl+``): the value of :func:`k3`, the gradient of :func:`k2` (straight-through)."""
    return _straight_through(k3(log_probs, ref_log_probs), log_probs, ref_log_probs)


def kl_abs_plus(log_probs: Tensor, ref_log_probs: Tensor) -> Tensor:
    """``abs+``: the value of :func:`kl_abs`, the gradient of :func:`k2` (straight-through)."""
    return _straight_through(kl_abs(log_probs, ref_log_probs), log_probs, ref_log_probs)


#: Estimator name -> function (the names registered as kind ``kl``; aliases in ``plugin.py``).
ESTIMATORS = {"k1": k1, "k2": k2, "k3": k3, "abs": kl_abs, "k1+": k1_plus, "k3+": k3_plus, "abs+": kl_abs_plus}


def kl_penalized_rewards(rewards: Tensor, kl: Tensor, beta: float, mask: Tensor | None = None) -> Tensor:
    r"""Token rewards minus the KL penalty, :math:`r_t - \beta\,\mathrm{kl}_t` (zero at masked tokens)."""
    check_same_shape("rewards", rewards, kl=kl)
    mask = as_mask(mask, rewards)
    return torch.where(mask, rewards - beta * kl, torch.zeros((), dtype=rewards.dtype))


def kl_loss(kl: Tensor, mask: Tensor | None, beta: float, loss_agg: str = "token-mean", **counts: Count) -> Tensor:
    r""":math:`\beta \cdot \mathrm{agg}(\mathrm{kl})`, the KL term added to the policy loss."""
    return beta * aggregate(kl, mask, loss_agg, **counts)


def _chunked(fn, logits: Tensor, *extra: Tensor, chunk_size: int) -> Tensor:
    """Apply ``fn`` to row chunks of ``logits`` (flattened to ``(N, V)``); under autograd each chunk
    is checkpointed, so only one chunk's softmax is ever held beside the logits."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    lead = logits.shape[:-1]
    flat = logits.reshape(-1, logits.shape[-1])
    flat_extra = [e.reshape(-1) for e in extra]
    outs = []
    for start in range(0, flat.shape[0], chunk_size):
        pieces = (flat[start:start + chunk_size], *(e[start:start + chunk_size] for e in flat_extra))
        if torch.is_grad_enabled() and flat.requires_grad:
            outs.append(checkpoint(fn, *pieces, use_reentrant=False))
        else:
            outs.append(fn(*pieces))
    return torch.cat(outs).view(lead) if outs else flat.new_zeros(lead, dtype=_compute_dtype(flat))


def _compute_dtype(logits: Tensor) -> torch.dtype:
    """At least float32 (bf16 / fp16 logits are upcast); float64 stays float64."""
    return torch.promote_types(logits.dtype, torch.float32)


def _entropy_rows(logits: Tensor) -> Tensor:
    logits = logits.to(_compute_dtype(logits))
    return torch.logsumexp(logits, dim=-1) - (torch.softmax(logits, dim=-1) * logits).sum(-1)


def entropy_from_logits(logits: Tensor, chunk_size: int = 1024) -> Tensor:
    r"""Entropy :math:`H = \log\sum e^{z} - \sum_v p_v z_v` of the softmax over the last dimension.

    Computed ``chunk_size`` rows at a time, so no full second copy of the logits (the softmax) is
    materialised; differentiable. Computed and returned in the logits' dtype, at least float32
    (float64 in, float64 out; bf16 / fp16 in, float32 out).
    """
    check_tensor(logits, "logits")
    return _chunked(_entropy_rows, logits, chunk_size=chunk_size)


def _logprob_rows(logits: Tensor, labels: Tensor) -> Tensor:
    logits = logits.to(_compute_dtype(logits))
    return logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def log_probs_from_logits(logits: Tensor, labels: Tensor, chunk_size: int = 1024) -> Tensor:
    r""":math:`\log\mathrm{softmax}(z)_{y}` for each position, chunked and typed like :func:`entropy_from_logits`."""
    check_tensor(logits, "logits")
    if labels.shape != logits.shape[:-1]:
        raise ValueError(f"labels has shape {tuple(labels.shape)}; expected logits' leading shape {tuple(logits.shape[:-1])}")
    return _chunked(_logprob_rows, logits, labels.long(), chunk_size=chunk_size)
