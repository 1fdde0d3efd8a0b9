"""The rlinf conformance kit on ``reacher2d``, and tests of its physics and options."""

import numpy as np
import pytest
from omegaconf import OmegaConf
from rlinf_core.config import load_config, validate_config
from rlinf_core.errors import ConfigError
from rlinf_core.plugins import get_plugins
from rlinf_core.testing import EnvPluginTests
from rlinf_sim_example.options import Reacher2DOptions, read_reacher_options
from rlinf_sim_example.reacher import LINK, Reacher2DEnv

KEYS = "frame_skip, success_tolerance, terminate_on_success, control_cost, images, image_size"


class TestReacher2DConformance(EnvPluginTests):
    component = "reacher2d"
    config = {"max_episode_steps": 30}
    image_config = {"init_params": {"images": True, "image_size": 16}}


class TestReacher2DTerminatingConformance(EnvPluginTests):
    component = "sim_example:reacher2d"  # the qualified name resolves too
    config = {"init_params": {"terminate_on_success": True, "success_tolerance": 0.05}}
    num_envs = 3
    chunk_size = 5


def test_the_fingertip_starts_at_the_arm_length_and_torque_moves_it():
    env = Reacher2DEnv({}, num_envs=2, seed=0)
    obs, _ = env.reset()
    tip = obs["state"][:, 8:10] + obs["state"][:, 4:6]  # (tip - target) + target
    np.testing.assert_allclose(np.linalg.norm(tip, axis=1), 2 * LINK, atol=0.01)  # joints start near 0: arm stretched
    for _ in range(5):
        obs, *_ = env.step(np.array([[1.0, 0.0], [-1.0, 0.0]], np.float32))
    assert obs["state"][0, 6] > 0.1 and obs["state"][1, 6] < -0.1  # the shoulder turns with the torque's sign


def test_reward_is_minus_the_distance_minus_control_cost():
    env = Reacher2DEnv({"init_params": {"control_cost": 0.5}}, num_envs=1, seed=3)
    env.reset()
    obs, reward, *_ = env.step(np.array([[0.2, -0.4]], np.float32))
    dist = np.linalg.norm(obs["state"][0, 8:10])
    np.testing.assert_allclose(reward[0], -dist - 0.5 * (0.04 + 0.16), rtol=1e-5)


def test_success_within_tolerance_terminates_when_asked():
    env = Reacher2DEnv({"init_params": {"terminate_on_success": True, "success_tolerance": 1.0}}, num_envs=2, seed=0)
    env.reset()
    _, _, terminated, truncated, info = env.step(np.zeros((2, 2), np.float32))
    assert terminated.all() and not truncated.any() and info["success"].all()


def test_images_show_the_target_in_red():
    env = Reacher2DEnv({"init_params": {"images": True, "image_size": 24}}, num_envs=2, seed=1)
    obs, _ = env.reset()
    frame = obs["images"]["top"]
    assert frame.shape == (2, 24, 24, 3) and frame.dtype == np.uint8
    red = (frame[..., 0] == 255) & (frame[..., 1] == 0)
    assert red.reshape(2, -1).sum(1).tolist() == [1, 1]


@pytest.mark.parametrize(("params", "message"), [
    ({"image": True},
     "unknown config key 'env.train.init_params.image'. Did you mean 'images' or 'image_size'? "
     f"Valid keys of env.train.init_params: {KEYS}"),
    ({"frame_skip": 0}, "env.train.init_params.frame_skip: must be >= 1, got 0"),
    ({"control_cost": -0.5}, "env.train.init_params.control_cost: must be >= 0, got -0.5"),
    ({"terminate_on_success": "maybe"},
     "config key 'env.train.init_params.terminate_on_success': Value 'maybe' is not a valid bool (type str)"),
])
def test_bad_init_params_are_named(params, message):
    with pytest.raises(ConfigError) as err:
        Reacher2DEnv({"init_params": params}, num_envs=1, seed=0)
    assert err.value.problems == [message]


def test_options_are_read_from_the_section_the_env_is_built_from():
    cfg = OmegaConf.create({"env": {"train": {"init_params": {"frame_skip": 3, "images": None}},
                                    "eval": {"init_params": {"image_size": 4}}}})
    opts = read_reacher_options(cfg.env.train)
    assert opts == Reacher2DOptions(frame_skip=3)  # null: the default
    assert (opts.success_tolerance, opts.images, opts.image_size) == (0.02, False, 32)
    with pytest.raises(ConfigError) as err:
        Reacher2DEnv(cfg.env.eval, num_envs=1, seed=0)  # as the flows build the eval envs
    assert err.value.problems == ["env.eval.init_params.image_size: must be >= 8, got 4"]


def test_rlinf_config_validate_checks_both_splits():
    plugins = get_plugins(strict=False)
    data = {"env": {"train": {"simulator_type": "reacher2d", "init_params": {"control_cost": 0.01}},
                    "eval": {"simulator_type": "reacher2d", "init_params": {"frame_skp": 3}}}}
    with pytest.raises(ConfigError) as err:
        validate_config(load_config(data, plugins=plugins), plugins)
    assert err.value.problems == [f"unknown config key 'env.eval.init_params.frame_skp'. Did you mean 'frame_skip'? "
                                  f"Valid keys of env.eval.init_params: {KEYS}"]
    data["env"]["eval"]["init_params"] = {"frame_skip": 3}
    validate_config(load_config(data, plugins=plugins), plugins)
