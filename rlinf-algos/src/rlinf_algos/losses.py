"""Policy losses (kind ``policy_loss``) and the clipped value loss.

Each returns ``(loss, metrics)``: the aggregated scalar loss and a dict of detached scalar
tensors. Per-token inputs are ``(B, T)``; embodied ``(B, S[, C])`` inputs are flattened to
``(B, S*C)``. ``loss_agg`` and the counts (``global_tokens``, ``global_seqs``, ``max_tokens``) are
passed to :func:`rlinf_algos.aggregation.aggregate`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlinf_algos.aggregation import Count, aggregate
from rlinf_algos.checks import as_mask, check_finite, check_same_shape, check_tensor
from rlinf_algos.masked import masked_mean

_MAX_LOG_RATIO = 20.0


def _flat(x: Tensor, name: str) -> Tensor:
    check_tensor(x, name)
    if x.dim() < 2:
        raise ValueError(f"{name} must be (B, T) or (B, S, C), got shape {tuple(x.shape)}")
    return x.flatten(1)


def _flat_mask(mask: Tensor | None, like: Tensor, like_name: str) -> Tensor:
    """The mask flattened like :func:`_flat`; a ``(B, S)`` mask of ``(B, S, C)`` inputs covers each chunk."""
    if isinstance(mask, Tensor) and 1 < mask.dim() < like.dim() and mask.shape == like.shape[: mask.dim()]:
        mask = mask.reshape(*mask.shape, *[1] * (like.dim() - mask.dim())).expand_as(like)
    if isinstance(mask, Tensor) and mask.dim() > 1:
        mask = mask.flatten(1)
    return as_mask(mask, like.flatten(1), like_name=like_name)


def ppo(
    *,
    log_probs: Tensor,
    old_log_probs: Tensor,
    advantages: Tensor,
    mask: Tensor | None = None,
    clip_ratio_low: float = 0.2,
    clip_ratio_high: float | None = None,
    clip_ratio_c: float | None = None,
    sequence_ratio: bool = False,
    loss_agg: str = "token-mean",
    global_tokens: Count = None,
    global_seqs: Count = None,
    max_tokens: int | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    r"""PPO clipped surrogate (Schulman et al. 2017, arXiv:1707.06347) with its common extensions.

    :math:`l_t = \max(-A_t r_t,\ -A_t\,\mathrm{clip}(r_t, 1-\epsilon_{low}, 1+\epsilon_{high}))`,
    :math:`r_t = \exp(\log\pi_t - \log\pi^{old}_t)`.

    - ``clip_ratio_high`` separate from ``clip_ratio_low``: DAPO's clip-higher (arXiv:2503.14476);
      default equal to ``clip_ratio_low``.
    - ``clip_ratio_c`` (> 1): dual clip for negative advantages, :math:`\min(l_t, -A_t c)` where
      :math:`A_t < 0` (Ye et al. 2020, arXiv:1912.09729).
    - ``sequence_ratio``: GSPO's sequence-level ratio (Zheng et al. 2025, arXiv:2507.18071),
      :math:`s_i = \exp(\mathrm{mean}_t(\log\pi_t - \log\pi^{old}_t))`, used per token with the
      token's own gradient (GSPO-token); pair it with ``loss_agg="seq-mean-token-mean"``.

    Metrics: ``clipfrac`` (tokens where the clipped term is active), ``dual_clipfrac``,
    ``approx_kl`` (mean of :math:`\log\pi^{old} - \log\pi`), ``ratio_mean/min/max``.
    """
    logp, old, adv = _flat(log_probs, "log_probs"), _flat(old_log_probs, "old_log_probs"), _flat(advantages, "advantages")
    check_same_shape("log_probs", logp, old_log_probs=old, advantages=adv)
    mask = _flat_mask(mask, log_probs, "log_probs")
    for name, x in (("log_probs", logp), ("old_log_probs", old), ("advantages", adv)):
        check_finite(x, name, mask)
    high = clip_ratio_low if clip_ratio_high is None else clip_ratio_high
    if clip_ratio_low < 0 or high < 0:
        raise ValueError(f"clip_ratio_low and clip_ratio_high must be >= 0, got {clip_ratio_low} and {high}")
    if clip_ratio_c is not None and clip_ratio_c <= 1.0:
        raise ValueError(f"clip_ratio_c must be > 1 (dual clip), got {clip_ratio_c}")
    log_ratio = logp - old
    if sequence_ratio:
        seq = masked_mean(log_ratio, mask, dim=1).unsqueeze(1)
        log_ratio = seq.detach() + logp - logp.detach()
    ratio = torch.exp(log_ratio.clamp(-_MAX_LOG_RATIO, _MAX_LOG_RATIO))
    unclipped = -adv * ratio
    clipped_term = -adv * ratio.clamp(1.0 - clip_ratio_low, 1.0 + high)
    per_token = torch.maximum(unclipped, clipped_term)
    dual_active = torch.zeros_like(mask)
    if clip_ratio_c is not None:
        dual_bound = -adv * clip_ratio_c
        dual_active = (adv < 0) & (per_token > dual_bound)
        per_token = torch.where(adv < 0, torch.minimum(per_token, dual_bound), per_token)
    loss = aggregate(per_token, mask, loss_agg, global_tokens=global_tokens, global_seqs=global_seqs, max_tokens=max_tokens)
    with torch.no_grad():
        ratio_valid = ratio[mask] if bool(mask.any()) else ratio.new_ones(1)
        metrics = {
            "clipfrac": masked_mean((clipped_term > unclipped).float(), mask),
            "dual_clipfrac": masked_mean(dual_active.float(), mask),
            "approx_kl": masked_mean(-log_ratio, mask),
            "ratio_mean": ratio_valid.mean(),
            "ratio_min": ratio_valid.min(),
            "ratio_max": ratio_valid.max(),
        }
    return loss, metrics


def gspo(**kwargs: object) -> tuple[Tensor, dict[str, Tensor]]:
    """:func:`ppo` with the sequence-level ratio (GSPO); defaults to ``seq-mean-token-mean``."""
    kwargs.setdefault("loss_agg", "seq-mean-token-mean")
    return ppo(sequence_ratio=True, **kwargs)  # type: ignore[arg-type]


def _square_or_huber(x: Tensor, delta: float | None) -> Tensor:
    if delta is None:
        return 0.5 * x.square()
    return torch.nn.functional.huber_loss(x, torch.zeros_like(x), reduction="none", delta=delta)


def value_loss(
    *,
    values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    mask: Tensor | None = None,
    value_clip: float | None = None,
    huber_delta: float | None = None,
    loss_agg: str = "token-mean",
    global_tokens: Count = None,
    global_seqs: Count = None,
    max_tokens: int | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    r"""Clipped value loss (PPO as in OpenAI baselines / veRL).

    :math:`l_t = \max(f(V_t - R_t),\ f(V^{old}_t + \mathrm{clip}(V_t - V^{old}_t, \pm c) - R_t))` with
    :math:`f(x) = x^2/2`, or the Huber loss with ``huber_delta``; no clipping when ``value_clip`` is
    ``None``. Metrics: ``vf_clipfrac`` (tokens where the clipped term is larger), ``value_mean``.
    """
    v, v_old, ret = _flat(values, "values"), _flat(old_values, "old_values"), _flat(returns, "returns")
    check_same_shape("values", v, old_values=v_old, returns=ret)
    mask = _flat_mask(mask, values, "values")
    for name, x in (("values", v), ("old_values", v_old), ("returns", ret)):
        check_finite(x, name, mask)
    if value_clip is not None and value_clip < 0:
        raise ValueError(f"value_clip must be >= 0, got {value_clip}")
    plain = _square_or_huber(v - ret, huber_delta)
    if value_clip is None:
        per_token, clip_active = plain, torch.zeros_like(mask)
    else:
        v_clipped = v_old + (v - v_old).clamp(-value_clip, value_clip)
        clipped = _square_or_huber(v_clipped - ret, huber_delta)
        per_token, clip_active = torch.maximum(plain, clipped), clipped > plain
    loss = aggregate(per_token, mask, loss_agg, global_tokens=global_tokens, global_seqs=global_seqs, max_tokens=max_tokens)
    with torch.no_grad():
        metrics = {"vf_clipfrac": masked_mean(clip_active.float(), mask), "value_mean": masked_mean(v, mask)}
    return loss, metrics
