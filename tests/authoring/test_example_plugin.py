"""examples/plugins/rlinf-sim-example: discovered as a plugin, and its own tests (the conformance kit) pass."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from authoring_helpers import fake_install, package_env, run_package_tests, summary

pytest.importorskip("mujoco")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugins" / "rlinf-sim-example"


@pytest.fixture
def example(tmp_path) -> Path:
    dest = tmp_path / "rlinf-sim-example"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist"))
    return dest


def test_its_own_tests_pass(tmp_path, example):
    proc = run_package_tests(tmp_path, [example])
    assert proc.returncode == 0, summary(proc)
    assert " passed" in proc.stdout and " failed" not in proc.stdout, summary(proc)


def test_listed_and_checked_by_the_rlinf_command(tmp_path, example):
    fake_install(example, tmp_path / "site")
    env = package_env(tmp_path / "site", [example])
    shown = subprocess.run([sys.executable, "-m", "rlinf_core.cli", "plugins", "show", "sim_example"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert "distribution: rlinf-sim-example 0.1.0" in shown.stdout and "status:       loaded" in shown.stdout, shown
    assert "env              reacher2d -> rlinf_sim_example.reacher:Reacher2DEnv" in shown.stdout
    checked = subprocess.run([sys.executable, "-m", "rlinf_core.cli", "plugins", "check", "sim_example"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0 and "ok       env sim_example:reacher2d" in checked.stdout, checked


@pytest.mark.slow
def test_rlinf_run_trains_on_the_plugin_simulator(tmp_path, example):
    """examples/plugins/rlinf-sim-example/train.yaml through an unchanged `rlinf run`: the return rises (about 90 s)."""
    import json

    pytest.importorskip("rlinf_envs_embodied")
    fake_install(example, tmp_path / "site")
    env = package_env(tmp_path / "site", [example])
    proc = subprocess.run([sys.executable, "-m", "rlinf_core.cli", "run", str(example / "train.yaml"),
                           f"runner.logger.log_path={tmp_path / 'runs'}"], env=env, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = (tmp_path / "runs" / "reacher2d_ppo_cpu" / "metrics.jsonl").read_text().splitlines()
    returns = [row["env/episode_return"] for row in map(json.loads, lines) if "env/episode_return" in row]
    assert len(returns) == 60
    first, last = sum(returns[:5]) / 5, sum(returns[-5:]) / 5
    assert last > first + 3.0, f"episode return {first:.2f} (first 5 steps) -> {last:.2f} (last 5): no learning"
