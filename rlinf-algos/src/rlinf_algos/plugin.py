"""The rlinf plugin of rlinf-algos: registers every estimator and loss by name.

Aliases make RLinf's and veRL's config values resolve (``adv_type: reinpp``,
``loss_type: actor_critic``, ``kl_penalty: low_var_kl``).
"""

from rlinf_core import ComponentSpec, hookimpl

_A = "rlinf_algos.advantages"


@hookimpl
def rlinf_register_algorithms() -> list[ComponentSpec]:
    return [
        # advantages: fn(*, rewards, mask, ...) -> (advantages, returns)
        ComponentSpec("advantage", "gae", f"{_A}:gae", "Generalized advantage estimation (token / chunk / action level)"),
        ComponentSpec("advantage", "grpo", f"{_A}:grpo", "Group-normalized advantages (norm_by_std=False: Dr. GRPO)"),
        ComponentSpec("advantage", "dr_grpo", f"{_A}:dr_grpo", "GRPO without std normalization (Dr. GRPO)"),
        ComponentSpec("advantage", "rloo", f"{_A}:rloo", "REINFORCE leave-one-out baseline"),
        ComponentSpec("advantage", "reinforce_plus_plus", f"{_A}:reinforce_plus_plus",
                      "REINFORCE++: discounted token returns, batch-whitened", aliases=("reinpp", "reinforce++")),
        ComponentSpec("advantage", "reinforce_plus_plus_baseline", f"{_A}:reinforce_plus_plus_baseline",
                      "REINFORCE++-baseline: group-mean baseline, batch-whitened", aliases=("reinpp_baseline",)),
        # policy losses: fn(*, log_probs, old_log_probs, advantages, mask, ...) -> (loss, metrics)
        ComponentSpec("policy_loss", "ppo", "rlinf_algos.losses:ppo",
                      "PPO clip (clip-higher, dual clip, optional GSPO sequence ratio)", aliases=("actor", "actor_critic")),
        ComponentSpec("policy_loss", "gspo", "rlinf_algos.losses:gspo", "PPO clip on the sequence-level ratio (GSPO)"),
        # KL estimators: fn(log_probs, ref_log_probs) -> per-token KL
        ComponentSpec("kl", "k1", "rlinf_algos.kl:k1", "log pi - log pi_ref", aliases=("kl",)),
        ComponentSpec("kl", "k2", "rlinf_algos.kl:k2", "(log pi - log pi_ref)^2 / 2", aliases=("mse",)),
        ComponentSpec("kl", "k3", "rlinf_algos.kl:k3", "r - 1 - log r, low variance, clamped", aliases=("low_var_kl",)),
        ComponentSpec("kl", "abs", "rlinf_algos.kl:kl_abs", "|log pi - log pi_ref|"),
        # loss aggregation: fn(loss, mask, *, global_tokens, global_seqs, max_tokens) -> scalar
        ComponentSpec("loss_agg", "token-mean", "rlinf_algos.aggregation:token_mean", "Mean over all valid tokens"),
        ComponentSpec("loss_agg", "seq-mean-token-sum", "rlinf_algos.aggregation:seq_mean_token_sum",
                      "Per-sequence token sum, mean over sequences"),
        ComponentSpec("loss_agg", "seq-mean-token-mean", "rlinf_algos.aggregation:seq_mean_token_mean",
                      "Per-sequence token mean, mean over sequences"),
        ComponentSpec("loss_agg", "seq-mean-token-sum-norm", "rlinf_algos.aggregation:seq_mean_token_sum_norm",
                      "Per-sequence token sum / max length, mean over sequences (Dr. GRPO)"),
    ]
