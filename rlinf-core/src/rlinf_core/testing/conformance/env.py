"""``EnvPluginTests``: the :class:`~rlinf_core.interfaces.VectorEnv` contract of an ``env`` component.

Checks spaces, observation / reward / flag shapes and dtypes, seeding (``seed + i`` per sub-env,
same seed same rollout), ``reset(seed=...)``, action chunks (a chunk equals ``K`` single steps),
auto-reset with ``info["final_observation"]``, truncation at ``max_episode_steps`` kept apart from
termination, uint8 HWC images, one-line errors for bad actions, and ``close``. Needs numpy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from rlinf_core.testing.conformance.base import PluginTests, one_line, plain_to_config

OBS_KEYS = ("state", "images", "instruction")


def to_numpy(value: Any) -> Any:
    """A numpy array from a numpy array, a list, or a torch tensor on any device."""
    import numpy as np

    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _flat_obs(obs: Mapping[str, Any]) -> dict[str, Any]:
    """``{"state": ..., "images/cam": ...}`` as numpy arrays (instructions left out)."""
    out: dict[str, Any] = {}
    if "state" in obs:
        out["state"] = to_numpy(obs["state"])
    for cam, img in (obs.get("images") or {}).items():
        out[f"images/{cam}"] = to_numpy(img)
    return out


def assert_obs_equal(a: Mapping[str, Any], b: Mapping[str, Any], what: str, rows: Any = None) -> None:
    """Observations equal (to float32 rounding), optionally only in ``rows``."""
    import numpy as np

    fa, fb = _flat_obs(a), _flat_obs(b)
    assert fa.keys() == fb.keys(), f"{what}: observation keys differ: {sorted(fa)} vs {sorted(fb)}"
    for key in fa:
        x, y = (fa[key], fb[key]) if rows is None else (fa[key][rows], fb[key][rows])
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6, err_msg=f"{what}: obs[{key!r}] differs")


class EnvPluginTests(PluginTests):
    """Subclass as ``class TestMySim(EnvPluginTests)`` and set ``component`` and ``config``.

    Attributes:

    - ``config``: the ``env.train`` section your env is built with (a dict; passed as an OmegaConf
      ``DictConfig``, as the flows do): ``env_id``, ``init_params``, ...
    - ``num_envs`` (2), ``seed`` (0), ``num_steps`` (12: steps of the shape / seeding checks),
      ``chunk_size`` (3: ``K`` of the chunk check; 0 skips it).
    - ``episode_limit`` (4): ``max_episode_steps`` set for the truncation / auto-reset check (under
      the key ``time_limit_key``, default ``"max_episode_steps"``; ``None`` skips the check).
    - ``image_config``: overrides of ``config`` that turn camera images on (e.g.
      ``{"init_params": {"images": True}}``), when they are off by default.
    - ``reset_depends_on_seed`` (True): different seeds give different first observations.
    - ``sub_env_seed_is_seed_plus_i`` (True): sub-env ``i`` of ``seed`` starts like sub-env 0 of ``seed + i``.

    Override :meth:`make_env` when your constructor needs more than the config, and
    :meth:`sample_actions` when uniform samples of ``action_space`` are not valid actions.
    """

    kind = "env"
    config: ClassVar[Mapping[str, Any]] = {}
    num_envs: ClassVar[int] = 2
    seed: ClassVar[int] = 0
    num_steps: ClassVar[int] = 12
    chunk_size: ClassVar[int] = 3
    episode_limit: ClassVar[int] = 4
    time_limit_key: ClassVar[str | None] = "max_episode_steps"
    image_config: ClassVar[Mapping[str, Any] | None] = None
    reset_depends_on_seed: ClassVar[bool] = True
    sub_env_seed_is_seed_plus_i: ClassVar[bool] = True

    # ------------------------------------------------------------------ building

    @pytest.fixture(autouse=True)
    def _close_envs(self):
        self._envs: list[Any] = []
        yield
        for env in self._envs:
            try:
                env.close()
            except Exception:  # noqa: BLE001 - test_close reports close() failures; do not mask the test's own
                pass

    def make_env(self, *, num_envs: int | None = None, seed: int | None = None, **overrides: Any) -> Any:
        """Build the env as the flows do: ``cls(config, num_envs=, seed=, device="cpu")``."""
        config = _merge(self.config, overrides)
        cls = self.load_target()
        env = cls(plain_to_config(config), num_envs=self.num_envs if num_envs is None else num_envs,
                  seed=self.seed if seed is None else seed, device="cpu")
        self._envs.append(env)
        return env

    def sample_actions(self, env: Any, rng_seed: int, chunk: int | None = None) -> Any:
        """Actions for every sub-env, ``(N, ...)`` or ``(N, K, ...)``: seeded uniform samples of ``action_space``."""
        import numpy as np

        space = env.action_space
        space.seed(rng_seed)
        k = chunk or 1
        acts = np.stack([np.stack([np.asarray(space.sample()) for _ in range(k)]) for _ in range(env.num_envs)])
        return acts if chunk else acts[:, 0]

    # ------------------------------------------------------------------ checks shared by the tests

    def check_obs(self, env: Any, obs: Mapping[str, Any], where: str) -> None:
        """``obs`` follows the observation dict of the interface and ``env.observation_space``."""
        import numpy as np

        n = env.num_envs
        assert isinstance(obs, Mapping), f"{where}: observations must be a dict, got {type(obs).__name__}"
        unknown = [k for k in obs if k not in OBS_KEYS]
        assert not unknown, f"{where}: unknown observation key(s) {unknown}; the interface allows {OBS_KEYS}"
        assert obs, f"{where}: the observation dict is empty"
        space = getattr(env.observation_space, "spaces", None)
        if "state" in obs:
            state = to_numpy(obs["state"])
            assert state.dtype == np.float32, f"{where}: obs['state'] must be float32, got {state.dtype}"
            assert state.ndim == 2 and state.shape[0] == n, f"{where}: obs['state'] must be (N={n}, S), got {state.shape}"
            if space is not None and "state" in space:
                assert state.shape[1:] == tuple(space["state"].shape), (
                    f"{where}: obs['state'] has shape {state.shape}, observation_space['state'] says {space['state'].shape}")
        for cam, img in (obs.get("images") or {}).items():
            arr = to_numpy(img)
            assert arr.dtype == np.uint8, f"{where}: obs['images'][{cam!r}] must be uint8, got {arr.dtype}"
            assert arr.ndim == 4 and arr.shape[0] == n and arr.shape[-1] == 3, (
                f"{where}: obs['images'][{cam!r}] must be (N={n}, H, W, 3) (HWC, RGB), got {arr.shape}")
            if space is not None and "images" in space:
                cams = space["images"].spaces
                assert cam in cams, f"{where}: camera {cam!r} is not in observation_space['images'] ({sorted(cams)})"
                assert arr.shape[1:] == tuple(cams[cam].shape), (
                    f"{where}: images[{cam!r}] has shape {arr.shape}, the space says {cams[cam].shape}")
        if "instruction" in obs:
            instr = obs["instruction"]
            assert len(instr) == n and all(isinstance(s, str) for s in instr), (
                f"{where}: obs['instruction'] must be a list of {n} strings")

    def check_info(self, env: Any, info: Mapping[str, Any], where: str) -> None:
        assert isinstance(info, Mapping), f"{where}: info must be a dict, got {type(info).__name__}"
        assert "success" in info, f"{where}: info must have 'success', a bool array (N,)"
        success = to_numpy(info["success"])
        assert success.shape == (env.num_envs,) and success.dtype == bool, (
            f"{where}: info['success'] must be bool ({env.num_envs},), got {success.dtype} {success.shape}")

    # ------------------------------------------------------------------ tests

    def test_spaces_and_num_envs(self) -> None:
        from gymnasium import spaces

        env = self.make_env()
        assert env.num_envs == self.num_envs, f"num_envs is {env.num_envs}, built with {self.num_envs}"
        assert isinstance(env.observation_space, spaces.Dict), (
            "observation_space must be a gymnasium.spaces.Dict of ONE sub-env's observation dict")
        unknown = [k for k in env.observation_space.spaces if k not in OBS_KEYS]
        assert not unknown, f"observation_space has unknown key(s) {unknown}; allowed: {OBS_KEYS}"
        assert isinstance(env.action_space, spaces.Space), "action_space must be a gymnasium space of ONE sub-env"

    def test_reset_returns_obs_and_info(self) -> None:
        env = self.make_env()
        out = env.reset()
        assert isinstance(out, tuple) and len(out) == 2, "reset() must return (obs, info)"
        self.check_obs(env, out[0], "reset()")
        self.check_info(env, out[1], "reset()")

    def test_step_shapes_and_dtypes(self) -> None:
        import numpy as np

        env = self.make_env()
        env.reset()
        n = env.num_envs
        for t in range(self.num_steps):
            out = env.step(self.sample_actions(env, t))
            assert isinstance(out, tuple) and len(out) == 5, "step() must return (obs, rewards, terminated, truncated, info)"
            obs, rew, term, trunc, info = out
            where = f"step {t}"
            self.check_obs(env, obs, where)
            self.check_info(env, info, where)
            rew, term, trunc = to_numpy(rew), to_numpy(term), to_numpy(trunc)
            assert rew.shape == (n,), f"{where}: rewards must be ({n},) for single actions, got {rew.shape}"
            assert np.issubdtype(rew.dtype, np.floating), f"{where}: rewards must be floats, got {rew.dtype}"
            assert np.isfinite(rew).all(), f"{where}: rewards must be finite, got {rew}"
            for name, flag in (("terminated", term), ("truncated", trunc)):
                assert flag.shape == (n,) and flag.dtype == bool, (
                    f"{where}: {name} must be bool ({n},), got {flag.dtype} {flag.shape}")

    def test_same_seed_same_rollout(self) -> None:
        import numpy as np

        runs = []
        for _ in range(2):
            env = self.make_env()
            trace = [env.reset()[0]]
            rewards = []
            for t in range(self.num_steps):
                obs, rew, term, trunc, _ = env.step(self.sample_actions(env, 100 + t))
                trace.append(obs)
                rewards.append((to_numpy(rew), to_numpy(term), to_numpy(trunc)))
            runs.append((trace, rewards))
        for t, (a, b) in enumerate(zip(runs[0][0], runs[1][0], strict=True)):
            assert_obs_equal(a, b, f"two envs with seed {self.seed}, step {t}")
        for t, (a, b) in enumerate(zip(runs[0][1], runs[1][1], strict=True)):
            for name, x, y in zip(("rewards", "terminated", "truncated"), a, b, strict=True):
                np.testing.assert_allclose(x, y, rtol=1e-6, err_msg=f"two envs with seed {self.seed}: {name} differ at step {t}")

    def test_different_seeds_differ(self) -> None:
        if not self.reset_depends_on_seed:
            pytest.skip("reset_depends_on_seed = False: this env's first observation does not depend on the seed")
        a = self.make_env(seed=self.seed).reset()[0]
        b = self.make_env(seed=self.seed + 1000).reset()[0]
        with pytest.raises(AssertionError):
            assert_obs_equal(a, b, "seeds differ")

    def test_sub_env_i_is_seeded_seed_plus_i(self) -> None:
        if not self.sub_env_seed_is_seed_plus_i:
            pytest.skip("sub_env_seed_is_seed_plus_i = False")
        if self.num_envs < 2:
            pytest.skip("needs num_envs >= 2")
        many = self.make_env(num_envs=2, seed=self.seed).reset()[0]
        one = self.make_env(num_envs=1, seed=self.seed + 1).reset()[0]
        fm, fo = _flat_obs(many), _flat_obs(one)
        import numpy as np

        for key in fm:
            np.testing.assert_allclose(fm[key][1], fo[key][0], rtol=1e-6, atol=1e-6,
                                       err_msg=f"sub-env 1 of seed {self.seed} must start like sub-env 0 of seed "
                                               f"{self.seed + 1} (obs[{key!r}])")

    def test_reset_with_a_seed_reproduces_the_start(self) -> None:
        env = self.make_env()
        seeds = [self.seed + 50 + i for i in range(env.num_envs)]
        first = env.reset(seed=seeds)[0]
        for t in range(3):
            env.step(self.sample_actions(env, t))
        again = env.reset(seed=seeds)[0]
        assert_obs_equal(first, again, f"reset(seed={seeds}) twice")

    def test_a_chunk_equals_k_single_steps(self) -> None:
        import numpy as np

        k = self.chunk_size
        if not k:
            pytest.skip("chunk_size = 0: this env takes single actions only")
        chunked, single = self.make_env(), self.make_env()
        chunked.reset(), single.reset()
        for call in range(3):
            acts = self.sample_actions(chunked, 7 + call, chunk=k)
            obs_c, rew_c, term_c, trunc_c, info_c = chunked.step(acts)
            self.check_obs(chunked, obs_c, "chunk step")
            self.check_info(chunked, info_c, "chunk step")
            rew_c, term_c, trunc_c = to_numpy(rew_c), to_numpy(term_c), to_numpy(trunc_c)
            n = chunked.num_envs
            for name, x in (("rewards", rew_c), ("terminated", term_c), ("truncated", trunc_c)):
                assert x.shape == (n, k), f"a chunk of {k} steps must give {name} of shape ({n}, {k}), got {x.shape}"
            for j in range(k):
                obs_s, rew_s, term_s, trunc_s, _ = single.step(to_numpy(acts)[:, j])
                np.testing.assert_allclose(rew_c[:, j], to_numpy(rew_s), rtol=1e-5, atol=1e-6,
                                           err_msg=f"chunk step {j} of call {call}: rewards differ from single steps")
                np.testing.assert_array_equal(term_c[:, j], to_numpy(term_s), err_msg=f"terminated, chunk step {j}")
                np.testing.assert_array_equal(trunc_c[:, j], to_numpy(trunc_s), err_msg=f"truncated, chunk step {j}")
            assert_obs_equal(obs_c, obs_s, f"after chunk {call}: chunked and single-step envs")

    def test_truncation_at_the_time_limit_and_auto_reset(self) -> None:
        import numpy as np

        if self.time_limit_key is None:
            pytest.skip("time_limit_key = None: this env has no time limit to configure")
        limit = self.episode_limit
        env = self.make_env(**{self.time_limit_key: limit})
        env.reset()
        n = env.num_envs
        length = np.zeros(n, dtype=int)
        ends = truncations = 0
        for t in range(2 * limit + 1):
            _, _, term, trunc, info = env.step(self.sample_actions(env, 300 + t))
            term, trunc = to_numpy(term), to_numpy(trunc)
            length += 1
            for i in range(n):
                if trunc[i] and not term[i]:
                    assert length[i] == limit, (
                        f"step {t}: sub-env {i} is truncated after {length[i]} steps of its episode, but "
                        f"{self.time_limit_key}={limit} (an episode that ended must be auto-reset in the same step)")
                if length[i] == limit and not term[i]:
                    assert trunc[i], f"step {t}: sub-env {i} reached {self.time_limit_key}={limit} without truncated=True"
            truncations += int((trunc & ~term).sum())
            done = term | trunc
            if done.any():
                ends += 1
                assert "final_observation" in info, (
                    f"step {t}: sub-env(s) {np.flatnonzero(done).tolist()} ended; info must hold 'final_observation'")
                self.check_obs(env, info["final_observation"], f"step {t}: info['final_observation']")
                if "_final_observation" in info:
                    np.testing.assert_array_equal(to_numpy(info["_final_observation"]), done,
                                                  err_msg=f"step {t}: info['_final_observation'] must mark the ended sub-envs")
            length[done] = 0
        assert ends >= 2, f"with {self.time_limit_key}={limit}, episodes must end at least twice in {2 * limit + 1} steps"
        assert truncations, (f"no sub-env was truncated by {self.time_limit_key}={limit}: a time limit must set truncated, "
                             "not terminated (lower episode_limit if every episode terminates sooner)")

    def test_images_are_uint8_hwc(self) -> None:
        overrides = dict(self.image_config or {})
        env = self.make_env(**overrides)
        spaces = getattr(env.observation_space, "spaces", {})
        if "images" not in spaces:
            pytest.skip("the env gives no camera images (set image_config to the overrides that turn them on)")
        import numpy as np

        for cam, space in spaces["images"].spaces.items():
            assert space.dtype == np.uint8 and len(space.shape) == 3 and space.shape[-1] == 3, (
                f"observation_space['images'][{cam!r}] must be uint8 (H, W, 3), got {space.dtype} {space.shape}")
        obs, _ = env.reset()
        assert obs.get("images"), "observation_space declares images, reset() returned none"
        self.check_obs(env, obs, "reset() with images")
        obs, *_ = env.step(self.sample_actions(env, 1))
        self.check_obs(env, obs, "step() with images")

    def test_actions_of_the_wrong_shape_fail_with_one_line(self) -> None:
        import numpy as np

        env = self.make_env()
        env.reset()
        bad = np.zeros((env.num_envs + 1, 7, 5), dtype=np.float32)
        with pytest.raises(Exception) as err:  # noqa: B017 - any exception type, as long as it says what is wrong
            env.step(bad)
        one_line(err.value)

    def test_close(self) -> None:
        env = self.make_env()
        env.reset()
        env.step(self.sample_actions(env, 0))
        assert env.close() is None
        self._envs.remove(env)


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` merged in (nested dicts merged key by key)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
