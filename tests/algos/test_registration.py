"""rlinf-algos registers every estimator by name, and RLinf's config values resolve."""

from __future__ import annotations

import re

import pytest
from rlinf_core import get_plugins
from rlinf_core.config import load_config, validate_config

EXPECTED = {
    "advantage": {"gae", "grpo", "dr_grpo", "rloo", "reinforce_plus_plus", "reinforce_plus_plus_baseline", "opo", "gpg", "remax"},
    "policy_loss": {"ppo", "gspo", "clip_cov", "kl_cov", "gmpo", "cispo", "sapo", "dppo_tv", "dppo_kl", "dro", "gpg"},
    "kl": {"k1", "k2", "k3", "abs", "k1+", "k3+", "abs+"},
    "loss_agg": {"token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"},
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_every_name_is_registered_by_rlinf_algos_and_loads(kind):
    registry = get_plugins().registries[kind]
    ours = {n for n in registry if registry[n].distribution == "rlinf-algos"}
    assert ours == EXPECTED[kind]
    for name in registry.choices():
        if registry.get_spec(name).distribution == "rlinf-algos":
            assert callable(registry.load(name))


@pytest.mark.parametrize("kind, alias, canonical", [
    ("advantage", "reinpp", "reinforce_plus_plus"),
    ("policy_loss", "actor_critic", "ppo"),
    ("policy_loss", "actor", "ppo"),
    ("kl", "low_var_kl", "k3"),
    ("kl", "kl", "k1"),
    ("kl", "mse", "k2"),
    ("kl", "low_var_kl+", "k3+"),
    ("kl", "kl+", "k1+"),
    ("kl", "k2+", "k2"),
    ("policy_loss", "vanilla", "ppo"),
    ("policy_loss", "geo_mean", "gmpo"),
])
def test_rlinf_aliases_resolve(kind, alias, canonical):
    assert get_plugins().registries[kind].canonical(alias) == canonical


def test_rlinf_style_config_validates():
    plugins = get_plugins()
    cfg = load_config({"algorithm": {"adv_type": "reinpp", "loss_type": "actor_critic", "kl_penalty_type": "low_var_kl",
                                     "loss_agg_func": "token-mean"}}, plugins=plugins)
    validate_config(cfg, plugins)
    assert cfg.algorithm.kl_penalty == "low_var_kl"


def test_policy_loss_args_table_matches_the_loss_signatures():
    import inspect

    from rlinf_algos import losses
    from rlinf_algos.plugin import POLICY_LOSS_ARGS

    registry = get_plugins().registries["policy_loss"]
    common = {"log_probs", "old_log_probs", "advantages", "mask", "loss_agg", "global_tokens", "global_seqs", "max_tokens",
              "clip_ratio_low", "clip_ratio_high", "clip_ratio_c", "generator"}
    assert set(POLICY_LOSS_ARGS) == EXPECTED["policy_loss"]
    wrapped = {"gspo": (losses.ppo, {"sequence_ratio"}), "dppo_tv": (losses.dppo, {"divergence"}),
               "dppo_kl": (losses.dppo, {"divergence"})}  # thin **kwargs wrappers: their target's parameters
    for name, args in POLICY_LOSS_ARGS.items():
        fn, fixed = wrapped.get(name, (registry.load(name), set()))
        assert set(inspect.signature(fn).parameters) - common - fixed == set(args), name


@pytest.mark.parametrize("algorithm, message", [
    ({"kl_ctrl": {"type": "adaptiv"}}, "algorithm.kl_ctrl.type: unknown KL controller 'adaptiv'. Did you mean 'adaptive'?"),
    ({"loss_type": "dro"}, "algorithm.policy_loss_args.dro_beta: required by policy loss 'dro'"),
    ({"loss_type": "sapo", "policy_loss_args": {"tau_poss": 1.0}},
     "algorithm.policy_loss_args.tau_poss: not a parameter of policy loss 'sapo'. Did you mean 'tau_pos'?"),
    ({"loss_type": "geo_mean", "policy_loss_args": {"tau_pos": 1.0}}, "not a parameter of policy loss 'gmpo'"),
])
def test_algorithm_config_checks(algorithm, message):
    from rlinf_core.errors import ConfigError

    plugins = get_plugins()
    cfg = load_config({"algorithm": algorithm}, plugins=plugins)
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config(cfg, plugins)


def test_valid_kl_ctrl_and_loss_args_pass():
    plugins = get_plugins()
    cfg = load_config({"algorithm": {"kl_ctrl": {"type": "adaptive", "target_kl": 0.05}, "loss_type": "dro",
                                     "policy_loss_args": {"dro_beta": 0.1}}}, plugins=plugins)
    validate_config(cfg, plugins)
