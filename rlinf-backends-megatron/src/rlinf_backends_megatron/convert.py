"""Hugging Face <-> megatron-core weight conversion for GPT-style decoders, one tensor at a time.

A megatron-core parameter (local layer spec) is built from one or more Hugging Face tensors:

- ``linear_qkv`` from ``q_proj`` / ``k_proj`` / ``v_proj``, interleaved per query group
  (``[q heads of group g, k_g, v_g]`` for each of the ``num_query_groups`` groups), so that a
  tensor-parallel rank holds whole groups;
- ``linear_fc1`` from ``gate_proj`` and ``up_proj``; each tensor-parallel rank holds
  ``[gate shard; up shard]``;
- the embedding and output layer padded to the megatron vocabulary size (rows of zeros);
- everything else copied, split along the parameter's ``partition_dim`` when it is tensor parallel.

:func:`hf_sources` names the Hugging Face tensors of a megatron parameter, :func:`to_mcore_shard`
builds one rank's shard from them, :func:`from_mcore_full` turns a TP-gathered parameter back into
Hugging Face tensors. Supported architectures: :data:`ARCHITECTURES`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Architecture:
    """What distinguishes one Hugging Face decoder family from another here."""

    qkv_bias: bool = False
    qk_norm: bool = False
    moe: bool = False
    #: Qwen2-MoE: a shared expert with a sigmoid gate beside the routed experts.
    shared_expert: bool = False


#: ``model_type`` -> its converter.
ARCHITECTURES: dict[str, Architecture] = {
    "qwen2": Architecture(qkv_bias=True),
    "llama": Architecture(),
    "mistral": Architecture(),
    "qwen3": Architecture(qk_norm=True),
    "qwen2_moe": Architecture(qkv_bias=True, moe=True, shared_expert=True),
    "qwen3_moe": Architecture(qk_norm=True, moe=True),
}


def architecture_of(hf_config: Any) -> Architecture:
    """The converter of ``hf_config``; an unsupported family is an error listing the supported ones."""
    model_type = getattr(hf_config, "model_type", None)
    if model_type not in ARCHITECTURES:
        raise ValueError(
            f"megatron backend: no Hugging Face -> megatron-core converter for model_type {model_type!r} "
            f"(the model of actor.model.model_path / actor.model.config); supported: {', '.join(sorted(ARCHITECTURES))}. "
            "Use actor.training_backend=fsdp for other architectures"
        )
    arch = ARCHITECTURES[model_type]
    problems = []
    if getattr(hf_config, "attention_bias", False) and not arch.qkv_bias:
        problems.append("attention_bias=true (biases on q/k/v/o projections)")
    if getattr(hf_config, "mlp_bias", False):
        problems.append("mlp_bias=true")
    scaling = _rope_scaling(hf_config)
    if scaling and scaling.get("rope_type", scaling.get("type", "default")) not in ("default", None):
        problems.append(f"rope_scaling {scaling}")
    if arch.moe:
        step = int(getattr(hf_config, "decoder_sparse_step", 1) or 1)
        if step != 1 or list(getattr(hf_config, "mlp_only_layers", None) or []):
            problems.append("dense layers between the mixture-of-experts layers (decoder_sparse_step / mlp_only_layers)")
    if problems:
        raise ValueError(f"megatron backend: this {model_type} model has {'; '.join(problems)}, which the "
                         "megatron-core converter does not handle; use actor.training_backend=fsdp")
    return arch


def _rope_scaling(hf_config: Any) -> dict[str, Any] | None:
    params = getattr(hf_config, "rope_parameters", None) or getattr(hf_config, "rope_scaling", None)
    return dict(params) if params else None


def rope_theta(hf_config: Any) -> float:
    """The rotary base (``rope_theta``; transformers 5 keeps it in ``rope_parameters``)."""
    theta = getattr(hf_config, "rope_theta", None)
    if theta is None:
        theta = (_rope_scaling(hf_config) or {}).get("rope_theta", 10000.0)
    return float(theta)


def head_dim(hf_config: Any) -> int:
    return int(getattr(hf_config, "head_dim", None) or hf_config.hidden_size // hf_config.num_attention_heads)


def num_experts(hf_config: Any) -> int | None:
    n = getattr(hf_config, "num_experts", None) or getattr(hf_config, "num_local_experts", None)
    return int(n) if n else None


def transformer_config_kwargs(hf_config: Any) -> dict[str, Any]:
    """``TransformerConfig`` arguments that reproduce the Hugging Face model's architecture."""
    import torch.nn.functional as F

    arch = architecture_of(hf_config)
    kwargs: dict[str, Any] = dict(
        num_layers=int(hf_config.num_hidden_layers),
        hidden_size=int(hf_config.hidden_size),
        num_attention_heads=int(hf_config.num_attention_heads),
        num_query_groups=int(getattr(hf_config, "num_key_value_heads", None) or hf_config.num_attention_heads),
        kv_channels=head_dim(hf_config),
        ffn_hidden_size=int(hf_config.intermediate_size),
        normalization="RMSNorm",
        layernorm_epsilon=float(hf_config.rms_norm_eps),
        gated_linear_unit=True,
        activation_func=F.silu,
        add_bias_linear=False,
        add_qkv_bias=arch.qkv_bias,
        qk_layernorm=arch.qk_norm,
        hidden_dropout=0.0,
        attention_dropout=float(getattr(hf_config, "attention_dropout", 0.0) or 0.0),
        init_method_std=float(getattr(hf_config, "initializer_range", 0.02)),
        attention_softmax_in_fp32=True,
        bias_activation_fusion=False,
        bias_dropout_fusion=False,
        masked_softmax_fusion=False,
        persist_layer_norm=False,
        apply_rope_fusion=False,
        gradient_accumulation_fusion=False,
    )
    if arch.moe:
        norm_topk = bool(getattr(hf_config, "norm_topk_prob", False))
        kwargs.update(
            num_moe_experts=num_experts(hf_config),
            moe_ffn_hidden_size=int(hf_config.moe_intermediate_size),
            moe_router_topk=int(hf_config.num_experts_per_tok),
            # HF: softmax over all experts, top-k, renormalised when norm_topk_prob
            moe_router_pre_softmax=not norm_topk,
            moe_router_load_balancing_type="none",
            moe_aux_loss_coeff=0.0,
            moe_token_dispatcher_type="alltoall",
            moe_grouped_gemm=False,
        )
        if arch.shared_expert:
            kwargs.update(moe_shared_expert_intermediate_size=int(hf_config.shared_expert_intermediate_size),
                          moe_shared_expert_gate=True)
    return kwargs


def padded_vocab_size(vocab_size: int, divisible_by: int, tp_size: int) -> int:
    """The megatron embedding size: ``vocab_size`` rounded up to a multiple of ``divisible_by x tp_size``."""
    multiple = divisible_by * tp_size
    return -(-vocab_size // multiple) * multiple


# --------------------------------------------------------------------------- names

_LAYER = re.compile(r"^decoder\.layers\.(\d+)\.(.*)$")
_EXPERT = re.compile(r"^mlp\.experts\.local_experts\.(\d+)\.(.*)$")


@dataclass(frozen=True)
class Source:
    """How one megatron parameter is made: ``kind`` (``copy``, ``qkv``, ``fc1``, ``vocab``) of HF ``names``."""

    kind: str
    names: tuple[str, ...]


def hf_sources(name: str, arch: Architecture, *, tied: bool = False) -> Source:
    """The Hugging Face tensors of the megatron parameter ``name`` (global layer / expert indices,
    e.g. ``decoder.layers.3.mlp.experts.local_experts.7.linear_fc1.weight``)."""
    if name == "embedding.word_embeddings.weight":
        return Source("vocab", ("model.embed_tokens.weight",))
    if name == "output_layer.weight":
        return Source("vocab", ("model.embed_tokens.weight",) if tied else ("lm_head.weight",))
    if name == "decoder.final_layernorm.weight":
        return Source("copy", ("model.norm.weight",))
    m = _LAYER.match(name)
    if m is None:
        raise KeyError(f"megatron backend: no Hugging Face tensor for megatron parameter {name}")
    layer, rest = int(m.group(1)), m.group(2)
    p = f"model.layers.{layer}."
    attn = p + "self_attn."
    table = {
        "input_layernorm.weight": Source("copy", (p + "input_layernorm.weight",)),
        "pre_mlp_layernorm.weight": Source("copy", (p + "post_attention_layernorm.weight",)),
        "self_attention.linear_qkv.weight": Source("qkv", tuple(attn + f"{x}_proj.weight" for x in "qkv")),
        "self_attention.linear_qkv.bias": Source("qkv", tuple(attn + f"{x}_proj.bias" for x in "qkv")),
        "self_attention.linear_proj.weight": Source("copy", (attn + "o_proj.weight",)),
        "self_attention.q_layernorm.weight": Source("copy", (attn + "q_norm.weight",)),
        "self_attention.k_layernorm.weight": Source("copy", (attn + "k_norm.weight",)),
        "mlp.linear_fc1.weight": Source("fc1", (p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight")),
        "mlp.linear_fc2.weight": Source("copy", (p + "mlp.down_proj.weight",)),
        "mlp.router.weight": Source("copy", (p + "mlp.gate.weight",)),
        "mlp.shared_experts.linear_fc1.weight": Source(
            "fc1", (p + "mlp.shared_expert.gate_proj.weight", p + "mlp.shared_expert.up_proj.weight")),
        "mlp.shared_experts.linear_fc2.weight": Source("copy", (p + "mlp.shared_expert.down_proj.weight",)),
        "mlp.shared_experts.gate_weight": Source("copy", (p + "mlp.shared_expert_gate.weight",)),
    }
    if rest in table:
        return table[rest]
    e = _EXPERT.match(rest)
    if e is not None:
        q = f"{p}mlp.experts.{int(e.group(1))}."
        if e.group(2) == "linear_fc1.weight":
            return Source("fc1", (q + "gate_proj.weight", q + "up_proj.weight"))
        if e.group(2) == "linear_fc2.weight":
            return Source("copy", (q + "down_proj.weight",))
    raise KeyError(f"megatron backend: no Hugging Face tensor for megatron parameter {name}")


# --------------------------------------------------------------------------- tensors


@dataclass(frozen=True)
class Shapes:
    """What the tensor layouts depend on."""

    num_heads: int
    num_query_groups: int
    head_dim: int
    vocab_size: int


def shapes_of(hf_config: Any) -> Shapes:
    return Shapes(int(hf_config.num_attention_heads),
                  int(getattr(hf_config, "num_key_value_heads", None) or hf_config.num_attention_heads),
                  head_dim(hf_config), int(hf_config.vocab_size))


def _qkv_groups(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, s: Shapes) -> torch.Tensor:
    """``[q_g, k_g, v_g]`` for every query group, concatenated (rows)."""
    ng, per = s.num_query_groups, s.num_heads // s.num_query_groups
    tail = q.shape[1:]
    q = q.reshape(ng, per * s.head_dim, *tail)
    k = k.reshape(ng, s.head_dim, *tail)
    v = v.reshape(ng, s.head_dim, *tail)
    return torch.cat([q, k, v], dim=1).reshape(-1, *tail)


def _split_qkv(fused: torch.Tensor, s: Shapes) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ng, per = s.num_query_groups, s.num_heads // s.num_query_groups
    tail = fused.shape[1:]
    grouped = fused.reshape(ng, (per + 2) * s.head_dim, *tail)
    q, k, v = torch.split(grouped, [per * s.head_dim, s.head_dim, s.head_dim], dim=1)
    return q.reshape(-1, *tail), k.reshape(-1, *tail), v.reshape(-1, *tail)


def to_mcore_shard(src: Source, tensors: list[torch.Tensor], *, shapes: Shapes, padded_vocab: int,
                   tp_rank: int, tp_size: int, partition_dim: int | None) -> torch.Tensor:
    """One tensor-parallel rank's shard of a megatron parameter from its Hugging Face tensors."""

    def narrow(t: torch.Tensor, dim: int) -> torch.Tensor:
        size = t.shape[dim] // tp_size
        return t.narrow(dim, tp_rank * size, size)

    if src.kind == "fc1":
        gate, up = tensors
        if partition_dim is None or tp_size == 1:
            return torch.cat([gate, up])
        return torch.cat([narrow(gate, 0), narrow(up, 0)])
    if src.kind == "qkv":
        full = _qkv_groups(*tensors, shapes)
    elif src.kind == "vocab":
        (full,) = tensors
        if full.shape[0] < padded_vocab:
            full = torch.cat([full, full.new_zeros(padded_vocab - full.shape[0], *full.shape[1:])])
    else:
        (full,) = tensors
    if partition_dim is None or tp_size == 1:
        return full
    return narrow(full, partition_dim)


def from_mcore_shards(src: Source, shards: list[torch.Tensor], *, shapes: Shapes,
                      partition_dim: int | None) -> list[tuple[str, torch.Tensor]]:
    """Hugging Face ``(name, tensor)`` pairs from every TP rank's shard of one megatron parameter."""
    if src.kind == "fc1":
        halves = [s.chunk(2, dim=0) for s in shards]
        gate = torch.cat([h[0] for h in halves])
        up = torch.cat([h[1] for h in halves])
        return list(zip(src.names, (gate, up), strict=True))
    full = shards[0] if len(shards) == 1 or partition_dim is None else torch.cat(shards, dim=partition_dim)
    if src.kind == "qkv":
        return list(zip(src.names, _split_qkv(full, shapes), strict=True))
    if src.kind == "vocab":
        full = full[:shapes.vocab_size]
    return [(src.names[0], full)]


# --------------------------------------------------------------------------- reading HF checkpoints


class SafetensorsReader:
    """Reads single tensors of a Hugging Face directory (``*.safetensors``, sharded or not) lazily."""

    def __init__(self, path: str):
        from safetensors import safe_open

        self.path = path
        index = os.path.join(path, "model.safetensors.index.json")
        if os.path.isfile(index):
            with open(index) as f:
                self.where = dict(json.load(f)["weight_map"])
        else:
            single = os.path.join(path, "model.safetensors")
            if not os.path.isfile(single):
                raise FileNotFoundError(f"actor.model.model_path: {path} has no model.safetensors "
                                        "(nor model.safetensors.index.json)")
            with safe_open(single, "pt") as f:
                self.where = dict.fromkeys(f.keys(), "model.safetensors")
        self._open: dict[str, Any] = {}
        self._safe_open = safe_open

    def __contains__(self, name: str) -> bool:
        return name in self.where

    def get(self, name: str) -> torch.Tensor:
        if name not in self.where:
            raise KeyError(f"actor.model.model_path: {self.path} has no tensor {name}")
        file = self.where[name]
        if file not in self._open:
            self._open[file] = self._safe_open(os.path.join(self.path, file), "pt")
        return self._open[file].get_tensor(name)


def iter_named_mcore_params(chunks: list[torch.nn.Module], *, ep_rank: int = 0,
                            experts_per_rank: int = 0) -> Iterator[tuple[str, torch.nn.Parameter]]:
    """``(global name, parameter)`` of this rank's model chunks: layer indices are the global layer
    numbers (``layer_number - 1``), expert indices the global expert ids."""
    for chunk in chunks:
        layers = getattr(getattr(chunk, "decoder", None), "layers", None) or []
        offset = {i: int(layer.layer_number) - 1 for i, layer in enumerate(layers)}
        for name, param in chunk.named_parameters():
            m = _LAYER.match(name)
            if m is not None:
                rest = m.group(2)
                e = _EXPERT.match(rest)
                if e is not None:
                    rest = f"mlp.experts.local_experts.{ep_rank * experts_per_rank + int(e.group(1))}.{e.group(2)}"
                name = f"decoder.layers.{offset[int(m.group(1))]}.{rest}"
            yield name, param


__all__ = [
    "ARCHITECTURES", "Architecture", "SafetensorsReader", "Shapes", "Source", "architecture_of", "from_mcore_shards",
    "hf_sources", "iter_named_mcore_params", "padded_vocab_size", "rope_theta", "shapes_of", "to_mcore_shard",
    "transformer_config_kwargs",
]
