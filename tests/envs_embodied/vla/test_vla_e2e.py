"""Each tiny VLA learns rlinf/InstructionTargets-v0 from random init with the embodied flow (slow: its own
nox session, ``nox -s e2e_vla``). Training success starts near chance (about 0.2) and the deterministic
evaluation on held-out seeds (``rlinf eval``: one episode per sub-env, which the training success rate,
counted over the episodes that end inside each rollout, overstates) must reach what the run measured,
with margin (:data:`CONFIGS`). The wall time depends on the machine's load (see each config's header)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
#: config -> the deterministic eval success its run reached (measured 2026-11-28, seeds as in the YAML; the
#: runs are deterministic on one platform) and what the test asserts, with margin for other platforms.
#: The issue's target is >= 0.8: openvla_oft (0.875), OFT with GRPO (0.875) and pi0 (0.84) reach it; openvla does not yet.
CONFIGS = {
    "openvla_oft_instruction_cpu": 0.75,        # measured 0.875 at step 100
    "pi0_instruction_cpu": 0.75,                # measured 0.84 at step 120
    "openvla_instruction_cpu": 0.55,            # measured 0.69 at step 120
    "openvla_oft_instruction_grpo_cpu": 0.75,   # measured 0.875 at step 70 (2026-12-02; 0.867 over 256 episodes)
}
#: Training success of a random-init policy (episodes ending in the first steps) is near chance (about 0.2).
MAX_START_SUCCESS = 0.4


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS)
def test_tiny_vla_learns_the_instruction_task(name, tmp_path):
    min_eval = CONFIGS[name]
    config = str(ROOT / "examples" / "embodied" / f"{name}.yaml")
    args = [f"runner.logger.log_path={tmp_path}", f"runner.logger.experiment_name={name}"]
    cli = [sys.executable, "-m", "rlinf_core.cli"]
    subprocess.run([*cli, "run", config, *args], check=True, timeout=3600)
    rows = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    success = [r["env/success_rate"] for r in rows if "env/success_rate" in r]
    assert sum(success[:3]) / 3 < MAX_START_SUCCESS, success[:3]  # random init: near chance
    out = subprocess.run([*cli, "eval", config, *args], check=True, timeout=600, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["success_rate"] >= min_eval, (result, success[-10:])
