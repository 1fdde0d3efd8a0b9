"""``rlinf/InstructionTargets-v0``: a small instruction-following task with images, for VLA policies.

Coloured targets are drawn in a small RGB image; the instruction names one of them ("move to the red
target"); the agent (a white dot) moves by ``step_size * action`` per step and succeeds when it is
within ``success_radius`` of the named target. Observations (a gymnasium ``Dict``):

- ``image`` uint8 ``(image_size, image_size, 3)``: the scene (the ``gymnasium`` env exposes it as
  ``images["image"]``);
- ``agent`` float32 ``(2,)``: the agent's position in ``[-1, 1]^2`` (the ``state``);
- ``instruction`` a ``Text``: the task (the ``gymnasium`` env exposes it as ``instruction``).

Actions: ``Box(-1, 1, (2,))``. Reward: the decrease of the distance to the named target (dense), plus
``1`` on success, which ends the episode (``terminated``); ``info["success"]`` says so. Targets sit on a
circle; with ``shuffle_targets`` (default) the colours are assigned to the slots at random each episode,
so the image must be read; without it each colour keeps its slot and the instruction alone decides.

Registered at import; in a config: ``env_id: rlinf_envs_embodied.envs.instruction_targets:rlinf/InstructionTargets-v0``.
"""

from __future__ import annotations

import string
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

ENV_ID = "rlinf/InstructionTargets-v0"
#: Colour name -> RGB, in the order targets are taken.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40), "green": (40, 200, 60), "blue": (50, 90, 240), "yellow": (240, 220, 40),
    "purple": (160, 60, 200), "orange": (250, 140, 20),
}
INSTRUCTION = "move to the {colour} target"
AGENT_RGB = (255, 255, 255)
BACKGROUND_RGB = (30, 30, 30)


class InstructionTargetsEnv(gym.Env):
    """See the module docstring. ``num_targets`` (2..6), ``image_size`` pixels, ``step_size``,
    ``success_radius``, ``target_radius`` (distance of the targets from the centre), ``shuffle_targets``."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, num_targets: int = 3, image_size: int = 32, step_size: float = 0.25,
                 success_radius: float = 0.2, target_radius: float = 0.7, shuffle_targets: bool = True,
                 render_mode: str | None = None):
        if not 2 <= num_targets <= len(COLOURS):
            raise ValueError(f"num_targets must be in 2..{len(COLOURS)}, got {num_targets}")
        if image_size < 8:
            raise ValueError(f"image_size must be >= 8, got {image_size}")
        self.num_targets, self.image_size = int(num_targets), int(image_size)
        self.step_size, self.success_radius = float(step_size), float(success_radius)
        self.shuffle_targets, self.render_mode = bool(shuffle_targets), render_mode
        angles = np.pi / 2 + 2 * np.pi * np.arange(self.num_targets) / self.num_targets
        #: Target slot positions ``(num_targets, 2)`` in ``[-1, 1]^2`` (y up).
        self.slots = (target_radius * np.stack([np.cos(angles), np.sin(angles)], -1)).astype(np.float32)
        self.colours = list(COLOURS)[: self.num_targets]
        longest = max(len(INSTRUCTION.format(colour=c)) for c in self.colours)
        self.observation_space = spaces.Dict({
            "image": spaces.Box(0, 255, (self.image_size, self.image_size, 3), np.uint8),
            "agent": spaces.Box(-1.0, 1.0, (2,), np.float32),
            "instruction": spaces.Text(longest, min_length=1, charset=string.ascii_lowercase + " "),
        })
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.order = np.arange(self.num_targets)  # colour i sits in slot order[i]
        self.goal, self.agent = 0, np.zeros(2, np.float32)

    # ------------------------------------------------------------------ gymnasium API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        self.order = rng.permutation(self.num_targets) if self.shuffle_targets else np.arange(self.num_targets)
        self.goal = int(rng.integers(self.num_targets))
        self.agent = rng.uniform(-0.3, 0.3, size=2).astype(np.float32)
        return self._obs(), {"success": False}

    def step(self, action):
        before = self._distance()
        move = np.clip(np.asarray(action, dtype=np.float32).reshape(2), -1.0, 1.0) * self.step_size
        self.agent = np.clip(self.agent + move, -1.0, 1.0).astype(np.float32)
        after = self._distance()
        success = bool(after <= self.success_radius)
        reward = float(before - after) + (1.0 if success else 0.0)
        return self._obs(), reward, success, False, {"success": success}

    def render(self) -> np.ndarray:
        return self._image()

    # ------------------------------------------------------------------ helpers

    @property
    def instruction(self) -> str:
        return INSTRUCTION.format(colour=self.colours[self.goal])

    def target_position(self) -> np.ndarray:
        """Where the named target is."""
        return self.slots[self.order[self.goal]]

    def _distance(self) -> float:
        return float(np.linalg.norm(self.agent - self.target_position()))

    def _obs(self) -> dict[str, Any]:
        return {"image": self._image(), "agent": self.agent.copy(), "instruction": self.instruction}

    def _pixel(self, pos: np.ndarray) -> tuple[float, float]:
        """(row, col) of a position (y up)."""
        s = self.image_size - 1
        return (1.0 - pos[1]) / 2 * s, (pos[0] + 1.0) / 2 * s

    def _image(self) -> np.ndarray:
        s = self.image_size
        img = np.empty((s, s, 3), np.uint8)
        img[:] = BACKGROUND_RGB
        rows, cols = np.mgrid[0:s, 0:s]
        radius = max(1.5, s / 12)
        for colour, slot in zip(self.colours, self.order, strict=True):
            r, c = self._pixel(self.slots[slot])
            img[(rows - r) ** 2 + (cols - c) ** 2 <= radius**2] = COLOURS[colour]
        r, c = self._pixel(self.agent)
        img[(rows - r) ** 2 + (cols - c) ** 2 <= (radius * 0.6) ** 2] = AGENT_RGB
        return img


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=InstructionTargetsEnv, max_episode_steps=12)
