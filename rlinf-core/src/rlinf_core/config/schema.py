"""Dataclass schemas of every config section, in the order a YAML usually lists them.

Key names follow RLinf's published example configs where they fit (see ``compat.py`` for the
keys we rename). ``Dict[str, Any]`` fields are engine-specific sections passed through to the
component that owns them, which validates them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any  # noqa: UP035 - OmegaConf needs typing generics


@dataclass
class ClusterConfig:
    num_nodes: int = 1
    #: ``inline`` (every worker in this process) or ``ray``.
    executor: str = "inline"
    #: Address of a running Ray cluster; unset starts a local one.
    ray_address: str | None = None
    #: Devices per node the placement may use (CPU slots on a CPU-only machine); unset = detect.
    num_devices_per_node: int | None = None
    #: Placement strategy (a ``placement`` component): collocated, disaggregated, hybrid, auto.
    placement: str | None = None
    #: RLinf's placement syntax, e.g. ``{"actor,rollout": all}`` or ``{actor: 0-3, rollout: 4-7}``.
    component_placement: dict[str, Any] = field(default_factory=dict)


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
    max_epochs: int = 1
    max_steps: int = -1
    val_check_interval: int = -1
    save_interval: int = -1
    resume_dir: str | None = None
    only_eval: bool = False
    seq_length: int | None = None
    seed: int = 1
    logger: LoggerConfig = field(default_factory=LoggerConfig)


@dataclass
class SamplingConfig:
    do_sample: bool = True
    temperature: float = 1.0
    top_k: int = -1
    top_p: float = 1.0
    max_new_tokens: int | None = None
    repetition_penalty: float = 1.0


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
    kl_beta: float = 0.0
    #: Use KL as a loss term (true) or as a reward penalty (false).
    use_kl_loss: bool = True
    group_size: int = 1
    normalize_advantages: bool = True
    #: GRPO: divide by the group std (false = Dr.GRPO).
    norm_by_std: bool = True
    ratio_clip_eps: float = 0.2
    clip_ratio_low: float | None = None
    clip_ratio_high: float | None = None
    clip_ratio_c: float | None = None
    #: GSPO: sequence-level importance ratio.
    sequence_ratio: bool = False
    value_clip: float | None = None
    huber_delta: float | None = None
    gamma: float = 1.0
    gae_lambda: float = 1.0
    reward_type: str = "action_level"
    logprob_type: str = "token_level"
    entropy_type: str = "token_level"
    entropy_bonus: float = 0.0
    filter_rewards: bool = False
    rewards_lower_bound: float | None = None
    rewards_upper_bound: float | None = None
    max_num_gen_batches: int = 1
    overlong_buffer_len: int = 0
    overlong_penalty_factor: float = 1.0
    recompute_logprobs: bool = True
    n_minibatches: int = 1
    update_epoch: int = 1
    sampling_params: SamplingConfig = field(default_factory=SamplingConfig)


@dataclass
class ModelConfig:
    #: Model family (a ``model`` component): qwen2.5, openvla_oft, pi0, mlp_policy, ...
    model_type: str | None = None
    model_path: str | None = None
    precision: str = "fp32"
    is_lora: bool = False
    lora_rank: int = 0
    unnorm_key: str | None = None
    #: Architecture overrides for a model built from a config instead of a checkpoint.
    config: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    lr: float = 1.0e-6
    value_lr: float | None = None
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1.0e-8
    weight_decay: float = 0.0
    clip_grad: float = 1.0


@dataclass
class LrSchedConfig:
    lr_warmup_fraction: float = 0.0
    lr_decay_style: str = "constant"
    min_lr: float = 0.0
    max_lr: float | None = None


@dataclass
class TokenizerConfig:
    tokenizer_model: str | None = None
    padding_side: str = "left"


@dataclass
class ActorConfig:
    #: Training backend (a ``training_backend`` component): fsdp, megatron.
    training_backend: str | None = None
    micro_batch_size: int = 1
    global_batch_size: int = 1
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
    pipeline_stage_num: int = 1
    enable_offload: bool = False
    gpu_memory_utilization: float = 0.5
    tensor_parallel_size: int = 1
    return_logprobs: bool = True
    vllm: dict[str, Any] = field(default_factory=dict)
    sglang: dict[str, Any] = field(default_factory=dict)


@dataclass
class VideoConfig:
    save_video: bool = False
    video_base_dir: str = "videos"


@dataclass
class EnvSplitConfig:
    #: Simulator (an ``env`` component): gym, maniskill, libero, metaworld, ...
    simulator_type: str | None = None
    task_suite_name: str | None = None
    #: Environment id inside the simulator (e.g. a gymnasium id or a ManiSkill task).
    env_id: str | None = None
    total_num_envs: int = 1
    max_episode_steps: int | None = None
    max_steps_per_rollout_epoch: int | None = None
    rollout_epoch: int = 1
    auto_reset: bool = True
    ignore_terminations: bool = False
    group_size: int = 1
    use_fixed_reset_state_ids: bool = False
    use_rel_reward: bool = False
    reward_coef: float = 1.0
    seed: int = 0
    video_cfg: VideoConfig = field(default_factory=VideoConfig)
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
class DataConfig:
    type: str | None = None
    train_data_paths: list[str] = field(default_factory=list)
    val_data_paths: list[str] = field(default_factory=list)
    prompt_key: str = "prompt"
    answer_key: str = "answer"
    max_prompt_length: int | None = None
    rollout_batch_size: int = 1
    shuffle: bool = True
    seed: int = 1
    apply_chat_template: bool = False


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
