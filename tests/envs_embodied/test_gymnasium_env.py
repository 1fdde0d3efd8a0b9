"""The ``gymnasium`` env: conformance, seeding, chunks, auto-reset, terminated vs truncated, images, errors."""

from __future__ import annotations

import numpy as np
import pytest
from rlinf_core.config import load_config, validate_config
from rlinf_core.errors import ConfigError
from rlinf_core.interfaces import VectorEnv, check_conformance
from rlinf_core.plugins import get_plugins
from rlinf_envs_embodied.envs.gymnasium_env import GymnasiumEnv


def make(env_id: str, num_envs: int = 2, seed: int = 0, **section):
    return GymnasiumEnv({"env_id": env_id, **section}, num_envs=num_envs, seed=seed)


def test_conforms_and_is_registered():
    assert check_conformance("env", GymnasiumEnv) == []
    spec = get_plugins().registries.get_spec("env", "gym")  # the alias resolves to the same component
    assert spec.name == "gymnasium" and spec.load() is GymnasiumEnv
    env = make("CartPole-v1", num_envs=3)
    assert isinstance(env, VectorEnv) and env.num_envs == 3
    obs, info = env.reset()
    assert obs["state"].shape == (3, 4) and obs["state"].dtype == np.float32
    assert env.observation_space["state"].shape == (4,) and env.action_space.n == 2
    assert info["success"].tolist() == [False] * 3
    env.close()


def test_same_seed_same_rollout_and_sub_env_seeds_are_seed_plus_i():
    actions = np.random.default_rng(0).integers(0, 2, size=(30, 3))

    def rollout(seed, n=3):
        env = make("CartPole-v1", num_envs=n, seed=seed)
        first, _ = env.reset()
        states, rewards = [first["state"]], []
        for a in actions[:, :n]:
            obs, r, *_ = env.step(a)
            states.append(obs["state"])
            rewards.append(r)
        env.close()
        return first["state"], np.stack(states), np.stack(rewards)

    a, b, c = rollout(7), rollout(7), rollout(8)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])
    assert not np.allclose(a[0], c[0])
    np.testing.assert_array_equal(a[0][1], rollout(8, n=1)[0][0])  # sub-env 1 of seed 7 is seeded 8


def test_reset_with_explicit_seeds_reproduces_start_states():
    env = make("CartPole-v1", num_envs=2, seed=0)
    first, _ = env.reset(seed=[11, 12])
    env.step(np.array([1, 0]))
    again, _ = env.reset(seed=[11, 12])
    np.testing.assert_array_equal(first["state"], again["state"])
    env.close()


def test_a_chunk_equals_k_single_steps_across_an_auto_reset():
    k, n = 14, 3  # constant pushes topple CartPole in about 9-10 steps: every sub-env resets mid-chunk
    actions = np.ones((n, k), dtype=np.int64)
    chunked, single = make("CartPole-v1", num_envs=n, seed=5), make("CartPole-v1", num_envs=n, seed=5)
    chunked.reset(), single.reset()
    obs_c, rew_c, term_c, trunc_c, info_c = chunked.step(actions)
    assert rew_c.shape == term_c.shape == trunc_c.shape == (n, k) and term_c.any(axis=1).all()
    finals = {}
    for j in range(k):
        obs_s, rew_s, term_s, trunc_s, info_s = single.step(actions[:, j])
        assert rew_s.shape == (n,)
        np.testing.assert_array_equal(rew_c[:, j], rew_s)
        np.testing.assert_array_equal(term_c[:, j], term_s)
        np.testing.assert_array_equal(trunc_c[:, j], trunc_s)
        for i in np.flatnonzero(info_s.get("_final_observation", np.zeros(n, bool))):
            finals[int(i)] = info_s["final_observation"]["state"][i]
    np.testing.assert_array_equal(obs_c["state"], obs_s["state"])
    assert sorted(finals) == np.flatnonzero(info_c["_final_observation"]).tolist() == [0, 1, 2]
    for i, state in finals.items():
        np.testing.assert_array_equal(info_c["final_observation"]["state"][i], state)
        assert abs(state[2]) > 0.2 or abs(state[0]) > 2.4  # the pole fell or the cart left: a terminal state
    chunked.close(), single.close()


def test_auto_reset_mid_chunk_returns_final_observation_and_continues(counting_id):
    env = make(counting_id, num_envs=2, seed=1)
    obs, _ = env.reset()
    start = obs["state"][:, 2].copy()
    acts = np.full((2, 5, 1), 0.5, dtype=np.float32)
    obs, rew, term, trunc, info = env.step(acts)
    assert term.tolist() == [[False, False, True, False, False]] * 2 and not trunc.any()
    np.testing.assert_allclose(rew, [[0.51, 0.52, 0.53, 0.51, 0.52]] * 2, rtol=1e-6)  # t restarts at 1
    final = info["final_observation"]["state"]
    assert info["_final_observation"].tolist() == [True, True]
    np.testing.assert_array_equal(final[:, 0], [3, 3])            # the terminal step of the old episode
    np.testing.assert_array_equal(final[:, 2], start)              # ... of the old episode's start value
    np.testing.assert_array_equal(obs["state"][:, 0], [2, 2])      # two steps into the new episode
    assert not np.allclose(obs["state"][:, 2], start)              # a fresh start value was drawn
    env.close()


def test_terminated_and_truncated_are_kept_apart():
    # CartPole with a 5-step limit: a time limit only (truncated), the pole has not fallen
    env = make("CartPole-v1", num_envs=2, seed=0, max_episode_steps=5)
    env.reset()
    _, _, term, trunc, info = env.step(np.tile([0, 1, 0, 1, 0], (2, 1)))
    assert not term.any() and trunc[:, 4].all() and not trunc[:, :4].any()
    assert info["_final_observation"].all()
    env.close()
    # no time limit reached, the pole falls: terminated only
    env = make("CartPole-v1", num_envs=2, seed=0)
    env.reset()
    _, _, term, trunc, _ = env.step(np.ones((2, 20), dtype=np.int64))
    assert term.any(axis=1).all() and not trunc.any()
    env.close()


def test_success_comes_from_the_env_info_including_the_final_step(counting_id):
    env = make(counting_id, num_envs=2, seed=0, init_params={"make_kwargs": {"success_at": 2}})
    env.reset()
    _, _, _, _, info = env.step(np.zeros((2, 3, 1), dtype=np.float32))
    assert info["step_success"].tolist() == [[False, True, False]] * 2 and info["success"].all()
    env.close()
    # success on the very step that ends the episode is read from gymnasium's final_info
    env = make(counting_id, num_envs=2, seed=0, init_params={"make_kwargs": {"success_at": 3}})
    env.reset()
    _, _, term, _, info = env.step(np.zeros((2, 3, 1), dtype=np.float32))
    assert term[:, 2].all() and info["step_success"].tolist() == [[False, False, True]] * 2
    env.close()
    env = make("CartPole-v1")  # no success key in its info: always False
    env.reset()
    assert not env.step(np.ones(2, dtype=np.int64))[4]["success"].any()
    env.close()


def test_images_are_uint8_hwc_and_in_final_observation(counting_id):
    env = make(counting_id, num_envs=2, seed=0, init_params={"images": True})
    assert env.observation_space["images"]["render"].shape == (8, 6, 3)
    obs, _ = env.reset()
    assert obs["images"]["render"].shape == (2, 8, 6, 3) and obs["images"]["render"].dtype == np.uint8
    assert obs["state"].shape == (2, 4)
    obs, _, _, _, info = env.step(np.zeros((2, 4, 1), dtype=np.float32))
    assert (obs["images"]["render"] == 1).all()                              # one step into the new episode
    assert (info["final_observation"]["images"]["render"] == 3).all()          # frame of the terminal step
    env.close()


def test_async_vectorization_matches_sync():
    acts = np.random.default_rng(1).integers(0, 2, size=(2, 12))
    out = {}
    for mode in ("sync", "async"):
        env = make("CartPole-v1", num_envs=2, seed=3, init_params={"vectorization": mode})
        obs, _ = env.reset()
        obs2, rew, term, trunc, _ = env.step(acts)
        out[mode] = (obs["state"], obs2["state"], rew, term)
        env.close()
    for a, b in zip(out["sync"], out["async"], strict=True):
        np.testing.assert_array_equal(a, b)


def test_discrete_observations_become_one_hot_state():
    env = make("FrozenLake-v1", num_envs=2, seed=0)
    obs, _ = env.reset()
    assert obs["state"].shape == (2, 16) and (obs["state"].sum(axis=1) == 1).all() and obs["state"][:, 0].all()
    env.close()


def test_continuous_actions_are_clipped_to_the_bounds(counting_id):
    env = make(counting_id, num_envs=1, seed=0)
    env.reset()
    obs, *_ = env.step(np.array([[5.0]], dtype=np.float32))
    assert obs["state"][0, 1] == 2.0
    env.close()


@pytest.mark.parametrize(("section", "expected"), [
    ({"env_id": "CartPol-v1"}, "env.train.env_id: 'CartPol-v1' is not a registered gymnasium env. Did you mean 'CartPole-v1'"),
    ({"env_id": "CartPole-v1", "init_params": {"image": True}},
     "unknown config key 'env.train.init_params.image'. Did you mean 'images'?"),
    ({"env_id": "CartPole-v1", "init_params": {"vectorization": "asynch"}}, "Did you mean 'async'"),
    ({"env_id": "CartPole-v1", "init_params": {"make_kwargs": {"bogus": 1}}},
     "env.train.init_params.make_kwargs: gymnasium.make('CartPole-v1') rejected ['bogus']"),
    ({"env_id": "CartPole-v1", "ignore_terminations": True}, "env.train.ignore_terminations"),
    ({}, "env.train.env_id: the gymnasium env needs a registered gymnasium id"),
])
def test_bad_config_is_one_line_naming_the_key(section, expected):
    with pytest.raises(ConfigError) as err:
        GymnasiumEnv(section, num_envs=1, seed=0)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_actions_of_the_wrong_shape_name_the_model_keys():
    env = make("Pendulum-v1", num_envs=2)
    env.reset()
    with pytest.raises(ConfigError, match=r"actions of shape \(2, 3, 2\) do not fit 2 sub-envs .* expected \(2, 1\), "
                                          r"or \(2, K, 1\) .*actor.model.action_dim \(must be 1\)"):
        env.step(np.zeros((2, 3, 2)))
    env.close()


def test_config_validation_names_the_split():
    cfg = load_config({"env": {"train": {"simulator_type": "gym", "env_id": "CartPole-v1"},
                               "eval": {"simulator_type": "gymnasium", "env_id": "Cartpole-v1",
                                        "init_params": {"clip_action": True}}}})
    with pytest.raises(ConfigError) as err:
        validate_config(cfg, get_plugins())
    text = str(err.value)
    assert "env.eval.env_id: 'Cartpole-v1' is not a registered gymnasium env. Did you mean 'CartPole-v1'" in text
    assert "unknown config key 'env.eval.init_params.clip_action'" in text and "Did you mean 'clip_actions'" in text
    assert "env.train" not in text


def test_merge_rows_takes_the_masked_rows_of_numpy_torch_and_lists_in_place():
    """The final observations of sub-envs that ended: numpy batches (gymnasium envs), torch tensors (ManiSkill's
    GPU backend, with a torch mask) and instruction lists, nested."""
    import torch
    from rlinf_envs_embodied.envs.gym_vector import merge_rows

    batch = {"state": np.zeros((3, 2)), "images": {"cam": torch.zeros(3, 2, 2, 3, dtype=torch.uint8)}, "instruction": ["a", "b", "c"]}
    rows = {"state": np.ones((3, 2)), "images": {"cam": torch.full((3, 2, 2, 3), 7, dtype=torch.uint8)},
            "instruction": ["x", "y", "z"]}
    merge_rows(batch, {k: v for k, v in rows.items() if k != "images"}, np.array([False, True, False]))
    assert batch["state"].tolist() == [[0, 0], [1, 1], [0, 0]] and batch["instruction"] == ["a", "y", "c"]
    merge_rows(batch["images"], rows["images"], torch.tensor([True, False, True]))
    assert batch["images"]["cam"][:, 0, 0, 0].tolist() == [7, 0, 7]
