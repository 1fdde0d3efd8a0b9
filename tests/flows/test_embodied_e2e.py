"""End to end (``nox -s e2e``): ``rlinf run`` trains the MLP policy on Meta-World reach-v3 from
the example config, then ``rlinf eval`` scores it with deterministic actions on held-out seeds.

Measured: the training success rate goes 0 -> 1.0 (>= 0.8 from step ~45 on); about 6-9 minutes
for the 80 steps on this 2-core machine while other jobs ran."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("metaworld")
pytest.importorskip("torch")

RLINF = (sys.executable, "-m", "rlinf_core.cli")
CONFIG = Path(__file__).resolve().parents[2] / "examples" / "embodied" / "metaworld_reach_ppo_cpu.yaml"


@pytest.mark.slow
def test_metaworld_reach_ppo_reaches_80_percent_success(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    overrides = [f"runner.logger.log_path={tmp_path}"]
    start = time.perf_counter()
    run = subprocess.run([*RLINF, "run", str(CONFIG), *overrides], capture_output=True, text=True, env=env, timeout=1800)
    train_s = time.perf_counter() - start
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    run_dir = tmp_path / "metaworld_reach_ppo_cpu"
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    success = [r["env/success_rate"] for r in rows]
    assert success[0] <= 0.3, success[:5]  # a random policy rarely reaches the goal
    assert sum(success[-5:]) / 5 >= 0.8, success
    assert (run_dir / "reward_curve.png").stat().st_size > 1000
    ev = subprocess.run([*RLINF, "eval", str(CONFIG), *overrides], capture_output=True, text=True, env=env, timeout=600)
    assert ev.returncode == 0, ev.stdout[-3000:] + ev.stderr[-3000:]
    result = json.loads(ev.stdout.strip().splitlines()[-1])
    print(f"train {train_s:.0f} s; final train success {success[-1]}; eval {result}")
    assert result["success_rate"] >= 0.8 and result["episodes"] == 16 and result["step"] == len(rows)
