r"""Policy losses (kind ``policy_loss``) and the clipped value loss.

Each takes keyword arguments ``log_probs``, ``old_log_probs``, ``advantages``, ``mask`` and its own
parameters, and returns ``(loss, metrics)``: the aggregated scalar loss and a dict of detached
scalar tensors (``approx_kl`` = mean of :math:`\log\pi^{old} - \log\pi` in every loss that has
``old_log_probs``). Per-token inputs are ``(B, T)``; embodied ``(B, S[, C])`` inputs are flattened
to ``(B, S*C)``. ``loss_agg`` and the counts (``global_tokens``, ``global_seqs``, ``max_tokens``)
are passed to :func:`rlinf_algos.aggregation.aggregate`.

Every importance ratio is :math:`\exp` of the log-ratio clamped to ``[-20, 20]`` (GSPO's sequence
log-ratio: at most 10), so one extreme token cannot overflow a step.

Inputs are checked for NaN / inf (one host sync each) unless the caller runs the loss under
:func:`rlinf_algos.checks.finite_checks` ``(False)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlinf_algos.aggregation import Count, aggregate
from rlinf_algos.checks import as_mask, check_finite, check_same_shape, check_tensor
from rlinf_algos.masked import masked_mean, masked_sum

_MAX_LOG_RATIO = 20.0
_MAX_SEQ_LOG_RATIO = 10.0  # GSPO's sequence log-ratio (veRL): above it the loss is constant, its gradient 0


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


def _policy_inputs(
    log_probs: Tensor, old_log_probs: Tensor | None, advantages: Tensor, mask: Tensor | None,
) -> tuple[Tensor, Tensor | None, Tensor, Tensor]:
    """Flattened, checked ``(log_probs, old_log_probs, advantages, mask)``."""
    logp, adv = _flat(log_probs, "log_probs"), _flat(advantages, "advantages")
    old = None if old_log_probs is None else _flat(old_log_probs, "old_log_probs")
    check_same_shape("log_probs", logp, old_log_probs=old, advantages=adv)
    mask = _flat_mask(mask, log_probs, "log_probs")
    for name, x in (("log_probs", logp), ("old_log_probs", old), ("advantages", adv)):
        if x is not None:
            check_finite(x, name, mask)
    return logp, old, adv, mask


def _clip_bounds(clip_ratio_low: float, clip_ratio_high: float | None) -> tuple[float, float]:
    high = clip_ratio_low if clip_ratio_high is None else clip_ratio_high
    if clip_ratio_low < 0 or high < 0:
        raise ValueError(f"clip_ratio_low and clip_ratio_high must be >= 0, got {clip_ratio_low} and {high}")
    return clip_ratio_low, high


def _ratio(log_ratio: Tensor) -> Tensor:
    return torch.exp(log_ratio.clamp(-_MAX_LOG_RATIO, _MAX_LOG_RATIO))


def _frac(x: Tensor, mask: Tensor) -> Tensor:
    """Fraction of valid positions where the bool ``x`` holds."""
    return masked_mean(x.float(), mask)


class _MaskedMeans:
    """:func:`masked_mean` of several tensors of one shape and ``mask`` (bool), the count taken once."""

    def __init__(self, mask: Tensor, dtype: torch.dtype):
        self.mask, self.zero = mask, torch.zeros((), dtype=dtype, device=mask.device)
        self.count = mask.sum()
        self.denom = self.count.clamp(min=1).to(dtype)

    def __call__(self, x: Tensor) -> Tensor:
        return torch.where(self.mask, x, self.zero).sum() / self.denom


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
      :math:`A_t < 0` (Ye et al. 2020, arXiv:1912.09729). Off when ``None`` (veRL: always on, 3.0).
    - ``sequence_ratio``: GSPO's sequence-level ratio (Zheng et al. 2025, arXiv:2507.18071),
      :math:`s_i = \exp(\mathrm{mean}_t(\log\pi_t - \log\pi^{old}_t))`, used per token with the
      token's own gradient (GSPO-token); its log is capped at 10 (constant loss, zero gradient
      above); pair it with ``loss_agg="seq-mean-token-mean"``.

    Metrics: ``clipfrac`` (tokens where the clipped term is active), ``dual_clipfrac``,
    ``approx_kl`` (mean of :math:`\log\pi^{old} - \log\pi`), ``ratio_mean/min/max`` (1 when no
    token is valid); no host sync under ``finite_checks(False)``.
    """
    logp, old, adv, mask = _policy_inputs(log_probs, old_log_probs, advantages, mask)
    assert old is not None
    low, high = _clip_bounds(clip_ratio_low, clip_ratio_high)
    if clip_ratio_c is not None and clip_ratio_c <= 1.0:
        raise ValueError(f"clip_ratio_c must be > 1 (dual clip), got {clip_ratio_c}")
    token_log_ratio = logp - old
    if sequence_ratio:
        seq = masked_mean(token_log_ratio, mask, dim=1).unsqueeze(1)
        log_ratio = (seq.detach() + logp - logp.detach()).clamp(max=_MAX_SEQ_LOG_RATIO)
        ratio = torch.exp(log_ratio)
        kl_log_ratio = token_log_ratio
    else:
        kl_log_ratio = token_log_ratio.clamp(-_MAX_LOG_RATIO, _MAX_LOG_RATIO)
        ratio = torch.exp(kl_log_ratio)
    unclipped = -adv * ratio
    clipped_term = -adv * ratio.clamp(1.0 - low, 1.0 + high)
    per_token = torch.maximum(unclipped, clipped_term)
    dual_active = torch.zeros_like(mask)
    if clip_ratio_c is not None:
        dual_bound = -adv * clip_ratio_c
        dual_active = (adv < 0) & (per_token > dual_bound)
        per_token = torch.where(adv < 0, torch.minimum(per_token, dual_bound), per_token)
    loss = aggregate(per_token, mask, loss_agg, global_tokens=global_tokens, global_seqs=global_seqs, max_tokens=max_tokens)
    with torch.no_grad():
        mean = _MaskedMeans(mask, ratio.dtype)
        any_valid, one, inf = mean.count > 0, ratio.new_ones(()), ratio.new_tensor(float("inf"))
        metrics = {
            "clipfrac": mean((clipped_term > unclipped).to(ratio.dtype)),
            "dual_clipfrac": mean(dual_active.to(ratio.dtype)) if clip_ratio_c is not None else mean.zero.clone(),
            "approx_kl": mean(-kl_log_ratio),
            "ratio_mean": torch.where(any_valid, mean(ratio), one),
            "ratio_min": torch.where(any_valid, torch.where(mask, ratio, inf).amin(), one),
            "ratio_max": torch.where(any_valid, torch.where(mask, ratio, -inf).amax(), one),
        }
    return loss, metrics


def gspo(**kwargs: object) -> tuple[Tensor, dict[str, Tensor]]:
    """:func:`ppo` with the sequence-level ratio (GSPO); defaults to ``seq-mean-token-mean``."""
    kwargs.setdefault("loss_agg", "seq-mean-token-mean")
    return ppo(sequence_ratio=True, **kwargs)  # type: ignore[arg-type]


def _cov(adv: Tensor, logp: Tensor, mask: Tensor) -> Tensor:
    """Per-token centred covariance :math:`(A - \\bar A)(\\log\\pi - \\overline{\\log\\pi})` over valid tokens."""
    return (adv - masked_mean(adv, mask)) * (logp - masked_mean(logp, mask))


def clip_cov(
    *,
    log_probs: Tensor,
    old_log_probs: Tensor,
    advantages: Tensor,
    mask: Tensor | None = None,
    clip_ratio_low: float = 0.2,
    clip_ratio_high: float | None = None,
    clip_cov_ratio: float = 0.0002,
    clip_cov_lb: float = 1.0,
    clip_cov_ub: float = 5.0,
    generator: torch.Generator | None = None,
    loss_agg: str = "token-mean",
    global_tokens: Count = None,
    global_seqs: Count = None,
    max_tokens: int | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    r"""Clip-Cov (Cui et al. 2025, "The Entropy Mechanism of RL for Reasoning LMs", arXiv:2505.22617).

    The PPO clipped loss, except that among the tokens the PPO clip leaves alone, a random
    ``clip_cov_ratio`` share (at least one) of those whose centred covariance
    :math:`(A_t - \bar A)(\log\pi_t - \overline{\log\pi})` lies in ``(clip_cov_lb, clip_cov_ub)``
    is dropped from the loss (no gradient), which keeps entropy from collapsing. The draw uses
    ``generator`` (default: torch's global CPU generator, as veRL). Metrics: ``clipfrac`` (PPO
    clip), ``cov_clipfrac`` (tokens dropped), ``approx_kl``.
    """
    logp, old, adv, mask = _policy_inputs(log_probs, old_log_probs, advantages, mask)
    assert old is not None
    low, high = _clip_bounds(clip_ratio_low, clip_ratio_high)
    if clip_cov_ratio <= 0:
        raise ValueError(f"clip_cov_ratio must be > 0, got {clip_cov_ratio}")
    log_ratio = logp - old
    ratio = _ratio(log_ratio)
    unclipped = -adv * ratio
    clipped_term = -adv * ratio.clamp(1.0 - low, 1.0 + high)
    ppo_clipped = (clipped_term > unclipped) & mask
    with torch.no_grad():
        cov = _cov(adv, logp.detach(), mask)
        candidates = torch.nonzero(mask & ~ppo_clipped & (cov > clip_cov_lb) & (cov < clip_cov_ub))
        keep = torch.ones_like(mask)
        if candidates.shape[0] > 0:
            n_drop = max(int(clip_cov_ratio * int(mask.sum())), 1)
            perm = torch.randperm(candidates.shape[0], generator=generator)[:n_drop].to(candidates.device)
            chosen = candidates[perm]
            keep[chosen[:, 0], chosen[:, 1]] = False
    per_token = torch.where(keep, torch.maximum(unclipped, clipped_term), torch.zeros((), dtype=unclipped.dtype))
    loss = aggregate(per_token, mask, loss_agg, global_tokens=global_tokens, global_seqs=global_seqs, max_tokens=max_tokens)
    with torch.no_grad():
        metrics = {"clipfrac": _frac(ppo_clipped, mask), "cov_clipfrac": _frac(~keep, mask),
                   "approx_kl": masked_mean(-log_ratio.clamp(-_MAX_LOG_RATIO, _MAX_LOG_RATIO), mask)}
    return loss, metrics


def kl_cov(
    *,
    log_probs: Tensor,
    old_log_probs: Tensor,
    advantages: Tensor,
    mask: Tensor | None = None,
    kl_cov_ratio: float = 0.0002,
    ppo_kl_coef: float = 0.1,
    loss_agg: str = "token-mean",
    global_tokens: Count = None,
    global_seqs: Count = None,
    max_tokens: int | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    r"""KL-Cov (Cui et al. 2025, arXiv:2505.22617): an unclipped policy gradient, with a KL penalty on
    the tokens of largest covariance.

    :math:`l_t = -A_t r_t`, plus :math:`\beta |\log\pi_t - \log\pi^{old}_t|` (``ppo_kl_coef``) on the
    top ``kl_cov_ratio`` share (at least one) of valid tokens by centred covariance
    :math:`(A_t - \bar A)(\log\pi_t - \overline{\log\pi})`. Metrics: ``approx_kl``, ``abs_kl`` (mean
    :math:`|\log\pi - \log\pi^{old}|`), ``kl_cov_frac`` (tokens penalised).
    """
    logp, old, adv, mask = _policy_inputs(log_probs, old_log_probs, advantages, mask)
    assert old is not None
    if kl_cov_ratio <= 0:
        raise ValueError(f"kl_cov_ratio must be > 0, got {kl_cov_ratio}")
    log_ratio = logp - old
    ratio = _ratio(log_ratio)
    pg = -adv * ratio
    with torch.no_grad():
        chosen = torch.zeros_like(mask)
        n_valid = int(mask.sum())
        if n_valid > 0:
            valid_positions = torch.nonzero(mask.reshape(-1), as_tuple=True)[0]
            adv_v, logp_v = adv[mask].detach(), logp[mask].detach()
            cov = (adv_v - adv_v.mean()) * (logp_v - logp_v.mean())
            top = torch.topk(cov, max(1, int(n_valid * kl_cov_ratio)), largest=True).indices
            chosen.view(-1)[valid_positions[top]] = True
    per_token = torch.where(chosen, pg + ppo_kl_coef * log_ratio.abs(), pg)
    loss = aggregate(per_token, mask, loss_agg, global_tokens=global_tokens, global_seqs=global_seqs, max_tokens=max_tokens)
    with torch.no_grad():
        metrics = {"approx_kl": masked_mean(-log_ratio, mask), "abs_kl": masked_mean(log_ratio.abs(), mask),
                   "kl_cov_frac": _frac(chosen, mask)}
    return loss, metrics


def _seq_count(mask: Tensor, global_seqs: Count, like: Tensor) -> Tensor:
    count = mask.any(dim=1).sum() if global_seqs is None else torch.as_tensor(global_seqs, device=like.device)
    return count.to(like.dtype).clamp(min=1)


def gmpo(
    *,
    log_probs: Tensor,
    old_log_probs: Tensor,
    advantages: Tensor,
    mask: Tensor | None = None,
    clip_ratio_low: float = 0.4,
    clip_ratio_high: float | None = None,
    loss_agg: str | None = None,
    global_tokens: Count = None,
    global_seqs: Count = None,
    max_tokens: int | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    r"""Geometric-Mean Policy Optimization (GMPO, Zhao et al. 2025, arXiv:2507.20673).

    Per sequence :math:`l_i = -\bar A_i \exp(\mathrm{mean}_t\, \mathrm{sgn}(\bar A)\min(\mathrm{sgn}(\bar A)\rho_t,\
    \mathrm{sgn}(\bar A)\,\mathrm{clip}(\rho_t, -\epsilon_{low}, \epsilon_{high})))` with the token
    log-ratio :math:`\rho_t` (the clip is in log space, so ``clip_ratio_*`` of 0.4 is the paper's
    :math:`(e^{-0.4}, e^{0.4})`), :math:`\bar A_i` the sequence's mean advantage, and the sign taken
    per token as in veRL. The loss is the mean over sequences with a valid token (``global_seqs``
    for gradient accumulation); ``loss_agg`` is not used (the objective is per sequence).
    Metrics: ``clipfrac`` (tokens whose log-ratio was clipped), ``clipfrac_pos`` / ``clipfrac_neg``
    (those with positive / negative advantage), ``approx_kl``.
    """
    logp, old, adv, mask = _policy_inputs(log_probs, old_log_probs, advantages, mask)
    assert old is not None
    low, high = _clip_bounds(clip_ratio_low, clip_ratio_high)
    log_ratio = (logp - old).clamp(-_MAX_LOG_RATIO, _MAX_LOG_RATIO)
    sign = torch.sign(adv)
    clamped = log_ratio.clamp(-low, high)
    pessimistic = sign * torch.minimum(sign * log_ratio, sign * clamped)
    lengths = mask.sum(dim=1).to(logp.dtype).clamp(min=1)
    seq_ratio = torch.exp(masked_sum(pessimistic, mask, dim=1) / lengths)
    seq_adv = masked_sum(adv, mask, dim=1) / lengths
    per_seq = -seq_adv * seq_ratio
    loss = per_seq.sum() / _seq_count(mask, global_seqs, per_seq)
    with torch.no_grad():
        clipped = log_ratio != clamped
        metrics = {"clipfrac": _frac(clipped & (adv != 0), mask), "clipfrac_pos": _frac(clipped & (adv > 0), mask),
                   "clipfrac_neg": _frac(clipped & (adv < 0), mask), "approx_kl": masked_mean(-log_ratio, mask)}
    return loss, metrics


def cispo(
    *,
    log_probs: Tensor,
    old_log_probs: Tensor,
    advantages: Tensor,
    mask: Tensor | None = None,
    clip_ratio_low: float = 0.2,
    clip_ratio_high: float | None = None,
    loss_agg: str = "token-mean",
    global_tokens: Count = None,
    global_seqs: Count = None,
    max_tokens: int | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    r"""CISPO (MiniMax-M1, arXiv:2506.13585): clip the importance weight, not the update.

    :math:`l_t = -\mathrm{sg}(\mathrm{clip}(r_t, 1-\epsilon_{low}, 1+\epsilon_{high}))\, A_t \log\pi_t`:
    every token keeps a gradient (scaled by the clipped, detached weight). Metrics: ``clipfrac``
    (tokens whose weight was clipped), ``approx_kl``.
    """
    logp, old, adv, mask = _policy_inputs(log_probs, old_log_probs, advantages, mask)
    assert old is not None
    low, high = _clip_bounds(clip_ratio_low, clip_ratio_high)
    log_ratio = (logp - old).clamp(-_MAX_LOG_RATIO, _MAX_LOG_RATIO)
    ratio = torch.exp(log_ratio)
    weight = ratio.clamp(1.0 - low, 1.0 + high)
    per_token = -weight.detach() * adv * logp
    loss = aggregate(per_token, mask, loss_agg, global_tokens=global_tokens, global_seqs=global_seqs, max_tokens=max_tokens)
    with torch.no_grad():
        metrics = {"clipfrac": _frac(ratio != weight, mask), "approx_kl": masked_mean(-log_ratio, mask)}
    return loss, metrics


def sapo(
    *,
    log_probs: Tensor,
    old_log_probs: Tensor,
    advantages: Tensor,
    mask: Tensor | None = None,
    tau_pos: float = 1.0,
    tau_neg: float = 1.05,
    loss_agg: str = "seq-mean-token-mean",
    global_tokens: Count = None,
    global_seqs: Count = None,
    max_tokens: int | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    r"""Soft Adaptive Policy Optimization (SAPO, Gao et al. 2025, arXiv:2511.20347): a smooth gate
    instead of a hard clip.

    :math:`l_t = -f_{\tau}(r_t) A_t`, :math:`f_{\tau}(r) = \frac{4}{\tau}\sigma(\tau(r - 1))` with
    :math:`\tau` = ``tau_pos`` where :math:`A_t > 0`, else ``tau_neg``; at :math:`r = 1` the gradient
    equals the policy gradient's and it decays smoothly as :math:`r` leaves 1. Defaults to
    ``seq-mean-token-mean`` (veRL always uses it). Metrics: ``approx_kl``.
    """
    logp, old, adv, mask = _policy_inputs(log_probs, old_log_probs, advantages, mask)
    assert old is not None
    if tau_pos <= 0 or tau_neg <= 0:
        raise ValueError(f"tau_pos and tau_neg must be > 0, got {tau_pos} and {tau_neg}")
    log_ratio = (logp - old).clamp(-_MAX_LOG_RATIO, _MAX_LOG_RATIO)
    ratio = torch.exp(log_ratio)
    tau = torch.where(adv > 0, adv.new_tensor(tau_pos), adv.new_tensor(tau_neg))
    gate = torch.sigmoid(tau * (ratio - 1.0)) * (4.0 / tau)
    per_token = -gate * adv
    loss = aggregate(per_token, mask, loss_agg, global_tokens=global_tokens, global_seqs=global_seqs, max_tokens=max_tokens)
    with torch.no_grad():
        metrics = {"approx_kl": masked_mean(-log_ratio, mask)}
    return loss, metrics


DPPO_DIVERGENCES = ("tv", "kl")


def dppo(
    *,
    log_probs: Tensor,
    old_log_probs: Tensor,
    advantages: Tensor,
    mask: Tensor | None = None,
    divergence: str = "tv",
    clip_ratio_low: float = 0.2,
    clip_ratio_high: float | None = None,
    clip_ratio_c: float | None = 20.0,
    loss_agg: str = "token-mean",
    global_tokens: Count = None,
    global_seqs: Count = None,
    max_tokens: int | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    r"""DPPO-Binary (arXiv:2602.04879): a trust region on the sampled token's probability, not its ratio.

    :math:`l_t = -A_t\,\mathrm{sg}(\min(r_t, c))\,\log\pi_t\,v_t`, where :math:`v_t` masks out tokens
    that moved beyond the threshold in the direction the advantage pushes (``clip_ratio_low`` /
    ``clip_ratio_high`` are the thresholds :math:`\delta`, as in veRL), with :math:`p = \pi_t`,
    :math:`q = \pi^{old}_t`:

    - ``divergence="tv"``: :math:`A_t > 0`: :math:`p - q \le \delta_{high}`; else :math:`p - q \ge -\delta_{low}`.
    - ``divergence="kl"``: the binary KL :math:`q\log\frac{q}{p} + (1-q)\log\frac{1-q}{1-p}` at most
      :math:`\delta` (or :math:`p \le q` for :math:`A_t > 0`, :math:`p \ge q` otherwise).

    ``clip_ratio_c`` truncates the detached importance weight (``None``: no truncation). Metrics:
    ``clipfrac`` (tokens masked out), ``truncfrac`` (kept tokens whose weight was truncated),
    ``approx_kl``.
    """
    logp, old, adv, mask = _policy_inputs(log_probs, old_log_probs, advantages, mask)
    assert old is not None
    if divergence not in DPPO_DIVERGENCES:
        raise ValueError(f"divergence must be one of {', '.join(DPPO_DIVERGENCES)}, got {divergence!r}")
    low, high = _clip_bounds(clip_ratio_low, clip_ratio_high)
    log_ratio = (logp - old).clamp(-_MAX_LOG_RATIO, _MAX_LOG_RATIO)
    ratio = torch.exp(log_ratio)
    weight = ratio if clip_ratio_c is None else ratio.clamp(max=clip_ratio_c)
    with torch.no_grad():
        p, q = torch.exp(logp), torch.exp(old)
        if divergence == "tv":
            ok_pos, ok_neg = p - q <= high, p - q >= -low
        else:
            binary_kl = q * (old - logp) + (1 - q) * torch.log((1.0 - q + 1e-8) / (1.0 - p + 1e-8))
            ok_pos, ok_neg = (binary_kl <= high) | (p <= q), (binary_kl <= low) | (p >= q)
        valid = torch.where(adv > 0, ok_pos, ok_neg)
    per_token = torch.where(valid, -adv * weight.detach() * logp, torch.zeros((), dtype=logp.dtype))
    loss = aggregate(per_token, mask, loss_agg, global_tokens=global_tokens, global_seqs=global_seqs, max_tokens=max_tokens)
    with torch.no_grad():
        truncated = torch.zeros_like(valid) if clip_ratio_c is None else (ratio > clip_ratio_c) & valid
        metrics = {"clipfrac": _frac(~valid, mask), "truncfrac": _frac(truncated, mask),
                   "approx_kl": masked_mean(-log_ratio, mask)}
    return loss, metrics


def dppo_tv(**kwargs: object) -> tuple[Tensor, dict[str, Tensor]]:
    """:func:`dppo` with the total-variation trust region."""
    return dppo(divergence="tv", **kwargs)  # type: ignore[arg-type]


def dppo_kl(**kwargs: object) -> tuple[Tensor, dict[str, Tensor]]:
    """:func:`dppo` with the binary-KL trust region."""
    return dppo(divergence="kl", **kwargs)  # type: ignore[arg-type]


def dro(
    *,
    log_probs: Tensor,
    old_log_probs: Tensor,
    advantages: Tensor,
    mask: Tensor | None = None,
    dro_beta: float,
    loss_agg: str = "token-mean",
    global_tokens: Count = None,
    global_seqs: Count = None,
    max_tokens: int | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    r"""Direct Reward Optimization's policy term (Richemond et al. 2024, arXiv:2405.19107), as in veRL.

    :math:`l_t = -(A_t \log\pi_t - \frac{\beta}{2}(\log\pi_t - \log\pi^{old}_t)^2)`, whose gradient
    :math:`-(A_t - \beta\rho_t)\nabla\log\pi_t` regresses the log-ratio toward :math:`A_t / \beta`.
    ``dro_beta`` (:math:`\beta > 0`) is required. Metrics: ``approx_kl``.
    """
    logp, old, adv, mask = _policy_inputs(log_probs, old_log_probs, advantages, mask)
    assert old is not None
    if not dro_beta or dro_beta <= 0:
        raise ValueError(f"dro_beta must be > 0 for the dro policy loss, got {dro_beta}")
    log_ratio = logp - old
    per_token = -(logp * adv - 0.5 * dro_beta * log_ratio.square())
    loss = aggregate(per_token, mask, loss_agg, global_tokens=global_tokens, global_seqs=global_seqs, max_tokens=max_tokens)
    with torch.no_grad():
        metrics = {"approx_kl": masked_mean(-log_ratio, mask)}
    return loss, metrics


def gpg_loss(
    *,
    log_probs: Tensor,
    advantages: Tensor,
    old_log_probs: Tensor | None = None,
    mask: Tensor | None = None,
    loss_agg: str = "token-mean",
    global_tokens: Count = None,
    global_seqs: Count = None,
    max_tokens: int | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    r"""Group Policy Gradient's loss (GPG, arXiv:2504.02546): plain policy gradient, no ratio, no clip.

    :math:`l_t = -A_t \log\pi_t`; pair it with the ``gpg`` advantage. ``old_log_probs`` is optional
    (only for the ``approx_kl`` metric).
    """
    logp, old, adv, mask = _policy_inputs(log_probs, old_log_probs, advantages, mask)
    loss = aggregate(-logp * adv, mask, loss_agg, global_tokens=global_tokens, global_seqs=global_seqs, max_tokens=max_tokens)
    metrics: dict[str, Tensor] = {}
    if old is not None:
        with torch.no_grad():
            metrics["approx_kl"] = masked_mean(old - logp, mask)
    return loss, metrics


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
    ``None``. The clipped prediction is ``clamp(V, V_old - c, V_old + c)``, exactly ``V`` where
    nothing is clipped. Metrics: ``vf_clipfrac`` (tokens where the clipped term is larger),
    ``value_mean``.
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
        v_clipped = torch.clamp(v, v_old - value_clip, v_old + value_clip)  # no round-off where unclipped
        clipped = _square_or_huber(v_clipped - ret, huber_delta)
        per_token, clip_active = torch.maximum(plain, clipped), clipped > plain
    loss = aggregate(per_token, mask, loss_agg, global_tokens=global_tokens, global_seqs=global_seqs, max_tokens=max_tokens)
    with torch.no_grad():
        mean = _MaskedMeans(mask, v.dtype)
        metrics = {"vf_clipfrac": mean(clip_active.to(v.dtype)) if value_clip is not None else mean.zero.clone(),
                   "value_mean": mean(v)}
    return loss, metrics
