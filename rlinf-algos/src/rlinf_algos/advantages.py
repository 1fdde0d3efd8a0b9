"""Advantage and return estimators: one function per estimator, registered by name (kind ``advantage``).

Every estimator takes keyword arguments and returns ``(advantages, returns)``, both zero at masked
positions. Layouts (``B`` rows):

- reasoning: ``rewards`` ``(B, T)`` per token with a response ``mask`` ``(B, T)``, or scores ``(B,)``
  per sequence (group estimators then broadcast over ``mask``);
- embodied: ``rewards`` ``(B, S)`` per step or ``(B, S, C)`` per action of a chunk of ``C``, with
  ``terminated`` / ``truncated`` flags ``(B, S)`` (see :func:`gae` for the levels).

Group estimators (``grpo``, ``dr_grpo``, ``rloo``, ``reinforce_plus_plus_baseline``, ``opo``,
``gpg``) take ``index``, the per-row group id (rows that share a prompt / initial state: a ``(B,)``
int64 tensor or any sequence of labels, any order, unequal sizes, singletons allowed), or
``group_size`` for contiguous groups (see :mod:`rlinf_algos.groups`).

Advantages come out raw: GAE and the group estimators do not whiten over the batch (except the
estimators whose definition does: ``reinforce_plus_plus``, ``reinforce_plus_plus_baseline``). The
flows apply :func:`normalize_advantages` afterwards when ``algorithm.normalize_advantages`` is
true (RLinf's default).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch
from torch import Tensor

from rlinf_algos.checks import as_mask, check_finite, check_same_shape, check_tensor
from rlinf_algos.groups import as_groups
from rlinf_algos.masked import masked_sum, masked_whiten

LEVELS = ("token", "chunk", "action")


def _flags(x: Tensor | None, like: Tensor, name: str) -> Tensor:
    if x is None:
        return torch.zeros_like(like, dtype=torch.bool)
    return as_mask(x, like, name=name, like_name="the step layout")


def _gae_flat(
    rewards: Tensor, values: Tensor, mask: Tensor, terminated: Tensor, truncated: Tensor,
    truncated_values: Tensor | None, last_values: Tensor | None, gamma: float, lam: float,
) -> Tensor:
    """GAE over ``(B, T)``; masked steps are skipped (they change nothing at valid steps).

    Valid steps are first packed to the left of each row (a stable sort), so that every TD error
    and recursion coefficient is computed at once; the only sequential part left is
    ``A_t = delta_t + coef_t * A_{t+1}``, one fused multiply-add per step on a contiguous row.
    """
    batch, horizon = rewards.shape
    count = mask.sum(dim=1, keepdim=True)
    steps = torch.arange(horizon, device=rewards.device)
    valid = steps < count
    packed = not bool((mask == valid).all())  # right-padded rows (the usual layout) need no packing
    if packed:
        order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)  # valid steps first, in order
        rewards, values = rewards.gather(1, order), values.gather(1, order)
        terminated, truncated = terminated.gather(1, order), truncated.gather(1, order)
        if truncated_values is not None:
            truncated_values = truncated_values.gather(1, order)
    has_next = steps + 1 < count
    end_value = last_values.to(rewards.dtype)[:, None] if last_values is not None else rewards.new_zeros(batch, 1)
    next_value = torch.where(has_next, torch.cat([values[:, 1:], end_value], dim=1), end_value)
    if truncated_values is not None:
        next_value = torch.where(truncated, truncated_values.to(rewards.dtype), next_value)
    zero = rewards.new_zeros(())
    delta = torch.where(valid, rewards + torch.where(terminated, zero, gamma * next_value) - values, zero)
    coef = torch.where(has_next & ~terminated & ~truncated, rewards.new_tensor(gamma * lam), zero)
    delta_t, coef_t = delta.t().contiguous(), coef.t().contiguous()
    adv_t = torch.empty_like(delta_t)
    carry = rewards.new_zeros(batch)
    for t in range(horizon - 1, -1, -1):
        carry = torch.addcmul(delta_t[t], coef_t[t], carry, out=adv_t[t])
    adv = adv_t.t()
    if packed:
        adv = torch.zeros_like(adv).scatter_(1, order, adv)
    return torch.where(mask, adv, zero)


def gae(
    *,
    rewards: Tensor,
    values: Tensor,
    mask: Tensor | None = None,
    gamma: float = 1.0,
    gae_lambda: float = 1.0,
    terminated: Tensor | None = None,
    truncated: Tensor | None = None,
    truncated_values: Tensor | None = None,
    last_values: Tensor | None = None,
    level: str = "token",
) -> tuple[Tensor, Tensor]:
    r"""Generalized advantage estimation (Schulman et al. 2016, arXiv:1506.02438).

    :math:`\delta_t = r_t + \gamma V_{t+1}(1-\mathrm{term}_t) - V_t`,
    :math:`A_t = \delta_t + \gamma\lambda(1-\mathrm{done}_t)A_{t+1}`, returns :math:`A_t + V_t`.

    Bootstrapping: after a *terminated* step the next value is 0; after a *truncated* step it is
    ``truncated_values[t]`` (the value of the final observation, which auto-reset replaced), and
    the recursion stops at either. After the last valid step of a row it is ``last_values`` (the
    value of the observation after the rollout horizon; default 0, i.e. the sequence ended).
    Masked steps are skipped: they change nothing at valid steps.

    The advantages are raw (not whitened, unlike veRL's ``compute_gae_advantage_return``): the
    flows whiten them with :func:`normalize_advantages` when ``algorithm.normalize_advantages`` is
    true (the default).

    Levels: ``token`` (or any flat time axis): ``rewards``, ``values``, flags and ``mask`` are
    ``(B, T)``. ``chunk``: rewards ``(B, S)`` or ``(B, S, C)`` (summed over the chunk), values and
    flags ``(B, S)``; advantages are repeated over the chunk. ``action``: rewards and values
    ``(B, S, C)``, each action a time step; flags ``(B, S)`` apply after the chunk's last action.
    """
    check_tensor(rewards, "rewards", ndim=(2, 3))
    check_tensor(values, "values", ndim=(2, 3))
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    chunk = rewards.shape[2] if rewards.dim() == 3 else None
    if level == "token" and chunk is not None:
        raise ValueError(
            f"level='token' takes rewards of shape (B, T), got {tuple(rewards.shape)}; use level 'chunk' or 'action'"
        )
    if level == "action" and chunk is None:
        raise ValueError(f"level='action' takes rewards of shape (B, S, C), got {tuple(rewards.shape)}")
    step_rewards = rewards.sum(-1) if level == "chunk" and chunk is not None else rewards
    check_same_shape("rewards" if level != "chunk" else "rewards summed over the chunk", step_rewards, values=values)
    layout = step_rewards[..., 0] if level == "action" else step_rewards  # (B, S) flags layout
    term = _flags(terminated, layout, "terminated")
    trunc = _flags(truncated, layout, "truncated")
    if truncated_values is not None:
        check_tensor(truncated_values, "truncated_values")
        check_same_shape("truncated", trunc, truncated_values=truncated_values)
    elif bool(trunc.any()):
        raise ValueError("truncated has true entries but truncated_values is None: pass V(final observation) at truncated steps")
    if last_values is not None:
        check_tensor(last_values, "last_values", ndim=(1,))
        if last_values.shape[0] != step_rewards.shape[0]:
            raise ValueError(f"last_values has shape {tuple(last_values.shape)}; expected ({step_rewards.shape[0]},)")
    if level == "action":  # each action is a step; a chunk's flags apply after its last action
        if isinstance(mask, Tensor) and mask.dim() == 2:
            mask = as_mask(mask, layout, like_name="the (B, S) step layout").unsqueeze(-1).expand_as(step_rewards)
        step_mask = as_mask(mask, step_rewards, like_name="rewards").flatten(1)
        after_chunk = torch.zeros_like(step_rewards, dtype=torch.bool)
        after_chunk[..., -1] = True
        term = (term.unsqueeze(-1) & after_chunk).flatten(1)
        trunc = (trunc.unsqueeze(-1) & after_chunk).flatten(1)
        if truncated_values is not None:
            truncated_values = (truncated_values.unsqueeze(-1) * after_chunk).flatten(1)
        step_rewards, step_values = step_rewards.flatten(1), values.flatten(1)
    else:
        step_mask = as_mask(mask, step_rewards, like_name="rewards" if level == "token" else "the (B, S) step layout")
        step_values = values
    check_finite(step_rewards, "rewards", step_mask)
    check_finite(step_values, "values", step_mask)
    adv = _gae_flat(step_rewards, step_values, step_mask, term, trunc, truncated_values, last_values, gamma, gae_lambda)
    returns = torch.where(step_mask, adv + step_values, torch.zeros((), dtype=adv.dtype))
    if level == "action":
        return adv.view(rewards.shape), returns.view(rewards.shape)
    if level == "chunk" and chunk is not None:
        return adv.unsqueeze(-1).expand(*adv.shape, chunk), returns.unsqueeze(-1).expand(*adv.shape, chunk)
    return adv, returns


def discounted_returns(
    *, rewards: Tensor, mask: Tensor | None = None, gamma: float = 1.0, dones: Tensor | None = None,
    last_values: Tensor | None = None,
) -> Tensor:
    r""":math:`G_t = r_t + \gamma (1-\mathrm{done}_t) G_{t+1}` over ``(B, T)``, skipping masked steps.

    ``last_values`` bootstraps past the last step (default 0). Equals :func:`gae` with
    ``values = 0`` and ``gae_lambda = 1``.
    """
    check_tensor(rewards, "rewards", ndim=(2,))
    _, returns = gae(rewards=rewards, values=torch.zeros_like(rewards), mask=mask, gamma=gamma, gae_lambda=1.0, terminated=dones,
                     last_values=last_values)
    return returns


def _scores(rewards: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """Per-row scores ``(B,)`` (rewards summed over valid positions) and the broadcast mask."""
    check_tensor(rewards, "rewards")
    if rewards.dim() == 1:
        if mask is not None:
            if not isinstance(mask, Tensor) or mask.dim() < 1 or mask.shape[0] != rewards.shape[0]:
                shape = tuple(mask.shape) if isinstance(mask, Tensor) else mask
                raise ValueError(f"mask has shape {shape} but rewards (scores) have shape {tuple(rewards.shape)}; "
                                 "mask's first dimension must be the batch")
            mask = as_mask(mask, mask, name="mask")
        check_finite(rewards, "rewards")
        return rewards, mask
    mask = as_mask(mask, rewards)
    check_finite(rewards, "rewards", mask)
    return masked_sum(rewards, mask, dim=tuple(range(1, rewards.dim()))), mask


def _spread(per_row: Tensor, mask: Tensor | None) -> Tensor:
    """Broadcast ``(B,)`` values over ``mask`` (zero where masked); ``(B,)`` if there is no mask."""
    if mask is None:
        return per_row
    shaped = per_row.view(-1, *([1] * (mask.dim() - 1)))
    return torch.where(mask, shaped, torch.zeros((), dtype=per_row.dtype, device=per_row.device))


Index = Tensor | Sequence[Hashable] | None


def grpo(
    *, rewards: Tensor, mask: Tensor | None = None, index: Index = None, group_size: int | None = None,
    norm_by_std: bool = True, eps: float = 1e-6,
) -> tuple[Tensor, Tensor]:
    r"""Group-relative advantages (GRPO, Shao et al. 2024, arXiv:2402.03300).

    :math:`A_i = (s_i - \mathrm{mean}_g s) / (\mathrm{std}_g s + \epsilon)` with the group's unbiased
    std; ``norm_by_std=False`` gives :math:`s_i - \mathrm{mean}_g s` (Dr. GRPO, Liu et al. 2025,
    arXiv:2503.20783). ``s_i`` is the row's score (rewards summed over valid positions). Groups come
    from ``index`` (per-row ids) or ``group_size`` (contiguous, >= 2); a singleton group has mean 0
    and std 1 (veRL), so its advantage is :math:`s_i / (1 + \epsilon)`.
    """
    scores, mask = _scores(rewards, mask)
    groups = as_groups(index, group_size, scores.shape[0], device=scores.device, min_group_size=2)
    mean, std, _ = groups.mean_std(scores)
    centred = scores - mean
    if norm_by_std:
        centred = centred / (std + eps)
    adv = _spread(centred, mask)
    return adv, adv


def dr_grpo(
    *, rewards: Tensor, mask: Tensor | None = None, index: Index = None, group_size: int | None = None,
) -> tuple[Tensor, Tensor]:
    """:func:`grpo` with ``norm_by_std=False`` (Dr. GRPO, arXiv:2503.20783)."""
    return grpo(rewards=rewards, mask=mask, index=index, group_size=group_size, norm_by_std=False)


def rloo(
    *, rewards: Tensor, mask: Tensor | None = None, index: Index = None, group_size: int | None = None,
) -> tuple[Tensor, Tensor]:
    r"""REINFORCE leave-one-out (Kool et al. 2019; Ahmadian et al. 2024, arXiv:2402.14740).

    :math:`A_i = s_i - \frac{1}{G-1}\sum_{j \ne i} s_j` over the row's group of :math:`G`; a singleton
    keeps its raw score (veRL). Groups from ``index`` or ``group_size`` (contiguous, >= 2).
    """
    scores, mask = _scores(rewards, mask)
    groups = as_groups(index, group_size, scores.shape[0], device=scores.device, min_group_size=2)
    sizes = groups.sizes.to(scores.dtype)[groups.ids]
    others = groups.sum(scores)[groups.ids] - scores
    adv = torch.where(sizes > 1, scores - others / (sizes - 1).clamp(min=1), scores)
    adv = _spread(adv, mask)
    return adv, adv


def opo(
    *, rewards: Tensor, mask: Tensor | None = None, index: Index = None, group_size: int | None = None,
) -> tuple[Tensor, Tensor]:
    r"""On-policy RL with the optimal reward baseline (OPO, Hao et al. 2025, arXiv:2505.23585).

    :math:`A_i = s_i - b_g`, :math:`b_g = \sum_{j \in g} l_j s_j / \sum_{j \in g} l_j` with
    :math:`l_j` the row's response length (valid positions of ``mask``). A singleton keeps its raw
    score (veRL); a group with no valid token gets baseline 0.
    """
    if rewards.dim() == 1 and mask is None:
        raise ValueError("opo weighs the baseline by response length: pass mask (B, T) with the scores")
    scores, mask = _scores(rewards, mask)
    assert mask is not None
    lengths = mask.flatten(1).sum(1).to(scores.dtype)
    groups = as_groups(index, group_size, scores.shape[0], device=scores.device)
    total = groups.sum(lengths)
    baseline = groups.sum(lengths * scores) / total.clamp(min=torch.finfo(scores.dtype).tiny)
    baseline = torch.where((groups.sizes > 1) & (total > 0), baseline, torch.zeros_like(baseline))
    adv = _spread(scores - baseline[groups.ids], mask)
    return adv, adv


def gpg(
    *, rewards: Tensor, mask: Tensor | None = None, index: Index = None, group_size: int | None = None,
    f_norm: float = 1.0, alpha: float | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Group Policy Gradient advantages (GPG, Chu et al. 2025, arXiv:2504.02546).

    :math:`A_i = \alpha (s_i - \mathrm{mean}_g s) / F_{norm}` with :math:`\alpha = B / (B - M)`, where
    :math:`M` counts the rows whose advantage is zero (groups with equal rewards carry no gradient,
    so the others are scaled up). Give ``alpha`` to fix it instead. A singleton keeps its raw score.
    Pair it with the ``gpg`` policy loss. (veRL computes :math:`\alpha` from the non-zero *rewards*;
    this follows the paper.)
    """
    if f_norm <= 0:
        raise ValueError(f"f_norm must be > 0, got {f_norm}")
    scores, mask = _scores(rewards, mask)
    groups = as_groups(index, group_size, scores.shape[0], device=scores.device)
    mean, _, _ = groups.mean_std(scores)
    centred = scores - mean
    if alpha is None:
        valid = torch.count_nonzero(centred).clamp(min=1).to(scores.dtype)
        scale = scores.shape[0] / valid
    else:
        scale = torch.as_tensor(alpha, dtype=scores.dtype, device=scores.device)
    adv = _spread(scale * centred / f_norm, mask)
    return adv, adv


def _token_rewards(rewards: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """Token rewards ``(B, T)``: as given, or scores ``(B,)`` placed at each row's last valid token."""
    check_tensor(rewards, "rewards", ndim=(1, 2))
    if rewards.dim() == 2:
        mask = as_mask(mask, rewards)
        check_finite(rewards, "rewards", mask)
        return rewards, mask
    if mask is None or not isinstance(mask, Tensor) or mask.dim() != 2 or mask.shape[0] != rewards.shape[0]:
        shape = tuple(mask.shape) if isinstance(mask, Tensor) else None
        raise ValueError(
            f"rewards are scores of shape {tuple(rewards.shape)}; mask must be (B, T) with B={rewards.shape[0]}, got {shape}"
        )
    check_finite(rewards, "rewards")
    mask = as_mask(mask, mask)
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = torch.where(mask, positions, torch.full_like(positions, -1)).max(dim=1).values
    token = torch.zeros(mask.shape, dtype=rewards.dtype, device=rewards.device)
    rows = torch.nonzero(last >= 0).flatten()
    token[rows, last[rows]] = rewards[rows]
    return token, mask


def reinforce_plus_plus(*, rewards: Tensor, mask: Tensor | None = None, gamma: float = 1.0) -> tuple[Tensor, Tensor]:
    r"""REINFORCE++ (Hu 2025, arXiv:2501.03262): discounted token returns, whitened over the batch.

    :math:`G_t = r_t + \gamma G_{t+1}`, :math:`A = \mathrm{whiten}(G)` over valid tokens. ``rewards``
    are token rewards ``(B, T)`` (KL penalty already applied) or scores ``(B,)`` put on the last token.
    """
    token, mask = _token_rewards(rewards, mask)
    returns = discounted_returns(rewards=token, mask=mask, gamma=gamma)
    return masked_whiten(returns, mask), returns


def reinforce_plus_plus_baseline(
    *, rewards: Tensor, mask: Tensor | None = None, index: Index = None, group_size: int | None = None,
    eps: float = 1e-8,
) -> tuple[Tensor, Tensor]:
    r"""REINFORCE++-baseline (Hu et al., arXiv:2501.03262 v3+): group-mean baseline, then batch whitening.

    :math:`A = \mathrm{whiten}_{batch}(s_i - \mathrm{mean}_g s)`, broadcast over valid tokens (the
    whitening statistics are token-weighted, as in veRL). A singleton is not centred.
    """
    scores, mask = _scores(rewards, mask)
    groups = as_groups(index, group_size, scores.shape[0], device=scores.device)
    mean, _, _ = groups.mean_std(scores)
    centred = scores - mean
    if mask is None:
        adv = masked_whiten(centred, torch.ones_like(centred, dtype=torch.bool), eps=eps)
    else:
        adv = masked_whiten(_spread(centred, mask), mask, eps=eps)
    return adv, adv


def remax(
    *, rewards: Tensor, reward_baselines: Tensor, mask: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    r"""ReMax (Li et al. 2023, arXiv:2310.10505): REINFORCE with the greedy response's reward as baseline.

    :math:`G_t = \sum_{t' \ge t} r_{t'}` over valid tokens, :math:`A_t = G_t - b`, where
    ``reward_baselines`` ``(B,)`` holds :math:`b`, the reward of each prompt's greedy decoding.
    ``rewards`` are token rewards ``(B, T)`` or scores ``(B,)`` put on the last valid token.
    """
    token, mask = _token_rewards(rewards, mask)
    check_tensor(reward_baselines, "reward_baselines", ndim=(1,))
    if reward_baselines.shape[0] != token.shape[0]:
        raise ValueError(
            f"reward_baselines has shape {tuple(reward_baselines.shape)}; expected ({token.shape[0]},), "
            "the greedy response's reward per row"
        )
    check_finite(reward_baselines, "reward_baselines")
    returns = discounted_returns(rewards=token, mask=mask, gamma=1.0)
    adv = torch.where(mask, returns - reward_baselines.to(returns.dtype)[:, None], torch.zeros((), dtype=returns.dtype))
    return adv, returns


def normalize_advantages(advantages: Tensor, mask: Tensor | None = None, eps: float = 1e-8) -> Tensor:
    r"""Whiten advantages over the valid positions of the batch: :math:`(A - \mu) / \sqrt{\sigma^2 + \epsilon}`.

    Unbiased (Bessel-corrected) variance, masked positions set to 0; the flows call it after the
    estimator when ``algorithm.normalize_advantages`` is true (RLinf's default). ``mask`` has
    ``advantages``' shape or its leading dimensions (a ``(B, S)`` mask of ``(B, S, C)`` chunks).
    """
    check_tensor(advantages, "advantages")
    if mask is None:
        mask = torch.ones_like(advantages, dtype=torch.bool)
    elif isinstance(mask, Tensor) and mask.dim() < advantages.dim() and mask.shape == advantages.shape[: mask.dim()]:
        mask = mask.reshape(*mask.shape, *[1] * (advantages.dim() - mask.dim())).expand_as(advantages)
    mask = as_mask(mask, advantages, like_name="advantages")
    check_finite(advantages, "advantages", mask)
    return masked_whiten(advantages, mask, eps=eps)
