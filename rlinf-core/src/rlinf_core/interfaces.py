"""What each component kind *is*: the interfaces plugins implement, as ``typing.Protocol`` classes.

A registration hook returns a :class:`~rlinf_core.ComponentSpec` whose target is one of these.
The flows (``reasoning``, ``embodied``) call components only through the methods declared here,
so a third-party engine, backend, simulator or policy that implements them works unchanged.
``rlinf plugins check`` verifies a target against its kind with :func:`check_conformance`.

This module imports no deep-learning library: tensors are typed ``Any`` and are
``torch.Tensor`` at run time. Shapes use ``B`` (rows), ``P`` (padded prompt length), ``R`` (padded
response length), ``N`` (sub-environments), ``K`` (action chunk length), ``D`` (action dims).

Call order, reasoning (one training step)::

    engine.generate(prompts) -> GenerationOutput          # rollout group
    reward_fn(responses, answers) -> scores               # reward group
    reference.compute_log_probs(batch)                     # optional (KL)
    critic.compute_values(batch)                           # optional (GAE)
    actor.compute_log_probs(batch)                         # when recompute_logprobs
    actor.train_step(batch, loss_fn, ...) -> metrics       # every mini-batch
    engine.update_weights(actor.export_weights(), version) # weight sync

Call order, embodied (one rollout epoch, per micro-batch of sub-envs)::

    env.reset() -> (obs, info)
    loop: policy.sample(obs) -> ActionSample; env.step(actions) -> (obs, reward, terminated, truncated, info)
    then advantages, then the training backend trains the policy with ``policy.evaluate``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

# --------------------------------------------------------------------------- data passed between components


@dataclass(frozen=True)
class SamplingParams:
    """How a rollout engine samples (``algorithm.sampling_params`` / ``rollout.sampling_params``)."""

    temperature: float = 1.0
    top_p: float = 1.0
    #: ``-1`` = no top-k filtering.
    top_k: int = -1
    max_new_tokens: int = 256
    repetition_penalty: float = 1.0
    #: Greedy decoding when false (temperature is then ignored).
    do_sample: bool = True
    #: Return the sampled token's log-prob at every position (under ``temperature``).
    logprobs: bool = True
    stop_token_ids: tuple[int, ...] = ()
    seed: int | None = None


@dataclass
class GenerationOutput:
    """What :meth:`RolloutEngine.generate` returns: one row per prompt given, in the same order.

    Lists rather than tensors so that every engine (HF, vLLM, SGLang) returns the same thing
    without padding conventions; the flow pads them into a training batch.
    """

    prompt_ids: list[list[int]]
    response_ids: list[list[int]]
    #: Per response token, log p(token) under the sampling temperature; ``None`` when not requested.
    response_logprobs: list[list[float]] | None
    #: ``"stop"`` (EOS / a stop token) or ``"length"`` (hit ``max_new_tokens``), per row.
    finish_reasons: list[str]
    #: The :meth:`RolloutEngine.update_weights` version the rows were sampled with.
    weight_version: int = 0


@dataclass
class ActionSample:
    """What :meth:`Policy.sample` returns for a batch of ``N`` observations."""

    #: ``(N, K, D)`` for chunked policies, ``(N, D)`` (continuous) or ``(N,)`` (discrete) otherwise.
    actions: Any
    #: Log-prob of each sampled action, ``(N, K)`` per chunk step or ``(N,)``.
    log_probs: Any
    #: Value estimate ``(N,)`` when the policy has a value head, else ``None``.
    values: Any = None
    #: Anything :meth:`Policy.evaluate` needs to re-score these actions (e.g. discrete action tokens,
    #: the denoising noise of a flow-matching policy), keyed by name, batch-first.
    extras: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- reasoning components


@runtime_checkable
class RolloutEngine(Protocol):
    """A ``rollout_engine`` component (``rollout.rollout_backend``): generates responses with log-probs.

    Constructed as ``cls(config, *, rank=0, world_size=1, device="cpu")`` where ``config`` is the
    whole experiment config (an OmegaConf ``DictConfig``); an engine reads ``rollout.*``, its own
    section ``rollout.<name>.*`` and the model to load from ``rollout.model.model_path`` (falling
    back to ``actor.model.model_path`` / ``actor.model.config``). Heavy imports happen here, not at
    module import.
    """

    def generate(self, prompt_ids: Sequence[Sequence[int]], sampling: SamplingParams) -> GenerationOutput:
        """Sample one response per prompt (the flow repeats a prompt ``group_size`` times)."""
        ...

    def update_weights(self, weights: Iterable[tuple[str, Any]], version: int) -> None:
        """Load new weights in place: ``(name, tensor)`` pairs with Hugging Face key names, as
        :meth:`TrainingBackend.export_weights` yields them. Later generations report ``version``."""
        ...

    @property
    def weight_version(self) -> int:
        """The version of the weights in use (0 before the first update)."""
        ...

    def offload(self) -> None:
        """Free accelerator memory (weights, KV cache) while other phases run; may be a no-op."""
        ...

    def onload(self) -> None:
        """Undo :meth:`offload`."""
        ...

    def close(self) -> None:
        """Release the engine (processes, memory). Called once, at shutdown."""
        ...


#: ``loss_fn(outputs, micro_batch) -> (loss, metrics)``: ``outputs`` holds the backend's forward
#: results for the micro-batch (``log_probs`` (B, R), ``entropy`` (B, R) when asked, ``values``
#: (B, R) for a critic); ``micro_batch`` is the slice of the batch given to ``train_step``. The loss
#: is already scaled for gradient accumulation (it uses the optimizer step's global counts).
#: "When asked": the loss function has a true attribute ``with_entropy`` (the flows' loss objects
#: set it; a plain function without it gets no ``entropy``). An attribute ``entropy_grad`` that is
#: false says the loss does not differentiate through ``entropy`` (a metric only): a backend may then
#: compute it without gradient; missing means true.
LossFn = Callable[[Mapping[str, Any], Mapping[str, Any]], tuple[Any, Mapping[str, Any]]]


@runtime_checkable
class TrainingBackend(Protocol):
    """A ``training_backend`` component (``actor.training_backend``): trains or scores a model.

    Constructed as ``cls(config, *, role, rank=0, world_size=1, device="cpu")``: ``role`` is
    ``"actor"`` (trainable policy), ``"critic"`` (trainable value model) or ``"reference"`` (frozen
    policy); the backend reads ``config.actor`` (or ``config.critic``) for the model, optimizer,
    schedule and its own section (``actor.fsdp_config``, ``actor.megatron``). Ranks of one group
    share a torch.distributed process group set up by the runtime before construction.

    A **batch** is a mapping of tensors with rows ``B``: ``input_ids`` and ``attention_mask``
    ``(B, P + R)`` (prompt left-padded to ``P``, response right-padded to ``R``), ``response_mask``
    ``(B, R)`` (1 on real response tokens), and whatever the loss needs (``old_log_probs``,
    ``ref_log_probs``, ``advantages``, ``returns``, ``old_values``: ``(B, R)``). Every per-token
    output is ``(B, R)``, aligned with the response tokens.

    **Policy mode** (embodied): when ``actor.model.model_type`` names a :class:`Policy`, the backend
    builds it with the env's spaces, given as the keyword-only constructor arguments
    ``observation_space`` and ``action_space`` (gymnasium spaces of one sub-env; ``None`` for a
    language model). A batch then has one row per env step (an action chunk when ``K > 1``):
    ``obs`` (the observation dict: ``state`` ``(B, S)``, ``images`` camera -> ``(B, H, W, 3)``,
    ``instruction`` a list of ``B`` strings), ``actions`` ``(B, K, D)`` / ``(B, D)`` / ``(B,)``,
    ``extras`` (the :class:`ActionSample` extras, batch-first), ``loss_mask`` ``(B,)`` (1 on rows
    that count), and the loss's keys (``old_log_probs`` and ``advantages`` ``(B, K)`` or ``(B,)``,
    ``returns`` / ``old_values`` ``(B,)``). ``train_step`` splits every entry (nested ones too) into
    micro-batches of rows and gives ``loss_fn`` what ``policy.evaluate(obs, actions, extras)``
    returns: ``{"log_probs", "entropy", "values"}``. ``compute_log_probs`` / ``compute_values`` take
    the same batch.
    """

    def compute_log_probs(self, batch: Mapping[str, Any], *, temperature: float = 1.0,
                          with_entropy: bool = False) -> Mapping[str, Any]:
        """``{"log_probs": (B, R)}`` (and ``"entropy"``) of the response tokens, no gradient."""
        ...

    def compute_values(self, batch: Mapping[str, Any]) -> Any:
        """Value estimates ``(B, R)`` of a critic (``role="critic"``), no gradient."""
        ...

    def train_step(self, batch: Mapping[str, Any], loss_fn: LossFn, *, temperature: float = 1.0,
                   global_tokens: int | None = None, global_seqs: int | None = None) -> dict[str, float]:
        """One optimizer step over ``batch``, split into ``micro_batch_size`` micro-batches with
        gradient accumulation; clips gradients (``optim.clip_grad``), steps the LR schedule and
        returns metrics averaged over micro-batches (``loss``, ``grad_norm``, ``lr``, and the
        loss function's own). ``global_tokens`` / ``global_seqs`` are the counts over the whole
        optimizer step across ranks, passed on to ``loss_fn`` through ``micro_batch``."""
        ...

    def export_weights(self) -> Iterator[tuple[str, Any]]:
        """Full (unsharded) weights with Hugging Face key names, for a rollout engine. A
        collective: every rank calls it; rank 0 yields the tensors, other ranks yield nothing.

        The names are those of the Hugging Face model's ``state_dict()``: tied weights appear
        under each of their names (``model.embed_tokens.weight`` and ``lm_head.weight``), since
        an engine may keep them apart (vLLM's CPU backend repacks ``lm_head``)."""
        ...

    def save_checkpoint(self, path: str) -> None:
        """Write model, optimizer, schedule and RNG state under ``path`` (a directory; every rank
        calls it). The caller makes the write atomic (write to a temporary directory, then rename)."""
        ...

    def load_checkpoint(self, path: str) -> None:
        """Restore what :meth:`save_checkpoint` wrote."""
        ...

    def offload(self) -> None:
        """Move weights and optimizer state off the accelerator between phases; may be a no-op."""
        ...

    def onload(self) -> None:
        """Undo :meth:`offload`."""
        ...


# --------------------------------------------------------------------------- embodied components


@runtime_checkable
class VectorEnv(Protocol):
    """An ``env`` component (``env.train.simulator_type``): ``N`` sub-environments stepped together.

    Constructed as ``cls(config, *, num_envs, seed, device="cpu")`` where ``config`` is the
    ``env.train`` or ``env.eval`` section (``env_id``, ``max_episode_steps``, ``init_params`` and
    the simulator's own keys). Sub-environment ``i`` is seeded ``seed + i``.

    **Observations** are a dict: ``"state"`` float32 ``(N, S)``, ``"images"`` a dict camera name ->
    uint8 ``(N, H, W, 3)``, ``"instruction"`` a list of ``N`` strings; each key only when the env
    has it. **Actions** are ``(N, K, D)`` for a chunk of ``K`` steps (the env executes all ``K``,
    auto-resetting a sub-env that finishes mid-chunk) or ``(N, D)`` / ``(N,)`` for single steps.
    **Rewards, terminated, truncated** are ``(N, K)`` for a chunk, else ``(N,)``: termination (a
    true end: no bootstrap) and truncation (a time limit: bootstrap) are kept apart.
    **info** has ``"success"`` bool ``(N,)`` and, on auto-reset, ``"final_observation"``.

    Optional: ``step_async(actions)`` then ``step_wait()``, together what ``step`` does, for an env
    that steps in processes of its own: with ``rollout.pipeline_stage_num > 1`` under the inline
    executor, the flow runs the policy on the next micro-batch while these sub-envs step. And a
    keyword ``reset_done=False`` of ``step`` (and ``step_async``): sub-envs whose episodes end in
    this call are not auto-reset (their rows hold the last observation; ``final_observation`` as
    usual) until the next ``reset``. The flow passes it on a rollout's last step, after which it
    resets every sub-env anyway, so that no reset is wasted. And an attribute ``worker_processes``
    (int): the processes of its own that step sub-envs; under the inline executor the flow lowers
    torch's threads during a rollout to the cores these leave free.
    """

    num_envs: int
    #: gymnasium spaces of ONE sub-environment.
    observation_space: Any
    action_space: Any

    def reset(self, *, seed: int | Sequence[int] | None = None,
              options: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Reset every sub-environment; returns ``(obs, info)``."""
        ...

    def step(self, actions: Any) -> tuple[dict[str, Any], Any, Any, Any, dict[str, Any]]:
        """Apply actions; returns ``(obs, rewards, terminated, truncated, info)``."""
        ...

    def close(self) -> None:
        """Release simulators, renderers and processes."""
        ...


@runtime_checkable
class Policy(Protocol):
    """A ``model`` component used as an embodied policy (``actor.model.model_type``): a
    ``torch.nn.Module`` that samples actions with log-probs and re-scores them for training.

    Constructed as ``cls(config, *, observation_space, action_space)`` with the ``actor.model``
    section. Its ``state_dict`` / ``load_state_dict`` (from ``nn.Module``) carry weight sync.

    Optional: ``values(obs) -> (N,)`` value estimates without sampling. The embodied flow uses it
    to value the final observation of a truncated episode (the GAE bootstrap) when the policy has
    it, and ``sample(obs, deterministic=True).values`` otherwise.
    """

    def sample(self, obs: Mapping[str, Any], *, deterministic: bool = False) -> ActionSample:
        """Actions for a batch of observations (no gradient), with their log-probs (and values)."""
        ...

    def evaluate(self, obs: Mapping[str, Any], actions: Any, extras: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``{"log_probs", "entropy", "values"}`` of given actions, with gradient (``values`` may be
        ``None`` without a value head); shapes as in :class:`ActionSample`."""
        ...

    def state_dict(self, *args: Any, **kwargs: Any) -> Mapping[str, Any]:
        """The weights (``torch.nn.Module.state_dict``)."""
        ...

    def load_state_dict(self, state_dict: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        """Load weights (``torch.nn.Module.load_state_dict``)."""
        ...


# --------------------------------------------------------------------------- tasks


@runtime_checkable
class Flow(Protocol):
    """A ``flow`` component (``runner.task_type``): a task's logical workflow.

    Constructed as ``cls(config, *, plugins, run_dir)``: the validated config, the
    :class:`~rlinf_core.PluginSet` to resolve component names with, and the run directory
    (resolved config, checkpoints, logs, curves). ``rlinf run`` calls :meth:`train`, ``rlinf eval``
    calls :meth:`evaluate`.
    """

    def train(self, *, resume: bool = False) -> dict[str, float]:
        """Train for ``runner.max_steps`` (or epochs); resume from the last complete checkpoint
        in ``run_dir`` when asked. Returns the final metrics."""
        ...

    def evaluate(self, checkpoint: str | None = None) -> dict[str, float]:
        """Evaluate the policy (the latest checkpoint, or ``checkpoint``) on held-out data / seeds."""
        ...


#: ``reward_fn(responses, answers, **kwargs) -> list[float]``: a ``reward`` component
#: (``reward.reward_type``): one score per decoded response, given the reference answers.
RewardFn = Callable[..., list[float]]

#: Component kind -> the protocol its target implements (an instance of it is what the target
#: builds). Kinds whose target is a plain function are checked for being callable.
INTERFACES: dict[str, type] = {
    "rollout_engine": RolloutEngine,
    "training_backend": TrainingBackend,
    "env": VectorEnv,
    "flow": Flow,
}

#: Kinds whose target is a function (or any callable).
CALLABLE_KINDS = ("advantage", "policy_loss", "kl", "loss_agg", "reward", "placement")


def _protocol_members(proto: type) -> tuple[list[str], list[str]]:
    """``(methods, attributes)`` a protocol declares (not inherited from ``Protocol``/``object``)."""
    methods, attrs = [], []
    for klass in reversed(proto.__mro__):
        if klass in (object, Protocol) or not getattr(klass, "_is_protocol", False):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_"):
                continue
            if callable(value) or isinstance(value, property):
                methods.append(name)
        attrs.extend(n for n in getattr(klass, "__annotations__", {}) if not n.startswith("_"))
    return methods, attrs


def check_conformance(kind: str, target: Any) -> list[str]:
    """Problems with ``target`` as a component of ``kind`` (empty when it conforms).

    A class target is checked structurally: every method and property its kind's protocol
    declares must exist (and be callable where it is a method). Attributes set in ``__init__``
    (e.g. ``VectorEnv.num_envs``) cannot be seen on the class and are not checked. A ``model``
    target is checked as a :class:`Policy` when it declares ``sample``; language models are built
    by the training backend and have no fixed interface here.
    """
    if kind in CALLABLE_KINDS:
        return [] if callable(target) else [f"a {kind} component must be callable, got {type(target).__name__}"]
    if kind == "command":
        kinds = [k.__name__ for k in type(target).__mro__]
        return [] if "Command" in kinds else [f"a command component must be a click.Command, got {type(target).__name__}"]
    proto = INTERFACES.get(kind)
    if kind == "model":
        proto = Policy if hasattr(target, "sample") else None
    if proto is None:
        return [] if callable(target) else [f"a {kind} component must be a class or factory, got {type(target).__name__}"]
    if not inspect.isclass(target):
        # a factory function: its return value cannot be checked without calling it
        return [] if callable(target) else [f"a {kind} component must be a class or factory, got {type(target).__name__}"]
    methods, _ = _protocol_members(proto)
    problems = []
    for name in methods:
        declared = inspect.getattr_static(proto, name)
        found = inspect.getattr_static(target, name, None)
        if found is None:
            problems.append(f"{target.__module__}.{target.__qualname__} lacks {name}() required by {proto.__name__}")
        elif not isinstance(declared, property) and not (callable(found) or isinstance(found, (staticmethod, classmethod))):
            problems.append(f"{target.__module__}.{target.__qualname__}.{name} must be a method ({proto.__name__})")
    return problems
