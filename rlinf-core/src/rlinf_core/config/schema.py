"""Dataclass schemas of every config section, in the order a YAML usually lists them.

Key names follow RLinf's published example configs where they fit (see ``compat.py`` for the
keys we rename). ``Dict[str, Any]`` fields are engine-specific sections passed through to the
component that owns them, which validates them. A numeric field's allowed range is declared with
its default, ``bounded(default, gt=/ge=/lt=/le=)`` (``ranges.py``), and checked when a config loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any  # noqa: UP035 - OmegaConf needs typing generics

from rlinf_core.config.ranges import bounded


@dataclass
class ClusterConfig:
    num_nodes: int = bounded(1, gt=0)
    #: ``inline`` (every worker in this process) or ``ray``.
    executor: str = "inline"
    #: Address of a running Ray cluster; unset starts a local one.
    ray_address: str | None = None
    #: Devices per node the placement may use (CPU slots on a CPU-only machine); unset = detect.
    num_devices_per_node: int | None = bounded(None, gt=0)
    #: Placement strategy (a ``placement`` component): collocated, disaggregated, hybrid, auto.
    placement: str | None = None
    #: RLinf's placement syntax, e.g. ``{"actor,rollout": all}`` or ``{actor: 0-3, rollout: 4-7}``.
    component_placement: dict[str, Any] = field(default_factory=dict)
    # Time limits (seconds; null or 0 = wait forever) and the hang watchdog (README "Runtime").
    #: A call's ``result()`` waits this long; then the late ranks are named and their group stopped (Ray).
    call_timeout_s: float | None = bounded(3600.0, ge=0)
    #: Starting a worker group: reserving its devices and running every rank's constructor.
    startup_timeout_s: float | None = bounded(600.0, ge=0)
    #: The ``torch.distributed`` rendezvous of a group with several ranks.
    init_process_group_timeout_s: float | None = bounded(600.0, ge=0)
    #: Reaching the Ray cluster at ``ray_address``.
    ray_init_timeout_s: float | None = bounded(60.0, ge=0)
    #: Shutting down (Ray): each group's ranks run their worker's ``close()`` and leave their process
    #: group; a rank still busy after this long is killed.
    close_timeout_s: float | None = bounded(60.0, ge=0)
    #: The watchdog logs a call (group, rank, method, Python stack) once it has run this many times
    #: its method's median duration and at least ``watchdog_min_s`` (0 = no watchdog).
    watchdog_factor: float = bounded(10.0, ge=0)
    watchdog_min_s: float = bounded(300.0, ge=0)
    #: Task events the Ray GCS keeps when the runtime starts Ray (bounds GCS memory on long runs).
    ray_task_events_max: int = bounded(10000, ge=0)


@dataclass
class LoggerConfig:
    log_path: str = "runs"
    project_name: str = "rlinf"
    experiment_name: str = "default"
    #: Any of console, tensorboard, wandb.
    logger_backends: list[str] = field(default_factory=lambda: ["console"])


@dataclass
class RunnerConfig:
    #: The task flow (a ``flow`` component): reasoning, embodied.
    task_type: str | None = None
    max_epochs: int = bounded(1, gt=0)
    max_steps: int = bounded(-1, gt=0, also=(-1,))
    val_check_interval: int = bounded(-1, ge=-1)
    save_interval: int = bounded(-1, ge=-1)
    resume_dir: str | None = None
    only_eval: bool = False
    seq_length: int | None = bounded(None, gt=0)
    seed: int = 1
    #: ``rlinf eval`` / validation: samples per prompt; reports pass@1 and pass@k.
    eval_pass_k: int = bounded(1, gt=0)
    logger: LoggerConfig = field(default_factory=LoggerConfig)


@dataclass
class SamplingConfig:
    do_sample: bool = True
    temperature: float = bounded(1.0, ge=0)
    top_k: int = bounded(-1, ge=-1)
    top_p: float = bounded(1.0, gt=0, le=1)
    max_new_tokens: int | None = bounded(None, gt=0)
    repetition_penalty: float = bounded(1.0, gt=0)


@dataclass
class KlCtrlConfig:
    """The in-reward KL coefficient controller (veRL's ``algorithm.kl_ctrl``; ``rlinf_algos.kl_control``)."""

    #: ``fixed`` or ``adaptive`` (Ziegler et al. 2019: move the coefficient toward ``target_kl``).
    type: str = "fixed"
    #: Initial coefficient; unset = ``algorithm.kl_beta``.
    kl_coef: float | None = bounded(None, ge=0)
    target_kl: float = bounded(0.1, gt=0)
    horizon: int = bounded(10000, gt=0)


@dataclass
class AlgorithmConfig:
    #: Advantage estimator (an ``advantage`` component): gae, grpo, rloo, reinforce_plus_plus, ...
    adv_type: str | None = None
    #: Policy loss (a ``policy_loss`` component): ppo (aliases actor, actor_critic), ...
    loss_type: str | None = None
    #: Loss aggregation (a ``loss_agg`` component): token-mean, seq-mean-token-sum, ...
    loss_agg_func: str | None = None
    #: KL estimator (a ``kl`` component): k1, k2, k3 (aliases kl, mse, low_var_kl).
    kl_penalty: str | None = None
    kl_beta: float = bounded(0.0, ge=0)
    #: Use KL as a loss term (true) or as a reward penalty (false).
    use_kl_loss: bool = True
    group_size: int = bounded(1, gt=0)
    normalize_advantages: bool = True
    #: GRPO: divide by the group std (false = Dr.GRPO).
    norm_by_std: bool = True
    ratio_clip_eps: float = bounded(0.2, ge=0)
    clip_ratio_low: float | None = bounded(None, ge=0)
    clip_ratio_high: float | None = bounded(None, ge=0)
    clip_ratio_c: float | None = bounded(None, gt=1)
    #: GSPO: sequence-level importance ratio.
    sequence_ratio: bool = False
    value_clip: float | None = bounded(None, ge=0)
    huber_delta: float | None = bounded(None, gt=0)
    gamma: float = bounded(1.0, ge=0, le=1)
    gae_lambda: float = bounded(1.0, ge=0, le=1)
    reward_type: str = "action_level"
    logprob_type: str = "token_level"
    entropy_type: str = "token_level"
    entropy_bonus: float = 0.0
    #: Embodied PPO: weight of the policy's own value-head loss in the actor's loss (actor-critic in one module).
    value_loss_coef: float = bounded(0.5, ge=0)
    #: Embodied GRPO: the per-episode score that is group-normalised, ``return`` or ``success``.
    embodied_score: str = "return"
    filter_rewards: bool = False
    rewards_lower_bound: float | None = None
    rewards_upper_bound: float | None = None
    #: DAPO dynamic sampling: drop groups whose rewards are all equal and refill the batch with
    #: new prompts, generating at most ``max_num_gen_batches`` batches per step.
    dynamic_sampling: bool = False
    max_num_gen_batches: int = bounded(1, gt=0)
    overlong_buffer_len: int = bounded(0, ge=0)
    overlong_penalty_factor: float = bounded(1.0, ge=0)
    recompute_logprobs: bool = True
    n_minibatches: int = bounded(1, gt=0)
    update_epoch: int = bounded(1, gt=0)
    sampling_params: SamplingConfig = field(default_factory=SamplingConfig)
    kl_ctrl: KlCtrlConfig = field(default_factory=KlCtrlConfig)
    #: Extra keyword arguments of the chosen policy loss (veRL's ``actor.policy_loss.*``), e.g.
    #: ``{dro_beta: 0.1}``, ``{tau_pos: 1.0, tau_neg: 1.05}``, ``{clip_cov_ratio: 0.0002}``.
    policy_loss_args: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    #: Model family (a ``model`` component): qwen2.5, openvla_oft, pi0, mlp_policy, ...
    model_type: str | None = None
    model_path: str | None = None
    precision: str = "fp32"
    is_lora: bool = False
    lora_rank: int = bounded(0, ge=0)
    unnorm_key: str | None = None
    # Policy shape (RLinf's names; embodied policies and VLAs read them).
    #: Size of the state observation a policy built from a config takes (e.g. ``mlp_policy``).
    obs_dim: int | None = bounded(None, gt=0)
    #: Size of one action, and how many actions the policy emits per step (an action chunk).
    action_dim: int | None = bounded(None, gt=0)
    num_action_chunks: int = bounded(1, gt=0)
    #: Hidden width of a policy built from a config.
    hidden_dim: int | None = bounded(None, gt=0)
    #: A value head on the policy (``mlp``: on its own MLP beside the actor's, as in stable-baselines3's PPO;
    #: ``cnn``: on the image encoder it shares with the actor).
    add_value_head: bool = False
    #: Hidden layers of the small policies (``mlp``: actor and critic MLPs; ``cnn``: actor layers after the encoder).
    num_layers: int = bounded(2, ge=0)
    #: Discretize each continuous action dim into this many bins (a categorical per dim) instead of a Gaussian.
    num_action_bins: int | None = bounded(None, gt=1)
    #: Initial log standard deviation of a Gaussian policy's actions.
    log_std_init: float = 0.0
    #: Longest tokenized instruction a VLA takes.
    max_prompt_length: int | None = bounded(None, gt=0)
    #: Architecture overrides for a model built from a config instead of a checkpoint.
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    lr: float = bounded(1.0e-6, ge=0)
    value_lr: float | None = bounded(None, ge=0)
    adam_beta1: float = bounded(0.9, ge=0, lt=1)
    adam_beta2: float = bounded(0.999, ge=0, lt=1)
    adam_eps: float = bounded(1.0e-8, ge=0)
    weight_decay: float = bounded(0.0, ge=0)
    clip_grad: float = bounded(1.0, ge=0)


@dataclass
class LrSchedConfig:
    lr_warmup_fraction: float = bounded(0.0, ge=0, le=1)
    lr_decay_style: str = "constant"
    min_lr: float = bounded(0.0, ge=0)
    max_lr: float | None = bounded(None, ge=0)


@dataclass
class TokenizerConfig:
    tokenizer_model: str | None = None
    padding_side: str = "left"
    #: ``AutoTokenizer.from_pretrained`` arguments.
    use_fast: bool = True
    trust_remote_code: bool = False


@dataclass
class ActorConfig:
    #: Training backend (a ``training_backend`` component): fsdp, megatron.
    training_backend: str | None = None
    micro_batch_size: int = bounded(1, gt=0)
    global_batch_size: int = bounded(1, gt=0)
    seed: int = 1
    enable_offload: bool = False
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    lr_sched: LrSchedConfig = field(default_factory=LrSchedConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    fsdp_config: dict[str, Any] = field(default_factory=dict)
    megatron: dict[str, Any] = field(default_factory=dict)


@dataclass
class CriticConfig:
    use_critic_model: bool = False
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)


@dataclass
class RolloutConfig:
    #: Rollout engine (a ``rollout_engine`` component): huggingface, vllm, sglang.
    rollout_backend: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    pipeline_stage_num: int = bounded(1, gt=0)
    enable_offload: bool = False
    gpu_memory_utilization: float = bounded(0.5, gt=0, le=1)
    tensor_parallel_size: int = bounded(1, gt=0)
    return_logprobs: bool = True
    #: Weight sync actor -> rollout engine in buckets of at most this many MiB (Ray object store).
    weight_sync_bucket_mb: int = bounded(512, gt=0)
    #: Engine-specific sections, checked by the engine's plugin (e.g. ``rollout.hf.max_batch_size``).
    hf: dict[str, Any] = field(default_factory=dict)
    vllm: dict[str, Any] = field(default_factory=dict)
    sglang: dict[str, Any] = field(default_factory=dict)


@dataclass
class VideoConfig:
    save_video: bool = False
    video_base_dir: str = "videos"


@dataclass
class EnvSplitConfig:
    #: Simulator (an ``env`` component): gymnasium (gym), metaworld, maniskill, libero, ...
    simulator_type: str | None = None
    task_suite_name: str | None = None
    #: Tasks of the suite the sub-envs run (sub-env ``j``: ``task_ids[j mod len]``); null: every task.
    task_ids: list[int] | None = None
    #: Environment id inside the simulator (e.g. a gymnasium id or a ManiSkill task).
    env_id: str | None = None
    total_num_envs: int = bounded(1, gt=0)
    max_episode_steps: int | None = bounded(None, gt=0)
    max_steps_per_rollout_epoch: int | None = bounded(None, gt=0)
    rollout_epoch: int = bounded(1, gt=0)
    auto_reset: bool = True
    ignore_terminations: bool = False
    group_size: int = bounded(1, gt=0)
    #: Every training step resets the sub-envs to the same initial states (those of step 0) instead
    #: of drawing new ones (evaluation episodes always use fixed seeds).
    use_fixed_reset_state_ids: bool = False
    #: Train on the change of the env's reward since the previous step of the episode (dense progress
    #: rewards, as RLinf does); episode returns are still reported in the env's own reward.
    use_rel_reward: bool = False
    reward_coef: float = 1.0
    seed: int = 0
    video_cfg: VideoConfig = field(default_factory=VideoConfig)
    #: The simulator's own keys, checked by its plugin (rlinf-envs-embodied: ``rlinf_envs_embodied/options.py``).
    init_params: dict[str, Any] = field(default_factory=dict)


@dataclass
class EnvConfig:
    train: EnvSplitConfig = field(default_factory=EnvSplitConfig)
    eval: EnvSplitConfig = field(default_factory=EnvSplitConfig)


@dataclass
class RewardConfig:
    #: Reward function (a ``reward`` component): math, ...
    reward_type: str | None = None
    reward_scale: float = 1.0
    use_reward_model: bool = False


@dataclass
class ArithmeticConfig:
    """The synthetic task of ``data.type: arithmetic`` (``rlinf_core.data.arithmetic``)."""

    min_value: int = bounded(0, ge=0)
    max_value: int = bounded(9, ge=0)
    #: Any of ``+``, ``-`` (only a >= b), ``*``.
    operations: list[str] = field(default_factory=lambda: ["+"])
    #: Zero-pad answers to this many digits (0 = plain numbers).
    answer_width: int = bounded(0, ge=0)
    #: Problems drawn from every combination (-1 = all of them).
    num_problems: int = bounded(-1, gt=0, also=(-1,))
    #: Fraction held out for ``rlinf eval`` (0 = evaluate on the training problems).
    val_fraction: float = bounded(0.0, ge=0, lt=1)
    seed: int = 1
    #: Supervised steps on the answer *format* before RL: targets are random answers of the right
    #: width, never a prompt's true answer (an honest warm start; 0 = pure RL).
    format_warmup_steps: int = bounded(0, ge=0)


@dataclass
class DataConfig:
    #: ``null`` (prompts from ``train_data_paths``) or ``arithmetic`` (the built-in synthetic task).
    type: str | None = None
    train_data_paths: list[str] = field(default_factory=list)
    val_data_paths: list[str] = field(default_factory=list)
    prompt_key: str = "prompt"
    answer_key: str = "answer"
    max_prompt_length: int | None = bounded(None, gt=0)
    rollout_batch_size: int = bounded(1, gt=0)
    shuffle: bool = True
    seed: int = 1
    apply_chat_template: bool = False
    arithmetic: ArithmeticConfig = field(default_factory=ArithmeticConfig)


@dataclass
class RlinfConfig:
    """The whole experiment config: one YAML, these sections."""

    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    runner: RunnerConfig = field(default_factory=RunnerConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    actor: ActorConfig = field(default_factory=ActorConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    data: DataConfig = field(default_factory=DataConfig)
    #: Free-form section for user and plugin values (``${...}`` interpolation targets).
    extra: dict[str, Any] = field(default_factory=dict)


#: Config keys whose value names a component, and the component kind it must be.
COMPONENT_KEYS: dict[str, str] = {
    "cluster.placement": "placement",
    "runner.task_type": "flow",
    "algorithm.adv_type": "advantage",
    "algorithm.loss_type": "policy_loss",
    "algorithm.loss_agg_func": "loss_agg",
    "algorithm.kl_penalty": "kl",
    "actor.training_backend": "training_backend",
    "actor.model.model_type": "model",
    "critic.model.model_type": "model",
    "rollout.rollout_backend": "rollout_engine",
    "rollout.model.model_type": "model",
    "env.train.simulator_type": "env",
    "env.eval.simulator_type": "env",
    "reward.reward_type": "reward",
}
