"""The ``frankasim`` env (skipped without the ``[frankasim]`` extra: mujoco and gymnasium-robotics, whose wheel
ships the Franka Panda model, so every test runs offline once the extra is installed)."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf
from rlinf_core import ConfigError
from rlinf_core.config import load_config, validate_config
from rlinf_core.plugins import get_plugins
from rlinf_core.testing.conformance.env import EnvPluginTests
from rlinf_envs_embodied.envs import rendering

pytest.importorskip("gymnasium_robotics", reason="needs the [frankasim] extra: pip install 'rlinf-envs-embodied[frankasim]'")

from rlinf_envs_embodied.envs import frankasim_env as fs  # noqa: E402


def make(num_envs: int = 1, seed: int = 0, **section):
    section = {"env_id": "PandaPickCube-v0", **section}
    return fs.FrankaSimEnv(OmegaConf.create(section), num_envs=num_envs, seed=seed)


def scripted_action(state: np.ndarray, phase: list[int]) -> np.ndarray:
    """Above the cube, down to it, close, lift: the TCP moves toward each waypoint at full speed."""
    tcp, cube = state[:3].astype(float), state[7:10].astype(float)
    grip = 1.0 if phase[0] >= 2 else -1.0
    if phase[0] == 0:
        goal = cube + [0.0, 0.0, 0.08]
        if np.linalg.norm(goal - tcp) < 0.01:
            phase[0] = 1
    if phase[0] == 1:
        goal = cube
        if np.linalg.norm(goal - tcp) < 0.008:
            phase[0], phase[1] = 2, 0
    if phase[0] == 2:
        goal, phase[1] = cube, phase[1] + 1
        grip = 1.0
        if phase[1] >= 4:  # the fingers need about 0.4 s to close on the cube
            phase[0] = 3
    if phase[0] == 3:
        goal = np.array([tcp[0], tcp[1], 0.3])
    return np.array([*np.clip((goal - tcp) / 0.05, -1.0, 1.0), grip], dtype=np.float32)


# ----------------------------------------------------------------------------- spaces, physics, reward

def test_spaces_and_shapes():
    env = make(num_envs=3)
    assert env.action_space.shape == (4,) and env.action_space.low.min() == -1 and env.action_space.high.max() == 1
    assert env.observation_space["state"].shape == (10,) and "images" not in env.observation_space.spaces
    obs, info = env.reset()
    assert obs["state"].shape == (3, 10) and obs["state"].dtype == np.float32
    assert obs["instruction"] == ["pick up the cube"] * 3 and info["success"].tolist() == [False] * 3
    np.testing.assert_allclose(obs["state"][:, :3], np.tile(fs.TCP_START, (3, 1)), atol=1e-4)  # the start pose
    np.testing.assert_allclose(obs["state"][:, 3:7], 0.0, atol=1e-6)  # at rest, gripper open
    cube = obs["state"][:, 7:10]
    assert (cube[:, :2] >= fs.CUBE_LOW).all() and (cube[:, :2] <= fs.CUBE_HIGH).all()
    np.testing.assert_allclose(cube[:, 2], fs.CUBE_HALF, atol=1e-6)  # resting on the table
    env.close()


def test_an_action_moves_the_tcp_by_action_scale():
    env = make(init_params={"action_scale": 0.04})
    obs, _ = env.reset()
    start = obs["state"][0, :3].copy()
    obs, *_ = env.step(np.array([[0.5, -1.0, 0.25, -1.0]], dtype=np.float32))
    # 0.04 m * (0.5, -1, 0.25), tracked by the IK within 1 cm
    np.testing.assert_allclose(obs["state"][0, :3] - start, [0.02, -0.04, 0.01], atol=0.01)
    for _ in range(10):  # pushing down stops at the workspace floor, not in the table
        obs, *_ = env.step(np.array([[0.0, 0.0, -1.0, -1.0]], dtype=np.float32))
    assert fs.WORKSPACE_LOW[2] - 0.005 <= obs["state"][0, 2] <= fs.WORKSPACE_LOW[2] + 0.01
    env.close()


def test_zero_actions_hold_the_start_pose():
    env = make(num_envs=2)
    env.reset()
    for _ in range(5):
        obs, *_ = env.step(np.array([[0.0, 0.0, 0.0, -1.0]] * 2, dtype=np.float32))
    np.testing.assert_allclose(obs["state"][:, :3], np.tile(fs.TCP_START, (2, 1)), atol=2e-3)  # no sag, no drift
    np.testing.assert_allclose(obs["state"][:, 3:6], 0.0, atol=5e-3)
    np.testing.assert_allclose(obs["state"][:, 6], 0.0, atol=0.02)  # the gripper stays open
    env.close()


def test_scripted_pick_succeeds_in_every_sub_env():
    env = make(num_envs=3, seed=11, max_episode_steps=60)
    obs, _ = env.reset()
    phases = [[0, 0] for _ in range(3)]
    done_at = [None] * 3
    for t in range(60):
        acts = np.stack([scripted_action(obs["state"][i], phases[i]) for i in range(3)])
        obs, rew, term, trunc, info = env.step(acts)
        for i in np.flatnonzero(info["success"]):
            if done_at[i] is None:
                done_at[i] = t
                assert term[i] and not trunc[i]  # success ends the episode (terminate_on_success)
                final = info["final_observation"]["state"][i]
                assert final[9] - fs.CUBE_HALF >= 0.1  # the cube is 10 cm up...
                assert np.linalg.norm(final[:3] - final[7:10]) < 0.02  # ...held between the fingers
                assert 0.3 < final[6] < 0.9  # fingers closed on a 3 cm cube, not fully shut
                assert rew[i] > fs.LIFT_WEIGHT  # the full lift term plus part of the reach term
        if all(d is not None for d in done_at):
            break
    assert all(d is not None for d in done_at), f"success steps: {done_at}"
    assert max(done_at) < 40
    env.close()


def test_a_gripper_left_open_does_not_lift_the_cube():
    env = make(seed=11, max_episode_steps=40)
    obs, _ = env.reset()
    phase = [0, 0]
    lifted = []
    for _ in range(40):
        act = scripted_action(obs["state"][0], phase)
        act[3] = -1.0  # never close
        obs, _, _, _, info = env.step(act[None])
        assert not info["success"][0]
        lifted.append(obs["state"][0, 9])
    assert max(lifted) < fs.CUBE_HALF + 0.01
    env.close()


def test_reward_increases_as_the_tcp_approaches_the_cube():
    env = make(seed=3)
    obs, _ = env.reset()
    rewards, distances = [], []
    for _ in range(8):  # straight toward a point 5 cm above the cube, gripper open
        state = obs["state"][0]
        goal = state[7:10] + [0.0, 0.0, 0.05]
        act = np.array([[*np.clip((goal - state[:3]) / 0.05, -1, 1), -1.0]], dtype=np.float32)
        obs, rew, *_ = env.step(act)
        rewards.append(float(rew[0]))
        distances.append(float(np.linalg.norm(obs["state"][0, :3] - obs["state"][0, 7:10])))
    # three steps of 5 cm bring the TCP from 25 cm up to the waypoint (within a few mm, the IK's tracking)
    assert np.all(np.diff(distances[:3]) < -0.01) and abs(distances[-1] - 0.05) < 0.01
    assert np.all(np.diff(rewards[:3]) > 0.005) and rewards[-1] > rewards[0] + 0.05
    # no lift yet: the reward is the reach term alone, 0.3 * exp(-10 d)
    np.testing.assert_allclose(rewards, 0.3 * np.exp(-10 * np.array(distances)), rtol=1e-4)
    env.close()


def test_rel_reward_is_the_change_of_the_dense_reward():
    kwargs = {"seed": 3, "max_episode_steps": 50}
    dense, rel = make(**kwargs), make(use_rel_reward=True, **kwargs)
    dense.reset(), rel.reset()
    act = np.array([[0.3, 0.2, -0.5, -1.0]], dtype=np.float32)
    d = [float(dense.step(act)[1][0]) for _ in range(5)]
    r = [float(rel.step(act)[1][0]) for _ in range(5)]
    np.testing.assert_allclose(r, np.diff([0.0, *d]), atol=1e-6)


def test_reset_is_determined_by_the_seed():
    a, b, c = make(num_envs=2, seed=7), make(num_envs=2, seed=7), make(num_envs=2, seed=8)
    oa, ob, oc = a.reset()[0], b.reset()[0], c.reset()[0]
    np.testing.assert_array_equal(oa["state"], ob["state"])
    assert not np.allclose(oa["state"][:, 7:9], oc["state"][:, 7:9])
    act = np.tile(np.array([0.2, -0.3, -0.4, 0.0], dtype=np.float32), (2, 1))
    for _ in range(3):
        sa, ra = a.step(act)[:2]
        sb, rb = b.step(act)[:2]
    np.testing.assert_array_equal(sa["state"], sb["state"])
    np.testing.assert_array_equal(ra, rb)
    again = a.reset(seed=[7, 8])[0]  # an explicit seed per sub-env gives the same start again
    np.testing.assert_array_equal(again["state"], oa["state"])


# ----------------------------------------------------------------------------- config

def test_a_missing_gymnasium_robotics_names_the_extra(monkeypatch):
    find_spec = fs.importlib.util.find_spec
    monkeypatch.setattr(fs.importlib.util, "find_spec",
                        lambda name, *args: None if name == "gymnasium_robotics" else find_spec(name, *args))
    with pytest.raises(ImportError, match=r"needs gymnasium-robotics .*Fix: pip install 'rlinf-envs-embodied\[frankasim\]'"):
        make()


def test_the_model_comes_from_the_gymnasium_robotics_wheel():
    assets = fs.panda_assets()
    assert assets.replace("\\", "/").endswith("gymnasium_robotics/envs/assets/kitchen_franka/franka_assets")
    model = fs.scene(assets).model
    # 7 arm hinges + 2 finger slides + the cube's free joint; 7 arm + 2 finger position actuators
    assert (model.njnt, model.nu) == (10, 9)
    np.testing.assert_allclose(model.actuator_gainprm[:7, 0], [870] * 4 + [120] * 3)  # the model's own kp
    np.testing.assert_allclose(model.actuator_forcerange[:7, 1], [87] * 4 + [12] * 3)  # the Panda's torque limits


def test_bad_env_id_names_the_key_and_the_tasks():
    with pytest.raises(ConfigError) as err:
        make(env_id="PandaPickCub-v0")
    text = str(err.value)
    assert text.startswith("env.train.env_id: 'PandaPickCub-v0' is not a frankasim task.")
    assert "PandaPickCube-v0" in text and "Valid: PandaPickCube-v0, PandaPickCubeVision-v0" in text
    with pytest.raises(ConfigError, match=r"^env.train.env_id: the frankasim env needs a task"):
        fs.FrankaSimEnv(OmegaConf.create({}), num_envs=1, seed=0)


def _config(**train):
    return OmegaConf.create({
        "runner": {"task_type": "embodied"},
        "actor": {"training_backend": "fsdp", "model": {"model_type": "mlp"}},
        "algorithm": {"adv_type": "gae", "loss_type": "actor_critic"},
        "env": {"train": {"simulator_type": "frankasim", "env_id": "PandaPickCube-v0", **train}},
    })


def test_validate_reports_a_bad_task_and_a_bad_init_param():
    plugins = get_plugins()
    validate_config(load_config(_config(), plugins=plugins), plugins)
    with pytest.raises(ConfigError) as err:
        validate_config(load_config(_config(env_id="PickCube-v0", init_params={"lift_hieght": 0.1}), plugins=plugins),
                        plugins)
    problems = err.value.problems
    assert any(p.startswith("env.train.env_id: 'PickCube-v0' is not a frankasim task.") for p in problems), problems
    assert any("unknown config key 'env.train.init_params.lift_hieght'" in p and "lift_height" in p
               for p in problems), problems


def test_init_params_are_checked():
    with pytest.raises(ConfigError, match=r"env.train.init_params.camera_names: \['top'\] must be a non-empty list"):
        make(init_params={"camera_names": ["top"]})
    with pytest.raises(ConfigError, match=r"env.train.init_params.control_dt: must be a positive number"):
        make(init_params={"control_dt": 0.001})


# ----------------------------------------------------------------------------- images

@pytest.fixture
def renderer_or_skip():
    try:
        rendering.select_mujoco_gl("test")
    except ConfigError as exc:
        pytest.skip(f"no MuJoCo renderer on this machine: {exc}")


def test_vision_task_gives_front_and_wrist_images(renderer_or_skip):
    env = make(num_envs=2, env_id="PandaPickCubeVision-v0", init_params={"camera_heights": 64, "camera_widths": 96})
    assert set(env.observation_space["images"].spaces) == {"front", "wrist"}
    obs, _ = env.reset()
    for cam in ("front", "wrist"):
        img = obs["images"][cam]
        assert img.shape == (2, 64, 96, 3) and img.dtype == np.uint8
        assert img.std() > 5  # a scene, not a blank frame
    # the red cube is in view of the front camera: some pixels are strongly red
    red = obs["images"]["front"][0].astype(int)
    assert ((red[..., 0] > 150) & (red[..., 1] < 80) & (red[..., 2] < 80)).sum() > 5
    assert not np.array_equal(obs["images"]["front"][0], obs["images"]["front"][1])  # cubes drawn in other spots
    env.close()


# ----------------------------------------------------------------------------- the conformance kit

class TestFrankaSimConformance(EnvPluginTests):
    component = "frankasim"
    config = {"env_id": "PandaPickCube-v0"}
    num_steps = 4
    chunk_size = 2
    episode_limit = 3
    image_config = {"env_id": "PandaPickCubeVision-v0", "init_params": {"camera_heights": 32, "camera_widths": 32}}

    def test_images_are_uint8_hwc(self, renderer_or_skip) -> None:
        super().test_images_are_uint8_hwc()
