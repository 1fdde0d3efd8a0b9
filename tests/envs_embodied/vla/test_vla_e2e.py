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
#: config -> what the test asserts of its deterministic eval success, below what its runs reached. A run is
#: deterministic on one machine but not across machines (float rounding changes the samples): pi0 and OFT GRPO
#: measured 0.84 / 0.875 and 0.875 / 0.875 on two dev machines (2026-11-28 / 2026-12-03; over 256 episodes 0.85
#: and 0.87). OFT PPO was measured on the second with 17 action bins (no zero action): 0.97 (256 episodes: 0.92;
#: with 16 bins 0.72 there, 0.875 on the first). openvla (state-blind: it finds the agent in the image), with one
#: action per call and lr 3e-4: 0.94 (256 episodes: 0.93), 2026-12-03 on the second machine; its earlier
#: configuration (2 actions per call, lr 5e-4) reached only 0.56-0.69.
#: The order matters under ``nox -s e2e_vla`` (``pytest -n 2 --dist worksteal``: the first half goes to one worker,
#: the second half to the other): the longest run is paired with the shortest (openvla + pi0, OFT GRPO + OFT PPO).
CONFIGS = {
    "openvla_instruction_cpu": 0.75,
    "pi0_instruction_cpu": 0.7,
    "openvla_oft_instruction_grpo_cpu": 0.75,
    "openvla_oft_instruction_cpu": 0.75,
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
