"""``reacher2d``: a two-link planar arm that reaches a random target, simulated by MuJoCo.

Implements ``rlinf_core.interfaces.VectorEnv``: ``N`` sub-environments share one ``MjModel`` and
each has its own ``MjData``. Config (the ``env.train`` / ``env.eval`` section):
``max_episode_steps`` (default 50: the episode is then *truncated*) and ``init_params``
(:class:`rlinf_sim_example.options.Reacher2DOptions`).

- Observation ``state`` float32 ``(N, 10)``: cos and sin of both joint angles, the target's x, y,
  both joint velocities, fingertip minus target (x, y). With ``images: true``, ``images["top"]``
  uint8 ``(N, S, S, 3)``: a top-down view of the links (white), fingertip (green) and target (red),
  drawn from MuJoCo's body positions (no OpenGL needed).
- Action ``(N, 2)`` joint torques in [-1, 1] (clipped), or chunks ``(N, K, 2)``.
- Reward: ``-|fingertip - target| - control_cost * |action|^2``; ``info["success"]``: within
  ``success_tolerance`` of the target (terminates with ``terminate_on_success``).
- Sub-env ``i`` draws its start and target from ``numpy.random.default_rng(seed + i)``; an episode
  that ends is reset in the same step, ``info["final_observation"]`` holding its last observation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import mujoco
import numpy as np
from gymnasium import spaces

from rlinf_sim_example.options import read_reacher_options

LINK = 0.1
REACH = 2 * LINK
XML = f"""
<mujoco model="reacher2d">
  <option timestep="0.01" integrator="RK4" gravity="0 0 0"/>
  <default>
    <joint type="hinge" axis="0 0 1" damping="0.01" armature="0.0005"/>
    <geom type="capsule" size="0.01" contype="0" conaffinity="0" density="500"/>
  </default>
  <worldbody>
    <body name="upper">
      <joint name="shoulder"/>
      <geom fromto="0 0 0 {LINK} 0 0"/>
      <body name="lower" pos="{LINK} 0 0">
        <joint name="elbow" range="-2.8 2.8" limited="true"/>
        <geom fromto="0 0 0 {LINK} 0 0"/>
        <site name="fingertip" pos="{LINK} 0 0" size="0.01"/>
      </body>
    </body>
    <body name="target" mocap="true"><site name="target" size="0.01"/></body>
  </worldbody>
  <actuator>
    <motor joint="shoulder" gear="0.05" ctrlrange="-1 1" ctrllimited="true"/>
    <motor joint="elbow" gear="0.05" ctrlrange="-1 1" ctrllimited="true"/>
  </actuator>
</mujoco>
"""


class Reacher2DEnv:
    """``num_envs`` MuJoCo reachers stepped together (see the module docstring)."""

    def __init__(self, config: Any, *, num_envs: int, seed: int, device: str = "cpu"):
        opts = read_reacher_options(config)  # env.train.init_params or env.eval.init_params, checked
        self.num_envs = int(num_envs)
        self.max_episode_steps = int(config.get("max_episode_steps") or 50)
        self.frame_skip = opts.frame_skip
        self.tolerance = opts.success_tolerance
        self.terminate_on_success = opts.terminate_on_success
        self.control_cost = opts.control_cost
        self.image_size = opts.image_size if opts.images else 0
        self.model = mujoco.MjModel.from_xml_string(XML)
        self.data = [mujoco.MjData(self.model) for _ in range(self.num_envs)]
        self._tip = self.model.site("fingertip").id
        self._elbow_body = self.model.body("lower").id
        entries: dict[str, spaces.Space] = {"state": spaces.Box(-np.inf, np.inf, (10,), np.float32)}
        if self.image_size:
            entries["images"] = spaces.Dict({"top": spaces.Box(0, 255, (self.image_size, self.image_size, 3), np.uint8)})
        self.observation_space = spaces.Dict(entries)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._rngs = [np.random.default_rng(seed + i) for i in range(self.num_envs)]
        self._t = np.zeros(self.num_envs, np.int64)

    # ------------------------------------------------------------------ VectorEnv

    def reset(self, *, seed: int | Sequence[int] | None = None,
              options: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Reset every sub-env (reseeded ``seed + i``, or ``seed[i]``, when a seed is given)."""
        if seed is not None:
            seeds = [int(seed) + i for i in range(self.num_envs)] if isinstance(seed, int) else [int(s) for s in seed]
            if len(seeds) != self.num_envs:
                raise ValueError(f"env 'reacher2d': reset(seed=...) needs {self.num_envs} seeds, got {len(seeds)}")
            self._rngs = [np.random.default_rng(s) for s in seeds]
        for i in range(self.num_envs):
            self._reset_one(i)
        return self._obs(), {"success": self._distances() < self.tolerance}

    def step(self, actions: Any) -> tuple[dict[str, Any], Any, Any, Any, dict[str, Any]]:
        """Single actions ``(N, 2)`` or chunks ``(N, K, 2)``; see the module docstring."""
        acts = np.asarray(actions.detach().cpu() if hasattr(actions, "detach") else actions, dtype=np.float64)
        n = self.num_envs
        if acts.ndim not in (2, 3) or acts.shape[0] != n or acts.shape[-1] != 2:
            raise ValueError(f"env 'reacher2d': actions of shape {acts.shape} do not fit {n} sub-envs: expected ({n}, 2) "
                             f"or ({n}, K, 2); check actor.model.action_dim (2) and actor.model.num_action_chunks")
        chunked = acts.ndim == 3
        acts = np.clip(acts if chunked else acts[:, None], -1.0, 1.0)
        k = acts.shape[1]
        rewards = np.zeros((n, k), np.float32)
        terminated, truncated, success = (np.zeros((n, k), bool) for _ in range(3))
        final: dict[str, Any] | None = None
        ended = np.zeros(n, bool)
        for j in range(k):
            for i, data in enumerate(self.data):
                data.ctrl[:] = acts[i, j]
                mujoco.mj_step(self.model, data, nstep=self.frame_skip)
            self._t += 1
            dist = self._distances()
            rewards[:, j] = -dist - self.control_cost * np.square(acts[:, j]).sum(-1)
            success[:, j] = dist < self.tolerance
            terminated[:, j] = success[:, j] & self.terminate_on_success
            truncated[:, j] = (self._t >= self.max_episode_steps) & ~terminated[:, j]
            done = terminated[:, j] | truncated[:, j]
            if done.any():
                now = self._obs()
                final = now if final is None else final
                for i in np.flatnonzero(done):
                    _copy_row(final, now, i)
                    ended[i] = True
                    self._reset_one(i)
        info: dict[str, Any] = {"success": success.any(axis=1)}
        if chunked:
            info["step_success"] = success
        if final is not None:
            info["final_observation"], info["_final_observation"] = final, ended
        if not chunked:
            return self._obs(), rewards[:, 0], terminated[:, 0], truncated[:, 0], info
        return self._obs(), rewards, terminated, truncated, info

    def close(self) -> None:
        """Drop the MuJoCo data (MuJoCo frees it with the Python objects)."""
        self.data = []

    # ------------------------------------------------------------------ helpers

    def _reset_one(self, i: int) -> None:
        rng, data = self._rngs[i], self.data[i]
        mujoco.mj_resetData(self.model, data)
        data.qpos[:] = rng.uniform(-0.1, 0.1, 2)
        data.qvel[:] = rng.uniform(-0.005, 0.005, 2)
        while True:  # a target in the disk the arm reaches
            target = rng.uniform(-REACH, REACH, 2)
            if np.linalg.norm(target) < REACH:
                break
        data.mocap_pos[0, :2] = target
        mujoco.mj_forward(self.model, data)
        self._t[i] = 0

    def _distances(self) -> np.ndarray:
        return np.array([np.linalg.norm(d.site_xpos[self._tip, :2] - d.mocap_pos[0, :2]) for d in self.data])

    def _obs(self) -> dict[str, Any]:
        rows = []
        for d in self.data:
            q, target, tip = d.qpos, d.mocap_pos[0, :2], d.site_xpos[self._tip, :2]
            rows.append([np.cos(q[0]), np.cos(q[1]), np.sin(q[0]), np.sin(q[1]), *target, *d.qvel, *(tip - target)])
        obs: dict[str, Any] = {"state": np.asarray(rows, np.float32)}
        if self.image_size:
            obs["images"] = {"top": np.stack([self._draw(d) for d in self.data])}
        return obs

    def _draw(self, data: mujoco.MjData) -> np.ndarray:
        """A top-down ``(S, S, 3)`` uint8 view: links white, fingertip green, target red."""
        s = self.image_size
        frame = np.zeros((s, s, 3), np.uint8)

        def pixel(xy: np.ndarray) -> tuple[int, int]:
            u = np.clip(((xy + REACH * 1.05) / (2 * REACH * 1.05) * (s - 1)).round().astype(int), 0, s - 1)
            return int(s - 1 - u[1]), int(u[0])  # row (y up), column

        points = [np.zeros(2), data.xpos[self._elbow_body, :2], data.site_xpos[self._tip, :2]]
        for a, b in zip(points, points[1:], strict=False):
            for t in np.linspace(0.0, 1.0, 2 * s):
                frame[pixel(a + t * (b - a))] = 255
        frame[pixel(points[-1])] = (0, 255, 0)
        frame[pixel(data.mocap_pos[0, :2])] = (255, 0, 0)
        return frame


def _copy_row(dst: dict[str, Any], src: dict[str, Any], i: int) -> None:
    for key, value in src.items():
        if isinstance(value, dict):
            _copy_row(dst[key], value, i)
        else:
            dst[key][i] = value[i]
