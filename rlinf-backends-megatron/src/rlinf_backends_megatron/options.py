"""The ``actor.megatron`` section: parallel layout, recomputation and optimizer options (torch-free).

Keys (RLinf's names; ``rlinf config migrate`` moves RLinf's ``actor.model.<key>`` and
``actor.optim.<key>`` Megatron settings here, the optimizer ones under ``actor.megatron.optim``):

- ``tensor_model_parallel_size``, ``pipeline_model_parallel_size``,
  ``virtual_pipeline_model_parallel_size`` (null = no interleaving), ``context_parallel_size``,
  ``expert_model_parallel_size``, ``expert_tensor_parallel_size`` (null = the TP size);
- ``sequence_parallel`` (needs TP > 1 to matter);
- ``recompute_granularity`` (null / ``full`` / ``selective``), ``recompute_method`` (``uniform`` /
  ``block``), ``recompute_num_layers``;
- ``moe_token_dispatcher_type`` (``alltoall``, the default, or ``allgather``);
- ``make_vocab_size_divisible_by`` (the embedding is padded to a multiple of it times the TP size;
  the padded logits are masked, so log-probs equal the Hugging Face model's);
- ``optim.use_distributed_optimizer`` (megatron-core's ``DistributedOptimizer``; CUDA only),
  ``optim.bf16`` / ``optim.fp16`` (otherwise ``actor.model.precision`` decides), ``optim.loss_scale``.

RLinf keys with no effect here (fusion switches, checkpoint conversion, profiler, ...) are
accepted and ignored; any other key is an error with the closest valid name.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, fields
from typing import Any

from rlinf_core.config.access import get as _get
from rlinf_core.config.access import plain as _plain

#: Keys read by the backend (top level of ``actor.megatron``).
KEYS = (
    "tensor_model_parallel_size", "pipeline_model_parallel_size", "virtual_pipeline_model_parallel_size",
    "context_parallel_size", "expert_model_parallel_size", "expert_tensor_parallel_size", "sequence_parallel",
    "recompute_granularity", "recompute_method", "recompute_num_layers", "make_vocab_size_divisible_by",
    "use_distributed_optimizer", "moe_token_dispatcher_type", "optim",
)
#: ``actor.megatron.optim`` keys read by the backend.
OPTIM_KEYS = ("use_distributed_optimizer", "bf16", "fp16", "loss_scale")
#: RLinf keys accepted and ignored (kernel fusions, profiling, conversion, worker switches).
IGNORED = (
    "mcore_gpt", "spec_name", "offload_optimizer", "offload_weight", "offload_grad", "enable_dp_load_balance",
    "activation", "normalization", "position_embedding_type", "apply_rope_fusion", "bias_dropout_fusion",
    "bias_activation_fusion", "persist_layer_norm", "attention_softmax_in_fp32", "batch_p2p_comm",
    "variable_seq_lengths", "gradient_accumulation_fusion", "use_cpu_initialization",
    "add_bias_linear", "megatron_checkpoint", "ddp_bucket_size", "distributed_backend", "distributed_timeout_minutes",
    "ckpt_format", "use_dist_ckpt", "tp_comm_bootstrap_backend", "tp_comm_overlap_cfg", "use_hf_ckpt", "use_profiler",
    "ckpt_convertor", "profiler", "seq_length", "encoder_seq_length", "moe_grouped_gemm",
)
_OPTIM_IGNORED = ("overlap_grad_reduce", "overlap_param_gather", "optimizer_enable_pin",
                  "overlap_param_gather_with_optimizer_step")
_GRANULARITIES = ("full", "selective")
_METHODS = ("uniform", "block")
_DISPATCHERS = ("alltoall", "allgather")


def _did_you_mean(key: str, valid: tuple[str, ...]) -> str:
    near = difflib.get_close_matches(key, valid, n=1)
    return f" (did you mean {near[0]}?)" if near else ""


class MegatronConfigError(ValueError):
    """Problems in ``actor.megatron``, one line each (``problems``)."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class MegatronOptions:
    """The parsed ``actor.megatron`` section."""

    tensor_model_parallel_size: int = 1
    pipeline_model_parallel_size: int = 1
    virtual_pipeline_model_parallel_size: int | None = None
    context_parallel_size: int = 1
    expert_model_parallel_size: int = 1
    expert_tensor_parallel_size: int | None = None
    sequence_parallel: bool = False
    recompute_granularity: str | None = None
    recompute_method: str | None = None
    recompute_num_layers: int | None = None
    make_vocab_size_divisible_by: int = 128
    use_distributed_optimizer: bool = False
    #: How MoE layers move tokens to experts (``alltoall`` needs CUDA streams; ``allgather`` runs anywhere).
    moe_token_dispatcher_type: str = "alltoall"
    #: ``bf16`` / ``fp16`` / ``None`` (``actor.model.precision`` decides).
    precision: str | None = None
    loss_scale: float | None = None

    @property
    def model_parallel_size(self) -> int:
        """Ranks holding one copy of the model: TP x PP x CP."""
        return self.tensor_model_parallel_size * self.pipeline_model_parallel_size * self.context_parallel_size

    @classmethod
    def from_config(cls, config: Any) -> MegatronOptions:
        """Parse and check ``config.actor.megatron``; raises :class:`MegatronConfigError`."""
        section = dict(_plain(_get(config, "actor.megatron")) or {})
        problems: list[str] = []
        for key in section:
            if key not in KEYS and key not in IGNORED:
                problems.append(f"actor.megatron.{key}: unknown key{_did_you_mean(key, KEYS)}; valid: {', '.join(KEYS)}")
        optim = dict(section.get("optim") or {})
        for key in optim:
            if key not in OPTIM_KEYS and key not in _OPTIM_IGNORED:
                problems.append(f"actor.megatron.optim.{key}: unknown key{_did_you_mean(key, OPTIM_KEYS)}; "
                                f"valid: {', '.join(OPTIM_KEYS)}")
        values: dict[str, Any] = {}

        def integer(key: str, minimum: int = 1, nullable: bool = False) -> None:
            if key not in section or (section[key] is None and nullable):
                return
            value = section[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                problems.append(f"actor.megatron.{key}: must be an integer >= {minimum}, got {value!r}")
                return
            values[key] = value

        for key in ("tensor_model_parallel_size", "pipeline_model_parallel_size", "context_parallel_size",
                    "expert_model_parallel_size", "make_vocab_size_divisible_by"):
            integer(key)
        for key in ("virtual_pipeline_model_parallel_size", "expert_tensor_parallel_size", "recompute_num_layers"):
            integer(key, nullable=True)
        if "sequence_parallel" in section:
            values["sequence_parallel"] = bool(section["sequence_parallel"])
        gran = section.get("recompute_granularity")
        if gran is not None:
            if gran not in _GRANULARITIES:
                hint = _did_you_mean(str(gran), _GRANULARITIES)
                problems.append(f"actor.megatron.recompute_granularity: {gran!r} is not valid{hint}; "
                                f"valid: {', '.join(_GRANULARITIES)} (or null)")
            values["recompute_granularity"] = gran
        method = section.get("recompute_method")
        if method is not None:
            if method not in _METHODS:
                hint = _did_you_mean(str(method), _METHODS)
                problems.append(f"actor.megatron.recompute_method: {method!r} is not valid{hint}; "
                                f"valid: {', '.join(_METHODS)} (or null)")
            values["recompute_method"] = method
        if gran == "full" and (method is None or section.get("recompute_num_layers") is None):
            problems.append("actor.megatron.recompute_granularity=full needs recompute_method (uniform / block) and "
                            "recompute_num_layers")
        dispatcher = section.get("moe_token_dispatcher_type")
        if dispatcher is not None:
            if dispatcher not in _DISPATCHERS:
                problems.append(f"actor.megatron.moe_token_dispatcher_type: {dispatcher!r} is not valid"
                                f"{_did_you_mean(str(dispatcher), _DISPATCHERS)}; valid: {', '.join(_DISPATCHERS)}")
            values["moe_token_dispatcher_type"] = dispatcher
        distributed = optim.get("use_distributed_optimizer", section.get("use_distributed_optimizer"))
        values["use_distributed_optimizer"] = bool(distributed)
        if optim.get("bf16") and optim.get("fp16"):
            problems.append("actor.megatron.optim: bf16 and fp16 are both true; choose one")
        values["precision"] = "bf16" if optim.get("bf16") else "fp16" if optim.get("fp16") else None
        if optim.get("loss_scale") is not None:
            values["loss_scale"] = float(optim["loss_scale"])
        vpp = values.get("virtual_pipeline_model_parallel_size")
        if vpp is not None and vpp > 1 and values.get("pipeline_model_parallel_size", 1) < 2:
            problems.append(f"actor.megatron.virtual_pipeline_model_parallel_size={vpp} needs "
                            "pipeline_model_parallel_size >= 2")
        if problems:
            raise MegatronConfigError(problems)
        if vpp == 1:
            values["virtual_pipeline_model_parallel_size"] = None
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def layout_problems(self, world_size: int, *, num_layers: int | None = None, num_heads: int | None = None,
                        num_kv_heads: int | None = None, num_experts: int | None = None) -> list[str]:
        """Why this layout cannot run on ``world_size`` ranks with that model (empty when it can)."""
        tp, pp, cp, ep = (self.tensor_model_parallel_size, self.pipeline_model_parallel_size,
                          self.context_parallel_size, self.expert_model_parallel_size)
        etp = self.expert_tensor_parallel_size or tp
        out = []
        if world_size % (tp * pp * cp):
            out.append(f"actor.megatron: tensor_model_parallel_size ({tp}) x pipeline_model_parallel_size ({pp}) x "
                       f"context_parallel_size ({cp}) = {tp * pp * cp} does not divide the actor's world size "
                       f"({world_size}); choose sizes whose product divides it")
        elif world_size % (etp * ep * pp):
            out.append(f"actor.megatron: expert_tensor_parallel_size ({etp}) x expert_model_parallel_size ({ep}) x "
                       f"pipeline_model_parallel_size ({pp}) = {etp * ep * pp} does not divide the actor's world size "
                       f"({world_size})")
        if num_heads is not None and num_heads % tp:
            out.append(f"actor.megatron.tensor_model_parallel_size={tp} does not divide the model's "
                       f"num_attention_heads={num_heads}")
        if num_kv_heads is not None and num_kv_heads % tp:
            out.append(f"actor.megatron.tensor_model_parallel_size={tp} does not divide the model's "
                       f"num_key_value_heads={num_kv_heads} (GQA groups are split across TP ranks)")
        chunks = pp * (self.virtual_pipeline_model_parallel_size or 1)
        if num_layers is not None and num_layers % chunks:
            what = (f"pipeline_model_parallel_size ({pp}) x virtual_pipeline_model_parallel_size "
                    f"({self.virtual_pipeline_model_parallel_size}) = {chunks}"
                    if self.virtual_pipeline_model_parallel_size else f"pipeline_model_parallel_size={pp}")
            out.append(f"actor.megatron.{what} does not divide the model's num_hidden_layers={num_layers}")
        if ep > 1 and not num_experts:
            out.append(f"actor.megatron.expert_model_parallel_size={ep} needs a mixture-of-experts model "
                       "(this one has no experts); set it to 1")
        elif num_experts and num_experts % ep:
            out.append(f"actor.megatron.expert_model_parallel_size={ep} does not divide the model's "
                       f"number of experts ({num_experts})")
        return out


def actor_world_size(config: Any) -> int | None:
    """The actor group's world size as the Runtime will place it (``cluster.component_placement``), or
    None when the device count is only known at run time (``cluster.num_devices_per_node`` unset)."""
    from rlinf_core.runtime.placement import parse_component_placement

    per_node, nodes = _get(config, "cluster.num_devices_per_node"), _get(config, "cluster.num_nodes", 1)
    if not isinstance(per_node, int) or not isinstance(nodes, int):
        return None
    spec = dict(_plain(_get(config, "cluster.component_placement")) or {})
    if not spec:
        return per_node * nodes  # every group on every device
    try:
        groups = parse_component_placement(spec, per_node * nodes)
    except Exception:  # noqa: BLE001 - a bad placement is reported by rlinf-core's own check
        return None
    actor = groups.get("actor")
    return actor.world_size if actor is not None else None


def model_dims(config: Any) -> dict[str, int | None]:
    """``num_layers`` / ``num_heads`` / ``num_kv_heads`` / ``num_experts`` of the actor's model, from
    ``actor.model.model_path``'s ``config.json`` with ``actor.model.config`` on top; empty when neither
    says (a hub id resolved only at run time). Reads JSON only: no torch, no transformers."""
    import json
    import os

    hf: dict[str, Any] = {}
    path = _get(config, "actor.model.model_path")
    if path and os.path.isfile(os.path.join(str(path), "config.json")):
        try:
            with open(os.path.join(str(path), "config.json")) as f:
                hf = dict(json.load(f))
        except (OSError, ValueError):
            hf = {}
    hf.update(dict(_plain(_get(config, "actor.model.config")) or {}))
    if "num_hidden_layers" not in hf:
        return {}
    heads = hf.get("num_attention_heads")
    experts = hf.get("num_experts") or hf.get("num_local_experts")
    return {"num_layers": int(hf["num_hidden_layers"]), "num_heads": int(heads) if heads else None,
            "num_kv_heads": int(hf.get("num_key_value_heads") or heads) if heads else None,
            "num_experts": int(experts) if experts else None}


def validate_megatron_section(config: Any) -> list[str]:
    """``actor.megatron`` keys and values, then its layout against the actor's world size and the
    model (what the backend would refuse at start-up), as far as the config tells them."""
    try:
        options = MegatronOptions.from_config(config)
    except MegatronConfigError as exc:
        return list(exc.problems)
    world = actor_world_size(config)
    if world is None:
        return []
    return [f"{p} (cluster.component_placement gives the actor {world} rank(s))" if "world size" in p else p
            for p in options.layout_problems(world, **model_dims(config))]


__all__ = ["IGNORED", "KEYS", "OPTIM_KEYS", "MegatronConfigError", "MegatronOptions", "actor_world_size", "model_dims",
           "validate_megatron_section"]
