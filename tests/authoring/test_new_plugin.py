"""``rlinf new-plugin KIND NAME``: the generated packages are complete, install-ready and pass their own tests.

The generated tests run in a pytest subprocess with the package's ``src`` on ``PYTHONPATH`` and a
``*.dist-info`` that declares its entry point and ``Requires-Dist`` (what ``pip install`` would
write), so that discovery finds the plugin without installing anything into the shared venv. The
real thing (a fresh venv, ``pip install``, ``pytest``) is the slow test at the end (nox ``authoring``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from authoring_helpers import fake_install, package_env, run_package_tests, summary
from click.testing import CliRunner
from rlinf_cli.new_plugin import KINDS, core_requirement, render
from rlinf_core import __version__
from rlinf_core.cli import main
from rlinf_core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
LIGHT = ("env", "reward", "placement", "flow")     # numpy / pure Python: fast
HEAVY = ("model", "algorithm", "rollout_engine", "training_backend")  # torch


def run_generated(tmp_path: Path, kinds: tuple[str, ...]) -> subprocess.CompletedProcess:
    """Generate one package per kind and run all their tests in one pytest process (fake-installed)."""
    packages = [tmp_path / f"my_{kind}" for kind in kinds]
    for kind, pkg in zip(kinds, packages, strict=True):
        render(kind, pkg.name, pkg)
    return run_package_tests(tmp_path, packages)


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_writes_a_complete_package(tmp_path, kind):
    files = render(kind, "my_thing", tmp_path / "my_thing")
    rel = sorted(str(f.relative_to(tmp_path / "my_thing")) for f in files)
    assert {"pyproject.toml", "README.md", "src/my_thing/__init__.py", "src/my_thing/plugin.py",
            "tests/test_my_thing.py"} <= set(rel)
    assert not [r for r in rel if "$" in (tmp_path / "my_thing" / r).read_text()], "a placeholder was left unfilled"
    meta = tomllib.loads((tmp_path / "my_thing" / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "my-thing"
    assert meta["project"]["entry-points"]["rlinf.plugins"] == {"my_thing": "my_thing.plugin"}
    assert meta["project"]["dependencies"][0] == core_requirement()
    plugin = (tmp_path / "my_thing" / "src/my_thing/plugin.py").read_text()
    assert f"def {KINDS[kind].hook}(" in plugin and '"my_thing"' in plugin
    tests = (tmp_path / "my_thing" / "tests/test_my_thing.py").read_text()
    assert "from rlinf_core.testing import" in tests and 'component = "my_thing"' in tests
    for f in files:
        if f.suffix == ".py":
            compile(f.read_text(), str(f), "exec")
    if importlib.util.find_spec("ruff") is not None:  # the package's own ruff settings (pyproject) pass
        lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=tmp_path / "my_thing",
                              capture_output=True, text=True, timeout=120)
        assert lint.returncode == 0, lint.stdout


def test_core_requirement_is_the_installed_minor_series():
    major, minor = (int(p) for p in __version__.split(".")[:2])
    assert core_requirement() == f"rlinf-core>={major}.{minor},<{major}.{minor + 1}"
    from packaging.specifiers import SpecifierSet

    assert __version__ in SpecifierSet(core_requirement().removeprefix("rlinf-core"))


def test_the_command_is_registered_and_refuses_bad_input(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(main, ["new-plugin", "policy", "my_pol", "-o", str(tmp_path)])
    assert ok.exit_code == 0, ok.output
    assert "a model plugin 'my_pol'" in ok.output and (tmp_path / "my_pol/src/my_pol/policy.py").is_file()
    cases = [
        (["new-plugin", "enf", "x_sim"], "unknown plugin kind 'enf'. Did you mean 'env'?"),
        (["new-plugin", "env", "My-Sim"], "e.g. 'my_sim'"),
        (["new-plugin", "env", "class"], "not a Python keyword"),
        (["new-plugin", "env", "json"], "already an importable module"),
        (["new-plugin", "model", "my_pol"], "already exists; new-plugin never overwrites"),
    ]
    for args, expected in cases:
        result = runner.invoke(main, [*args, "-o", str(tmp_path)])
        assert result.exit_code != 0 and expected in result.output, (args, result.output)
    assert not (tmp_path / "x_sim").exists() and not (tmp_path / "My-Sim").exists()


def test_render_refuses_an_existing_folder_and_leaves_it_alone(tmp_path):
    (tmp_path / "my_sim").mkdir()
    (tmp_path / "my_sim" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="already exists"):
        render("env", "my_sim", tmp_path / "my_sim")
    assert [p.name for p in (tmp_path / "my_sim").iterdir()] == ["keep.txt"]


def test_light_kinds_pass_their_own_tests(tmp_path):
    proc = run_generated(tmp_path, LIGHT)
    assert proc.returncode == 0, summary(proc)
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, summary(proc)


def test_discovery_lists_and_checks_a_generated_plugin(tmp_path):
    pkg = tmp_path / "my_sim"
    render("env", "my_sim", pkg)
    fake_install(pkg, tmp_path / "site")
    env = package_env(tmp_path / "site", [pkg])
    listed = subprocess.run([sys.executable, "-m", "rlinf_core.cli", "plugins", "show", "my_sim"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert "status:       loaded" in listed.stdout and "env              my_sim -> my_sim.env:MySimEnv" in listed.stdout, listed
    checked = subprocess.run([sys.executable, "-m", "rlinf_core.cli", "plugins", "check", "my_sim"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0 and "ok       env my_sim:my_sim" in checked.stdout, checked
    # the env's declared options: `rlinf config validate` checks its section, here env.eval's
    def validate(init_params: str) -> subprocess.CompletedProcess:
        (tmp_path / "exp.yaml").write_text(f"env:\n  eval:\n    simulator_type: my_sim\n    init_params: {init_params}\n")
        return subprocess.run([sys.executable, "-m", "rlinf_core.cli", "config", "validate", str(tmp_path / "exp.yaml")],
                              env=env, capture_output=True, text=True, timeout=120)

    assert validate("{images: true, image_size: 8}").returncode == 0
    typo, small = validate("{image: true}"), validate("{image_size: 2}")
    assert typo.returncode != 0 and "unknown config key 'env.eval.init_params.image'. Did you mean 'images'" in typo.stderr, typo
    assert small.returncode != 0 and "env.eval.init_params.image_size: must be >= 4, got 2" in small.stderr, small


@pytest.mark.slow
def test_heavy_kinds_pass_their_own_tests(tmp_path):
    proc = run_generated(tmp_path, HEAVY)
    assert proc.returncode == 0, summary(proc)
    assert " passed" in proc.stdout and " failed" not in proc.stdout, summary(proc)


@pytest.mark.slow
def test_from_a_fresh_venv_new_plugin_install_and_pytest_pass(tmp_path):
    """The issue's acceptance line: `rlinf new-plugin env my_sim && pip install ./my_sim && pytest my_sim`."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "-q", "-c", str(REPO / "constraints.txt")]

    def run(*cmd: str, cwd: Path = tmp_path) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
        proc = subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
        assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        return proc

    run(*pip, str(REPO / "rlinf-core"), str(REPO / "rlinf-cli"))
    run(str(bin_dir / "rlinf"), "new-plugin", "env", "my_sim")
    run(*pip, "./my_sim[test]")
    listed = run(str(bin_dir / "rlinf"), "plugins", "list", "--json")
    assert '"name": "my_sim"' in listed.stdout and '"status": "loaded"' in listed.stdout
    result = run(str(bin_dir / "python"), "-m", "pytest", "my_sim", "-q", "-p", "no:cacheprovider")
    assert " passed" in result.stdout and " failed" not in result.stdout
    shutil.rmtree(venv, ignore_errors=True)
