"""Every hook a plugin can implement, documented where it is declared.

A plugin is a module named by an entry point in the group ``rlinf.plugins``; it implements hooks
with the :data:`hookimpl` marker::

    # my_package/rlinf_plugin.py      (pyproject: [project.entry-points."rlinf.plugins"] my = "my_package.rlinf_plugin")
    from rlinf_core import ComponentSpec, hookimpl

    @hookimpl
    def rlinf_register_envs():
        return [ComponentSpec("env", "my-sim", "my_package.env:MySimEnv", "My simulator")]

Registration hooks take no arguments and return an iterable of :class:`~rlinf_core.ComponentSpec`
(or ``None``). They must be cheap: return specs and import nothing heavy; the target is imported
only when a run uses the component. Hook names are public API.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from rlinf_core.components import ComponentSpec

PROJECT = "rlinf"
#: Marks a hook specification (used only in this module).
hookspec = pluggy.HookspecMarker(PROJECT)
#: Marks a plugin's hook implementation.
hookimpl = pluggy.HookimplMarker(PROJECT)


# --- registration hooks: each returns ComponentSpec objects of the kinds listed in REGISTRATION_HOOKS


@hookspec
def rlinf_register_models() -> Iterable[ComponentSpec] | None:
    """Register model families (kind ``model``), chosen by ``actor.model.model_type``.

    The target is a class or factory that builds the policy (and value head) from the ``model``
    config section, e.g. a Qwen2 causal LM, OpenVLA-OFT or pi0.
    """


@hookspec
def rlinf_register_rollout_engines() -> Iterable[ComponentSpec] | None:
    """Register rollout (inference) engines (kind ``rollout_engine``), chosen by ``rollout.rollout_backend``.

    The target generates responses or actions with log-probs and accepts weight updates from the
    trainer: Hugging Face ``generate``, vLLM, SGLang.
    """


@hookspec
def rlinf_register_training_backends() -> Iterable[ComponentSpec] | None:
    """Register training backends (kind ``training_backend``), chosen by ``actor.training_backend``.

    The target wraps a model for distributed training (FSDP2, megatron-core): forward/backward,
    optimizer step, checkpoints and full state dicts for weight sync.
    """


@hookspec
def rlinf_register_envs() -> Iterable[ComponentSpec] | None:
    """Register environments / simulators (kind ``env``), chosen by ``env.train.simulator_type``.

    The target builds a vectorised environment from the ``env.train`` / ``env.eval`` config.
    """


@hookspec
def rlinf_register_algorithms() -> Iterable[ComponentSpec] | None:
    """Register algorithm pieces: kinds ``advantage`` (``algorithm.adv_type``), ``policy_loss``
    (``algorithm.loss_type``), ``kl`` (``algorithm.kl_penalty``) and ``loss_agg``
    (``algorithm.loss_agg_func``).

    Targets are pure functions of tensors; their signatures are documented in ``rlinf_algos``.
    """


@hookspec
def rlinf_register_rewards() -> Iterable[ComponentSpec] | None:
    """Register reward functions or reward models (kind ``reward``), chosen by ``reward.reward_type``."""


@hookspec
def rlinf_register_placement_strategies() -> Iterable[ComponentSpec] | None:
    """Register placement strategies (kind ``placement``), chosen by ``cluster.placement``.

    The target maps worker groups (actor, rollout, env, ...) onto devices: collocated,
    disaggregated, hybrid, auto.
    """


@hookspec
def rlinf_register_flows() -> Iterable[ComponentSpec] | None:
    """Register task flows (kind ``flow``), chosen by ``runner.task_type``.

    A flow is a task's logical workflow (rollout -> env -> reward -> advantage -> update -> sync),
    written once and run under any placement; e.g. ``reasoning`` and ``embodied``.
    """


@hookspec
def rlinf_register_commands() -> Iterable[ComponentSpec] | None:
    """Register subcommands of the ``rlinf`` command line (kind ``command``).

    The target is a :class:`click.Command` (or group); the spec's name is the subcommand's name.
    It is imported only when that subcommand runs or help lists it.
    """


# --- lifecycle hooks


@hookspec
def rlinf_configure(config: Any) -> None:
    """Adjust a loaded config in place, after YAML and overrides are merged and before validation.

    ``config`` is an OmegaConf ``DictConfig`` that follows ``rlinf_core.config.RlinfConfig``. Use
    it to fill plugin-specific defaults; do not start work here.
    """


@hookspec
def rlinf_validate_config(config: Any) -> Iterable[str] | None:
    """Check a config; return one message per problem (naming the config key), or nothing.

    Called by ``rlinf_core.config.validate_config`` after the built-in checks, before any worker
    starts. Every message returned is reported; the config is rejected if there is any.
    """


@hookspec
def rlinf_worker_init(worker: Any) -> None:
    """Called in every worker process (inline or a Ray actor) once the worker is set up.

    Use it for per-process setup a plugin needs (environment variables, simulator licences,
    logging). ``worker`` is the worker instance; it has ``group_name`` and ``rank``.
    """


#: Which component kinds each registration hook may return.
REGISTRATION_HOOKS: dict[str, tuple[str, ...]] = {
    "rlinf_register_models": ("model",),
    "rlinf_register_rollout_engines": ("rollout_engine",),
    "rlinf_register_training_backends": ("training_backend",),
    "rlinf_register_envs": ("env",),
    "rlinf_register_algorithms": ("advantage", "policy_loss", "kl", "loss_agg"),
    "rlinf_register_rewards": ("reward",),
    "rlinf_register_placement_strategies": ("placement",),
    "rlinf_register_flows": ("flow",),
    "rlinf_register_commands": ("command",),
}


def hook_names() -> list[str]:
    """The names of every hook declared in this module, in declaration order."""
    return [name for name, obj in globals().items() if name.startswith("rlinf_") and callable(obj)]
