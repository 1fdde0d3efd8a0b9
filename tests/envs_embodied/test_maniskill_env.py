"""The ``maniskill`` env on the CPU backend (skipped without the ``[maniskill]`` extra or a Vulkan device).

On a CPU-only Debian 12 machine the module fixture runs ``scripts/setup_cpu_vulkan.sh`` (Mesa 25's
software Vulkan, unpacked privately) the way CI does.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from rlinf_core.errors import ConfigError
from rlinf_core.interfaces import VectorEnv, check_conformance
from rlinf_envs_embodied.envs.maniskill_env import ManiSkillEnv

pytest.importorskip("mani_skill", reason="needs the [maniskill] extra: pip install 'rlinf-envs-embodied[maniskill]'")

SETUP = Path(__file__).resolve().parents[2] / "rlinf-envs-embodied" / "scripts" / "setup_cpu_vulkan.sh"


@pytest.fixture(scope="module", autouse=True)
def cpu_vulkan():
    """Point Vulkan at the private lavapipe (set before SAPIEN is first used in this process)."""
    if "VK_ICD_FILENAMES" not in os.environ and Path("/etc/debian_version").exists():
        proc = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            pytest.skip(f"setup_cpu_vulkan.sh failed: {proc.stderr.strip().splitlines()[-1:]}")
        for name, value in re.findall(r"^export (VK_ICD_FILENAMES)='([^']*)'", proc.stdout, re.M):
            os.environ[name] = value
        os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    yield


def make(num_envs: int = 2, seed: int = 0, **section) -> ManiSkillEnv:
    try:
        return ManiSkillEnv({"env_id": "PickCube-v1", **section}, num_envs=num_envs, seed=seed)
    except ConfigError as exc:
        if "Vulkan" in str(exc):
            pytest.skip(str(exc))
        raise


def test_pickcube_state_obs_seeding_and_time_limit():
    assert check_conformance("env", ManiSkillEnv) == []
    env, twin = make(max_episode_steps=5), make(max_episode_steps=5)
    assert isinstance(env, VectorEnv) and env.action_space.shape == (8,)
    obs, info = env.reset()
    assert obs["state"].shape == (2, 42) and obs["state"].dtype == np.float32 and not info["success"].any()
    np.testing.assert_array_equal(obs["state"], twin.reset()[0]["state"])   # same seed, same start
    assert not np.allclose(obs["state"][0], obs["state"][1])                 # sub-envs seeded seed + i
    acts = np.random.default_rng(0).uniform(-1, 1, size=(2, 6, 8)).astype(np.float32)
    obs, rew, term, trunc, info = env.step(acts)
    assert rew.shape == (2, 6) and trunc[:, 4].all() and not trunc[:, [0, 1, 2, 3, 5]].any() and not term.any()
    assert info["_final_observation"].all() and info["final_observation"]["state"].shape == (2, 42)
    np.testing.assert_array_equal(rew, twin.step(acts)[1])                    # same actions, same rewards
    env.close(), twin.close()


def test_unknown_task_and_gpu_backend_are_one_line():
    with pytest.raises(ConfigError, match=r"env.train.env_id: 'PickCub-v1' is not a ManiSkill3 task. Did you mean 'PickCube-v1'"):
        ManiSkillEnv({"env_id": "PickCub-v1"}, num_envs=1, seed=0)
    with pytest.raises(ConfigError, match=r"sim_backend: 'gpu': the GPU-batched ManiSkill backend is not implemented"):
        ManiSkillEnv({"env_id": "PickCube-v1", "init_params": {"sim_backend": "gpu"}}, num_envs=1, seed=0)


@pytest.mark.slow  # about 13 s here: SAPIEN builds its render pipeline on lavapipe
def test_pickcube_rgb_images():
    start = time.monotonic()
    env = make(num_envs=1, init_params={"obs_mode": "rgb", "camera_heights": 32, "camera_widths": 32})
    obs, _ = env.reset()
    frames = obs["images"]["base_camera"]
    assert frames.shape == (1, 32, 32, 3) and frames.dtype == np.uint8 and frames.std() > 5
    assert obs["state"].shape == (1, env.observation_space["state"].shape[0])
    env.close()
    assert time.monotonic() - start < 120
