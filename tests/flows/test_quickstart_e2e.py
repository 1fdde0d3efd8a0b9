"""The CPU quickstart end to end (slow: its own nox session, ``nox -s e2e``).

It does NOT yet reach the issue's target (mean reward >= 0.9 within 10 minutes): measured with
this recipe, the flow reached a mean reward of 0.24 over steps 144-153 (seed 1, started at 0.055),
and a bare torch loop with the same recipe about 0.75 by step ~380. The test therefore asserts what
the flow reliably reaches in 150 steps, with margin, and that the curve rises from near chance;
raise ``MIN_FINAL_REWARD`` (and the step count) when the recipe or the flow's speed improves.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STEPS = 150
#: Measured 0.24 (mean of the last 10 of 153 steps, seed 1); 0.15 leaves margin for run-to-run noise.
MIN_FINAL_REWARD = 0.15
#: Chance after the format-only warm start is about 1/19 = 0.053 (answers 00..18).
MAX_START_REWARD = 0.12


@pytest.mark.slow
def test_quickstart_reward_rises_from_chance(tmp_path):
    cmd = [sys.executable, "-m", "rlinf_core.cli", "run", str(ROOT / "examples/reasoning/quickstart_cpu.yaml"),
           f"runner.logger.log_path={tmp_path}", f"runner.max_steps={STEPS}", f"runner.save_interval={STEPS}"]
    subprocess.run(cmd, check=True, timeout=3600)
    run_dir = tmp_path / "quickstart_cpu"
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rewards = [r["reward/mean"] for r in rows if "reward/mean" in r]
    assert len(rewards) == STEPS, len(rewards)
    start, final = sum(rewards[:5]) / 5, sum(rewards[-10:]) / 10
    assert start < MAX_START_REWARD, rewards[:5]  # starts near chance: nothing of the answer leaks
    assert final >= MIN_FINAL_REWARD, rewards[-10:]
    assert final >= 2.5 * start, (start, final)  # the curve rises
    assert (run_dir / "reward_curve.png").stat().st_size > 1000
