"""The CPU quickstart end to end (slow: its own nox session, ``nox -s e2e``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quickstart_reaches_090_mean_reward(tmp_path):
    cmd = [sys.executable, "-m", "rlinf_core.cli", "run", str(ROOT / "examples/reasoning/quickstart_cpu.yaml"),
           f"runner.logger.log_path={tmp_path}"]
    subprocess.run(cmd, check=True, timeout=1500)
    run_dir = tmp_path / "quickstart_cpu"
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rewards = [r["reward/mean"] for r in rows if "reward/mean" in r]
    assert sum(rewards[:5]) / 5 < 0.3, rewards[:5]  # starts near chance
    assert sum(rewards[-10:]) / 10 >= 0.9, rewards[-10:]
    assert (run_dir / "reward_curve.png").stat().st_size > 1000
