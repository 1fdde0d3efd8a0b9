"""rlinf-algos registers every estimator by name, and RLinf's config values resolve."""

from __future__ import annotations

import pytest
from rlinf_core import get_plugins
from rlinf_core.config import load_config, validate_config

EXPECTED = {
    "advantage": {"gae", "grpo", "dr_grpo", "rloo", "reinforce_plus_plus", "reinforce_plus_plus_baseline"},
    "policy_loss": {"ppo", "gspo"},
    "kl": {"k1", "k2", "k3", "abs"},
    "loss_agg": {"token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"},
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
])
def test_rlinf_aliases_resolve(kind, alias, canonical):
    assert get_plugins().registries[kind].canonical(alias) == canonical


def test_rlinf_style_config_validates():
    plugins = get_plugins()
    cfg = load_config({"algorithm": {"adv_type": "reinpp", "loss_type": "actor_critic", "kl_penalty_type": "low_var_kl",
                                     "loss_agg_func": "token-mean"}}, plugins=plugins)
    validate_config(cfg, plugins)
    assert cfg.algorithm.kl_penalty == "low_var_kl"
