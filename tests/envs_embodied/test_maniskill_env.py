"""The ``maniskill`` env on CPU: the CPU backend, and the GPU backend's class run on ``physx_cpu``.

Skipped without the ``[maniskill]`` extra or a Vulkan device. On a CPU-only Debian 12 machine the
module fixture runs ``scripts/setup_cpu_vulkan.sh`` (Mesa 25's software Vulkan, unpacked privately)
the way CI does. ``ManiSkillGPUEnv`` (one batched ManiSkill env, ManiSkill's partial resets, torch
tensors) runs here with ``sim_backend=physx_cpu`` and one sub-scene, checked step for step against
the CPU backend; its multi-scene GPU run is in ``test_maniskill_gpu.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mani_skill", reason="needs the [maniskill] extra: pip install 'rlinf-envs-embodied[maniskill]'")

import torch  # noqa: E402
from rlinf_core.errors import ConfigError  # noqa: E402
from rlinf_core.interfaces import VectorEnv, check_conformance  # noqa: E402
from rlinf_envs_embodied.envs.maniskill_env import (  # noqa: E402
    ManiSkillCPUEnv,
    ManiSkillGPUEnv,
    make_maniskill_env,
)

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


def _skip_without_vulkan(build):
    try:
        return build()
    except ConfigError as exc:
        if "Vulkan" in str(exc):
            pytest.skip(str(exc))
        raise


def make(num_envs: int = 2, seed: int = 0, **section) -> ManiSkillCPUEnv:
    return _skip_without_vulkan(lambda: make_maniskill_env(
        {"env_id": "PickCube-v1", **section, "init_params": {"sim_backend": "cpu", **section.pop("init_params", {})}},
        num_envs=num_envs, seed=seed))


def make_batched(seed: int = 0, **section) -> ManiSkillGPUEnv:
    return _skip_without_vulkan(lambda: ManiSkillGPUEnv({"env_id": "PickCube-v1", **section}, num_envs=1, seed=seed,
                                                        sim_backend="physx_cpu"))


def force_success_at(env_unwrapped, step: int) -> None:
    """Make ManiSkill's own evaluate() report success at elapsed step ``step`` (and not before)."""
    original = env_unwrapped.evaluate

    def evaluate():
        info = original()
        info["success"] = torch.as_tensor(env_unwrapped.elapsed_steps).reshape(-1) == step
        return info

    env_unwrapped.evaluate = evaluate


def test_pickcube_state_obs_seeding_and_time_limit():
    assert check_conformance("env", ManiSkillCPUEnv) == [] and check_conformance("env", ManiSkillGPUEnv) == []
    env, twin = make(max_episode_steps=5), make(max_episode_steps=5)
    assert isinstance(env, ManiSkillCPUEnv) and isinstance(env, VectorEnv) and env.action_space.shape == (8,)
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


def test_batched_backend_matches_the_cpu_backend_step_for_step():
    """One sub-scene of the GPU backend's class on physx_cpu against the CPU backend: same start, same rewards,
    same time limit, same final observation; then ManiSkill's own auto-reset, seeded reproducibly."""
    section = {"max_episode_steps": 5}
    batched, cpu = make_batched(**section), make(num_envs=1, **section)
    assert batched.observation_space == cpu.observation_space and batched.action_space.shape == (8,)
    obs_b, info_b = batched.reset()
    obs_c, _ = cpu.reset()
    assert isinstance(obs_b["state"], torch.Tensor) and obs_b["state"].dtype == torch.float32
    np.testing.assert_array_equal(obs_b["state"].numpy(), obs_c["state"])
    assert info_b["success"].dtype == torch.bool and not info_b["success"].any()
    acts = np.random.default_rng(0).uniform(-1, 1, size=(1, 6, 8)).astype(np.float32)
    obs_b, rew_b, term_b, trunc_b, info_b = batched.step(torch.as_tensor(acts))
    obs_c, rew_c, term_c, trunc_c, info_c = cpu.step(acts)
    # the first episode (steps 0..4) is the same simulation; step 5 runs in each backend's own new episode
    np.testing.assert_allclose(rew_b[:, :5].numpy(), rew_c[:, :5], rtol=1e-6)
    assert trunc_b.tolist() == trunc_c.tolist() == [[False, False, False, False, True, False]]
    assert not term_b.any() and info_b["_final_observation"].tolist() == [True]
    np.testing.assert_array_equal(info_b["final_observation"]["state"].numpy(), info_c["final_observation"]["state"])
    assert not torch.equal(obs_b["state"], info_b["final_observation"]["state"])  # the row was reset
    twin = make_batched(**section)                                           # same seed: same next episode
    twin.reset()
    np.testing.assert_array_equal(twin.step(torch.as_tensor(acts))[0]["state"].numpy(), obs_b["state"].numpy())
    other = make_batched(seed=1, **section)
    assert not torch.equal(other.reset()[0]["state"], batched.reset()[0]["state"])
    for env in (batched, cpu, twin, other):
        env.close()


def test_batched_backend_success_ends_the_episode_and_single_steps():
    env = make_batched(max_episode_steps=50)
    env.reset()
    force_success_at(env._venv.base_env, 2)
    obs, rew, term, trunc, info = env.step(np.zeros((1, 3, 8), np.float32))
    assert term.tolist() == [[False, True, False]] and not trunc.any()
    assert info["step_success"].tolist() == [[False, True, False]] and info["success"].tolist() == [True]
    assert info["_final_observation"].tolist() == [True]
    obs, rew, term, trunc, info = env.step(torch.zeros(1, 8))              # single step: (N,) outputs
    assert rew.shape == term.shape == trunc.shape == (1,) and obs["state"].shape == (1, 42)
    with pytest.raises(ConfigError, match=r"have 7 dims per step, the env takes 8: set actor.model.action_dim to 8"):
        env.step(torch.zeros(1, 4, 7))
    env.close()


def test_cpu_backend_success_flag_comes_from_maniskill():
    env = make(num_envs=1, max_episode_steps=50)
    env.reset()
    force_success_at(env._venv.envs[0].unwrapped, 2)
    _, _, term, _, info = env.step(np.zeros((1, 3, 8), np.float32))
    assert term.tolist() == [[False, True, False]] and info["step_success"].tolist() == [[False, True, False]]
    env.close()


def test_unknown_task_missing_assets_and_backend_are_one_line():
    with pytest.raises(ConfigError, match=r"env.train.env_id: 'PickCub-v1' is not a ManiSkill3 task. Did you mean 'PickCube-v1'"):
        make_maniskill_env({"env_id": "PickCub-v1"}, num_envs=1, seed=0)
    with pytest.raises(ConfigError, match=r"'PutOnPlateInScene25Main-v3' is not a ManiSkill3 task.*RLinf's ManiSkill fork"):
        make_maniskill_env({"env_id": "PutOnPlateInScene25Main-v3", "init_params": {"sim_backend": "cpu"}}, num_envs=1, seed=0)
    from mani_skill.utils import assets

    if not assets.is_data_source_downloaded("ycb"):
        with pytest.raises(ConfigError, match=r"'PickSingleYCB-v1' needs ManiSkill assets that are not on disk \(ycb;"):
            make_maniskill_env({"env_id": "PickSingleYCB-v1", "init_params": {"sim_backend": "cpu"}}, num_envs=1, seed=0)
    widowxai = assets.DATA_SOURCES["widowxai"]
    if not (Path(widowxai.output_dir) / widowxai.target_path).exists():
        # a robot's assets: ManiSkill would ask on stdin (and exit on "n"); here it is one line, no prompt
        with pytest.raises(ConfigError, match=r"env.train.env_id: ManiSkill needs assets that are not on disk "
                                              r"\(Robot widowxai has assets available for download\)\. Fetch them"):
            make(num_envs=1, env_id="PickCubeWidowXAI-v1")
    with pytest.raises(ConfigError, match=r"sim_backend: 'gpus' is not a backend. Did you mean 'gpu'"):
        make_maniskill_env({"env_id": "PickCube-v1", "init_params": {"sim_backend": "gpus"}}, num_envs=1, seed=0)


@pytest.mark.slow  # about 13 s here per env: SAPIEN builds its render pipeline on lavapipe
def test_pickcube_rgb_images_both_backends_agree():
    start = time.monotonic()
    params = {"obs_mode": "rgb", "camera_heights": 32, "camera_widths": 32}
    env = make(num_envs=1, init_params=params)
    obs, _ = env.reset()
    frames = obs["images"]["base_camera"]
    assert frames.shape == (1, 32, 32, 3) and frames.dtype == np.uint8 and frames.std() > 5
    assert obs["state"].shape == (1, env.observation_space["state"].shape[0])
    batched = make_batched(init_params=params)
    obs_b, _ = batched.reset()
    assert obs_b["images"]["base_camera"].dtype == torch.uint8
    np.testing.assert_array_equal(obs_b["images"]["base_camera"].numpy(), frames)
    np.testing.assert_array_equal(obs_b["state"].numpy(), obs["state"])
    env.close(), batched.close()
    assert time.monotonic() - start < 240
