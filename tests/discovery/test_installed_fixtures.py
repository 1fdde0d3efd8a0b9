"""Run by `nox -s discovery`: the demo, broken and duplicate fixture packages are pip-installed."""

from __future__ import annotations

import json
import subprocess

import pytest


def _plugins_list(*extra_env: tuple[str, str]) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, **dict(extra_env)}
    return subprocess.run(["rlinf", "plugins", "list", "--json"], capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def records():
    proc = _plugins_list()
    assert proc.returncode == 0, proc.stderr
    return {p["name"]: p for p in json.loads(proc.stdout)["plugins"]}


def test_third_party_plugin_is_loaded_with_components(records):
    demo = records["demo"]
    assert (demo["distribution"], demo["version"], demo["status"]) == ("rlinf-demo-plugin", "1.2.3", "loaded")
    assert {(c["kind"], c["name"]) for c in demo["components"]} == {("env", "demo-chain"), ("advantage", "demo-reward-to-go")}


def test_broken_plugin_is_failed_with_its_error(records):
    broken = records["broken"]
    assert (broken["distribution"], broken["version"], broken["status"]) == ("rlinf-broken-plugin", "0.0.1", "failed")
    assert broken["error"] == "RuntimeError: rlinf-broken-plugin is broken on purpose"


def test_duplicate_plugins_are_conflicts_naming_both(records):
    for name in ("duplicate_a", "duplicate_b"):
        rec = records[name]
        assert rec["status"] == "conflict"
        assert "env 'twin' is registered by plugin 'duplicate_a' (distribution rlinf-duplicate-plugin) and plugin 'duplicate_b'" in rec["error"]


def test_components_are_usable_by_name_and_conflicts_refused():
    from rlinf_core import ComponentConflictError, get_plugins

    plugins = get_plugins(strict=False)
    env_cls = plugins.registries.load("env", "demo-chain")
    env = env_cls(length=3)
    env.reset()
    assert env.step(1) == (2, 1.0, True)
    assert plugins.registries.load("advantage", "demo-rtg")([1.0, 0.0, 2.0]) == [3.0, 2.0, 2.0]
    assert plugins.registries.load("env", "unique-a").source == "a"
    with pytest.raises(ComponentConflictError, match="neither is used"):
        plugins.registries.get_spec("env", "twin")


def test_strict_mode_exits_non_zero():
    proc = _plugins_list(("RLINF_STRICT_PLUGINS", "1"))
    assert proc.returncode == 1
    assert "RLINF_STRICT_PLUGINS=1 and 3 plugin(s) did not load cleanly" in proc.stderr


def test_disabling_restores_a_clean_run():
    proc = _plugins_list(("RLINF_STRICT_PLUGINS", "1"), ("RLINF_DISABLE_PLUGINS", "broken,duplicate_b"))
    assert proc.returncode == 0, proc.stderr
    recs = {p["name"]: p["status"] for p in json.loads(proc.stdout)["plugins"]}
    assert recs == {"broken": "disabled", "cli": "loaded", "core": "loaded", "demo": "loaded", "duplicate_a": "loaded", "duplicate_b": "disabled"}
