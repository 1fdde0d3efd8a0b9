"""Fault injection for the plugin contract: each test breaks a plugin the way a third party might
and asserts that the message names the right plugin, component, key or distribution, and that
everything else keeps working."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from rlinf_core import ComponentConflictError, UnknownComponentError, __version__, get_plugins
from rlinf_core.cli import main
from rlinf_core.plugins import CONFLICT, DISABLED, FAILED, LOADED, discover, reset_plugins

GOOD = """
from rlinf_core import ComponentSpec, hookimpl

@hookimpl
def rlinf_register_envs():
    return [ComponentSpec("env", "{name}", "collections:OrderedDict", "an env")]
"""


def cli(*args: str, env: dict[str, str] | None = None, catch: bool = False):
    return CliRunner().invoke(main, list(args), env=env or {}, catch_exceptions=catch)


def add_requirement(tmp_path: Path, dist: str, version: str, requirement: str) -> None:
    """Give a fake_plugin distribution a ``Requires-Dist`` line."""
    metadata = tmp_path / f"{dist.replace('-', '_')}-{version}.dist-info" / "METADATA"
    metadata.write_text(metadata.read_text() + f"Requires-Dist: {requirement}\n")


# --- import-time faults


@pytest.mark.parametrize(
    "source, error",
    [
        ("import sys; sys.exit(3)", "SystemExit: the plugin called sys.exit(3) while importing"),
        ("import sys; sys.exit('no licence server')", "SystemExit: the plugin called sys.exit('no licence server')"),
        ("class Boom(BaseException): pass\nraise Boom('base')", "Boom: base"),
        ("raise GeneratorExit('odd')", "GeneratorExit: odd"),
    ],
)
def test_plugin_exiting_at_import_is_failed_and_the_rest_load(fake_plugin, discover_only, source, error):
    bad = fake_plugin(source, dist="fake-exit", plugin="exiter")
    good = fake_plugin(GOOD.format(name="still-here"), dist="fake-fine", plugin="fine")
    ps = discover_only(bad, good)
    rec = ps.record("exiter")
    assert rec.status == FAILED and error in rec.error
    assert "Traceback" in rec.traceback
    assert ps.record("fine").status == LOADED and "still-here" in ps.registries["env"]


def test_get_plugins_and_the_cli_survive_a_plugin_calling_sys_exit(fake_plugin):
    fake_plugin("import sys; sys.exit(7)", dist="fake-exit2", plugin="exiter2")
    ps = get_plugins(strict=False)  # would raise SystemExit before
    assert ps.record("exiter2").status == FAILED and ps.record("algos").status == LOADED
    listed = cli("plugins", "list", "--json")
    assert listed.exit_code == 0
    assert {p["name"]: p["status"] for p in json.loads(listed.stdout)["plugins"]}["exiter2"] == "failed"
    shown = cli("plugins", "show", "exiter2")
    assert shown.exit_code == 0
    assert "error:        SystemExit: the plugin called sys.exit(7)" in shown.output and "traceback:" in shown.output
    assert cli("components", "advantage").exit_code == 0


def test_keyboard_interrupt_at_import_is_not_swallowed(fake_plugin, discover_only):
    dist = fake_plugin("raise KeyboardInterrupt", plugin="ctrlc")
    with pytest.raises(KeyboardInterrupt):
        discover_only(dist)


def test_sys_exit_in_a_registration_hook_fails_that_plugin(fake_plugin, discover_only):
    src = "import sys\n\ndef rlinf_register_envs():\n    sys.exit('bye')\n"
    ps = discover_only(fake_plugin(src, plugin="hookexit"))
    rec = ps.record("hookexit")
    assert rec.status == FAILED and rec.error == "SystemExit: bye"
    assert not ps.manager.get_plugins()


# --- name clashes


CLASHING_GAE = """
from rlinf_core import ComponentSpec, hookimpl

@hookimpl
def rlinf_register_algorithms():
    return [ComponentSpec("advantage", "gae", "collections:OrderedDict", "acme's gae")]
"""


def test_third_party_gae_clashes_only_on_the_bare_name(fake_plugin, discover_only):
    acme = fake_plugin(CLASHING_GAE, dist="acme-rl", plugin="acme")
    ps = discover_only("rlinf-algos", acme)
    assert (ps.record("algos").status, ps.record("acme").status) == (LOADED, LOADED)
    clash = "advantage 'gae' is registered by plugins 'acme' and 'algos': the bare name is ambiguous; use acme:gae or algos:gae"
    assert ps.record("algos").clashes == [clash] and ps.record("acme").clashes == [clash]
    assert clash in ps.warnings
    with pytest.raises(ComponentConflictError) as err:
        ps.registries.get_spec("advantage", "gae")
    msg = str(err.value)
    assert "plugin 'acme' (distribution acme-rl) and plugin 'algos' (distribution rlinf-algos)" in msg
    assert "Name one: 'acme:gae' or 'algos:gae' (set e.g. `algorithm.adv_type: acme:gae`)" in msg
    assert msg.endswith("RLINF_DISABLE_PLUGINS=acme")  # the third-party one, not first-party algos
    from rlinf_algos.advantages import gae

    assert ps.registries.load("advantage", "algos:gae") is gae
    assert ps.registries.get_spec("advantage", "acme:gae").distribution == "acme-rl"
    # Nothing else of algos is lost.
    assert ps.registries.get_spec("advantage", "grpo").plugin == "algos"
    assert ps.registries.get_spec("kl", "low_var_kl").name == "k3"
    assert not ps.failures()


def test_config_validation_accepts_qualified_names_and_names_the_key_on_a_clash(fake_plugin, discover_only):
    from rlinf_core import ConfigError
    from rlinf_core.config import load_config, validate_config

    ps = discover_only("rlinf-algos", "rlinf-core", fake_plugin(CLASHING_GAE, dist="acme-rl", plugin="acme"))
    validate_config(load_config({"algorithm": {"adv_type": "algos:gae"}}, plugins=ps), ps)
    validate_config(load_config({"algorithm": {"adv_type": "acme:gae", "kl_penalty": "algos:low_var_kl"}}, plugins=ps), ps)
    with pytest.raises(ConfigError) as err:
        validate_config(load_config({"algorithm": {"adv_type": "gae"}}, plugins=ps), ps)
    assert "algorithm.adv_type: advantage 'gae' is registered by plugin 'acme'" in str(err.value)
    assert "`algorithm.adv_type: acme:gae`" in str(err.value)
    with pytest.raises(ConfigError, match=r"algorithm.adv_type: unknown advantage 'acme:grpo': plugin 'acme' registers no advantage 'grpo' \(it registers: gae\). 'grpo' is registered as algos:grpo"):
        validate_config(load_config({"algorithm": {"adv_type": "acme:grpo"}}, plugins=ps), ps)


def test_unknown_qualified_plugin_gets_did_you_mean(fake_plugin, discover_only):
    ps = discover_only("rlinf-algos")
    with pytest.raises(UnknownComponentError, match="no plugin named 'algo' registers a advantage. Did you mean 'algos'?"):
        ps.registries.get_spec("advantage", "algo:gae")


def test_components_lists_both_qualified_names_on_a_clash(fake_plugin):
    fake_plugin(CLASHING_GAE, dist="acme-rl", plugin="acme")
    data = json.loads(cli("components", "advantage", "--json").stdout)
    uses = {(c["use_as"], c["plugin"]) for c in data}
    assert {("acme:gae", "acme"), ("algos:gae", "algos"), ("grpo", "algos")} <= uses
    assert not any(c["use_as"] == "gae" for c in data)
    table = cli("components", "advantage")
    assert "acme:gae" in table.output and "algos:gae" in table.output
    assert "warning: advantage 'gae' is registered by plugins 'acme' and 'algos'" in table.output


def test_duplicate_plugin_name_is_disableable_by_distribution_and_names_both(fake_plugin):
    fake_plugin(GOOD.format(name="one"), dist="fake-twin-a", plugin="twin")
    fake_plugin(GOOD.format(name="two"), dist="fake-twin-b", plugin="twin")
    ps = discover()
    recs = {r.distribution: r for r in ps.records if r.name == "twin"}
    for rec in recs.values():
        assert rec.status == CONFLICT and "declared by distributions fake-twin-a, fake-twin-b; none is loaded" in rec.error
    ps = discover(environ={"RLINF_DISABLE_PLUGINS": "fake-twin-a"})
    recs = {r.distribution: r.status for r in ps.records if r.name == "twin"}
    assert recs == {"fake-twin-a": DISABLED, "fake-twin-b": LOADED}
    assert ps.registries.get_spec("env", "twin:two").distribution == "fake-twin-b"


COMMANDS = """
import click
from rlinf_core import ComponentSpec, hookimpl

@hookimpl
def rlinf_register_commands():
    return [ComponentSpec("command", "config", "{module}:config"), ComponentSpec("command", "plugins", "{module}:plugins"),
            ComponentSpec("command", "hello", "{module}:hello")]

@click.command("config")
def config():
    click.echo("acme config ran")

@click.command("plugins")
def plugins():
    click.echo("acme plugins ran")

@click.command("hello")
def hello():
    click.echo("acme hello ran")
"""


def _command_plugin(fake_plugin, tmp_path: Path) -> None:
    (tmp_path / "acme_cmds.py").write_text(COMMANDS.replace("{module}", "acme_cmds"))
    fake_plugin("", dist="acme-cli", plugin="acme", entry_value="acme_cmds")


def test_third_party_commands_never_hide_built_in_or_first_party_ones(fake_plugin, tmp_path):
    _command_plugin(fake_plugin, tmp_path)
    # `config` stays rlinf-cli's (first-party), `plugins` the built-in; acme's run by qualified name.
    assert "Show, validate or migrate (from RLinf) an experiment config" in cli("config", "--help").output
    assert cli("plugins", "list", "--json").exit_code == 0
    assert cli("acme:config").output == "acme config ran\n"
    assert cli("acme:plugins").output == "acme plugins ran\n"
    assert cli("hello").output == "acme hello ran\n"
    listed = cli("--help").output
    assert "\n  acme:config" in listed and "\n  acme:plugins" in listed and "\n  hello" in listed
    warnings = json.loads(cli("plugins", "list", "--json").stdout)["warnings"]
    assert ("command 'config' is registered by plugins 'acme' and 'cli': 'config' is 'cli''s (first-party); "
            "use acme:config for the other") in warnings
    assert ("command 'plugins' of plugin 'acme' has the name of the built-in `rlinf plugins`, which wins; "
            "run it as `rlinf acme:plugins`") in warnings


def test_two_third_party_commands_clash_with_both_names_listed(fake_plugin, tmp_path):
    for dist, plugin in (("fake-cmd-a", "cmda"), ("fake-cmd-b", "cmdb")):
        mod = f"{plugin}_mod"
        (tmp_path / f"{mod}.py").write_text(COMMANDS.replace("{module}", mod))
        fake_plugin("", dist=dist, plugin=plugin, entry_value=mod)
    result = cli("hello")
    assert result.exit_code == 2
    assert "command 'hello' is registered by plugin 'cmda' (distribution fake-cmd-a) and plugin 'cmdb'" in result.output
    assert "run `rlinf cmda:hello`" in result.output
    assert cli("cmdb:hello").output == "acme hello ran\n"


# --- failed and disabled plugins, strict mode, the allowlist


def test_failed_plugins_command_says_which_plugin_failed_and_why(fake_plugin):
    fake_plugin("raise ImportError('acme needs libacme.so')", dist="acme-tools", plugin="acme")
    result = cli("acme-train")
    assert result.exit_code == 2
    assert "No such command 'acme-train'" in result.output
    assert "plugin 'acme' (acme-tools) failed to load and may provide it: ImportError: acme needs libacme.so" in result.output


def test_disabled_plugins_component_says_how_to_enable_it(discover_only):
    ps = discover_only("rlinf-algos", "rlinf-core", environ={"RLINF_DISABLE_PLUGINS": "algos"})
    with pytest.raises(UnknownComponentError) as err:
        ps.registries.get_spec("advantage", "gae")
    assert ("advantage 'gae' is provided by plugin 'algos' (rlinf-algos), which is disabled by RLINF_DISABLE_PLUGINS "
            "(remove 'algos' from it to enable)") in str(err.value)
    ps = discover_only("rlinf-algos", "rlinf-core", environ={"RLINF_LOAD_PLUGINS": "core"})
    with pytest.raises(UnknownComponentError, match=r"which is not in RLINF_LOAD_PLUGINS \(add 'algos' to it to enable\)"):
        ps.registries.get_spec("kl", "k3")


def test_disabled_first_party_command_says_how_to_enable_it():
    result = cli("config", "validate", "x.yaml", env={"RLINF_DISABLE_PLUGINS": "cli"})
    assert result.exit_code == 2
    assert "command 'config' is provided by plugin 'cli' (rlinf-cli), which is disabled by RLINF_DISABLE_PLUGINS" in result.output


def test_components_fails_in_strict_mode_like_plugins_list(fake_plugin):
    fake_plugin("raise RuntimeError('strictly broken')", plugin="strictbad")
    assert cli("components").exit_code == 0
    for args in (("components",), ("components", "env", "--json"), ("plugins", "list")):
        result = cli(*args, env={"RLINF_STRICT_PLUGINS": "1"})
        assert result.exit_code == 1, args
        assert "RLINF_STRICT_PLUGINS=1 and 1 plugin(s) did not load cleanly" in result.output
        assert "strictbad" in result.output and "strictly broken" in result.output


def test_allowlist_keeps_the_built_in_core_plugin_and_disabling_it_warns():
    ps = discover(environ={"RLINF_LOAD_PLUGINS": "algos,cli"})
    status = {r.name: r.status for r in ps.records}
    assert (status["core"], status["algos"], status["cli"], status["embodied"]) == (LOADED, LOADED, LOADED, DISABLED)
    assert ps.registries.get_spec("placement", "collocated").plugin == "core"
    ps = discover(environ={"RLINF_DISABLE_PLUGINS": "core"})
    assert ps.record("core").status == DISABLED
    assert any("disables the built-in plugin 'core'" in w and "collocated" in w for w in ps.warnings)
    # The CLI stays usable whatever the selection.
    result = cli("plugins", "list", "--json", env={"RLINF_LOAD_PLUGINS": "nothing-real"})
    assert result.exit_code == 0 and "no installed plugin" in result.output


# --- compatibility


def test_plugin_for_another_rlinf_core_is_failed_with_both_versions_and_never_imported(fake_plugin, discover_only, tmp_path):
    src = "import sys; sys.modules['__rlinf_compat_marker'] = True\n" + GOOD.format(name="future-env")
    dist = fake_plugin(src, dist="acme-future", plugin="future", version="3.0.0")
    add_requirement(tmp_path, dist, "3.0.0", "rlinf-core>=99,<100")
    ps = discover_only(dist)
    rec = ps.record("future")
    assert rec.status == FAILED
    assert rec.error.startswith(f"acme-future 3.0.0 needs rlinf-core>=99,<100, but rlinf-core {__version__} is installed.")
    assert "Fix: pip install a release of acme-future made for rlinf-core" in rec.error
    assert "__rlinf_compat_marker" not in sys.modules
    with pytest.raises(UnknownComponentError, match="plugin 'future' \\(acme-future\\) failed to load and may provide it: acme-future 3.0.0 needs"):
        ps.registries.get_spec("env", "future-env")


@pytest.mark.parametrize("requirement", [f"rlinf-core>={__version__}", "rlinf_core<99", "rlinf-core", "rlinf-core>=99; extra == 'x'", "numpy>=99"])
def test_plugin_with_a_compatible_or_no_core_range_loads(fake_plugin, discover_only, tmp_path, requirement):
    dist = fake_plugin(GOOD.format(name="ok-env"), plugin="compat")
    add_requirement(tmp_path, dist, "0.0.1", requirement)
    assert discover_only(dist).record("compat").status == LOADED


# --- rlinf plugins check


CHECKED = """
import click
from rlinf_core import ComponentSpec, hookimpl

@hookimpl
def rlinf_register_algorithms():
    return [ComponentSpec("advantage", "good-adv", "{m}:good_adv"), ComponentSpec("advantage", "not-callable", "{m}:NUMBER"),
            ComponentSpec("kl", "typo", "{m}:k3_typo"), ComponentSpec("kl", "missing-dep", "no_such_module_for_check:k")]

@hookimpl
def rlinf_register_envs():
    return [ComponentSpec("env", "half-env", "{m}:HalfEnv"), ComponentSpec("env", "exits", "{m}_exit:Env")]

@hookimpl
def rlinf_register_commands():
    return [ComponentSpec("command", "notclick", "{m}:good_adv")]

@hookimpl
def rlinf_register_placement_strategies():
    return [ComponentSpec("placement", "no-args", "{m}:no_args")]

NUMBER = 3

def good_adv(x):
    return x

def no_args():
    return None

class HalfEnv:
    def reset(self, *, seed=None, options=None): ...
    def step(self, actions): ...
"""


def _checked_plugin(fake_plugin, tmp_path: Path) -> None:
    (tmp_path / "checked_mod.py").write_text(CHECKED.replace("{m}", "checked_mod"))
    (tmp_path / "checked_mod_exit.py").write_text("import sys; sys.exit(2)\n")
    fake_plugin("", dist="fake-checked", plugin="checked", entry_value="checked_mod")


def test_plugins_check_reports_each_component_with_the_reason(fake_plugin, tmp_path):
    _checked_plugin(fake_plugin, tmp_path)
    assert get_plugins(strict=False).record("checked").status == LOADED  # `plugins list` would say all is well
    result = cli("plugins", "check", "checked")
    assert result.exit_code == 1
    lines = {" ".join(line.split()[1:3]).rstrip(":"): line for line in result.stdout.splitlines()[:-1]}
    assert lines["advantage checked:good-adv"].startswith("ok ")
    assert "the target" not in lines["advantage checked:good-adv"]
    assert "failed" in lines["advantage checked:not-callable"] and "must be callable, got int" in lines["advantage checked:not-callable"]
    assert "failed to load target 'checked_mod:k3_typo': AttributeError" in lines["kl checked:typo"]
    assert "No module named 'no_such_module_for_check'" in lines["kl checked:missing-dep"]
    assert "HalfEnv lacks close() required by VectorEnv" in lines["env checked:half-env"]
    assert "SystemExit: 2" in lines["env checked:exits"]
    assert "must be a click.Command" in lines["command checked:notclick"]
    assert "must accept (groups, num_devices)" in lines["placement checked:no-args"]
    assert result.output.splitlines()[-1] == "8 component(s) checked, 7 failure(s)"
    data = json.loads(cli("plugins", "check", "checked", "--json").stdout)
    assert not data["ok"] and {r["name"]: r["status"] for r in data["results"]}["good-adv"] == "ok"


def test_plugins_check_passes_on_good_plugins_and_reports_failed_ones(fake_plugin):
    placements = [line for line in cli("plugins", "check", "core").stdout.splitlines() if " placement " in line]
    assert placements == [f"ok       placement core:{p}" for p in ("collocated", "disaggregated", "hybrid", "auto")]
    assert cli("plugins", "check", "demo").exit_code == 0
    fake_plugin("raise RuntimeError('cannot import')", plugin="crashy")
    reset_plugins()  # discovery ran above, before this plugin existed
    result = cli("plugins", "check", "crashy")
    assert result.exit_code == 1 and "failed   plugin crashy: plugin 'crashy'" in result.output and "cannot import" in result.output
    reset_plugins()
    disabled = cli("plugins", "check", "demo", env={"RLINF_DISABLE_PLUGINS": "demo"})
    assert disabled.exit_code == 1 and "disabled by RLINF_DISABLE_PLUGINS" in disabled.output and "not checked" in disabled.output
    unknown = cli("plugins", "check", "dmeo")
    assert unknown.exit_code == 1 and "Did you mean 'demo'?" in unknown.output


# --- errors from the `rlinf` command


BOOM = """
import click
from rlinf_core import ComponentSpec, ConfigError, hookimpl

@hookimpl
def rlinf_register_commands():
    return [ComponentSpec("command", "rlinf-err", "{m}:rlinf_err"), ComponentSpec("command", "bug", "{m}:bug")]

@click.command("rlinf-err")
def rlinf_err():
    raise ConfigError("algorithm.gamma: must be in [0, 1], got 2")

@click.command("bug")
def bug():
    {{}}["missing"]
"""


def test_errors_are_one_line_unless_a_traceback_is_asked_for(fake_plugin, tmp_path):
    (tmp_path / "boom_cmds.py").write_text(BOOM.replace("{m}", "boom_cmds").replace("{{}}", "{}"))
    fake_plugin("", plugin="boom", entry_value="boom_cmds")
    result = cli("rlinf-err", catch=True)
    assert (result.exit_code, result.output) == (1, "Error: algorithm.gamma: must be in [0, 1], got 2\n")
    result = cli("bug", catch=True)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.startswith("Error: KeyError: 'missing' (unexpected; for the full trace run `rlinf --traceback ...`")
    for args, env in ((("--traceback", "bug"), {}), (("bug",), {"RLINF_TRACEBACK": "1"})):
        result = cli(*args, env=env, catch=True)
        assert isinstance(result.exception, KeyError), args


def test_console_script_prints_no_traceback(fake_plugin):
    proc = subprocess.run([sys.executable, "-m", "rlinf_core.cli", "plugins", "check", "no-such-plugin"],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "Error: no plugin named 'no-such-plugin'" in proc.stderr
