"""The rlinf conformance kit on ``reacher2d``, and tests of its physics and options."""

import numpy as np
import pytest
from rlinf_core.testing import EnvPluginTests
from rlinf_sim_example.options import init_params_problems
from rlinf_sim_example.reacher import LINK, Reacher2DEnv


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
    ({"image": True}, "init_params.image: unknown key of env 'reacher2d'. Did you mean 'images'?"),
    ({"frame_skip": 0}, "init_params.frame_skip: must be an integer >= 1"),
    ({"terminate_on_success": "yes"}, "init_params.terminate_on_success: must be true or false"),
])
def test_bad_init_params_are_named(params, message):
    assert any(message in p for p in init_params_problems(params, "env.train.init_params"))
    with pytest.raises(ValueError, match=message.split(":")[0]):
        Reacher2DEnv({"init_params": params}, num_envs=1, seed=0)
