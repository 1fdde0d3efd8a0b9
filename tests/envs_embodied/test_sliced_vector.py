"""``vectorization: async`` with ``num_workers`` below the sub-env count: slices of sub-envs per worker
process (:class:`SlicedAsyncVectorEnv`) behave exactly as the sub-envs stepped in this process."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from rlinf_core.errors import ConfigError
from rlinf_envs_embodied.envs.gymnasium_env import GymnasiumEnv
from rlinf_envs_embodied.envs.sliced_vector import SlicedAsyncVectorEnv, merge_infos


def make(env_id: str, num_envs: int, seed: int = 0, **init_params):
    return GymnasiumEnv({"env_id": env_id, "init_params": init_params}, num_envs=num_envs, seed=seed)


def trajectory(env, actions, **reset):
    out = [env.reset(**reset)]
    out += [env.step(a) for a in actions]
    env.close()
    return out


def assert_same(a, b):
    if isinstance(a, dict):
        assert sorted(a) == sorted(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (tuple, list)) or isinstance(a, np.ndarray) and a.dtype == object:
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_cartpole_slices_match_sync_step_for_step_through_episode_ends():
    """5 sub-envs in 2 slices (3 in a worker process, 2 in this one): observations, rewards, terminated / truncated,
    success and the final observations of ended episodes equal the in-process run's, over 60 steps in
    which episodes end in both slices (random CartPole actions end one every ~20 steps)."""
    actions = np.random.default_rng(0).integers(0, 2, size=(60, 5))
    sliced_env = make("CartPole-v1", 5, seed=7, vectorization="async", num_workers=2)
    assert isinstance(sliced_env._venv, SlicedAsyncVectorEnv) and sliced_env._venv._sizes == [3, 2]
    assert len(sliced_env._venv._procs) == sliced_env.worker_processes == 1  # the second slice steps in this process
    sliced = trajectory(sliced_env, actions)
    plain_env = make("CartPole-v1", 5, seed=7)
    assert plain_env.worker_processes == 0
    plain = trajectory(plain_env, actions)
    ended = np.zeros(5, dtype=bool)
    for s, p in zip(sliced, plain, strict=True):
        assert_same(s, p)
        if len(s) == 5:
            ended |= s[2] | s[3]
    assert ended[:3].any() and ended[3:].any()


def test_chunks_success_and_final_observation_match_sync(counting_id):
    """Action chunks over a slice boundary: an episode ends inside the chunk (Counting ends at t = 3)
    and succeeds at t = 2; the per-step success and the final observations agree with the sync env."""
    acts = np.arange(3 * 4, dtype=np.float32).reshape(3, 4, 1) / 10
    runs = []
    for params in ({"vectorization": "async", "num_workers": 2}, {}):
        env = GymnasiumEnv({"env_id": counting_id, "init_params": {**params, "make_kwargs": {"success_at": 2}}},
                           num_envs=3, seed=1)
        runs.append(trajectory(env, [acts, acts]))
    assert_same(runs[0], runs[1])
    _, _, term, _, info = runs[0][1]
    assert term[:, 2].all() and info["step_success"][:, 1].all() and info["_final_observation"].all()


def test_reset_mask_resets_only_the_masked_sub_envs(counting_id):
    """Without auto-reset, ``reset(options={"reset_mask": m})`` resets the masked sub-envs and keeps
    the others' observations, also when a worker's whole slice is unmasked."""
    venv = SlicedAsyncVectorEnv([lambda: gym.make(counting_id, terminate_at=None)] * 4, 2,
                                autoreset_mode=gym.vector.AutoresetMode.DISABLED)
    first, _ = venv.reset(seed=10)
    venv.step(np.ones((4, 1), np.float32))
    venv.step(np.ones((4, 1), np.float32))
    obs, _ = venv.reset(options={"reset_mask": np.array([False, False, True, False])})
    assert obs[:, 0].tolist() == [2, 2, 0, 2]              # t: only sub-env 2 starts again
    assert obs[:, 1].tolist() == [1, 1, 0, 1]              # last action: none yet in the new episode
    assert venv.get_attr("terminate_at") == (None,) * 4
    assert venv.call("render")[3].shape == (8, 6, 3)
    venv.close()


def test_every_slice_in_a_worker_process_or_one_here_gives_the_same_steps():
    actions = np.random.default_rng(2).integers(0, 2, size=(40, 4))
    fns = [lambda: gym.make("CartPole-v1")] * 4
    runs = []
    for in_process in (False, True):
        venv = SlicedAsyncVectorEnv(fns, 2, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP, in_process=in_process)
        assert len(venv._procs) == venv.worker_processes == (1 if in_process else 2)
        runs.append(trajectory(venv, actions, seed=3))
    assert_same(runs[0], runs[1])


def test_a_failing_sub_env_names_its_slice(counting_id):
    """A sub-env that raises in ``step`` (here: a bad ``terminate_at`` in the second slice) fails the
    call with the worker's traceback, naming which sub-envs it holds; the env still closes."""
    venv = SlicedAsyncVectorEnv([lambda: gym.make(counting_id)] * 2 + [lambda: gym.make(counting_id, terminate_at="x")] * 2, 2)
    venv.reset(seed=0)
    with pytest.raises(RuntimeError, match=r"sub-envs 2\.\.3 \(worker process 1\) failed:[\s\S]*TypeError"):
        venv.step(np.zeros((4, 1), np.float32))
    venv.close()
    assert not any(proc.is_alive() for proc in venv._procs)


def test_merge_infos_fills_what_a_slice_lacks():
    parts = [{"success": np.array([True, False]), "_success": np.array([True, True])},
             {"final_obs": np.array([None, 3], dtype=object), "_final_obs": np.array([False, True]),
              "final_info": {"x": np.array([0.0, 2.5])}}]
    info = merge_infos(parts, [2, 2])
    assert info["success"].tolist() == [True, False, False, False]
    assert info["_success"].tolist() == [True, True, False, False]
    assert info["final_obs"].tolist() == [None, None, None, 3] and info["_final_obs"].tolist() == [False] * 3 + [True]
    assert info["final_info"]["x"].tolist() == [0.0, 0.0, 0.0, 2.5]


@pytest.mark.parametrize(("params", "expected"), [
    ({"num_workers": 2}, "env.train.init_params.num_workers: worker processes need env.train.init_params.vectorization: "
                         "async (it is 'sync')"),
    ({"vectorization": "async", "num_workers": 0}, "env.train.init_params.num_workers: must be a positive integer"),
])
def test_bad_num_workers_is_one_line_naming_the_key(params, expected):
    with pytest.raises(ConfigError) as err:
        make("CartPole-v1", 2, **params)
    assert expected in str(err.value) and "\n" not in str(err.value)
