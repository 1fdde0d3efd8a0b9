"""The ``metaworld`` env (skipped without the ``[metaworld]`` extra): tasks, seeding, success, limits, images."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from rlinf_core.errors import ConfigError
from rlinf_core.interfaces import VectorEnv, check_conformance
from rlinf_envs_embodied.envs import rendering
from rlinf_envs_embodied.envs.metaworld_env import MetaWorldEnv, import_metaworld

metaworld = pytest.importorskip("metaworld", reason="needs the [metaworld] extra: pip install 'rlinf-envs-embodied[metaworld]'")


def make(num_envs: int = 2, seed: int = 0, **section):
    return MetaWorldEnv({"env_id": "reach-v3", **section}, num_envs=num_envs, seed=seed)


def scripted_actions(env: MetaWorldEnv, obs: dict) -> np.ndarray:
    """Meta-World's own scripted reach policy, per sub-env (it reads the 39-dim state)."""
    from metaworld.policies import SawyerReachV3Policy

    policy = SawyerReachV3Policy()
    return np.stack([policy.get_action(state.astype(np.float64)) for state in obs["state"]]).astype(np.float32)


def test_reach_state_obs_actions_and_instruction():
    assert check_conformance("env", MetaWorldEnv) == []
    env = make(num_envs=3)
    assert isinstance(env, VectorEnv)
    obs, info = env.reset()
    assert obs["state"].shape == (3, 39) and obs["state"].dtype == np.float32
    assert env.action_space.shape == (4,) and obs["instruction"] == ["reach"] * 3
    assert not info["success"].any()
    env.close()


def test_same_seed_same_rollout_and_reset_seed_fixes_the_goal():
    acts = np.random.default_rng(0).uniform(-1, 1, size=(2, 10, 4)).astype(np.float32)
    runs = []
    for seed in (3, 3, 4):
        env = make(seed=seed)
        first, _ = env.reset()
        obs, rew, *_ = env.step(acts)
        runs.append((first["state"], obs["state"], rew))
        env.close()
    for a, b in zip(runs[0], runs[1], strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(runs[0][0][:, -3:], runs[2][0][:, -3:])  # another seed, other goals (last 3 dims)
    env = make(seed=3)
    first, _ = env.reset(seed=[20, 21])
    env.step(acts)
    again, _ = env.reset(seed=[20, 21])
    np.testing.assert_array_equal(first["state"], again["state"])
    env.close()


def test_scripted_policy_reaches_success_and_terminate_on_success_ends_the_episode():
    env = make(init_params={"terminate_on_success": True}, max_episode_steps=150)
    obs, _ = env.reset()
    success_at, final = {}, None
    for t in range(150):
        obs, _, term, trunc, info = env.step(scripted_actions(env, obs))
        assert not trunc.any()
        for i in np.flatnonzero(info["success"]):
            success_at.setdefault(int(i), t)
            assert term[i]
            final = info["final_observation"]["state"][i]
        if len(success_at) == 2:
            break
    assert sorted(success_at) == [0, 1], "Meta-World's scripted reach policy should succeed within 150 steps"
    hand, goal = final[:3], final[-3:]
    assert np.linalg.norm(hand - goal) < 0.05  # the final observation is the one at the goal
    env.close()


def test_time_limit_truncates_and_success_does_not_terminate_by_default():
    env = make(max_episode_steps=10)
    obs, _ = env.reset()
    _, _, term, trunc, info = env.step(np.zeros((2, 10, 4), dtype=np.float32))
    assert not term.any() and trunc[:, 9].all() and not trunc[:, :9].any()
    assert info["_final_observation"].all()
    env.close()


def test_suite_runs_tasks_round_robin_with_one_hot_ids():
    env = MetaWorldEnv({"task_suite_name": "mt10"}, num_envs=2, seed=0)
    obs, _ = env.reset()
    assert env.task_names == ["reach-v3", "push-v3"] and obs["instruction"] == ["reach", "push"]
    assert obs["state"].shape == (2, 49)
    np.testing.assert_array_equal(obs["state"][:, 39:41], [[1, 0], [0, 1]])
    env.close()


@pytest.mark.parametrize(("section", "expected"), [
    ({"env_id": "reach-v2"}, "env.train.env_id: 'reach-v2' is not a Meta-World task. Did you mean 'reach-v3'"),
    ({"env_id": None, "task_suite_name": "MT11"}, "env.train.task_suite_name: 'MT11' is not a Meta-World suite. Did you mean 'MT10'"),
    ({"task_suite_name": "MT10"}, "are both set"),
    ({"init_params": {"camera": "corner"}}, "Did you mean 'camera_name'"),
])
def test_bad_task_or_key_is_one_line(section, expected):
    with pytest.raises(ConfigError) as err:
        make(num_envs=1, **section)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_missing_package_gives_the_pip_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "metaworld", None)
    with pytest.raises(ImportError, match=r"Fix: pip install 'rlinf-envs-embodied\[metaworld\]'"):
        import_metaworld()


def test_no_renderer_says_what_was_tried_and_what_to_install(monkeypatch):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.setattr(rendering, "_chosen", None)
    monkeypatch.setattr(rendering, "_probe", lambda backend: f"cannot load lib for {backend}")
    with pytest.raises(ConfigError) as err:
        make(init_params={"images": True})
    text = str(err.value)
    assert text.startswith("env.train.init_params.images: camera images need a MuJoCo renderer")
    assert "MUJOCO_GL=egl: cannot load lib for egl; MUJOCO_GL=osmesa: cannot load lib for osmesa" in text
    assert "apt-get install libosmesa6" in text and "\n" not in text


def test_camera_images_are_uint8_hwc():
    try:
        env = make(num_envs=2, init_params={"images": True, "camera_heights": 24, "camera_widths": 32})
    except ConfigError as exc:  # no OpenGL here: the message itself is tested above
        pytest.skip(f"no MuJoCo renderer on this machine: {exc}")
    assert env.observation_space["images"]["corner"].shape == (24, 32, 3)
    obs, _ = env.reset()
    frames = obs["images"]["corner"]
    assert frames.shape == (2, 24, 32, 3) and frames.dtype == np.uint8 and frames.std() > 5  # a scene, not a blank
    obs, *_ = env.step(np.ones((2, 3, 4), dtype=np.float32))
    assert not np.array_equal(obs["images"]["corner"], frames)  # the arm moved
    env.close()


def test_shadow_size_sets_the_renderers_shadow_map():
    """``shadow_size`` reaches each sub-env's MuJoCo model before its renderer is made: 0 takes the shadows out
    of the frame."""
    params = {"images": True, "camera_heights": 32, "camera_widths": 32}
    frames = {}
    for size in (None, 0):
        try:
            env = make(num_envs=1, init_params={**params, "shadow_size": size})
        except ConfigError as exc:
            pytest.skip(f"no MuJoCo renderer on this machine: {exc}")
        model = env._venv.envs[0].unwrapped.model
        assert model.vis.quality.shadowsize == (4096 if size is None else size)  # Meta-World's own: 4096
        frames[size] = env.reset()[0]["images"]["corner"].astype(int)
        env.close()
    assert frames[0].std() > 5  # a scene without shadows, not a blank
    assert np.abs(frames[0] - frames[None]).mean() > 1.0  # the shadows are gone


def test_closing_another_env_leaves_this_ones_frames_intact():
    """Before, once another env in the process was closed, this one's frames came back blank (std 0) without an
    error: its context was no longer current (each sub-env now makes its own current before a frame), and the
    closed env's MuJoCo render context, freed by the garbage collector in whatever context was current, deleted
    this env's framebuffers (``close`` now frees it in its own context)."""
    import gc

    params = {"images": True, "camera_heights": 16, "camera_widths": 16}
    try:
        env = make(num_envs=2, seed=0, init_params=params)
    except ConfigError as exc:
        pytest.skip(f"no MuJoCo renderer on this machine: {exc}")
    before = env.reset(seed=0)[0]["images"]["corner"]
    other = make(num_envs=2, seed=5, init_params=params)
    other.reset()
    other.close()
    after_close = env.reset(seed=0)[0]["images"]["corner"]
    del other
    gc.collect()  # the closed env's MuJoCo objects go now, with env's context current
    after_collect = env.reset(seed=0)[0]["images"]["corner"]
    env.close()
    assert before.std() > 5
    np.testing.assert_array_equal(after_close, before)
    np.testing.assert_array_equal(after_collect, before)


def test_rendering_slices_in_worker_processes_match_this_process():
    """``async`` with camera images after this process has rendered (its renderer is loaded): the worker
    process starts fresh (spawned; a forked one can hang creating its renderer) and the frames, states and
    rewards equal those of the sub-envs stepped here."""
    params = {"images": True, "camera_heights": 16, "camera_widths": 16}
    try:
        here = make(num_envs=3, seed=2, init_params=params)
    except ConfigError as exc:
        pytest.skip(f"no MuJoCo renderer on this machine: {exc}")
    acts = np.random.default_rng(0).uniform(-1, 1, size=(2, 3, 4)).astype(np.float32)
    runs = []
    for async_ in (False, True):
        env = make(num_envs=3, seed=2, init_params={**params, "vectorization": "async", "num_workers": 2}) if async_ else here
        first, _ = env.reset()
        runs.append([first] + [env.step(a)[:2] for a in acts])
        env.close()
    for a, b in zip(*runs, strict=True):
        a, b = (a, None) if isinstance(a, dict) else a, (b, None) if isinstance(b, dict) else b
        np.testing.assert_array_equal(a[0]["images"]["corner"], b[0]["images"]["corner"])
        np.testing.assert_array_equal(a[0]["state"], b[0]["state"])
        if a[1] is not None:
            np.testing.assert_array_equal(a[1], b[1])
