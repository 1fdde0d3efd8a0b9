"""The ``maniskill`` env (extra ``[maniskill]``): ManiSkill3 tasks (``PickCube-v1`` ...) on SAPIEN.

Config (the ``env.train`` / ``env.eval`` section): ``env_id`` a ManiSkill3 task id,
``max_episode_steps`` (default: the task's, e.g. 50 for PickCube), ``ignore_terminations``,
``auto_reset`` and ``init_params`` (:class:`~rlinf_envs_embodied.options.ManiSkillOptions`:
``obs_mode`` ``state`` or ``rgb``, ``sim_backend``, ``control_mode``, ``reward_mode``,
``camera_heights`` / ``camera_widths``, ``make_kwargs``).

Two backends, chosen by ``sim_backend`` (``auto``: GPU when torch sees CUDA, else CPU):

- **GPU** (``gpu`` / ``cuda`` / ``physx_cuda``): :class:`ManiSkillGPUEnv`, ONE ManiSkill env of
  ``num_envs`` parallel sub-scenes on the device (``device: cuda:k`` picks ``physx_cuda:k``), wrapped
  in ManiSkill's ``ManiSkillVectorEnv``: auto-reset is ManiSkill's own partial reset of the finished
  sub-scenes. Observations, rewards, flags and ``info`` are **torch tensors on that device**; actions
  may be torch tensors (kept on the device) or numpy arrays.
- **CPU** (``cpu`` / ``physx_cpu``): :class:`ManiSkillCPUEnv`, one ``physx_cpu`` env per sub-env
  (ManiSkill's ``CPUGymWrapper``), vectorized by gymnasium like the other envs
  (:mod:`~rlinf_envs_embodied.envs.gym_vector`); numpy in and out. Every auto-reset is seeded from the
  sub-env's own generator, so equal seeds give equal rollouts across episodes.

Both return the same observation layout: ``state`` (``obs_mode: state``: ManiSkill's flat state;
``rgb``: the robot's proprioception and task extras, flattened in the observation space's key order)
and with ``rgb`` each camera as ``images[<camera>]`` (uint8 HWC); ``info["success"]`` is ManiSkill's
own per step (for a step that ended an episode, the success of that last step).

Tasks whose assets are not on disk (``PickSingleYCB``, the ``bridge_v2_real2sim`` scenes such as
``PutCarrotOnPlateInScene-v1`` ...) fail with one line naming the assets instead of ManiSkill's
download prompt. RLinf's ``PutOnPlateInScene25*`` tasks come from RLinf's own ManiSkill fork and are
not in the ``mani-skill`` package.

SAPIEN needs Vulkan. On a CPU-only Debian 12 machine, run
``eval "$(rlinf-envs-embodied/scripts/setup_cpu_vulkan.sh)"`` first (Mesa 25's lavapipe).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
from rlinf_core.errors import ConfigError, suggestion_text

from rlinf_envs_embodied.envs.gym_vector import RENDER_CONTEXT, GymVectorEnv, ObsMapper, is_chunk, merge_rows
from rlinf_envs_embodied.options import MANISKILL_BACKENDS, ManiSkillOptions, cfg_get, plain, section_of

PIP_HINT = "pip install 'rlinf-envs-embodied[maniskill]'"
CPU_BACKENDS = ("cpu", "physx_cpu")
BACKENDS = MANISKILL_BACKENDS
VULKAN_HINT = 'On a CPU-only Debian 12 machine run: eval "$(rlinf-envs-embodied/scripts/setup_cpu_vulkan.sh)"'


def import_maniskill() -> Any:
    """``mani_skill.envs`` (registers the tasks), or an ImportError whose one line says what to install."""
    try:
        import mani_skill.envs
    except ImportError as exc:
        raise ImportError(f"env 'maniskill' needs the mani-skill package, which is not installed. Fix: {PIP_HINT}") from exc
    return mani_skill.envs


def check_task(env_id: Any, key: str) -> str:
    """A registered ManiSkill3 task id whose assets are on disk, or a one-line ConfigError (``key``: its path)."""
    import_maniskill()
    from mani_skill.utils import assets
    from mani_skill.utils.registration import REGISTERED_ENVS

    if not env_id:
        raise ConfigError(f"{key}: the maniskill env needs a ManiSkill3 task id, e.g. PickCube-v1")
    env_id = str(env_id)
    if env_id not in REGISTERED_ENVS:
        fork = (" RLinf's PutOnPlateInScene25 tasks live in RLinf's ManiSkill fork, not in the mani-skill package."
                if "PutOnPlateInScene" in env_id else "")
        raise ConfigError(f"{key}: {env_id!r} is not a ManiSkill3 task.{suggestion_text(env_id, list(REGISTERED_ENVS))}"
                          f"{fork} Valid: the {len(REGISTERED_ENVS)} tasks of mani_skill.utils.registration."
                          "REGISTERED_ENVS, e.g. PickCube-v1")
    missing: list[str] = []
    for asset_id in REGISTERED_ENVS[env_id].asset_download_ids or []:
        ids = (assets.expand_data_group_into_individual_data_source_ids(asset_id)
               if asset_id in assets.DATA_GROUPS else [asset_id])
        missing += [i for i in ids if not assets.is_data_source_downloaded(i)]
    if missing:
        names = ", ".join(sorted(set(missing))[:5]) + (" ..." if len(set(missing)) > 5 else "")
        raise ConfigError(f"{key}: {env_id!r} needs ManiSkill assets that are not on disk ({names}; looked under "
                          f"{assets.DATA_SOURCES[missing[0]].output_dir}). Fetch them where the hub is reachable: "
                          f"python -m mani_skill.utils.download_asset {env_id}, and point MS_ASSET_DIR at them")
    return env_id


@contextlib.contextmanager
def no_download_prompt(key: str) -> Iterator[None]:
    """Within the block, ManiSkill's asset download prompt (robot assets) raises a ConfigError instead."""
    from mani_skill.utils import download_asset

    def refuse(message: str) -> bool:
        what = " ".join(str(message).split()).replace(" Would you like to download them now?", "").rstrip(".")
        raise ConfigError(f"{key}: ManiSkill needs assets that are not on disk ({what}). Fetch them where the hub "
                          "is reachable (python -m mani_skill.utils.download_asset <id>) and point MS_ASSET_DIR at them")

    saved = download_asset.prompt_yes_no
    download_asset.prompt_yes_no = refuse
    try:
        yield
    finally:
        download_asset.prompt_yes_no = saved


def resolve_backend(name: str, key: str, device: str | None = None) -> str:
    """ManiSkill's ``sim_backend`` for an ``init_params.sim_backend`` value (``auto``: GPU when CUDA is available)."""
    if name not in BACKENDS:
        raise ConfigError(f"{key}: {name!r} is not a backend.{suggestion_text(name, BACKENDS)} Valid: {', '.join(BACKENDS)}")
    if name == "auto":
        import torch

        name = "gpu" if torch.cuda.is_available() else "cpu"
    if name in CPU_BACKENDS:
        return "physx_cpu"
    index = str(device).split(":", 1)[1] if device and str(device).startswith("cuda:") else None
    return f"physx_cuda:{index}" if index is not None else "physx_cuda"


def make_kwargs(opts: ManiSkillOptions) -> dict[str, Any]:
    """``gym.make`` keyword arguments from the options (``make_kwargs`` win)."""
    kwargs = dict(plain(opts.make_kwargs))
    for name in ("control_mode", "reward_mode"):
        if getattr(opts, name) is not None:
            kwargs.setdefault(name, getattr(opts, name))
    if opts.obs_mode == "rgb":
        kwargs.setdefault("sensor_configs", {"width": int(opts.camera_widths), "height": int(opts.camera_heights)})
    return kwargs


def _vulkan_error(exc: BaseException, key: str) -> ConfigError | None:
    text = str(exc).lower()
    if "vulkan" in text or "physical device" in text:
        return ConfigError(f"{key}.simulator_type: ManiSkill3 found no usable Vulkan device ({exc}). {VULKAN_HINT}")
    return None


def _gym_make(env_id: str, key: str, **kwargs: Any) -> gym.Env:
    try:
        with no_download_prompt(f"{key}.env_id"):
            return gym.make(env_id, disable_env_checker=True, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"{key}.init_params: gymnasium.make({env_id!r}) rejected {sorted(kwargs)}: {exc}") from exc
    except RuntimeError as exc:
        err = _vulkan_error(exc, key)
        if err is not None:
            raise err from exc
        if "download_asset" in str(exc):  # a task that checks its own assets (PartNet-Mobility ...)
            raise ConfigError(f"{key}.env_id: {env_id!r}: {' '.join(str(exc).split())} (on a machine where the hub "
                              "is reachable; then point MS_ASSET_DIR at the data)") from exc
        raise


# --------------------------------------------------------------------------- CPU backend


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


def make_cpu_env(env_id: str, *, obs_mode: str, max_episode_steps: int | None, ignore_terminations: bool,
                 kwargs: dict[str, Any], key: str) -> gym.Env:
    """One CPU ManiSkill sub-env (module-level so ``async`` workers can build it)."""
    import_maniskill()
    from mani_skill.utils.wrappers.gymnasium import CPUGymWrapper

    env = _gym_make(env_id, key, num_envs=1, obs_mode=obs_mode, sim_backend="physx_cpu",
                    max_episode_steps=max_episode_steps, **kwargs)
    env = _SeededResets(CPUGymWrapper(env, ignore_terminations=ignore_terminations))
    return _DropSensorParams(env) if isinstance(env.observation_space, gym.spaces.Dict) else env


class ManiSkillCPUEnv(GymVectorEnv):
    """``num_envs`` ManiSkill3 sub-envs of ``env_id`` on the CPU backend, seeded ``seed + i``."""

    def __init__(self, config: Any, *, num_envs: int, seed: int, device: str = "cpu"):
        key = section_of(config)
        opts = ManiSkillOptions.from_config(config, key)
        env_id = check_task(cfg_get(config, "env_id"), f"{key}.env_id")
        factory = partial(make_cpu_env, env_id, obs_mode=opts.obs_mode,
                          max_episode_steps=cfg_get(config, "max_episode_steps"),
                          ignore_terminations=bool(cfg_get(config, "ignore_terminations", False)),
                          kwargs=make_kwargs(opts), key=key)
        self.env_id = env_id
        self.device = device
        super().__init__([factory] * num_envs, seed=seed, vectorization=opts.vectorization, num_workers=opts.num_workers,
                         auto_reset=bool(cfg_get(config, "auto_reset", True)), clip_actions=True,
                         name=f"maniskill env {env_id!r} ({key})",
                         context=RENDER_CONTEXT if opts.obs_mode != "state" else None)


# --------------------------------------------------------------------------- GPU backend


def _clone(obs: dict[str, Any]) -> dict[str, Any]:
    return {k: _clone(v) if isinstance(v, dict) else v.clone() for k, v in obs.items()}


class ManiSkillGPUEnv:
    """``num_envs`` parallel sub-scenes of ``env_id`` in one GPU-simulated ManiSkill env; tensors stay on the device.

    Args:
        config: the env section.
        num_envs, seed: sub-scene ``i`` is seeded ``seed + i`` at the first :meth:`reset`.
        device: ``cuda`` / ``cuda:k`` (the simulation device).
        sim_backend: ManiSkill's backend; ``physx_cpu`` (with ``num_envs=1``) runs this class's code on
            the CPU, as the CPU tests do.
    """

    def __init__(self, config: Any, *, num_envs: int, seed: int, device: str = "cuda", sim_backend: str | None = None):
        import torch

        key = section_of(config)
        opts = ManiSkillOptions.from_config(config, key)
        env_id = check_task(cfg_get(config, "env_id"), f"{key}.env_id")
        if opts.vectorization != "sync":
            raise ConfigError(f"{key}.init_params.vectorization: the GPU backend runs every sub-scene in one process; "
                              "remove it or set it to sync")
        backend = sim_backend or resolve_backend(opts.sim_backend if opts.sim_backend != "auto" else "gpu",
                                                 f"{key}.init_params.sim_backend", device)
        import_maniskill()
        from mani_skill.vector.wrappers.gymnasium import ManiSkillVectorEnv

        kwargs = make_kwargs(opts)
        kwargs.setdefault("enhanced_determinism", True)  # partial resets draw from each sub-scene's seeded generator
        env = _gym_make(env_id, key, num_envs=num_envs, obs_mode=opts.obs_mode, sim_backend=backend,
                        max_episode_steps=cfg_get(config, "max_episode_steps"), **kwargs)
        self._venv = ManiSkillVectorEnv(env, auto_reset=bool(cfg_get(config, "auto_reset", True)),
                                        ignore_terminations=bool(cfg_get(config, "ignore_terminations", False)),
                                        record_metrics=False)
        self.num_envs: int = num_envs
        self.env_id = env_id
        self.device = self._venv.device
        self._name = f"maniskill env {env_id!r} ({key})"
        self._seed, self._seeded = int(seed), False
        space = self._venv.single_observation_space
        if isinstance(space, gym.spaces.Dict):
            space = gym.spaces.Dict({k: v for k, v in space.spaces.items() if k != "sensor_param"})
        self._mapper = ObsMapper(space)
        #: gymnasium spaces of one sub-scene: the rlinf observation dict, and ManiSkill's actions.
        self.observation_space: gym.spaces.Dict = self._mapper.space
        self.action_space: gym.spaces.Box = self._venv.single_action_space
        self._low = torch.as_tensor(self.action_space.low, dtype=torch.float32, device=self.device)
        self._high = torch.as_tensor(self.action_space.high, dtype=torch.float32, device=self.device)

    # ------------------------------------------------------------------ interface

    def reset(self, *, seed: int | Sequence[int] | None = None,
              options: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Reset every sub-scene (seeded ``seed + i``; the constructor's seed on the first call), or only
        those of ``options["reset_mask"]`` (a bool ``(N,)``)."""
        import torch

        if seed is None and not self._seeded:
            seed = self._seed
        self._seeded = True
        seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else (
            None if seed is None else [int(s) for s in seed])
        ms_options = None
        if options and options.get("reset_mask") is not None:
            mask = torch.as_tensor(options["reset_mask"], dtype=torch.bool, device=self.device)
            ms_options = {"env_idx": torch.nonzero(mask).flatten()}
        obs, _ = self._venv.reset(seed=seeds, options=ms_options)
        return self._obs(obs), {"success": torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)}

    def step(self, actions: Any) -> tuple[dict[str, Any], Any, Any, Any, dict[str, Any]]:
        """Execute single actions ``(N, D)`` or chunks ``(N, K, D)``, as the CPU envs do (see gym_vector)."""
        import torch

        acts = torch.as_tensor(actions, device=self.device)
        chunked = is_chunk(tuple(acts.shape), self.num_envs, tuple(self.action_space.shape), self._name)
        acts = torch.clamp((acts if chunked else acts[:, None]).float(), self._low, self._high)
        n, k = self.num_envs, acts.shape[1]
        rewards = torch.zeros((n, k), dtype=torch.float32, device=self.device)
        terminated = torch.zeros((n, k), dtype=torch.bool, device=self.device)
        truncated = torch.zeros((n, k), dtype=torch.bool, device=self.device)
        success = torch.zeros((n, k), dtype=torch.bool, device=self.device)
        finals: list[tuple[Any, Any]] = []
        for j in range(k):
            obs, rew, term, trunc, info = self._venv.step(acts[:, j])
            rewards[:, j] = torch.as_tensor(rew, device=self.device).float()
            terminated[:, j] = torch.as_tensor(term, device=self.device).bool()
            truncated[:, j] = torch.as_tensor(trunc, device=self.device).bool()
            step_info = info.get("final_info", info)  # after a partial reset: the step's own info, every row
            if "success" in step_info:
                success[:, j] = torch.as_tensor(step_info["success"], device=self.device).bool()
            if "final_observation" in info:
                finals.append((self._obs(info["final_observation"]), info["_final_observation"]))
        out_obs = self._obs(obs)
        out_info: dict[str, Any] = {"success": success.any(dim=1)}
        if chunked:
            out_info["step_success"] = success
        if finals:
            final, mask = _clone(out_obs), torch.zeros(n, dtype=torch.bool, device=self.device)
            for mapped, ended in finals:  # a later episode's end overwrites an earlier one's
                merge_rows(final, mapped, ended)
                mask |= ended
            out_info["final_observation"], out_info["_final_observation"] = final, mask
        if not chunked:
            return out_obs, rewards[:, 0], terminated[:, 0], truncated[:, 0], out_info
        return out_obs, rewards, terminated, truncated, out_info

    def close(self) -> None:
        """Release the simulation (and its render system)."""
        self._venv.close()

    def _obs(self, obs: Any) -> dict[str, Any]:
        return self._mapper.map_tensors(obs, self.num_envs)


def make_maniskill_env(config: Any, *, num_envs: int, seed: int,
                       device: str = "cpu") -> ManiSkillCPUEnv | ManiSkillGPUEnv:
    """The ``maniskill`` env component: :class:`ManiSkillGPUEnv` or :class:`ManiSkillCPUEnv` by ``init_params.sim_backend``."""
    key = section_of(config)
    opts = ManiSkillOptions.from_config(config, key)
    backend = resolve_backend(str(opts.sim_backend), f"{key}.init_params.sim_backend", device)
    if backend == "physx_cpu":
        return ManiSkillCPUEnv(config, num_envs=num_envs, seed=seed, device="cpu")
    return ManiSkillGPUEnv(config, num_envs=num_envs, seed=seed, device=device, sim_backend=backend)
