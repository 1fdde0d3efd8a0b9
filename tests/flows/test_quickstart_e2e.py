"""The CPU quickstart end to end (slow: its own nox session, ``nox -s e2e``; 55-75 s on a quiet 2-core
machine, several minutes under load).

The run is deterministic for a seed on one machine: seed 1 (OMP_NUM_THREADS=1) has mean reward 0.053 over its
first 5 steps and 0.944 over its last 50 (steps 551-600), measured 2026-12-03; seeds 1-12 ended at 0.924-0.989
(the YAML's header). The test asserts that the curve starts near chance and rises above 0.85.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The YAML's runner.max_steps, passed explicitly so the assertions below match the measurement.
STEPS = 600
#: Measured 0.944 (mean of the last 50 of 600 steps, seed 1, 2026-12-03); 12 seeds ended at 0.924-0.989 and
#: the README command's two threads (other rounding) at 0.967-0.980, so 0.85 leaves room for another CPU's run.
MIN_FINAL_REWARD = 0.85
#: Chance after the format-only warm start is about 1/19 = 0.053 (answers 00..18).
MAX_START_REWARD = 0.12


@pytest.mark.slow
def test_quickstart_reward_rises_from_chance(tmp_path):
    cmd = [sys.executable, "-m", "rlinf_core.cli", "run", str(ROOT / "examples/reasoning/quickstart_cpu.yaml"),
           f"runner.logger.log_path={tmp_path}", f"runner.max_steps={STEPS}", f"runner.save_interval={STEPS}"]
    subprocess.run(cmd, check=True, timeout=1200)
    run_dir = tmp_path / "quickstart_cpu"
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rewards = [r["reward/mean"] for r in rows if "reward/mean" in r]
    assert len(rewards) == STEPS, len(rewards)
    start, final = sum(rewards[:5]) / 5, sum(rewards[-50:]) / 50
    assert start < MAX_START_REWARD, rewards[:5]  # starts near chance: nothing of the answer leaks
    assert final >= MIN_FINAL_REWARD, rewards[-50:]
    assert final >= 2.5 * start, (start, final)  # the curve rises
    assert (run_dir / "reward_curve.png").stat().st_size > 1000
