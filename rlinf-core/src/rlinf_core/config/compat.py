"""RLinf's config keys and what rlinf makes of them: the one table for both ways in.

- :data:`RENAMED_KEYS`: RLinf names that ``load_config`` accepts and renames on the fly (with a note).
- :data:`RULES` / :data:`FALLBACK_RULES`: how ``rlinf config migrate`` (``migrate.py``) treats every
  other RLinf key: mapped to our key, dropped with the reason it has no meaning here, or not
  supported yet with the feature it needs. ``RULES`` are tried before the schema (so a rule can
  refine keys of free-form sections such as ``actor.fsdp_config``); ``FALLBACK_RULES`` only for
  keys the schema does not have.

Component *values* RLinf uses (``reinpp``, ``low_var_kl``, ``actor_critic``) are aliases registered
by the components themselves.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

RENAMED_KEYS: dict[str, str] = {
    "algorithm.kl_penalty_type": "algorithm.kl_penalty",
    "rollout.generation_backend": "rollout.rollout_backend",
    "env.train.env_type": "env.train.simulator_type",
    "env.eval.env_type": "env.eval.simulator_type",
}


def apply_renames(data: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """Rename RLinf keys in a plain nested dict in place; append one note per rename."""
    for old, new in RENAMED_KEYS.items():
        *old_parents, old_leaf = old.split(".")
        node: Any = data
        for part in old_parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or old_leaf not in node:
            continue
        value = node.pop(old_leaf)
        *new_parents, new_leaf = new.split(".")
        target = data
        for part in new_parents:
            target = target.setdefault(part, {})
        if new_leaf in target and target[new_leaf] != value:
            notes.append(f"both {old} ({value!r}) and {new} ({target[new_leaf]!r}) are set; using {new}")
            continue
        target[new_leaf] = value
        notes.append(f"RLinf key {old} is read as {new}")
    return data


# ------------------------------------------------------------------------------------------ migration

MAPPED, KEPT, DROPPED, UNSUPPORTED = "mapped", "kept", "dropped", "not supported yet"


def get_path(data: Any, path: str, default: Any = None) -> Any:
    """``data["a"]["b"]`` for ``"a.b"`` in nested dicts; ``default`` where a part is missing."""
    node = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def _off(value: Any) -> bool:
    return value is None or value is False or value == 0 or value in ("", "none", "None") or value == [] or value == {}


@dataclass(frozen=True)
class Rule:
    """How migration treats the RLinf keys whose dotted path fully matches ``pattern`` (a regex).

    ``status``: mapped (to ``target``, a template that may use the pattern's groups, ``\\1``),
    dropped (``reason``: why it has no meaning here) or not supported yet (``reason``: the feature).
    ``when(value, config)`` limits the rule to some values. ``convert`` maps the value. With
    ``off_ok``, a not-supported feature that the value turns off (null, false, 0) is dropped instead.
    """

    pattern: str
    status: str
    reason: str = ""
    target: str | None = None
    when: Callable[[Any, dict[str, Any]], bool] | None = None
    convert: Callable[[Any], Any] | None = None
    off_ok: bool = False

    def matches(self, path: str, value: Any, config: dict[str, Any]) -> re.Match[str] | None:
        m = re.fullmatch(self.pattern, path)
        if m is None or (self.when is not None and not self.when(value, config)):
            return None
        return m


def _backend_is(name: str) -> Callable[[Any, dict[str, Any]], bool]:
    return lambda _v, cfg: get_path(cfg, "actor.training_backend") == name


def _not_backend(name: str) -> Callable[[Any, dict[str, Any]], bool]:
    return lambda _v, cfg: get_path(cfg, "actor.training_backend") != name


def _is(*values: Any) -> Callable[[Any, dict[str, Any]], bool]:
    return lambda v, _cfg: v in values


def _sim(name: str) -> Callable[[Any, dict[str, Any]], bool]:
    return lambda _v, cfg: name in (get_path(cfg, "env.train.env_type"), get_path(cfg, "env.eval.env_type"))


def _model(*names: str) -> Callable[[Any, dict[str, Any]], bool]:
    return lambda _v, cfg: get_path(cfg, "actor.model.model_type") in names


def _mib(size_bytes: Any) -> Any:
    return max(1, math.ceil(int(size_bytes) / 2**20)) if isinstance(size_bytes, int) else size_bytes


def _repeats_actor(section: str) -> Callable[[Any, dict[str, Any]], bool]:
    """The value is ``${actor.<section>.<same leaf>}`` or equal to it: a copy of the actor's setting."""
    def check(value: Any, cfg: dict[str, Any], _section: str = section) -> bool:
        return isinstance(value, str) and value.startswith(f"${{actor.{_section}.") or value is None
    return check


def _placed(group: str) -> Callable[[Any, dict[str, Any]], bool]:
    def check(_v: Any, cfg: dict[str, Any]) -> bool:
        spec = get_path(cfg, "cluster.component_placement") or {}
        return any(group in str(key).replace(" ", "").split(",") for key in spec)
    return check


_MEGATRON_MODEL = (
    r"tensor_model_parallel_size|pipeline_model_parallel_size|sequence_parallel|recompute_method|"
    r"recompute_granularity|recompute_num_layers|activation|normalization|position_embedding_type|apply_rope_fusion|"
    r"bias_dropout_fusion|bias_activation_fusion|persist_layer_norm|attention_softmax_in_fp32|batch_p2p_comm|"
    r"variable_seq_lengths|gradient_accumulation_fusion|moe_token_dispatcher_type|use_cpu_initialization|"
    r"add_bias_linear|megatron_checkpoint"
)
_MEGATRON_ACTOR = r"mcore_gpt|spec_name|offload_optimizer|offload_weight|offload_grad|enable_dp_load_balance"
_MEGATRON_OPTIM = (
    r"bf16|fp16|loss_scale|use_distributed_optimizer|overlap_grad_reduce|overlap_param_gather|optimizer_enable_pin|"
    r"overlap_param_gather_with_optimizer_step"
)
_SPLIT = r"env\.(train|eval)"
_OPENVLA = ("openvla", "openvla_oft")
_GROUP = "rlinf names each worker group by its section (actor, rollout, env, reward, critic); placement uses those names"
_CUDA_GRAPH = "CUDA-graph capture is the engine's own business (vLLM: rollout.vllm.enforce_eager)"
_NO_PROMPT_ENV = "set by the model and simulator plugins"

#: Tried first, before the schema: the first rule that matches a key decides.
RULES: tuple[Rule, ...] = (
    # -- renamed or moved
    *(Rule(re.escape(old), MAPPED, target=new) for old, new in RENAMED_KEYS.items()),
    Rule(r"rollout\.backend", MAPPED, target="rollout.rollout_backend"),
    Rule(rf"{_SPLIT}\.gym_id", MAPPED, target=r"env.\1.env_id"),
    Rule(rf"{_SPLIT}\.task_suite_name", MAPPED, "RLinf's name of Meta-World's MT50 benchmark",
         target=r"env.\1.task_suite_name", when=_is("metaworld_50"), convert=lambda _v: "MT50"),
    Rule(rf"{_SPLIT}\.init_params\.obs_mode", MAPPED,
         "segmentation masks are not supported yet: the policy gets the rgb images only",
         target=r"env.\1.init_params.obs_mode", when=_is("rgb+segmentation"), convert=lambda _v: "rgb"),
    Rule(rf"{_SPLIT}\.init_params\.id", MAPPED, target=r"env.\1.env_id", when=_sim("maniskill")),
    Rule(rf"{_SPLIT}\.init_params\.num_envs", DROPPED, "rlinf sets it from env.*.total_num_envs", when=_is(None)),
    Rule(rf"{_SPLIT}\.init_params\.max_episode_steps", DROPPED, "rlinf passes env.*.max_episode_steps to the simulator",
         when=lambda v, cfg: isinstance(v, str) and v.startswith("${") or v in (
             get_path(cfg, "env.train.max_episode_steps"), get_path(cfg, "env.eval.max_episode_steps"))),
    Rule(rf"{_SPLIT}\.init_params\.(sim_config|sensor_configs|render_mode|obj_set)(\..*)?", MAPPED,
         target=r"env.\1.init_params.make_kwargs.\2\3", when=_sim("maniskill")),
    Rule(r"rollout\.sampling_params\.temperature_train", MAPPED, target="algorithm.sampling_params.temperature"),
    Rule(r"rollout\.sampling_params\.temperature_eval", DROPPED, "the same as temperature_train",
         when=lambda v, cfg: v == get_path(cfg, "rollout.sampling_params.temperature_train")),
    Rule(r"rollout\.sampling_params\.temperature_eval", UNSUPPORTED,
         "a separate evaluation temperature (evaluation samples at algorithm.sampling_params.temperature)"),
    Rule(r"rollout\.sampling_params\.top_k", MAPPED, "RLinf's 0 (no top-k limit) is -1 here",
         target="algorithm.sampling_params.top_k", when=_is(0), convert=lambda _v: -1),
    Rule(r"rollout\.sampling_params\.(temperature|do_sample|top_k|top_p|repetition_penalty|max_new_tokens)", MAPPED,
         target=r"algorithm.sampling_params.\1"),
    Rule(r"(algorithm|rollout)\.sampling_params\.min_new_tokens", DROPPED,
         "at most one token is the minimum an engine generates anyway", when=_is(None, 0, 1)),
    Rule(r"(algorithm|rollout)\.sampling_params\.min_new_tokens", UNSUPPORTED, "a minimum response length"),
    Rule(r"rollout\.recompute_logprobs", MAPPED, target="algorithm.recompute_logprobs"),
    Rule(r"algorithm\.training_batch_size_per_gpu", MAPPED, target="actor.micro_batch_size"),
    Rule(r"algorithm\.value_cliprange", MAPPED, target="algorithm.value_clip"),
    Rule(r"actor\.optim\.min_lr", MAPPED, target="actor.lr_sched.min_lr"),
    Rule(r"rollout\.enforce_eager", MAPPED, target="rollout.vllm.enforce_eager"),
    Rule(r"rollout\.(distributed_executor_backend|disable_log_stats)", MAPPED,
         target=r"rollout.vllm.engine_kwargs.\1"),
    Rule(r"rollout\.vllm\.enable_chunked_prefill", MAPPED, target="rollout.vllm.engine_kwargs.enable_chunked_prefill"),
    Rule(r"rollout\.sglang\.use_torch_compile", MAPPED, target="rollout.sglang.engine_kwargs.enable_torch_compile"),
    Rule(r"rollout\.sglang\.(attention_backend|decode_log_interval|torch_compile_max_bs)", MAPPED,
         target=r"rollout.sglang.engine_kwargs.\1"),
    Rule(r"weight_syncer\.(bucket\.bucket_size|patch\.init_sync\.bucket_size)", MAPPED,
         target="rollout.weight_sync_bucket_mb", convert=_mib),
    # -- Megatron settings go to the megatron backend's own section
    Rule(rf"actor\.model\.({_MEGATRON_MODEL})", MAPPED, target=r"actor.megatron.\1", when=_backend_is("megatron")),
    Rule(rf"actor\.({_MEGATRON_ACTOR})", MAPPED, target=r"actor.megatron.\1", when=_backend_is("megatron")),
    Rule(rf"actor\.optim\.({_MEGATRON_OPTIM})", MAPPED, target=r"actor.megatron.optim.\1", when=_backend_is("megatron")),
    Rule(r"actor\.optim\.(bf16|fp16)", DROPPED,
         "training precision is actor.model.precision with actor.fsdp_config.mixed_precision"),
    Rule(r"actor\.optim\.loss_scale", UNSUPPORTED, "fp16 loss scaling in the fsdp backend", off_ok=True),
    Rule(rf"actor\.optim\.({_MEGATRON_OPTIM})", DROPPED, "a Megatron optimizer option; the fsdp backend has none",
         when=_not_backend("megatron")),
    Rule(rf"actor\.model\.({_MEGATRON_MODEL})", DROPPED, "a Megatron model option; the fsdp backend has none",
         when=_not_backend("megatron")),
    # -- OpenVLA / OpenVLA-OFT options RLinf keeps on actor.model (rlinf's VLA plugins read actor.model.config)
    Rule(r"actor\.model\.use_proprio", MAPPED, target="actor.model.config.use_proprio", when=_model(*_OPENVLA)),
    Rule(r"actor\.model\.(vocab_size|hidden_size|image_size)", DROPPED,
         "read from the checkpoint's config.json (actor.model.model_path)", when=_model(*_OPENVLA)),
    Rule(r"actor\.model\.(trust_remote_code|low_cpu_mem_usage|attn_implementation)", DROPPED,
         "rlinf builds the OpenVLA network itself (no remote code; SDPA attention) and loads its weights directly",
         when=_model(*_OPENVLA)),
    Rule(r"actor\.model\.num_images_in_input", UNSUPPORTED,
         "a camera count (rlinf's VLAs name their cameras: actor.model.config.cameras)", when=_model(*_OPENVLA)),
    Rule(rf"actor\.({_MEGATRON_ACTOR})", DROPPED, "a Megatron worker option; the fsdp backend has none",
         when=_not_backend("megatron")),
    Rule(r"actor\.optim\.optimizer", DROPPED, "rlinf's training backends use AdamW (Adam when weight_decay is 0)",
         when=_is("adam", "adamw")),
    Rule(r"actor\.optim\.optimizer", UNSUPPORTED, "optimizers other than AdamW"),
    # -- no meaning here
    Rule(r"(actor|critic|rollout|reward|env|inference)\.group_name", DROPPED, _GROUP),
    Rule(r"rollout\.(enable_cuda_graph|cuda_graph_max_bs)", DROPPED, _CUDA_GRAPH),
    Rule(r"rollout\.detokenize", DROPPED, "rollout engines return token ids; the reward decodes the responses"),
    Rule(r"rollout\.(validate_weight|validate_save_dir|print_outputs)", UNSUPPORTED,
         "RLinf's rollout debugging output", off_ok=True),
    Rule(r"rollout\.(padding|eos)", UNSUPPORTED, "fixed pad / eos token ids (rlinf takes them from the tokenizer)",
         off_ok=True),
    Rule(r"rollout\.enable_torch_compile", UNSUPPORTED, "torch.compile of the rollout policy", off_ok=True),
    Rule(r"rollout\.max_running_requests", UNSUPPORTED,
         "one concurrency limit for every engine (set rollout.vllm.max_num_seqs or rollout.sglang.max_running_requests)"),
    Rule(r"rollout\.pipeline_parallel_size", DROPPED, "1: no pipeline parallelism in the rollout engine", when=_is(1)),
    Rule(r"rollout\.pipeline_parallel_size", UNSUPPORTED, "pipeline-parallel rollout engines"),
    Rule(r"rollout\.vllm\.(attention_backend|enable_flash_infer_sampler)", UNSUPPORTED,
         "choosing vLLM's attention backend / sampler from the config (use vLLM's VLLM_* environment variables)"),
    Rule(r"rollout\.vllm\.torch_profiler_dir", UNSUPPORTED, "vLLM's torch profiler", off_ok=True),
    Rule(r"(actor|critic)\.calculate_flops", UNSUPPORTED, "FLOPs / MFU metrics", off_ok=True),
    Rule(r"algorithm\.calculate_entropy", UNSUPPORTED, "switching the entropy metric on and off", off_ok=True),
    Rule(r"algorithm\.(rollout_batch_size_per_gpu|val_rollout_batch_size_per_gpu)", UNSUPPORTED,
         "a per-GPU rollout batch size (each rollout rank generates its whole share)", off_ok=True),
    Rule(r"algorithm\.logprob_forward_micro_batch_size", UNSUPPORTED,
         "a micro-batch size of its own for log-prob passes (they use actor.micro_batch_size)"),
    Rule(r"algorithm\.shuffle_rollout", DROPPED, "rlinf shuffles rollout rows every update epoch", when=_is(True)),
    Rule(r"algorithm\.shuffle_rollout", UNSUPPORTED, "updating on rollout rows in order (rlinf shuffles them)"),
    Rule(r"algorithm\.early_stop_imp_ratio", UNSUPPORTED, "stopping an update early on a large importance ratio",
         off_ok=True),
    Rule(r"algorithm\.use_valid_token_scale", UNSUPPORTED, "valid-token loss scaling", off_ok=True),
    Rule(r"algorithm\.bootstrap_type", DROPPED, "rlinf's GAE bootstraps on truncations only, as RLinf's 'standard'",
         when=_is("standard")),
    Rule(r"algorithm\.bootstrap_type", UNSUPPORTED, "bootstrapping GAE on terminations too (bootstrap_type: always)"),
    Rule(r"(algorithm|actor\.optim)\.critic_warmup_steps", UNSUPPORTED, "critic warm-up steps", off_ok=True),
    Rule(r"algorithm\.reinpp_kl_beta", UNSUPPORTED,
         "RLinf's REINFORCE++ KL-in-reward coefficient; rlinf's equivalent: algorithm.kl_beta=<value> "
         "algorithm.use_kl_loss=false", off_ok=True),
    Rule(r"algorithm\.use_reinpp_baseline", DROPPED, "false: plain REINFORCE++ (algorithm.adv_type)", when=_is(False)),
    Rule(r"algorithm\.use_reinpp_baseline", UNSUPPORTED,
         "this switch; rlinf's equivalent: algorithm.adv_type=reinforce_plus_plus_baseline"),
    Rule(r"algorithm\.reward_coef", DROPPED, "read by no RLinf component itself; env.*.reward_coef scales the reward"),
    Rule(r"runner\.(experiment_name|output_dir)", DROPPED, "an RLinf variable that only builds runner.logger.* values"),
    Rule(r"runner\.max_prompt_length", DROPPED, "embodied runs have no prompts (reasoning: data.max_prompt_length)"),
    Rule(r"runner\.ckpt_path", UNSUPPORTED, "loading a .pt checkpoint into the policy before a run", off_ok=True),
    Rule(r"runner\.enable_dynamic_batch_size", DROPPED,
         "false: fixed micro-batches of actor.micro_batch_size, which is what rlinf does", when=_is(False, None)),
    Rule(r"runner\.enable_dynamic_batch_size", UNSUPPORTED, "token-budget (dynamic) micro-batches"),
    Rule(r"runner\.max_tokens_per_mbs", DROPPED, "read only with runner.enable_dynamic_batch_size, which is off",
         when=lambda _v, cfg: not get_path(cfg, "runner.enable_dynamic_batch_size")),
    Rule(r"runner\.max_tokens_per_mbs", UNSUPPORTED, "token-budget (dynamic) micro-batches"),
    Rule(r"(actor|critic)\.model\.(seq_length|encoder_seq_length)", DROPPED,
         "RLinf copies runner.seq_length here; rlinf reads runner.seq_length"),
    Rule(r"actor\.model\.lora_path", UNSUPPORTED, "loading LoRA adapter weights", off_ok=True),
    Rule(r"(actor|critic|rollout)\.model\.precision", UNSUPPORTED,
         "precision null, meaning the checkpoint's own dtype (set bf16, fp16 or fp32; fp32 applies)", when=_is(None)),
    # -- actor.fsdp_config (a free-form section: these refine what the fsdp backend reads)
    Rule(r"actor\.fsdp_config\.strategy", DROPPED, "rlinf's fsdp backend always uses FSDP2 (fully_shard)"),
    Rule(r"actor\.fsdp_config\.sharding_strategy", DROPPED, "full sharding is what FSDP2's fully_shard does",
         when=_is("full_shard")),
    Rule(r"actor\.fsdp_config\.sharding_strategy", UNSUPPORTED,
         "FSDP sharding strategies other than full_shard (a single rank is never sharded)"),
    Rule(r"actor\.fsdp_config\.(cpu_offload|offload_pin_memory)", UNSUPPORTED,
         "FSDP CPU offload during the step (actor.enable_offload offloads between phases)", off_ok=True),
    Rule(r"actor\.fsdp_config\.enable_gradient_accumulation", DROPPED, "rlinf always accumulates over micro-batches"),
    Rule(r"actor\.fsdp_config\.(limit_all_gathers|use_orig_params)", DROPPED, "an FSDP1 option; FSDP2 has none"),
    Rule(r"actor\.fsdp_config\.(forward_prefetch|backward_prefetch)", UNSUPPORTED, "FSDP prefetch tuning", off_ok=True),
    Rule(r"actor\.fsdp_config\.use_liger_kernel", UNSUPPORTED, "Liger kernels", off_ok=True),
    Rule(r"actor\.fsdp_config\.amp_autocast\..*", DROPPED, "autocast is off here",
         when=lambda _v, cfg: not get_path(cfg, "actor.fsdp_config.amp_autocast.enabled")),
    Rule(r"actor\.fsdp_config\.amp_autocast\..*", UNSUPPORTED,
         "AMP autocast as a switch of its own (rlinf autocasts when fsdp_config.mixed_precision.param_dtype "
         "differs from the weights)"),
    Rule(r"actor\.fsdp_config\.grad_scaler\..*", UNSUPPORTED, "a GradScaler for fp16 training", off_ok=True),
    Rule(r"inference\..*", DROPPED, "RLinf's separate inference group is not in cluster.component_placement",
         when=lambda v, cfg: not _placed("inference")(v, cfg)),
    Rule(r"inference\..*", UNSUPPORTED, "a separate inference worker group (rlinf computes log-probs on the actor)"),
    # -- weight sync
    Rule(r"weight_syncer\.type", DROPPED, "rlinf syncs full weights in buckets (rollout.weight_sync_bucket_mb)",
         when=_is("bucket")),
    Rule(r"weight_syncer\.type", UNSUPPORTED,
         "delta (patch) weight sync: rlinf sends full weights in buckets of rollout.weight_sync_bucket_mb"),
    Rule(r"weight_syncer\.bucket\.(bucket_dtype|is_agent)", UNSUPPORTED,
         "casting or agent-side weight buckets", off_ok=True),
    Rule(r"weight_syncer\.bucket\.load_instant", DROPPED, "each bucket is loaded as it arrives", when=_is(True)),
    Rule(r"weight_syncer\.(bucket\..*|patch\..*)", UNSUPPORTED,
         "RLinf weight-syncer options (rlinf: full weights in buckets of rollout.weight_sync_bucket_mb)"),
    # -- copies of the actor's settings
    Rule(r"reward\.tokenizer\..*", DROPPED, "the reward decodes with actor.tokenizer; this repeats it",
         when=_repeats_actor("tokenizer")),
    Rule(r"reward\.tokenizer\..*", UNSUPPORTED, "a reward tokenizer apart from actor.tokenizer"),
    Rule(r"critic\.tokenizer\..*", DROPPED, "the critic uses actor.tokenizer; this repeats it",
         when=_repeats_actor("tokenizer")),
    Rule(r"critic\.training_backend", DROPPED, "the critic trains with actor.training_backend, the same",
         when=lambda v, cfg: v == get_path(cfg, "actor.training_backend")),
    # -- env
    Rule(rf"{_SPLIT}\.is_eval", DROPPED, "env.eval is the evaluation split"),
    Rule(rf"{_SPLIT}\.video_cfg\.info_on_video", UNSUPPORTED, "step information drawn on videos", off_ok=True),
    Rule(rf"{_SPLIT}\.enable_offload", UNSUPPORTED, "offloading the simulator between phases", off_ok=True),
    Rule(rf"{_SPLIT}\.use_ordered_reset_state_ids", UNSUPPORTED, "reset states taken in order", off_ok=True),
    # -- data
    Rule(r"data\.dataset_name", DROPPED, "a label; runs are named by runner.logger.experiment_name"),
    Rule(r"data\.num_workers", DROPPED, "prompts are loaded in the driver process"),
    Rule(r"data\.filter_prompt_by_length", UNSUPPORTED,
         "dropping prompts over data.max_prompt_length (rlinf keeps their last max_prompt_length tokens)", off_ok=True),
    Rule(r"data\.val_rollout_batch_size", UNSUPPORTED, "a validation batch size of its own", off_ok=True),
    Rule(r"data\.validation_shuffle", UNSUPPORTED, "shuffling the validation prompts", off_ok=True),
    # -- learning-rate schedule
    Rule(r"(actor|critic)\.lr_sched\.(lr_warmup_init|lr_warmup_iters)", UNSUPPORTED,
         "warm-up from a non-zero lr or over a number of iterations (rlinf: lr_warmup_fraction)", off_ok=True),
    Rule(r"actor\.lr_sched\.lr_decay_iters", UNSUPPORTED,
         "decay over a fixed number of iterations (rlinf decays over the run's optimizer steps)",
         when=lambda _v, cfg: get_path(cfg, "actor.lr_sched.lr_decay_style") != "constant"),
    Rule(r"actor\.lr_sched\.lr_decay_iters", DROPPED, "lr_decay_style is constant, so there is no decay"),
    Rule(r"(actor|critic)\.lr_sched\.(start_weight_decay|end_weight_decay)", UNSUPPORTED, "a weight-decay schedule"),
)

#: Tried for keys that no rule matched and that are not in rlinf's schema.
FALLBACK_RULES: tuple[Rule, ...] = (
    Rule(r"critic\..*", UNSUPPORTED, "critic settings apart from the actor's (rlinf's critic takes all but "
         "critic.model / critic.optim from actor)"),
    Rule(r"actor\.model\.openpi\..*", UNSUPPORTED, "openpi (pi0) policy options (the VLA plugin declares its keys)"),
    Rule(r"actor\.model\.[^.]+(\..*)?", UNSUPPORTED, "a model option the model plugin has not declared yet"),
    Rule(rf"{_SPLIT}\.[^.]+(\..*)?", UNSUPPORTED, "a simulator option the env plugin has not declared yet"),
)

#: The reason given to an RLinf key that no rule knows and the schema does not have.
UNKNOWN_REASON = "no rlinf equivalent known: not an RLinf key rlinf has a rule for (check its spelling)"
