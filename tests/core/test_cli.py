"""The `rlinf` command: plugins list/show, components, plugin subcommands, strict mode."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner
from rlinf_core import __version__
from rlinf_core.cli import main


def run(*args: str, env: dict[str, str] | None = None):
    result = CliRunner().invoke(main, list(args), env=env or {}, catch_exceptions=False)
    return result


def test_version():
    assert run("--version").output.strip() == f"rlinf, version {__version__}"


def test_plugins_list_table_and_json():
    out = run("plugins", "list").output
    for name in ("algos", "fsdp", "megatron", "embodied", "cli", "demo"):
        assert name in out
    data = json.loads(run("plugins", "list", "--json").output)
    recs = {p["name"]: p for p in data["plugins"]}
    assert recs["demo"]["distribution"] == "rlinf-demo-plugin" and recs["demo"]["version"] == "1.2.3"
    assert recs["demo"]["status"] == "loaded" and recs["demo"]["error"] is None
    assert {(c["kind"], c["name"]) for c in recs["demo"]["components"]} == {("env", "demo-chain"), ("advantage", "demo-reward-to-go")}
    assert set(recs["demo"]) == {"name", "distribution", "version", "module", "status", "error", "hooks", "components", "clashes"}
    assert "rlinf_worker_init" in recs["demo"]["hooks"]


def test_plugins_show_and_unknown_name():
    out = run("plugins", "show", "demo").output
    assert "rlinf-demo-plugin 1.2.3" in out and "demo-chain" in out and "aliases: demo-rtg" in out
    result = run("plugins", "show", "dmeo")
    assert result.exit_code == 1 and "no plugin named 'dmeo'. Did you mean 'demo'?" in result.output


def test_components_by_kind_and_bad_kind():
    out = run("components", "env").output
    assert "demo-chain" in out and "config" not in out
    data = json.loads(run("components", "advantage", "--json").output)
    assert any(c["name"] == "demo-reward-to-go" and c["aliases"] == ["demo-rtg"] for c in data)
    bad = run("components", "envs")
    assert bad.exit_code == 2 and "Did you mean 'env'?" in bad.output


def test_plugin_subcommand_config_validate(tmp_path):
    good = tmp_path / "ok.yaml"
    good.write_text("env:\n  train:\n    simulator_type: demo-chain\n    total_num_envs: 4\n")
    result = run("config", "validate", str(good))
    assert result.exit_code == 0 and "valid" in result.output
    result = run("config", "validate", str(good), "env.train.total_num_envs=100")
    assert result.exit_code == 1 and "supports at most 64 envs" in result.output
    shown = run("config", "show", str(good), "algorithm.gamma=0.5").output
    assert "gamma: 0.5" in shown and "simulator_type: demo-chain" in shown and "env_id: chain-5" in shown


def test_rlinf_style_keys_are_explained_by_validate(tmp_path):
    path = tmp_path / "rlinf.yaml"
    path.write_text("env:\n  train:\n    env_type: demo-chain\n")
    result = run("config", "validate", str(path))
    assert result.exit_code == 0, result.output
    assert "note: RLinf key env.train.env_type is read as env.train.simulator_type" in result.output


def test_unknown_command_suggests():
    result = run("plugin", "list")
    assert result.exit_code == 2 and "Did you mean 'plugins'" in result.output  # (or 'new-plugin', from rlinf-cli)


def test_cli_works_when_every_plugin_is_broken(fake_plugin):
    a = fake_plugin("raise RuntimeError('a is broken')", plugin="broken_a")
    fake_plugin("import no_such_dependency_xyz", plugin="broken_b")
    env = {"RLINF_LOAD_PLUGINS": "broken_a,broken_b"}
    result = run("plugins", "list", "--json", env=env)
    assert result.exit_code == 0
    recs = {p["name"]: p for p in json.loads(result.output)["plugins"]}
    assert recs["broken_a"]["status"] == "failed" and recs["broken_a"]["distribution"] == a
    assert recs["broken_a"]["error"] == "RuntimeError: a is broken"
    assert "No module named 'no_such_dependency_xyz'" in recs["broken_b"]["error"]
    assert all(r["status"] == "disabled" for n, r in recs.items() if n not in ("broken_a", "broken_b", "core"))
    assert recs["core"]["status"] == "loaded"  # the built-in plugin is kept by any allowlist
    table = run("plugins", "list", env=env)
    assert table.exit_code == 0 and "2 plugin(s) need attention" in table.output
    assert run("components", env=env).exit_code == 0
    strict = run("plugins", "list", env={**env, "RLINF_STRICT_PLUGINS": "1"})
    assert strict.exit_code == 1 and "RLINF_STRICT_PLUGINS=1 and 2 plugin(s)" in strict.output


def test_console_script_runs_in_a_subprocess():
    proc = subprocess.run([sys.executable, "-m", "rlinf_core.cli", "plugins", "list", "--json"],
                          capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout)["plugins"]
