"""Correct reference components and deliberately broken variants, for ``test_kit_catches.py``.

Each broken class changes one thing of a component that passes the conformance kit; the kit must
fail exactly where that thing is checked.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from rlinf_core.errors import ConfigError
from rlinf_envs_embodied.policies.mlp import MLPPolicy

# ----------------------------------------------------------------------------- envs


class PointEnv:
    """``N`` points on a plane pushed toward a goal: ``state = [x, y, goal_x, goal_y]``, reward ``-distance``.

    Sub-env ``i`` draws its start and goal from ``default_rng(seed + i)``; it terminates within 0.05 of
    the goal and is truncated after ``max_episode_steps`` (default 50); both auto-reset in the step.
    With ``images: true`` a ``(8, 8, 3)`` frame shows the point.
    """

    def __init__(self, config: Any, *, num_envs: int, seed: int, device: str = "cpu"):
        self.num_envs = num_envs
        self.limit = int(config.get("max_episode_steps") or 50)
        self.images = bool(config.get("images", False))
        entries: dict[str, Any] = {"state": spaces.Box(-np.inf, np.inf, (4,), np.float32)}
        if self.images:
            entries["images"] = spaces.Dict({"top": spaces.Box(0, 255, (8, 8, 3), np.uint8)})
        self.observation_space = spaces.Dict(entries)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._rngs = [np.random.default_rng(seed + i) for i in range(num_envs)]
        self._pos = np.zeros((num_envs, 2), np.float32)
        self._goal = np.zeros((num_envs, 2), np.float32)
        self._t = np.zeros(num_envs, int)

    def _reset_one(self, i: int) -> None:
        self._pos[i], self._goal[i], self._t[i] = self._rngs[i].uniform(-1, 1, 2), self._rngs[i].uniform(-1, 1, 2), 0

    def _obs(self) -> dict[str, Any]:
        obs: dict[str, Any] = {"state": np.concatenate([self._pos, self._goal], axis=1).astype(np.float32)}
        if self.images:
            frame = np.zeros((self.num_envs, 8, 8, 3), np.uint8)
            cells = np.clip(((self._pos + 1) * 4).astype(int), 0, 7)
            frame[np.arange(self.num_envs), cells[:, 1], cells[:, 0]] = 255
            obs["images"] = {"top": frame}
        return obs

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else list(seed)
            self._rngs = [np.random.default_rng(s) for s in seeds]
        for i in range(self.num_envs):
            self._reset_one(i)
        return self._obs(), {"success": np.zeros(self.num_envs, bool)}

    def _step1(self, act: np.ndarray):
        self._pos = np.clip(self._pos + 0.1 * np.clip(act, -1, 1), -1, 1).astype(np.float32)
        self._t += 1
        dist = np.linalg.norm(self._pos - self._goal, axis=1)
        term = dist < 0.05
        trunc = (self._t >= self.limit) & ~term
        return (-dist).astype(np.float32), term, trunc

    def step(self, actions):
        acts = np.asarray(actions, dtype=np.float32)
        chunked = acts.ndim == 3
        if acts.shape[0] != self.num_envs or acts.shape[-1] != 2 or acts.ndim not in (2, 3):
            raise ConfigError(f"point env: actions of shape {acts.shape} do not fit ({self.num_envs}, [K,] 2)")
        acts = acts if chunked else acts[:, None]
        k = acts.shape[1]
        rew, term, trunc = np.zeros((self.num_envs, k), np.float32), np.zeros((self.num_envs, k), bool), np.zeros((self.num_envs, k), bool)
        success = np.zeros(self.num_envs, bool)
        final, mask = None, np.zeros(self.num_envs, bool)
        for j in range(k):
            rew[:, j], term[:, j], trunc[:, j] = self._step1(acts[:, j])
            done = term[:, j] | trunc[:, j]
            success |= term[:, j]
            if done.any():
                now = self._obs()
                final = now if final is None else final
                for i in np.flatnonzero(done):
                    _set_row(final, now, i)
                    mask[i] = True
                    self._reset_one(i)
        info: dict[str, Any] = {"success": success}
        if final is not None:
            info["final_observation"], info["_final_observation"] = final, mask
        if not chunked:
            return self._obs(), rew[:, 0], term[:, 0], trunc[:, 0], info
        return self._obs(), rew, term, trunc, info

    def close(self) -> None:
        self._rngs = []


def _set_row(dst: dict, src: dict, i: int) -> None:
    for key, value in src.items():
        if isinstance(value, dict):
            _set_row(dst[key], value, i)
        else:
            dst[key][i] = value[i]


class UnseededEnv(PointEnv):
    """Ignores the seed it is given."""

    def __init__(self, config, *, num_envs, seed, device="cpu"):
        super().__init__(config, num_envs=num_envs, seed=int(np.random.SeedSequence().entropy % 2**31), device=device)


class Float64StateEnv(PointEnv):
    def _obs(self):
        obs = super()._obs()
        obs["state"] = obs["state"].astype(np.float64)
        return obs


class TruncationAsTerminationEnv(PointEnv):
    """Reports the time limit as a termination (no bootstrap where there should be one)."""

    def _step1(self, act):
        rew, term, trunc = super()._step1(act)
        return rew, term | trunc, np.zeros_like(trunc)


class NoFinalObservationEnv(PointEnv):
    def step(self, actions):
        obs, rew, term, trunc, info = super().step(actions)
        info.pop("final_observation", None)
        return obs, rew, term, trunc, info


class ChunkOnlyFirstStepEnv(PointEnv):
    """Executes only the first action of a chunk, repeated: a chunk no longer equals K single steps."""

    def step(self, actions):
        acts = np.asarray(actions, dtype=np.float32)
        if acts.ndim == 3:
            acts = np.repeat(acts[:, :1], acts.shape[1], axis=1)
        return super().step(acts)


class CHWImagesEnv(PointEnv):
    def __init__(self, config, **kwargs):
        super().__init__({**config, "images": True}, **kwargs)

    def _obs(self):
        obs = super()._obs()
        obs["images"]["top"] = obs["images"]["top"].transpose(0, 3, 1, 2).copy()
        return obs


class SilentBadActionsEnv(PointEnv):
    """Accepts actions of any shape (broadcasting garbage) instead of saying what is wrong."""

    def step(self, actions):
        acts = np.asarray(actions, dtype=np.float32)
        if acts.shape[0] != self.num_envs or acts.shape[-1] != 2 or acts.ndim not in (2, 3):
            acts = np.resize(acts, (self.num_envs, 2))
        return super().step(acts)


# ----------------------------------------------------------------------------- policies


class OffLogProbPolicy(MLPPolicy):
    """``evaluate`` re-scores with a shifted log-prob (e.g. a forgotten temperature)."""

    def evaluate(self, obs, actions, extras=None):
        out = super().evaluate(obs, actions, extras)
        return {**out, "log_probs": out["log_probs"] + 0.1}


class GradInSamplePolicy(MLPPolicy):
    """``sample`` without ``torch.no_grad``: rollouts build graphs."""

    def sample(self, obs, *, deterministic=False):
        with torch.enable_grad():
            out = MLPPolicy.sample.__wrapped__(self, obs, deterministic=deterministic)
        return out


class DetachedCriticPolicy(MLPPolicy):
    """The value head is fed detached features and its input layers never learn."""

    def _features(self, obs, with_value):
        feats, vfeats = super()._features(obs, with_value)
        return feats, (vfeats.detach() if vfeats is not None else None)


class UnsavedBufferPolicy(MLPPolicy):
    """Scales its state by a random, non-persistent buffer: a loaded copy scores actions differently."""

    def __init__(self, config, *, observation_space, action_space):
        super().__init__(config, observation_space=observation_space, action_space=action_space)
        self.register_buffer("scale", torch.rand(observation_space["state"].shape[0]) + 0.5, persistent=False)

    def _features(self, obs, with_value):
        state = self._tensor(obs["state"], torch.float32) * self.scale
        return super()._features({**obs, "state": state}, with_value)


class NoisyDeterministicPolicy(MLPPolicy):
    def sample(self, obs, *, deterministic=False):
        return super().sample(obs, deterministic=False)


# ----------------------------------------------------------------------------- algorithms


def unmasked_returns(*, rewards, mask=None, gamma=1.0):
    """Reward-to-go that ignores the mask (padding leaks into valid positions)."""
    returns = rewards.flip(1).cumsum(1).flip(1)
    return returns - returns.mean(), returns


def float32_returns(*, rewards, mask=None, gamma=1.0):
    """Correct reward-to-go, but always float32."""
    mask = torch.ones_like(rewards) if mask is None else mask
    returns = (rewards * mask).flip(1).cumsum(1).flip(1) * mask
    return returns.float(), returns.float()


def unmasked_pg_loss(*, log_probs, old_log_probs, advantages, mask=None, **_):
    loss = -(advantages * log_probs).mean()
    return loss, {}


def wrong_sign_pg_loss(*, log_probs, old_log_probs, advantages, mask=None, **_):
    ratio = torch.exp(log_probs - old_log_probs)
    loss = (advantages * ratio * mask).sum() / mask.sum()
    return loss, {}


def ratio_kl(log_probs, ref_log_probs):
    """``pi_ref / pi``: not zero where the policies agree."""
    return torch.exp(ref_log_probs - log_probs)


def row_normalised_kl(log_probs, ref_log_probs):
    """k1 divided by its row mean: one token's change moves every estimate of the row."""
    k1 = log_probs - ref_log_probs
    return k1 - k1.mean(dim=1, keepdim=True)


# ----------------------------------------------------------------------------- placements


def dropping_placement(groups, num_devices):
    """Forgets every group but the first."""
    from rlinf_core.runtime.placement import Placement

    first = next(iter(groups))
    return Placement("dropping", num_devices, {first: groups[first]})


def value_error_placement(groups, num_devices):
    """Refuses shared devices with a bare ValueError that names no config key."""
    from rlinf_core.runtime.placement import Placement

    seen: set[int] = set()
    for g in groups.values():
        if seen & set(g.devices):
            raise ValueError("overlap")
        seen |= set(g.devices)
    return Placement("strict", num_devices, dict(groups))


def exact_match_reversed(responses, answers, **_):
    """Scores are right, but come back in reverse order."""
    return [float(r.strip() == str(a).strip()) for r, a in zip(responses, answers, strict=True)][::-1]
