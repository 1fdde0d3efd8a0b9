"""A tiny gymnasium env with known dynamics, registered as ``RlinfTest/Counting-v0`` for the env tests."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

COUNTING_ID = "RlinfTest/Counting-v0"


class CountingEnv(gym.Env):
    """``state = [t, last action, start value, 0]``; reward ``a + t / 100``; ends at ``terminate_at``.

    ``start value`` is drawn from the env's seeded generator at reset; ``info["success"]`` is true
    at step ``success_at``; ``render()`` is an ``(8, 6, 3)`` frame filled with ``t``.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, terminate_at: int | None = 3, success_at: int | None = None, render_mode: str | None = None):
        self.observation_space = spaces.Box(-np.inf, np.inf, (4,), np.float32)
        self.action_space = spaces.Box(-2.0, 2.0, (1,), np.float32)
        self.terminate_at, self.success_at, self.render_mode = terminate_at, success_at, render_mode
        self.t, self.start, self.last = 0, 0.0, 0.0

    def _obs(self) -> np.ndarray:
        return np.array([self.t, self.last, self.start, 0.0], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.last, self.start = 0, 0.0, float(self.np_random.uniform())
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        self.last = float(np.asarray(action).reshape(-1)[0])
        reward = self.last + self.t / 100
        terminated = self.terminate_at is not None and self.t >= self.terminate_at
        return self._obs(), reward, terminated, False, {"success": self.t == self.success_at}

    def render(self):
        return np.full((8, 6, 3), self.t, dtype=np.uint8)


if COUNTING_ID not in gym.registry:
    gym.register(COUNTING_ID, entry_point=CountingEnv)


@pytest.fixture
def counting_id() -> str:
    return COUNTING_ID
