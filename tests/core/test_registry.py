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


def _clashing():
    specs = [
        ComponentSpec("advantage", "gae", "m:a_gae", aliases=("g",)).with_origin("acme", "acme-rl"),
        ComponentSpec("advantage", "gae", "m:gae").with_origin("algos", "rlinf-algos"),
        ComponentSpec("advantage", "grpo", "m:grpo").with_origin("algos", "rlinf-algos"),
        ComponentSpec("command", "config", "m:cfg").with_origin("cli", "rlinf-cli"),
        ComponentSpec("command", "config", "m:acme_cfg").with_origin("acme", "acme-rl"),
    ]
    regs, clashes = Registries.build(specs)
    return regs, clashes


def test_clash_keeps_qualified_names_and_lists_them():
    regs, clashes = _clashing()
    adv = regs["advantage"]
    assert [(c.kind, c.name, c.plugins) for c in clashes] == [("advantage", "gae", ["acme", "algos"]), ("command", "config", ["acme", "cli"])]
    assert list(adv) == ["acme:gae", "algos:gae", "grpo"] and len(adv) == 3
    assert adv.choices() == ["acme:gae", "algos:gae", "g", "grpo"]
    assert adv["algos:gae"].target == "m:gae" and adv["acme:g"].target == "m:a_gae" and adv["g"].target == "m:a_gae"
    assert adv.canonical("acme:g") == "gae"
    assert "gae" in adv and "algos:gae" in adv and "nope:gae" not in adv
    with pytest.raises(registry_mod.ComponentConflictError) as err:
        adv["gae"]
    assert str(err.value) == (
        "advantage 'gae' is registered by plugin 'acme' (distribution acme-rl) and plugin 'algos' (distribution rlinf-algos), "
        "so the bare name is ambiguous. Name one: 'acme:gae' or 'algos:gae' (set e.g. `algorithm.adv_type: acme:gae`), "
        "or disable a plugin with RLINF_DISABLE_PLUGINS=acme"
    )


def test_first_party_command_wins_its_bare_name():
    regs, _ = _clashing()
    commands = regs["command"]
    assert commands["config"].plugin == "cli" and commands["acme:config"].plugin == "acme"
    assert list(commands) == ["acme:config", "config"]
    assert commands.clashes["config"].warning() == (
        "command 'config' is registered by plugins 'acme' and 'cli': 'config' is 'cli''s (first-party); use acme:config for the other"
    )


def test_unknown_qualified_names_explain_what_exists():
    regs, _ = _clashing()
    with pytest.raises(UnknownComponentError) as err:
        regs["advantage"]["acme:grpo"]
    assert str(err.value) == ("unknown advantage 'acme:grpo': plugin 'acme' registers no advantage 'grpo' (it registers: g, gae). "
                              "'grpo' is registered as algos:grpo.")
    with pytest.raises(UnknownComponentError, match="no plugin named 'algso' registers a advantage. Did you mean 'algos'"):
        regs["advantage"]["algso:gae"]
