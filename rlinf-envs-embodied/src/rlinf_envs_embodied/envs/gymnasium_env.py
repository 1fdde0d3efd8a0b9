"""The ``gymnasium`` env: any registered gymnasium id (``env.<split>.env_id``), vectorized by gymnasium.

Config (the ``env.train`` / ``env.eval`` section): ``env_id``, ``max_episode_steps`` (a
``TimeLimit``: its end is ``truncated``), ``auto_reset``, and ``init_params``
(:class:`~rlinf_envs_embodied.options.GymnasiumOptions`: ``vectorization``, ``images``,
``clip_actions``, ``make_kwargs``). An id of the form ``module:EnvId`` imports ``module`` first,
as ``gymnasium.make`` does. Observations, chunks and info: :mod:`rlinf_envs_embodied.envs.gym_vector`.
"""

from __future__ import annotations

import importlib
from functools import partial
from typing import Any

import gymnasium as gym
from rlinf_core.errors import ConfigError, suggestion_text

from rlinf_envs_embodied.envs.gym_vector import RENDER_CONTEXT, GymVectorEnv
from rlinf_envs_embodied.options import GymnasiumOptions, cfg_get, plain, section_of

RENDER_KEY = "render"


def resolve_env_id(env_id: str, key: str) -> str:
    """The registered id for ``env_id`` (importing ``module`` of ``module:EnvId``), or a one-line error."""
    if ":" in env_id:
        module, env_id = env_id.split(":", 1)
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"{key}: cannot import {module!r} to register {env_id!r}: {exc}. "
                              f"Install the package that provides it") from exc
    if env_id not in gym.registry:
        raise ConfigError(f"{key}: {env_id!r} is not a registered gymnasium env.{suggestion_text(env_id, gym.registry)} "
                          f"List them with: python -c 'import gymnasium; gymnasium.pprint_registry()'")
    return env_id


def make_env(env_id: str, *, images: bool, max_episode_steps: int | None, make_kwargs: dict[str, Any],
             key: str) -> gym.Env:
    """One sub-env: ``gymnasium.make`` (checker off), plus its render frame when ``images``."""
    kwargs = dict(make_kwargs)
    if images:
        kwargs["render_mode"] = "rgb_array"
    try:
        env = gym.make(env_id, max_episode_steps=max_episode_steps, disable_env_checker=True, **kwargs)
    except gym.error.DependencyNotInstalled as exc:
        raise ConfigError(f"{key}.env_id: {env_id!r} needs a package that is not installed: {exc}") from exc
    except TypeError as exc:
        raise ConfigError(f"{key}.init_params.make_kwargs: gymnasium.make({env_id!r}) rejected "
                          f"{sorted(kwargs)}: {exc}") from exc
    if images:
        try:
            env = gym.wrappers.AddRenderObservation(env, render_only=False, render_key=RENDER_KEY)
        except (TypeError, ValueError, gym.error.DependencyNotInstalled) as exc:
            env.close()
            raise ConfigError(f"{key}.init_params.images: {env_id!r} cannot render rgb frames: {exc}") from exc
    return env


class GymnasiumEnv(GymVectorEnv):
    """``num_envs`` copies of a gymnasium env (``env_id``), seeded ``seed + i``."""

    def __init__(self, config: Any, *, num_envs: int, seed: int, device: str = "cpu"):
        key = section_of(config)
        opts = GymnasiumOptions.from_config(config, key)
        if cfg_get(config, "ignore_terminations", False):
            raise ConfigError(f"{key}.ignore_terminations: the gymnasium env cannot continue a terminated episode; "
                              "set it to false")
        env_id = cfg_get(config, "env_id")
        if not env_id:
            raise ConfigError(f"{key}.env_id: the gymnasium env needs a registered gymnasium id, e.g. CartPole-v1")
        env_id = resolve_env_id(str(env_id), f"{key}.env_id")
        factory = partial(make_env, env_id, images=bool(opts.images),
                          max_episode_steps=cfg_get(config, "max_episode_steps"),
                          make_kwargs=plain(opts.make_kwargs), key=key)
        first = factory()  # built here so that a bad id / argument fails with its one-line message
        if opts.vectorization == "async":
            first.close()
            fns = [factory] * num_envs
        else:
            fns = [lambda: first] + [factory] * (num_envs - 1)
        self.env_id = env_id
        self.device = device
        super().__init__(fns, seed=seed, vectorization=opts.vectorization, num_workers=opts.num_workers,
                         auto_reset=bool(cfg_get(config, "auto_reset", True)), clip_actions=bool(opts.clip_actions),
                         name=f"gymnasium env {env_id!r} ({key})", context=RENDER_CONTEXT if opts.images else None)
