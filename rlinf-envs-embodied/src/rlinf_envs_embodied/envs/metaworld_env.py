"""The ``metaworld`` env (extra ``[metaworld]``): Meta-World v3 manipulation tasks on MuJoCo.

Config (the ``env.train`` / ``env.eval`` section): ``env_id`` an MT1 task (``reach-v3``,
``pick-place-v3``, ...) or ``task_suite_name`` ``MT10`` / ``MT25`` / ``MT50`` (sub-env ``i`` runs
the suite's task ``i mod len(suite)``), ``max_episode_steps`` (default: Meta-World's 500),
``ignore_terminations``, ``auto_reset`` and ``init_params``
(:class:`~rlinf_envs_embodied.options.MetaWorldOptions`).

Observations: ``state`` (39 floats; plus the task's one-hot with ``use_one_hot``), ``instruction``
(the task name, e.g. ``"reach"``), and with ``images`` the camera ``images[camera_name]`` (uint8 HWC,
MuJoCo rendering: ``MUJOCO_GL`` is chosen by :func:`~rlinf_envs_embodied.envs.rendering.select_mujoco_gl`).
Actions: 4 floats in [-1, 1]. ``info["success"]`` comes from Meta-World's own ``info["success"]``.

Each task's 50 goal variations are Meta-World's ``MT1(task, seed=seed)`` (so ``seed`` also picks the
goal set); at every reset a sub-env draws one of them with its own generator, reseeded by
``reset(seed=...)`` (Meta-World's ``RandomTaskSelectWrapper`` draws before the seed is applied,
which would make ``reset(seed=s)`` not fix the goal).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache, partial
from typing import Any

import gymnasium as gym
import numpy as np
from rlinf_core.errors import ConfigError, suggestion_text

from rlinf_envs_embodied.envs.gym_vector import RENDER_CONTEXT, GymVectorEnv
from rlinf_envs_embodied.envs.rendering import close_offscreen_viewer, select_mujoco_gl
from rlinf_envs_embodied.options import MetaWorldOptions, cfg_get, section_of

SUITES = ("MT10", "MT25", "MT50")
PIP_HINT = "pip install 'rlinf-envs-embodied[metaworld]'"


def import_metaworld() -> Any:
    """``metaworld``, or an ImportError whose one line says what to install."""
    try:
        import metaworld
    except ImportError as exc:
        raise ImportError(f"env 'metaworld' needs the metaworld package, which is not installed. Fix: {PIP_HINT}") from exc
    return metaworld


def task_names(metaworld: Any) -> list[str]:
    """Every Meta-World v3 task name, from Meta-World's own list."""
    return list(metaworld.ALL_V3_ENVIRONMENTS)


def suite_tasks(metaworld: Any, suite: str) -> list[str]:
    """The task names of ``MT10`` / ``MT25`` / ``MT50``, in Meta-World's order."""
    return list(getattr(metaworld.env_dict, f"{suite}_V3"))


@lru_cache(maxsize=64)
def mt1_benchmark(task: str, seed: int) -> Any:
    """Meta-World's ``MT1(task, seed=seed)`` (its 50 goal variations), built once per process (about 1 s each)."""
    return import_metaworld().MT1(task, seed=seed)


class _TaskSampler(gym.Wrapper):
    """Sets one of ``tasks`` (goal variations) at every reset, drawn with a generator of its own."""

    def __init__(self, env: gym.Env, tasks: list[Any], seed: int):
        super().__init__(env)
        self._tasks = tasks
        self._rng = np.random.default_rng(seed)
        env.unwrapped.seed(seed)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:  # Meta-World's reset ignores its seed: seed the env and the draw here
            self._rng = np.random.default_rng(seed)
            self.env.unwrapped.seed(seed)
        self.env.unwrapped.set_task(self._tasks[int(self._rng.integers(len(self._tasks)))])
        return self.env.reset(options=options)


class _OwnGLContext(gym.Wrapper):
    """Keeps this sub-env's OpenGL state to itself, for several MuJoCo renderers in one process.

    gymnasium's MuJoCo renderer makes its context current only when it creates it, so each frame makes this
    sub-env's context current first; ``close`` frees MuJoCo's render context in its own context
    (:func:`~rlinf_envs_embodied.envs.rendering.close_offscreen_viewer`). Without either, a living env's
    frames came back blank, without an error, once another env in the process had been closed.
    """

    def _viewer(self) -> Any:
        return getattr(getattr(self.env.unwrapped, "mujoco_renderer", None), "viewer", None)

    def render(self) -> Any:
        viewer = self._viewer()
        if viewer is not None:  # made (and made current) by the first frame
            viewer.make_context_current()
        return self.env.render()

    def close(self) -> None:
        viewer = self._viewer()
        if viewer is not None:
            close_offscreen_viewer(viewer)
        super().close()


def make_env(env_cls: type, tasks: list[Any], *, seed: int, max_episode_steps: int | None,
             terminate_on_success: bool, one_hot: tuple[int, int] | None, camera: tuple[str, int, int] | None,
             shadow_size: int | None = None) -> gym.Env:
    """One Meta-World sub-env with rlinf's wrappers (module-level so ``async`` workers can build it)."""
    import metaworld.wrappers as mw_wrappers

    kwargs: dict[str, Any] = {}
    if camera is not None:
        kwargs = {"render_mode": "rgb_array", "camera_name": camera[0], "height": camera[1], "width": camera[2]}
    env: gym.Env = env_cls(**kwargs)
    if shadow_size is not None:  # read when the renderer's context is made, at the first frame
        env.unwrapped.model.vis.quality.shadowsize = shadow_size
    horizon = max_episode_steps or env.max_path_length
    env.max_path_length = max(env.max_path_length, horizon)  # Meta-World refuses to step past it
    env = _TaskSampler(env, tasks, seed)
    env = gym.wrappers.TimeLimit(env, horizon)
    if terminate_on_success:
        env = mw_wrappers.AutoTerminateOnSuccessWrapper(env)
    if one_hot is not None:
        env = mw_wrappers.OneHotWrapper(env, *one_hot)
    if camera is not None:
        env = gym.wrappers.AddRenderObservation(_OwnGLContext(env), render_only=False, render_key=camera[0],
                                                obs_key="state")
    return env


class MetaWorldEnv(GymVectorEnv):
    """``num_envs`` Meta-World sub-envs (one task, or a suite's tasks round-robin), seeded ``seed + i``."""

    def __init__(self, config: Any, *, num_envs: int, seed: int, device: str = "cpu"):
        key = section_of(config)
        opts = MetaWorldOptions.from_config(config, key)
        names = check_tasks(config, key)
        suite = len(names) > 1 or cfg_get(config, "task_suite_name") is not None
        use_one_hot = suite if opts.use_one_hot is None else bool(opts.use_one_hot)
        camera = None
        if opts.images:
            select_mujoco_gl(f"{key}.init_params.images")
            camera = (str(opts.camera_name), int(opts.camera_heights), int(opts.camera_widths))
        used = [names[i % len(names)] for i in range(num_envs)]
        benchmarks = {name: mt1_benchmark(name, seed) for name in dict.fromkeys(used)}
        terminate = bool(opts.terminate_on_success) and not cfg_get(config, "ignore_terminations", False)
        fns = [
            partial(make_env, benchmarks[name].train_classes[name], benchmarks[name].train_tasks, seed=seed + i,
                    max_episode_steps=cfg_get(config, "max_episode_steps"), terminate_on_success=terminate,
                    one_hot=(names.index(name), len(names)) if use_one_hot else None, camera=camera,
                    shadow_size=opts.shadow_size)
            for i, name in enumerate(used)
        ]
        self.task_names = used
        self.device = device
        try:
            super().__init__(fns, seed=seed, vectorization=opts.vectorization, num_workers=opts.num_workers,
                             auto_reset=bool(cfg_get(config, "auto_reset", True)), clip_actions=bool(opts.clip_actions),
                             name=f"metaworld env {used[0]!r} ({key})", context=RENDER_CONTEXT if camera else None,
                             instructions=[re.sub(r"-v\d+$", "", n).replace("-", " ") for n in used])
        except Exception as exc:
            if camera is not None and "render" in f"{type(exc).__name__} {exc}".lower():
                raise ConfigError(f"{key}.init_params.images: rendering camera {camera[0]!r} failed with "
                                  f"MUJOCO_GL={os.environ.get('MUJOCO_GL')}: {exc}") from exc
            raise


def check_tasks(config: Any, key: str) -> list[str]:
    """The Meta-World task names an env section asks for (``key``: its path), or a one-line ConfigError."""
    metaworld = import_metaworld()
    env_id, suite = cfg_get(config, "env_id"), cfg_get(config, "task_suite_name")
    if env_id and suite:
        raise ConfigError(f"{key}.env_id and {key}.task_suite_name are both set: give one task (env_id, e.g. "
                          f"reach-v3) or one suite (task_suite_name: {', '.join(SUITES)})")
    if suite:
        upper = str(suite).upper()
        if upper not in SUITES:
            raise ConfigError(f"{key}.task_suite_name: {suite!r} is not a Meta-World suite."
                              f"{suggestion_text(str(suite), SUITES)} Valid: {', '.join(SUITES)}")
        return suite_tasks(metaworld, upper)
    if not env_id:
        raise ConfigError(f"{key}.env_id: the metaworld env needs a task (e.g. reach-v3) or {key}.task_suite_name")
    all_names = task_names(metaworld)
    if env_id not in all_names:
        raise ConfigError(f"{key}.env_id: {env_id!r} is not a Meta-World task.{suggestion_text(str(env_id), all_names)} "
                          f"Valid: the {len(all_names)} names of metaworld.ALL_V3_ENVIRONMENTS, e.g. reach-v3")
    return [str(env_id)]
