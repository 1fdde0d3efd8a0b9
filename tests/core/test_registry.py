"""Registries: lookups, aliases, did-you-mean and pip hints, immutability."""

from __future__ import annotations

import pytest
from rlinf_core import ComponentSpec, UnknownComponentError
from rlinf_core import registry as registry_mod
from rlinf_core.registry import Registries, Registry


def _registries():
    specs = [
        ComponentSpec("advantage", "gae", "m:gae", aliases=("generalized",)),
        ComponentSpec("advantage", "grpo", "m:grpo"),
        ComponentSpec("env", "chain", "m:Chain"),
    ]
    regs, conflicts = Registries.build(specs)
    assert conflicts == []
    return regs


def test_lookup_by_name_and_alias():
    regs = _registries()
    assert regs.get_spec("advantage", "gae").target == "m:gae"
    assert regs["advantage"].get_spec("generalized").name == "gae"
    assert regs["advantage"].canonical("generalized") == "gae"
    assert "generalized" in regs["advantage"] and "nope" not in regs["advantage"]
    assert list(regs["advantage"]) == ["gae", "grpo"]  # canonical names only
    assert regs["advantage"].choices() == ["gae", "generalized", "grpo"]
    assert len(regs["model"]) == 0


def test_unknown_name_lists_choices_and_suggests_closest():
    with pytest.raises(UnknownComponentError) as err:
        _registries().get_spec("advantage", "gea")
    assert str(err.value).startswith("unknown advantage 'gea'. Did you mean 'gae'? Registered: gae, generalized, grpo.")


def test_unknown_well_known_name_of_missing_distribution_gives_pip_line(monkeypatch):
    monkeypatch.setattr(registry_mod, "_is_installed", lambda dist: False)
    with pytest.raises(UnknownComponentError) as err:
        _registries().get_spec("env", "maniskill")
    msg = str(err.value)
    assert "No env is registered" not in msg and "Registered: chain." in msg
    assert "provided by rlinf-envs-embodied, which is not installed. Fix: pip install 'rlinf-envs-embodied[maniskill]'" in msg


def test_well_known_name_of_installed_distribution_points_at_plugins_list(monkeypatch):
    monkeypatch.setattr(registry_mod, "_is_installed", lambda dist: True)
    with pytest.raises(UnknownComponentError, match="rlinf-algos, which is installed but does not register it: check `rlinf plugins list`"):
        _registries().get_spec("kl", "k3")
    with pytest.raises(UnknownComponentError, match=r"provided by rlinf-backends-fsdp with its 'vllm' extra. Fix: pip install 'rlinf-backends-fsdp\[vllm\]'"):
        _registries().get_spec("rollout_engine", "vllm")


def test_unknown_kind_is_refused():
    with pytest.raises(KeyError, match="unknown component kind 'envs'. Did you mean 'env'?"):
        _registries()["envs"]
    with pytest.raises(ValueError, match="unknown component kind"):
        Registry("widgets")


def test_registries_are_read_only():
    regs = _registries()
    assert not hasattr(regs["env"], "register") and not hasattr(regs["env"], "__setitem__")
    with pytest.raises(TypeError):
        regs["env"]["new"] = ComponentSpec("env", "new", "m:x")  # type: ignore[index]
