"""The ``maniskill`` env (extra ``[maniskill]``): ManiSkill3 tasks (``PickCube-v1`` ...) on SAPIEN.

Config (the ``env.train`` / ``env.eval`` section): ``env_id`` a ManiSkill3 task id,
``max_episode_steps`` (default: the task's, e.g. 50 for PickCube), ``ignore_terminations``,
``auto_reset`` and ``init_params`` (:class:`~rlinf_envs_embodied.options.ManiSkillOptions`:
``obs_mode`` ``state`` or ``rgb``, ``sim_backend``, ``control_mode``, ``reward_mode``,
``camera_heights`` / ``camera_widths``, ``make_kwargs``).

This release runs the **CPU** simulation backend: one ``physx_cpu`` sub-env per rlinf sub-env
(ManiSkill's ``CPUGymWrapper``), vectorized by gymnasium like the other envs
(:mod:`~rlinf_envs_embodied.envs.gym_vector`). ``sim_backend: auto`` means CPU for now; the
GPU-batched backend (one ``physx_cuda`` env of ``N`` sub-scenes, tensors kept on the GPU) is not
implemented yet and ``sim_backend: gpu`` says so.

Observations: ``state`` (``obs_mode: state``: ManiSkill's flat state; ``rgb``: the robot's
proprioception and task extras, flattened) and with ``rgb`` each camera as ``images[<camera>]``
(uint8 HWC). ``info["success"]`` is ManiSkill's own. Every auto-reset is seeded from the sub-env's
own generator, so equal seeds give equal rollouts across episodes.

SAPIEN needs Vulkan. On a CPU-only Debian 12 machine, run
``eval "$(rlinf-envs-embodied/scripts/setup_cpu_vulkan.sh)"`` first (Mesa 25's lavapipe).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
from rlinf_core.errors import ConfigError, suggestion_text

from rlinf_envs_embodied.envs.gym_vector import GymVectorEnv
from rlinf_envs_embodied.options import ManiSkillOptions, cfg_get, plain, section_of

PIP_HINT = "pip install 'rlinf-envs-embodied[maniskill]'"
CPU_BACKENDS = ("auto", "cpu", "physx_cpu")
GPU_BACKENDS = ("gpu", "cuda", "physx_cuda")


def import_maniskill() -> Any:
    """``mani_skill.envs`` (registers the tasks), or an ImportError whose one line says what to install."""
    try:
        import mani_skill.envs
    except ImportError as exc:
        raise ImportError(f"env 'maniskill' needs the mani-skill package, which is not installed. Fix: {PIP_HINT}") from exc
    return mani_skill.envs


class _DropSensorParams(gym.ObservationWrapper):
    """Removes ``sensor_param`` (camera matrices) from an ``rgb`` observation dict, keeping state and images."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.observation_space = gym.spaces.Dict(
            {k: v for k, v in env.observation_space.spaces.items() if k != "sensor_param"})

    def observation(self, observation: dict) -> dict:
        return {k: v for k, v in observation.items() if k != "sensor_param"}


class _SeededResets(gym.Wrapper):
    """Gives every unseeded reset (auto-resets included) a seed drawn from a generator that the last
    seeded reset started: ManiSkill draws unseeded episodes from a process-wide generator, which
    would make two envs with the same seeds diverge after their first auto-reset."""

    _rng: np.random.Generator | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        elif self._rng is not None:
            seed = int(self._rng.integers(2**31 - 1))
        return self.env.reset(seed=seed, options=options)


def make_env(env_id: str, *, obs_mode: str, max_episode_steps: int | None, ignore_terminations: bool,
             kwargs: dict[str, Any], key: str) -> gym.Env:
    """One CPU ManiSkill sub-env (module-level so ``async`` workers can build it)."""
    import_maniskill()
    from mani_skill.utils.wrappers.gymnasium import CPUGymWrapper

    try:
        env = gym.make(env_id, num_envs=1, obs_mode=obs_mode, sim_backend="physx_cpu",
                       max_episode_steps=max_episode_steps, disable_env_checker=True, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"{key}.init_params: gymnasium.make({env_id!r}) rejected {sorted(kwargs)}: {exc}") from exc
    except RuntimeError as exc:
        if "vulkan" in str(exc).lower() or "physical device" in str(exc).lower():
            raise ConfigError(f"{key}.simulator_type: ManiSkill3 found no usable Vulkan device ({exc}). On a CPU-only "
                              f"Debian 12 machine run: eval \"$(rlinf-envs-embodied/scripts/setup_cpu_vulkan.sh)\"") from exc
        raise
    env = _SeededResets(CPUGymWrapper(env, ignore_terminations=ignore_terminations))
    return _DropSensorParams(env) if isinstance(env.observation_space, gym.spaces.Dict) else env


class ManiSkillEnv(GymVectorEnv):
    """``num_envs`` ManiSkill3 sub-envs of ``env_id`` on the CPU backend, seeded ``seed + i``."""

    def __init__(self, config: Any, *, num_envs: int, seed: int, device: str = "cpu"):
        key = section_of(config)
        opts = ManiSkillOptions.from_config(config, key)
        if opts.sim_backend in GPU_BACKENDS:
            raise ConfigError(f"{key}.init_params.sim_backend: {opts.sim_backend!r}: the GPU-batched ManiSkill backend "
                              "is not implemented in this release; use sim_backend: cpu")
        if opts.sim_backend not in CPU_BACKENDS:
            raise ConfigError(f"{key}.init_params.sim_backend: {opts.sim_backend!r} is not a backend."
                              f"{suggestion_text(opts.sim_backend, CPU_BACKENDS + GPU_BACKENDS)} "
                              f"Valid: {', '.join(CPU_BACKENDS + GPU_BACKENDS)}")
        import_maniskill()
        from mani_skill.utils.registration import REGISTERED_ENVS

        env_id = cfg_get(config, "env_id")
        if not env_id or env_id not in REGISTERED_ENVS:
            tasks = list(REGISTERED_ENVS)
            raise ConfigError(f"{key}.env_id: {env_id!r} is not a ManiSkill3 task.{suggestion_text(str(env_id), tasks)} "
                              "Valid: the tasks in mani_skill.utils.registration.REGISTERED_ENVS, e.g. PickCube-v1")
        kwargs = dict(plain(opts.make_kwargs))
        for name in ("control_mode", "reward_mode"):
            if getattr(opts, name) is not None:
                kwargs[name] = getattr(opts, name)
        if opts.obs_mode == "rgb":
            kwargs.setdefault("sensor_configs", {"width": int(opts.camera_widths), "height": int(opts.camera_heights)})
        factory = partial(make_env, str(env_id), obs_mode=opts.obs_mode,
                          max_episode_steps=cfg_get(config, "max_episode_steps"),
                          ignore_terminations=bool(cfg_get(config, "ignore_terminations", False)), kwargs=kwargs, key=key)
        self.env_id = str(env_id)
        self.device = device
        super().__init__([factory] * num_envs, seed=seed, vectorization=opts.vectorization,
                         auto_reset=bool(cfg_get(config, "auto_reset", True)), clip_actions=True,
                         name=f"maniskill env {env_id!r} ({key})")
