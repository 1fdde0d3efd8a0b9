"""The rlinf plugin of rlinf-algos: registers every estimator and loss by name, checks ``algorithm.kl_ctrl``.

Aliases make RLinf's and veRL's config values resolve (``adv_type: reinpp``,
``loss_type: actor_critic`` / ``vanilla`` / ``geo_mean``, ``kl_penalty: low_var_kl``).
Importing this module imports no torch.
"""

from __future__ import annotations

from typing import Any

from rlinf_core import ComponentSpec, hookimpl
from rlinf_core.errors import suggestion_text

_A = "rlinf_algos.advantages"
_L = "rlinf_algos.losses"
_K = "rlinf_algos.kl"
_G = "rlinf_algos.aggregation"
KL_CTRL_TYPES = ("fixed", "adaptive")  # kept equal to rlinf_algos.kl_control.KL_CTRL_TYPES (a test checks)


@hookimpl
def rlinf_register_algorithms() -> list[ComponentSpec]:
    return [
        # advantages: fn(*, rewards, mask, ...) -> (advantages, returns); group ones also take index= / group_size=
        ComponentSpec("advantage", "gae", f"{_A}:gae", "Generalized advantage estimation (token / chunk / action level)"),
        ComponentSpec("advantage", "grpo", f"{_A}:grpo", "Group-normalized advantages (norm_by_std=False: Dr. GRPO)",
                      aliases=("embodied_grpo",)),
        ComponentSpec("advantage", "dr_grpo", f"{_A}:dr_grpo", "GRPO without std normalization (Dr. GRPO)"),
        ComponentSpec("advantage", "rloo", f"{_A}:rloo", "REINFORCE leave-one-out baseline"),
        ComponentSpec("advantage", "reinforce_plus_plus", f"{_A}:reinforce_plus_plus",
                      "REINFORCE++: discounted token returns, batch-whitened", aliases=("reinpp", "reinforce++")),
        ComponentSpec("advantage", "reinforce_plus_plus_baseline", f"{_A}:reinforce_plus_plus_baseline",
                      "REINFORCE++-baseline: group-mean baseline, batch-whitened", aliases=("reinpp_baseline",)),
        ComponentSpec("advantage", "opo", f"{_A}:opo", "OPO: length-weighted group-mean baseline"),
        ComponentSpec("advantage", "gpg", f"{_A}:gpg", "GPG: group-mean baseline scaled by B / (B - M)"),
        ComponentSpec("advantage", "remax", f"{_A}:remax", "ReMax: reward-to-go minus the greedy response's reward"),
        # policy losses: fn(*, log_probs, old_log_probs, advantages, mask, ...) -> (loss, metrics)
        ComponentSpec("policy_loss", "ppo", f"{_L}:ppo", "PPO clip (clip-higher, dual clip, optional GSPO sequence ratio)",
                      aliases=("actor", "actor_critic", "vanilla")),
        ComponentSpec("policy_loss", "gspo", f"{_L}:gspo", "PPO clip on the sequence-level ratio (GSPO)"),
        ComponentSpec("policy_loss", "clip_cov", f"{_L}:clip_cov", "PPO clip, high-covariance tokens dropped (Clip-Cov)"),
        ComponentSpec("policy_loss", "kl_cov", f"{_L}:kl_cov", "Policy gradient, KL penalty on high-covariance tokens (KL-Cov)"),
        ComponentSpec("policy_loss", "gmpo", f"{_L}:gmpo", "Geometric-mean policy optimization (GMPO)", aliases=("geo_mean",)),
        ComponentSpec("policy_loss", "cispo", f"{_L}:cispo", "Clipped, detached importance weight times log-prob (CISPO)"),
        ComponentSpec("policy_loss", "sapo", f"{_L}:sapo", "Smooth sigmoid gate instead of the clip (SAPO)"),
        ComponentSpec("policy_loss", "dppo_tv", f"{_L}:dppo_tv", "DPPO-Binary, total-variation trust region"),
        ComponentSpec("policy_loss", "dppo_kl", f"{_L}:dppo_kl", "DPPO-Binary, binary-KL trust region"),
        ComponentSpec("policy_loss", "dro", f"{_L}:dro", "DRO: policy gradient with a quadratic log-ratio penalty"),
        ComponentSpec("policy_loss", "gpg", f"{_L}:gpg_loss", "GPG: plain policy gradient -A log pi"),
        # KL estimators: fn(log_probs, ref_log_probs) -> per-token KL
        ComponentSpec("kl", "k1", f"{_K}:k1", "log pi - log pi_ref", aliases=("kl",)),
        ComponentSpec("kl", "k2", f"{_K}:k2", "(log pi - log pi_ref)^2 / 2", aliases=("mse", "k2+", "mse+")),
        ComponentSpec("kl", "k3", f"{_K}:k3", "r - 1 - log r, low variance, clamped", aliases=("low_var_kl",)),
        ComponentSpec("kl", "abs", f"{_K}:kl_abs", "|log pi - log pi_ref|"),
        ComponentSpec("kl", "k1+", f"{_K}:k1_plus", "k1 value, k2 gradient (straight-through)", aliases=("kl+",)),
        ComponentSpec("kl", "k3+", f"{_K}:k3_plus", "k3 value, k2 gradient (straight-through)", aliases=("low_var_kl+",)),
        ComponentSpec("kl", "abs+", f"{_K}:kl_abs_plus", "|log ratio| value, k2 gradient (straight-through)"),
        # loss aggregation: fn(loss, mask, *, global_tokens, global_seqs, max_tokens) -> scalar
        ComponentSpec("loss_agg", "token-mean", f"{_G}:token_mean", "Mean over all valid tokens"),
        ComponentSpec("loss_agg", "token-sum", f"{_G}:token_sum", "Sum over all valid tokens"),
        ComponentSpec("loss_agg", "seq-mean-token-sum", f"{_G}:seq_mean_token_sum",
                      "Per-sequence token sum, mean over sequences"),
        ComponentSpec("loss_agg", "seq-mean-token-mean", f"{_G}:seq_mean_token_mean",
                      "Per-sequence token mean, mean over sequences"),
        ComponentSpec("loss_agg", "seq-mean-token-sum-norm", f"{_G}:seq_mean_token_sum_norm",
                      "Per-sequence token sum / max length, mean over sequences (Dr. GRPO)"),
    ]


#: The extra parameters of each policy loss that ``algorithm.policy_loss_args`` may set (a test keeps
#: this equal to the functions' signatures); the common ones come from ``algorithm.*`` keys.
POLICY_LOSS_ARGS: dict[str, tuple[str, ...]] = {
    "ppo": ("sequence_ratio",),
    "gspo": (),
    "clip_cov": ("clip_cov_ratio", "clip_cov_lb", "clip_cov_ub"),
    "kl_cov": ("kl_cov_ratio", "ppo_kl_coef"),
    "gmpo": (),
    "cispo": (),
    "sapo": ("tau_pos", "tau_neg"),
    "dppo_tv": (),
    "dppo_kl": (),
    "dro": ("dro_beta",),
    "gpg": (),
}
_REQUIRED_ARGS = {"dro": ("dro_beta",)}


@hookimpl
def rlinf_validate_config(config: Any) -> list[str]:
    """``algorithm.kl_ctrl.type`` is a known controller; ``algorithm.policy_loss_args`` fit the chosen loss."""
    algorithm = getattr(config, "algorithm", None)
    problems: list[str] = []
    kind = getattr(getattr(algorithm, "kl_ctrl", None), "type", "fixed")
    if kind not in KL_CTRL_TYPES:
        problems.append(f"algorithm.kl_ctrl.type: unknown KL controller {kind!r}.{suggestion_text(str(kind), KL_CTRL_TYPES)} "
                        f"Valid: {', '.join(KL_CTRL_TYPES)}")
    loss = _canonical_loss(getattr(algorithm, "loss_type", None))
    if loss in POLICY_LOSS_ARGS:
        given = dict(getattr(algorithm, "policy_loss_args", None) or {})
        allowed = POLICY_LOSS_ARGS[loss]
        for key in given:
            if key not in allowed:
                valid = ", ".join(allowed) or "none"
                problems.append(f"algorithm.policy_loss_args.{key}: not a parameter of policy loss {loss!r}."
                                f"{suggestion_text(key, allowed)} Valid: {valid}")
        for key in _REQUIRED_ARGS.get(loss, ()):
            if given.get(key) is None:
                problems.append(f"algorithm.policy_loss_args.{key}: required by policy loss {loss!r} (e.g. {key}: 0.1)")
    return problems


def _canonical_loss(name: Any) -> str | None:
    if not isinstance(name, str):
        return None
    for spec in rlinf_register_algorithms():
        if spec.kind == "policy_loss" and (name == spec.name or name in spec.aliases):
            return spec.name
    return name
