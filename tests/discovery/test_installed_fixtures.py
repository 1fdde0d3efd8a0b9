"""Run by `nox -s discovery`: the demo, broken, duplicate, exit, clash and incompatible fixture packages
are pip-installed beside rlinf-core and rlinf-cli, and exercised through the real `rlinf` script."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest


def _rlinf(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["rlinf", *args], capture_output=True, text=True, env={**os.environ, **(env or {})})


def _plugins_list(env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return _rlinf("plugins", "list", "--json", env=env)


@pytest.fixture(scope="module")
def listed():
    proc = _plugins_list()
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def records(listed):
    return {p["name"]: p for p in listed["plugins"]}


def test_third_party_plugin_is_loaded_with_components(records):
    demo = records["demo"]
    assert (demo["distribution"], demo["version"], demo["status"]) == ("rlinf-demo-plugin", "1.2.3", "loaded")
    assert {(c["kind"], c["name"]) for c in demo["components"]} == {("env", "demo-chain"), ("advantage", "demo-reward-to-go")}


def test_broken_plugin_is_failed_with_its_error(records):
    broken = records["broken"]
    assert (broken["distribution"], broken["version"], broken["status"]) == ("rlinf-broken-plugin", "0.0.1", "failed")
    assert broken["error"] == "RuntimeError: rlinf-broken-plugin is broken on purpose"


def test_plugin_calling_sys_exit_is_failed_and_named(records):
    exiter = records["exiter"]
    assert (exiter["distribution"], exiter["status"]) == ("rlinf-exit-plugin", "failed")
    assert exiter["error"] == ("SystemExit: the plugin called sys.exit('rlinf-exit-plugin: no licence server') "
                               "while importing rlinf_exit_plugin.plugin")
    shown = _rlinf("plugins", "show", "exiter")
    assert shown.returncode == 0 and "traceback:" in shown.stdout and "sys.exit(" in shown.stdout


def test_incompatible_plugin_is_failed_with_both_versions(records):
    future = records["future"]
    assert (future["distribution"], future["status"]) == ("rlinf-incompatible-plugin", "failed")
    assert re.match(r"rlinf-incompatible-plugin 3\.0\.0 needs rlinf-core(>=99,<100|<100,>=99), but rlinf-core 0\.1\.0 is installed\. Fix: ",
                    future["error"])


def test_clashing_names_keep_every_plugin_loaded_and_are_warned(records, listed):
    for name in ("duplicate_a", "duplicate_b", "acme", "demo", "cli"):
        assert records[name]["status"] == "loaded", name
    assert records["duplicate_a"]["clashes"] == [
        "env 'twin' is registered by plugins 'duplicate_a' and 'duplicate_b': the bare name is ambiguous; "
        "use duplicate_a:twin or duplicate_b:twin"
    ]
    warnings = listed["warnings"]
    assert ("advantage 'demo-reward-to-go' is registered by plugins 'acme' and 'demo': the bare name is ambiguous; "
            "use acme:demo-reward-to-go or demo:demo-reward-to-go") in warnings
    assert "command 'config' is registered by plugins 'acme' and 'cli': 'config' is 'cli''s (first-party); use acme:config for the other" in warnings
    assert any(w.startswith("command 'plugins' of plugin 'acme' has the name of the built-in `rlinf plugins`") for w in warnings)


def test_components_are_usable_by_name_and_qualified_name():
    from rlinf_core import ComponentConflictError, get_plugins

    plugins = get_plugins(strict=False)
    env = plugins.registries.load("env", "demo-chain")(num_envs=2, length=3)
    env.reset()
    obs, rewards, terminated, truncated, info = env.step([1, 0])
    assert (obs["state"], rewards, terminated) == ([[2.0], [0.0]], [1.0, 0.0], [True, False])
    assert plugins.registries.load("advantage", "demo-rtg")([1.0, 0.0, 2.0]) == [3.0, 2.0, 2.0]
    assert plugins.registries.load("advantage", "acme:demo-reward-to-go")([1.0, 2.0]) == [2.0, 4.0]
    assert plugins.registries.load("env", "unique-a").source == "a"
    assert plugins.registries.load("env", "duplicate_b:twin").source == "b"
    with pytest.raises(ComponentConflictError, match="Name one: 'duplicate_a:twin' or 'duplicate_b:twin'"):
        plugins.registries.get_spec("env", "twin")


def test_built_in_and_first_party_commands_win_over_a_third_party_one():
    assert "Show, validate or migrate (from RLinf) an experiment config" in _rlinf("config", "--help").stdout
    assert _rlinf("acme:config").stdout == "acme config ran\n"
    assert _rlinf("acme:plugins").stdout == "acme plugins ran\n"


def test_plugins_check_reports_every_component_and_fails_on_broken_plugins():
    proc = _rlinf("plugins", "check")
    assert proc.returncode == 1
    out = proc.stdout
    assert "ok       env demo:demo-chain" in out and "ok       command cli:config" in out
    assert "failed   plugin broken: plugin 'broken' (rlinf-broken-plugin 0.0.1) is failed" in out
    assert "failed   plugin exiter:" in out and "failed   plugin future:" in out
    assert _rlinf("plugins", "check", "demo").returncode == 0
    assert "Traceback" not in proc.stderr


def test_strict_mode_exits_non_zero_naming_each_failed_plugin():
    proc = _plugins_list({"RLINF_STRICT_PLUGINS": "1"})
    assert proc.returncode == 1
    assert "RLINF_STRICT_PLUGINS=1 and 3 plugin(s) did not load cleanly" in proc.stderr
    for name in ("broken", "exiter", "future"):
        assert f"\n  {name} (" in proc.stderr
    assert _rlinf("components", env={"RLINF_STRICT_PLUGINS": "1"}).returncode == 1


def test_disabling_restores_a_clean_run():
    proc = _plugins_list({"RLINF_STRICT_PLUGINS": "1", "RLINF_DISABLE_PLUGINS": "broken,exiter,future,duplicate_b"})
    assert proc.returncode == 0, proc.stderr
    recs = {p["name"]: p["status"] for p in json.loads(proc.stdout)["plugins"]}
    assert recs == {"acme": "loaded", "broken": "disabled", "cli": "loaded", "core": "loaded", "demo": "loaded",
                    "duplicate_a": "loaded", "duplicate_b": "disabled", "exiter": "disabled", "future": "disabled"}
