"""The ``maniskill`` env's GPU backend: ``num_envs`` sub-scenes in one ``physx_cuda`` env, tensors on the GPU.

Every test is ``@pytest.mark.gpu`` (deselected by ``nox -s tests``) and skips without the ``[maniskill]``
extra or CUDA. The same class runs on CPU (one sub-scene on ``physx_cpu``) in ``test_maniskill_env.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mani_skill", reason="needs the [maniskill] extra: pip install 'rlinf-envs-embodied[maniskill]'")
torch = pytest.importorskip("torch")

from rlinf_envs_embodied.envs.maniskill_env import ManiSkillGPUEnv, make_maniskill_env  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU for ManiSkill's physx_cuda backend"),
]

N = 4


def make(seed: int = 0, num_envs: int = N, **section) -> ManiSkillGPUEnv:
    env = make_maniskill_env({"env_id": "PickCube-v1", **section,
                              "init_params": {"sim_backend": "gpu", **section.pop("init_params", {})}},
                             num_envs=num_envs, seed=seed, device="cuda:0")
    assert isinstance(env, ManiSkillGPUEnv)
    return env


def test_state_obs_on_the_gpu_seeding_chunks_and_time_limit():
    env, twin = make(max_episode_steps=5), make(max_episode_steps=5)
    obs, info = env.reset()
    state = obs["state"]
    assert state.is_cuda and state.shape == (N, 42) and state.dtype == torch.float32
    assert info["success"].is_cuda and not info["success"].any()
    torch.testing.assert_close(state, twin.reset()[0]["state"])             # same seeds, same starts
    assert len({tuple(row.tolist()) for row in state.cpu()}) == N            # sub-scene i seeded seed + i
    acts = torch.as_tensor(np.random.default_rng(0).uniform(-1, 1, size=(N, 6, 8)), dtype=torch.float32, device="cuda")
    obs, rew, term, trunc, info = env.step(acts)
    assert rew.is_cuda and rew.shape == (N, 6) and trunc.shape == term.shape == (N, 6)
    assert trunc[:, 4].all() and not trunc[:, [0, 1, 2, 3, 5]].any() and not term.any()
    assert info["_final_observation"].all() and info["final_observation"]["state"].is_cuda
    assert info["step_success"].shape == (N, 6) and info["success"].shape == (N,)
    assert not torch.equal(obs["state"], info["final_observation"]["state"])  # every row was reset at step 5
    t_obs, t_rew, *_ = twin.step(acts.cpu().numpy())                         # numpy actions work too
    torch.testing.assert_close(t_rew, rew, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(t_obs["state"], obs["state"], rtol=1e-4, atol=1e-4)  # partial resets are seeded
    env.close(), twin.close()


def test_partial_reset_touches_only_the_finished_sub_scene():
    env, twin = make(max_episode_steps=50), make(max_episode_steps=50)
    env.reset(), twin.reset()
    base = env._venv.base_env
    original = base.evaluate

    def evaluate():  # ManiSkill's own success flag, forced for sub-scene 1 at its second step
        out = original()
        out["success"] = (torch.arange(N, device=base.device) == 1) & (base.elapsed_steps == 2)
        return out

    base.evaluate = evaluate
    acts = torch.zeros(N, 3, 8, device="cuda")
    obs, rew, term, trunc, info = env.step(acts)
    t_obs, *_ = twin.step(acts)
    assert term[:, 1].tolist() == [False, True, False, False] and not trunc.any()
    assert info["success"].tolist() == [False, True, False, False]
    assert info["_final_observation"].tolist() == [False, True, False, False]
    others = [0, 2, 3]
    torch.testing.assert_close(obs["state"][others], t_obs["state"][others], rtol=1e-4, atol=1e-4)
    assert not torch.allclose(obs["state"][1], t_obs["state"][1], atol=1e-3)   # sub-scene 1 started over
    env.close(), twin.close()


def test_reset_mask_resets_only_the_masked_rows():
    env = make(max_episode_steps=50)
    start, _ = env.reset()
    moved, *_ = env.step(torch.ones(N, 2, 8, device="cuda"))
    mask = torch.tensor([True, False, False, False])
    again, _ = env.reset(options={"reset_mask": mask})
    torch.testing.assert_close(again["state"][1:], moved["state"][1:])
    assert not torch.allclose(again["state"][0], moved["state"][0])
    env.close()


def test_rgb_images_stay_on_the_gpu():
    env = make(num_envs=2, init_params={"obs_mode": "rgb", "camera_heights": 64, "camera_widths": 64})
    obs, _ = env.reset()
    frames = obs["images"]["base_camera"]
    assert frames.is_cuda and frames.dtype == torch.uint8 and frames.shape == (2, 64, 64, 3)
    assert frames.float().std() > 5 and obs["state"].is_cuda
    assert env.observation_space["images"]["base_camera"].shape == (64, 64, 3)
    env.close()
