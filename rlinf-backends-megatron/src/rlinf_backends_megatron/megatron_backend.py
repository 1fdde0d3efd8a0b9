"""The ``megatron`` training backend: a megatron-core ``GPTModel`` built from a Hugging Face causal LM
(actor / reference; a critic is the same decoder with a linear value head in place of the LM head),
trained with tensor, pipeline (also interleaved), context and expert parallelism.

Config it reads: ``actor.model.model_path`` (a Hugging Face directory; or ``actor.model.config`` to
build one from scratch seeded by ``actor.seed``), ``actor.model.precision``, ``actor.micro_batch_size``,
``actor.optim.*`` and ``actor.lr_sched.*`` (as the ``fsdp`` backend), and ``actor.megatron.*`` (see
:mod:`rlinf_backends_megatron.options`). A critic reads ``critic.model.model_path`` (else the actor's),
``critic.model.precision`` and ``critic.optim`` (``value_lr``, else ``lr``).

Data layout: the flow gives each rank its own rows. The ranks holding one copy of the model (the
model-parallel group: TP x PP) gather their rows, run them together through megatron-core's pipeline
schedule (``get_forward_backward_func``) in ``micro_batch_size`` micro-batches, and each rank returns
the outputs of its own rows. Context-parallel ranks (CP > 1) join that group and split its columns
(:mod:`rlinf_backends_megatron.context_parallel`). Data-parallel replicas (world size / (TP x PP x CP))
and CP ranks sum their gradients (megatron-core's ``DistributedDataParallel``; losses are normalised by
the step's global counts).

Log-probs and entropy are computed on vocabulary-parallel logits (``vocab_parallel_cross_entropy``),
with the padded vocabulary rows masked out. Weights stream out with Hugging Face names one tensor
at a time (:meth:`MegatronBackend.export_weights`); checkpoints use ``megatron.core.dist_checkpointing``.

Devices: CUDA. megatron-core calls CUDA-only functions; on a CPU-only torch it runs only in tests,
under the shim in ``tests/backends_megatron/cpu_shim.py``. The optimizer is megatron-core's (mixed
precision, optional distributed optimizer) on CUDA and ``torch.optim.AdamW`` on the CPU.
"""

from __future__ import annotations

import logging
import math
import os
import random
from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any

import torch
import torch.distributed as dist
from rlinf_core.config.precision import precision_dtype_name
from rlinf_core.lr_schedule import LRSchedule

from rlinf_backends_megatron.convert import (
    SafetensorsReader,
    architecture_of,
    from_mcore_shards,
    hf_sources,
    iter_named_mcore_params,
    num_experts,
    padded_vocab_size,
    rope_theta,
    shapes_of,
    to_mcore_shard,
    transformer_config_kwargs,
)
from rlinf_backends_megatron.options import MegatronConfigError, MegatronOptions, _get, _plain

log = logging.getLogger(__name__)

ROLES = ("actor", "critic", "reference")
#: Fill value for the logits of padded vocabulary rows (exp() underflows to exactly 0).
_MASKED_LOGIT = -1.0e9


def _check_device(device: torch.device) -> None:
    try:
        torch.cuda.current_device()
    except (AssertionError, RuntimeError):
        raise RuntimeError(
            f"megatron backend on {device}: megatron-core needs CUDA (it calls torch.cuda.current_device() and "
            "creates CUDA tensors) and this torch has none. Place the actor on GPUs (cluster.component_placement), "
            "or use actor.training_backend=fsdp on the CPU"
        ) from None


def _ensure_process_group(world_size: int, device: torch.device) -> None:
    if dist.is_initialized():
        if dist.get_world_size() != world_size:
            raise RuntimeError(f"megatron backend: world_size={world_size} but the torch.distributed process group "
                               f"has {dist.get_world_size()} ranks; the runtime sets up one group per worker group")
        return
    if world_size > 1:
        raise RuntimeError(f"megatron backend: world_size={world_size} needs an initialised torch.distributed "
                           "process group of that size; the runtime sets it up for groups with several ranks")
    # megatron-core's parallel state needs a process group even for one rank
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", store=dist.HashStore(), rank=0, world_size=1)


def _init_parallel_state(options: MegatronOptions) -> None:
    from megatron.core import parallel_state as ps

    want = (options.tensor_model_parallel_size, options.pipeline_model_parallel_size, options.context_parallel_size)
    if ps.model_parallel_is_initialized():
        have = (ps.get_tensor_model_parallel_world_size(), ps.get_pipeline_model_parallel_world_size(),
                ps.get_context_parallel_world_size())
        if have != want:
            raise RuntimeError(f"megatron backend: this process already holds a megatron model with (TP, PP, CP) = {have}; "
                               f"a second one with {want} cannot share it (give every role the same actor.megatron)")
        return
    ps.initialize_model_parallel(
        tensor_model_parallel_size=options.tensor_model_parallel_size,
        pipeline_model_parallel_size=options.pipeline_model_parallel_size,
        virtual_pipeline_model_parallel_size=options.virtual_pipeline_model_parallel_size,
        context_parallel_size=options.context_parallel_size,
        expert_model_parallel_size=options.expert_model_parallel_size,
        expert_tensor_parallel_size=options.expert_tensor_parallel_size,
    )


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _is_expert(param: torch.nn.Parameter) -> bool:
    return not getattr(param, "allreduce", True)


def _replica_rank(param: torch.nn.Parameter) -> int:
    """Which copy of ``param`` this rank holds: its rank among the ranks holding the same shard
    (data-parallel, and context-parallel for dense parameters; expert-data-parallel for experts)."""
    from megatron.core import parallel_state as ps

    return ps.get_expert_data_parallel_rank() if _is_expert(param) else ps.get_data_parallel_rank(with_context_parallel=True)


class _ValueHead(torch.nn.Module):
    """A linear value head with the calling convention of megatron's output layer (``(output, bias)``);
    replicated on every tensor-parallel rank, which see the same (gathered) hidden states."""

    def __init__(self, hidden_size: int, dtype: torch.dtype):
        super().__init__()
        self.linear = torch.nn.Linear(hidden_size, 1, dtype=dtype)
        torch.nn.init.zeros_(self.linear.weight)
        torch.nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor, weight: Any = None, runtime_gather_output: Any = None, **_: Any):
        return self.linear(hidden), None


class MegatronBackend:
    """Trains or scores a megatron-core GPT model; implements :class:`rlinf_core.interfaces.TrainingBackend`."""

    def __init__(self, config: Any, *, role: str = "actor", rank: int = 0, world_size: int = 1,
                 device: str = "cpu", total_steps: int | None = None):
        if role not in ROLES:
            raise ValueError(f"megatron backend: role {role!r} is not one of {', '.join(ROLES)}")
        try:
            self.options = MegatronOptions.from_config(config)
        except MegatronConfigError as err:
            raise ValueError(str(err)) from None
        self.config, self.role, self.rank, self.world_size = config, role, rank, world_size
        self.device = torch.device(device)
        self.micro_batch_size = int(_get(config, "actor.micro_batch_size", 1))
        self.global_step = 0
        self.section = "critic" if role == "critic" else "actor"
        self.hf_config, reader = self._hf_source()
        self.arch = architecture_of(self.hf_config)
        problems = self.options.layout_problems(
            world_size, num_layers=int(self.hf_config.num_hidden_layers),
            num_heads=int(self.hf_config.num_attention_heads),
            num_kv_heads=int(getattr(self.hf_config, "num_key_value_heads", None) or self.hf_config.num_attention_heads),
            num_experts=num_experts(self.hf_config))
        if problems:
            raise ValueError("; ".join(problems))
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        _check_device(self.device)
        _ensure_process_group(world_size, self.device)
        _init_parallel_state(self.options)
        self._seed(int(_get(config, "actor.seed", 1)))
        self.dtype = self._dtype()
        # a critic's value head is its own: never tied to the embedding
        self.tied = bool(getattr(self.hf_config, "tie_word_embeddings", False)) and role != "critic"
        self.shapes = shapes_of(self.hf_config)
        self.tf_config = self._transformer_config()
        self.chunks = self._build_model()
        if role == "critic":
            self._add_value_heads()
        self.trainable = role != "reference"
        self.ddp_chunks: list[Any] = []
        if self.trainable:
            self._wrap_ddp()
        else:
            for c in self.chunks:
                c.requires_grad_(False)
        self._hf_shapes: dict[str, tuple[int, ...]] = {}
        self._split: dict[str, int | None] = {}
        self._load_hf(reader)
        self._plan = self._export_plan()
        self.optimizer: Any = None
        if self.trainable:
            self._build_optimizer(total_steps)
        for c in self.chunks:
            c.eval()

    # ------------------------------------------------------------------ construction

    def _hf_source(self):
        from transformers import AutoConfig

        key = "actor.model.model_path"
        if self.role == "critic" and _get(self.config, "critic.model.model_path"):
            key = "critic.model.model_path"
        path = _get(self.config, key)
        if path:
            path = str(path)
            if not os.path.isfile(os.path.join(path, "config.json")):
                raise FileNotFoundError(f"{key}: {path} is not a Hugging Face model directory (no config.json)")
            return AutoConfig.from_pretrained(path), SafetensorsReader(path)
        fields = dict(_plain(_get(self.config, "actor.model.config")) or {})
        if not fields:
            raise ValueError("actor.model.model_path is not set: give a Hugging Face model directory "
                             "(or actor.model.config with model_type and vocab_size to build one from scratch)")
        model_type = fields.pop("model_type", None)
        if not model_type or "vocab_size" not in fields:
            raise ValueError("actor.model.config: needs model_type and vocab_size to build a model from scratch")
        from transformers import AutoModelForCausalLM

        hf_config = AutoConfig.for_model(model_type, **fields)
        architecture_of(hf_config)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(_get(self.config, "actor.seed", 1)))
            model = AutoModelForCausalLM.from_config(hf_config, dtype=torch.float32)
        return hf_config, dict(model.state_dict())

    def _seed(self, seed: int) -> None:
        from megatron.core import tensor_parallel

        if self.device.type == "cuda":
            tensor_parallel.model_parallel_cuda_manual_seed(seed)
        else:  # no CUDA RNG states: megatron's inference tracker keeps its states on the CPU generator
            tensor_parallel.model_parallel_cuda_manual_seed(seed, inference_rng_tracker=True, force_reset_rng=True)

    def _dtype(self) -> torch.dtype:
        if self.options.precision is not None:  # from the optim.bf16 / optim.fp16 flags
            return getattr(torch, precision_dtype_name(self.options.precision, f"{self.section}.megatron.optim"))
        key = f"{self.section}.model.precision"
        value = _get(self.config, key, None) or _get(self.config, "actor.model.precision", "fp32")
        return getattr(torch, precision_dtype_name(value, key))

    def _transformer_config(self):
        from megatron.core.transformer import TransformerConfig

        o = self.options
        kwargs = transformer_config_kwargs(self.hf_config)
        kwargs.update(
            tensor_model_parallel_size=o.tensor_model_parallel_size,
            pipeline_model_parallel_size=o.pipeline_model_parallel_size,
            virtual_pipeline_model_parallel_size=o.virtual_pipeline_model_parallel_size,
            context_parallel_size=o.context_parallel_size,
            expert_model_parallel_size=o.expert_model_parallel_size,
            expert_tensor_parallel_size=o.expert_tensor_parallel_size or o.tensor_model_parallel_size,
            sequence_parallel=o.sequence_parallel and o.tensor_model_parallel_size > 1,
            params_dtype=self.dtype, pipeline_dtype=self.dtype,
            bf16=self.dtype == torch.bfloat16, fp16=self.dtype == torch.float16,
            use_cpu_initialization=True, perform_initialization=False,
            calculate_per_token_loss=True, batch_p2p_comm=False, variable_seq_lengths=False,
            recompute_granularity=o.recompute_granularity, recompute_method=o.recompute_method,
            recompute_num_layers=o.recompute_num_layers,
        )
        if "num_moe_experts" in kwargs:
            kwargs["moe_token_dispatcher_type"] = o.moe_token_dispatcher_type
        return TransformerConfig(**kwargs)

    def _build_model(self) -> list[torch.nn.Module]:
        from megatron.core.models.gpt import GPTModel
        from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
        from megatron.core.transformer.enums import AttnMaskType

        spec = get_gpt_layer_local_spec(num_experts=num_experts(self.hf_config) if self.arch.moe else None,
                                        moe_grouped_gemm=False, qk_layernorm=self.arch.qk_norm, normalization="RMSNorm")
        attention = spec.submodules.self_attention
        # the mask given to the model (causal and padding) is the one to apply: with the spec's "causal" type,
        # megatron's fused CUDA softmax would apply its own causal mask and ignore the padding of left-padded rows
        attention.params = {**attention.params, "attn_mask_type": AttnMaskType.padding}
        if self.options.context_parallel_size > 1:
            from rlinf_backends_megatron.context_parallel import ContextParallelAttention

            attention.submodules.core_attention = ContextParallelAttention
        self.padded_vocab = padded_vocab_size(int(self.hf_config.vocab_size), self.options.make_vocab_size_divisible_by,
                                              self.options.tensor_model_parallel_size)
        vpp = self.options.virtual_pipeline_model_parallel_size
        chunks = []
        for v in range(vpp or 1):
            stage = v if vpp else None
            chunk = self._gpt_model(GPTModel, spec, stage)
            chunks.append(chunk.to(self.device))
        return chunks

    def _gpt_model(self, gpt_model: Any, spec: Any, stage: int | None) -> torch.nn.Module:
        from megatron.core import parallel_state as ps

        try:
            return gpt_model(
                self.tf_config, spec, vocab_size=self.padded_vocab,
                max_sequence_length=int(getattr(self.hf_config, "max_position_embeddings", 4096)),
                pre_process=ps.is_pipeline_first_stage(ignore_virtual=False, vp_stage=stage),
                post_process=ps.is_pipeline_last_stage(ignore_virtual=False, vp_stage=stage),
                share_embeddings_and_output_weights=self.tied, position_embedding_type="rope",
                rotary_base=rope_theta(self.hf_config), vp_stage=stage,
            )
        except AssertionError as err:
            if "sequence parallel" in str(err):
                raise ValueError(
                    "actor.megatron.sequence_parallel=true needs NVIDIA Apex's fused norm: megatron-core's local layer "
                    f"spec falls back to torch norms, which do not support it ({str(err).splitlines()[0]}); "
                    "install apex or set sequence_parallel to false") from None
            raise

    def _add_value_heads(self) -> None:
        """Replace the LM head of the last pipeline stage by a zero-initialised linear value head
        (as the fsdp critic: initial values do not depend on a random head)."""
        for chunk in self.chunks:
            if getattr(chunk, "post_process", False):
                chunk.output_layer = _ValueHead(self.tf_config.hidden_size, self.dtype).to(self.device)

    def _wrap_ddp(self) -> None:
        from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig

        ddp_config = DistributedDataParallelConfig(use_distributed_optimizer=self.options.use_distributed_optimizer,
                                                   grad_reduce_in_fp32=True, overlap_grad_reduce=False)
        self.ddp_chunks = [DistributedDataParallel(self.tf_config, ddp_config, chunk, disable_bucketing=i > 0)
                           for i, chunk in enumerate(self.chunks)]

    def _tp(self, param: torch.nn.Parameter) -> tuple[int, int, Any]:
        """``(rank, size, group)`` of the tensor-parallel group this parameter is split over."""
        from megatron.core import parallel_state as ps

        if _is_expert(param):
            return (ps.get_expert_tensor_parallel_rank(), ps.get_expert_tensor_parallel_world_size(),
                    ps.get_expert_tensor_parallel_group())
        return (ps.get_tensor_model_parallel_rank(), ps.get_tensor_model_parallel_world_size(),
                ps.get_tensor_model_parallel_group())

    def _named_params(self) -> Iterator[tuple[str, torch.nn.Parameter]]:
        from megatron.core import parallel_state as ps

        n = num_experts(self.hf_config) if self.arch.moe else None
        per_rank = n // self.options.expert_model_parallel_size if n else 0
        return iter_named_mcore_params(self.chunks, ep_rank=ps.get_expert_model_parallel_rank() if n else 0,
                                       experts_per_rank=per_rank)

    def _split_dim(self, src: Any, tensors: list[torch.Tensor], param: torch.nn.Parameter, tp_size: int) -> int | None:
        """The dimension a tensor-parallel parameter is split along (from its shape: megatron sets the
        ``partition_dim`` attribute only when it initialises the weights itself)."""
        if tp_size == 1:
            return None
        full = to_mcore_shard(src, tensors, shapes=self.shapes, padded_vocab=self.padded_vocab,
                              tp_rank=0, tp_size=1, partition_dim=None)
        for dim, (a, b) in enumerate(zip(full.shape, param.shape, strict=True)):
            if a != b:
                return dim
        return None

    @torch.no_grad()
    def _load_hf(self, reader: Any) -> None:
        """Each rank reads only the Hugging Face tensors of its own parameters, one at a time."""
        from megatron.core.tensor_parallel import set_tensor_model_parallel_attributes

        get = reader.get if hasattr(reader, "get") and not isinstance(reader, dict) else reader.__getitem__
        for name, param in self._named_params():
            if name.startswith("output_layer.") and self.role == "critic":
                continue  # the value head: zero-initialised, not in the checkpoint
            src = hf_sources(name, self.arch, tied=self.tied)
            tensors = [get(n) for n in src.names]
            for n, t in zip(src.names, tensors, strict=True):
                self._hf_shapes[n] = tuple(t.shape)
            tp_rank, tp_size, _ = self._tp(param)
            split = self._split_dim(src, tensors, param, tp_size)
            self._split[name] = split
            if split is not None and not getattr(param, "tensor_model_parallel", False):
                # what megatron sets when it initialises weights itself (grad-norm and optimizer code read it)
                set_tensor_model_parallel_attributes(param, True, split, 1)
            shard = to_mcore_shard(src, tensors, shapes=self.shapes, padded_vocab=self.padded_vocab,
                                   tp_rank=tp_rank, tp_size=tp_size, partition_dim=split)
            if tuple(shard.shape) != tuple(param.shape):
                raise ValueError(f"megatron backend: {name} from {', '.join(src.names)} has shape {tuple(shard.shape)}, "
                                 f"the megatron parameter {tuple(param.shape)}")
            param.data.copy_(shard.to(param.dtype))

    def _export_plan(self) -> list[tuple[str, int, list[tuple[str, tuple[int, ...]]]]]:
        """Every parameter in Hugging Face order with the global rank that exports it and its HF shapes."""
        mine = []
        for i, (name, param) in enumerate(self._named_params()):
            if (self.tied or self.role == "critic") and name.startswith("output_layer."):
                continue
            tp_rank, _, _ = self._tp(param)
            dp_rank = _replica_rank(param)
            if tp_rank == 0 and dp_rank == 0:
                src = hf_sources(name, self.arch, tied=self.tied)
                mine.append((name, dist.get_rank(), [(n, self._hf_shapes[n]) for n in src.names], i))
        if self.world_size > 1:
            parts: list[Any] = [None] * self.world_size
            dist.all_gather_object(parts, mine)
            mine = [e for p in parts for e in p]

        def order(entry):
            name = entry[0]
            if name.startswith("embedding."):
                return (0, 0, 0, entry[3])
            if name.startswith("decoder.layers."):
                rest = name.split(".")
                expert = int(rest[6]) if "local_experts" in name else -1
                return (1, int(rest[2]), expert, entry[3])
            return (2, 0, 0, entry[3])

        return [(n, owner, hf) for n, owner, hf, _ in sorted(mine, key=order)]

    def _build_optimizer(self, total_steps: int | None) -> None:
        optim = _get(self.config, f"{self.section}.optim")
        sched = _get(self.config, "actor.lr_sched")
        if self.role == "critic":
            lr = float(_get(optim, "value_lr") or _get(optim, "lr", 1e-6))
        else:
            lr = float(_get(sched, "max_lr") or _get(optim, "lr", 1e-6))
        self.clip_grad = float(_get(optim, "clip_grad", 1.0))
        betas = (float(_get(optim, "adam_beta1", 0.9)), float(_get(optim, "adam_beta2", 0.999)))
        eps, wd = float(_get(optim, "adam_eps", 1e-8)), float(_get(optim, "weight_decay", 0.0))
        self._schedule = LRSchedule.from_config(self.config, peak=lr, total_steps=total_steps)
        if self.device.type == "cuda":
            from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer

            cfg = OptimizerConfig(optimizer="adam", lr=lr, weight_decay=wd, adam_beta1=betas[0], adam_beta2=betas[1],
                                  adam_eps=eps, clip_grad=self.clip_grad, bf16=self.dtype == torch.bfloat16,
                                  fp16=self.dtype == torch.float16, params_dtype=self.dtype,
                                  loss_scale=self.options.loss_scale,
                                  use_distributed_optimizer=self.options.use_distributed_optimizer)
            self.optimizer = get_megatron_optimizer(cfg, self.ddp_chunks)
        else:
            if self.options.use_distributed_optimizer:
                raise ValueError("actor.megatron.optim.use_distributed_optimizer: megatron-core's distributed optimizer "
                                 "handles CUDA tensors only; set it to false on the CPU")
            params = [p for c in self.chunks for p in c.parameters() if p.requires_grad]
            self.optimizer = torch.optim.AdamW(params, lr=lr, betas=betas, eps=eps, weight_decay=wd)

    def _lr_at(self, step: int) -> float:
        """The learning rate of optimizer step ``step`` (0-based): ``actor.lr_sched`` (:class:`LRSchedule`)."""
        return self._schedule.lr(step)

    # ------------------------------------------------------------------ batches

    def _gather_rows(self, batch: Mapping[str, Any]) -> tuple[dict[str, Any], int, int]:
        """The rows of every rank in this rank's model-parallel group (TP x PP, and the CP ranks, which split
        the same rows' columns), concatenated; ``(batch, start, rows)`` where ``start:start + rows`` are this
        rank's own rows. Every rank of the group ends with the same batch: the CP peers' rows first merge,
        then the model-parallel group's."""
        from megatron.core import parallel_state as ps

        rows = int(batch["input_ids"].shape[0])
        tensors = {k: v.cpu() for k, v in batch.items() if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == rows}
        start = 0
        for group in (ps.get_context_parallel_group(), ps.get_model_parallel_group()):
            size = dist.get_world_size(group)
            if size == 1:
                continue
            parts: list[Any] = [None] * size
            dist.all_gather_object(parts, tensors, group=group)
            widths = {p["input_ids"].shape[1] for p in parts}
            if len(widths) > 1:
                raise ValueError(f"megatron backend: the ranks of one model-parallel group got batches of different "
                                 f"widths {sorted(widths)}; pad every rank's batch to the same length")
            me = dist.get_rank(group)
            start += sum(int(p["input_ids"].shape[0]) for p in parts[:me])
            tensors = {k: torch.cat([p[k] for p in parts]) for k in tensors}
        if start == 0 and int(tensors["input_ids"].shape[0]) == rows:
            return dict(batch), 0, rows
        merged: dict[str, Any] = dict(tensors)
        merged.update({k: v for k, v in batch.items() if k not in tensors})
        return merged, start, rows

    def _prepare(self, batch: Mapping[str, Any]) -> tuple[dict[str, Any], int, int]:
        """Model inputs for the whole (gathered) batch: columns that are padding in every row dropped,
        width padded to a multiple of the TP size (with expert parallelism: to the widest rank's);
        attention mask, positions, response labels."""
        ids, attn = batch["input_ids"], batch["attention_mask"]
        resp = int(batch["response_mask"].shape[1])
        total = int(ids.shape[1])
        prompt = total - resp
        if prompt < 1:
            raise ValueError(f"batch: input_ids has {total} columns but response_mask {resp}: no prompt column left")
        used = attn.bool().any(dim=0).nonzero().flatten()
        lo = min(int(used[0]), prompt - 1) if used.numel() else prompt - 1
        hi = max(int(used[-1]) + 1, prompt) if used.numel() else prompt
        kept = hi - prompt
        ids_t, attn_t = ids[:, lo:hi], attn[:, lo:hi]
        cp = self.options.context_parallel_size
        multiple = self.options.tensor_model_parallel_size * (2 * cp if cp > 1 else 1)
        extra = (-ids_t.shape[1]) % multiple
        if self.options.expert_model_parallel_size > 1:
            # experts exchange tokens across data-parallel ranks: every rank must bring as many
            want = torch.tensor([ids_t.shape[1] + extra], device=self.device)
            dist.all_reduce(want, op=dist.ReduceOp.MAX)
            extra = int(want) - ids_t.shape[1]
        if extra:
            ids_t = torch.nn.functional.pad(ids_t, (0, extra))
            attn_t = torch.nn.functional.pad(attn_t, (0, extra))
        width = int(ids_t.shape[1])
        pos = (attn_t.long().cumsum(-1) - 1).clamp(min=0)
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        allowed = causal[None] & attn_t.bool()[:, None, :]
        inputs = {
            "_ids": ids_t, "_pos": pos, "_mask": ~allowed[:, None],  # True = masked out
            "_labels": ids[:, prompt:hi], "_first": prompt - 1 - lo, "_kept": kept,
        }
        if cp > 1:  # this rank's columns (and mask rows); _targets: the token each column predicts
            from megatron.core import parallel_state as ps

            from rlinf_backends_megatron.context_parallel import local_positions

            mine = local_positions(width, cp, ps.get_context_parallel_rank())
            targets = torch.nn.functional.pad(ids_t[:, 1:], (0, 1))
            inputs.update(_ids=ids_t[:, mine], _pos=pos[:, mine], _mask=inputs["_mask"][:, :, mine],
                          _targets=targets[:, mine])
        return inputs, width, kept

    def _micro_batches(self, batch: Mapping[str, Any], inputs: Mapping[str, Any]) -> list[dict[str, Any]]:
        rows = int(batch["input_ids"].shape[0])
        m = self.micro_batch_size
        if rows % m:
            raise ValueError(
                f"actor.micro_batch_size={m} does not divide the {rows} rows a model-parallel group of the megatron "
                "backend trains together: choose a micro_batch_size that divides them, or change "
                "data.rollout_batch_size / algorithm.group_size / algorithm.n_minibatches")
        out = []
        for s in range(0, rows, m):
            mb = {k: (v[s:s + m] if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == rows else v)
                  for k, v in batch.items()}
            mb.update({k: (v[s:s + m] if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()})
            out.append({k: (v.to(self.device) if isinstance(v, torch.Tensor) else v) for k, v in mb.items()})
        return out

    # ------------------------------------------------------------------ forward

    def _token_outputs(self, logits: torch.Tensor, mb: Mapping[str, Any], temperature: float,
                       with_entropy: bool) -> dict[str, torch.Tensor]:
        """``log_probs`` (and ``entropy``) ``(b, R)`` of the response tokens from vocab-parallel logits."""
        from megatron.core import parallel_state as ps
        from megatron.core.tensor_parallel import vocab_parallel_cross_entropy

        first, kept = int(mb["_first"]), int(mb["_kept"])
        mask = mb["response_mask"]
        rows, resp = mask.shape
        if ps.get_context_parallel_world_size() > 1:
            # logits of this rank's columns: per-token results over them, gathered, then the response's columns
            from rlinf_backends_megatron.context_parallel import gather_sequence

            group = ps.get_context_parallel_group()

            def response(per_token: torch.Tensor) -> torch.Tensor:
                full = gather_sequence(per_token, dim=1, group=group, reduce_grad=False)
                return torch.nn.functional.pad(full[:, first:first + kept], (0, resp - kept)) * mask

            x, labels = logits, mb["_targets"]
        else:
            def response(per_token: torch.Tensor) -> torch.Tensor:
                return torch.nn.functional.pad(per_token, (0, resp - kept)) * mask

            x, labels = logits[:, first:first + kept], mb["_labels"]
        if self.role == "critic":  # (b, T, 1) values: V of the state before each response token
            return {"values": response(x[..., 0].float())}
        if kept == 0:
            zeros = torch.zeros(rows, resp, device=logits.device)
            return {"log_probs": zeros, **({"entropy": zeros} if with_entropy else {})}
        x = x.float()
        if temperature != 1.0:
            x = x / temperature
        part = x.shape[-1]
        start = ps.get_tensor_model_parallel_rank() * part
        if start + part > self.shapes.vocab_size:  # padded vocabulary rows never win
            pad = torch.arange(start, start + part, device=x.device) >= self.shapes.vocab_size
            x = x.masked_fill(pad, _MASKED_LOGIT)
        out = {"log_probs": response(-vocab_parallel_cross_entropy(x.clone(), labels.to(x.device)))}
        if with_entropy:
            out["entropy"] = response(self._entropy(x))
        return out

    @staticmethod
    def _entropy(x: torch.Tensor) -> torch.Tensor:
        """Entropy of softmax(x) over the vocabulary split across the TP group (with gradient)."""
        from megatron.core import parallel_state as ps

        tp = ps.get_tensor_model_parallel_world_size()
        m = x.detach().max(dim=-1).values
        if tp > 1:
            dist.all_reduce(m, op=dist.ReduceOp.MAX, group=ps.get_tensor_model_parallel_group())
        z = x - m[..., None]
        e = z.exp()
        s, ez = e.sum(-1), (e * z).sum(-1)
        if tp > 1:  # forward: sum over the TP group; backward: identity (every TP rank has the same loss)
            from megatron.core.tensor_parallel.mappings import reduce_from_tensor_model_parallel_region

            s, ez = reduce_from_tensor_model_parallel_region(s), reduce_from_tensor_model_parallel_region(ez)
        return s.log() - ez / s

    def _forward_step(self, data_iterator, model, *, temperature: float, with_entropy: bool, loss_fn: Any):
        mb = next(data_iterator)
        output = model(mb["_ids"], mb["_pos"], mb["_mask"])

        def finish(logits):
            out = self._token_outputs(logits, mb, temperature, with_entropy)
            one = torch.ones((), dtype=torch.int, device=logits.device)
            if loss_fn is None:
                return logits.new_zeros(()), one, {k: v.detach() for k, v in out.items()}
            loss, metrics = loss_fn(out, mb)
            report = {"loss": float(loss.detach())}
            report.update({k: float(v.detach().float().mean()) if isinstance(v, torch.Tensor) else float(v)
                           for k, v in (metrics or {}).items()})
            return loss, one, report

        return output, finish

    def _run(self, batch: Mapping[str, Any], *, forward_only: bool, temperature: float, with_entropy: bool,
             loss_fn: Any = None) -> tuple[list[Any], int, int]:
        """Gather rows, run the pipeline schedule; returns the last stage's per-micro-batch results
        broadcast to every pipeline rank, and this rank's ``(start, rows)``."""
        from megatron.core import parallel_state as ps
        from megatron.core.pipeline_parallel import get_forward_backward_func

        full, start, rows = self._gather_rows(batch)
        inputs, width, _ = self._prepare(full)
        micro = self._micro_batches(full, inputs)
        models = self.ddp_chunks if (self.trainable and not forward_only) else self.chunks
        step = partial(self._forward_step, temperature=temperature, with_entropy=with_entropy, loss_fn=loss_fn)
        iterators = [iter(micro) for _ in models]
        results = get_forward_backward_func()(
            forward_step_func=step, data_iterator=iterators if len(models) > 1 else iterators[0],
            model=models if len(models) > 1 else models[0], num_microbatches=len(micro), seq_length=width,
            micro_batch_size=self.micro_batch_size, forward_only=forward_only)
        if ps.get_pipeline_model_parallel_world_size() > 1:
            box = [results if ps.is_pipeline_last_stage(ignore_virtual=True) else None]
            if forward_only:
                box = [[{k: v.cpu() for k, v in r.items()} for r in box[0]] if box[0] is not None else None]
            dist.broadcast_object_list(box, src=ps.get_pipeline_model_parallel_last_rank(),
                                       group=ps.get_pipeline_model_parallel_group())
            results = box[0]
        return results, start, rows

    @torch.no_grad()
    def compute_log_probs(self, batch: Mapping[str, Any], *, temperature: float = 1.0,
                          with_entropy: bool = False) -> dict[str, torch.Tensor]:
        """``{"log_probs": (B, R)}`` (and ``"entropy"``) of this rank's rows, 0 where ``response_mask`` is 0."""
        if self.role == "critic":
            raise RuntimeError("megatron backend: compute_log_probs is for role actor/reference; a critic has compute_values")
        for c in self.chunks:
            c.eval()
        results, start, rows = self._run(batch, forward_only=True, temperature=temperature, with_entropy=with_entropy)
        return {k: torch.cat([r[k].cpu() for r in results])[start:start + rows] for k in results[0]}

    @torch.no_grad()
    def compute_values(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Values ``(B, R)`` of this rank's rows: ``values[:, t]`` is V of the state before response token
        ``t`` (0 where masked)."""
        if self.role != "critic":
            raise RuntimeError(f"megatron backend: compute_values needs role critic (this backend is the {self.role})")
        for c in self.chunks:
            c.eval()
        results, start, rows = self._run(batch, forward_only=True, temperature=1.0, with_entropy=False)
        return torch.cat([r["values"].cpu() for r in results])[start:start + rows]

    # ------------------------------------------------------------------ training

    def _dp_reduce(self, values: list[float]) -> list[float]:
        from megatron.core import parallel_state as ps

        group = ps.get_data_parallel_group()
        if dist.get_world_size(group) == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t, group=group)
        return t.tolist()

    def _cpu_optimizer_step(self) -> tuple[float, bool]:
        from megatron.core import parallel_state as ps
        from megatron.core.optimizer.clip_grads import get_grad_norm_fp32
        from megatron.core.tensor_parallel import param_is_not_tensor_parallel_duplicate
        from megatron.core.transformer.module import param_is_not_shared

        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        for p in params:
            grad = getattr(p, "main_grad", None)
            p.grad = None if grad is None else grad.to(p.dtype)
        counted = [p for p in params if p.grad is not None and param_is_not_shared(p)
                   and param_is_not_tensor_parallel_duplicate(p)]
        # dense parameters are split over TP x PP; experts over expert-TP x EP x PP (megatron's grouping)
        dense = float(get_grad_norm_fp32([p.grad for p in counted if not _is_expert(p)],
                                         grad_stats_parallel_group=ps.get_model_parallel_group()))
        norm = dense
        if any(_is_expert(p) for p in params):
            experts = float(get_grad_norm_fp32([p.grad for p in counted if _is_expert(p)],
                                               grad_stats_parallel_group=ps.get_expert_tensor_model_pipeline_parallel_group()))
            norm = math.sqrt(dense**2 + experts**2)
        if not math.isfinite(norm):
            return norm, True
        if self.clip_grad > 0 and norm > self.clip_grad:
            torch._foreach_mul_([p.grad for p in params if p.grad is not None], self.clip_grad / (norm + 1e-6))
        self.optimizer.step()
        return norm, False

    def train_step(self, batch: Mapping[str, Any], loss_fn: Any, *, temperature: float = 1.0,
                   global_tokens: int | None = None, global_seqs: int | None = None) -> dict[str, float]:
        """One optimizer step (see :class:`~rlinf_core.interfaces.TrainingBackend`). Returns ``loss`` (the
        step's total over all ranks), ``grad_norm`` (before clipping), ``lr``, ``skipped`` and the loss
        function's metrics averaged over micro-batches and data-parallel ranks."""
        from megatron.core.distributed import finalize_model_grads

        if self.optimizer is None:
            raise RuntimeError("megatron backend: the reference model is frozen (role reference has no optimizer)")
        mask = batch["response_mask"]
        if global_tokens is None or global_seqs is None:
            counts = [float(mask.sum()), float(mask.bool().any(dim=1).sum())]
            if self.world_size > 1:
                t = torch.tensor(counts, dtype=torch.float64, device=self.device)
                dist.all_reduce(t)
                counts = t.tolist()
            global_tokens = int(counts[0]) if global_tokens is None else global_tokens
            global_seqs = int(counts[1]) if global_seqs is None else global_seqs
        batch = {**batch, "global_tokens": global_tokens, "global_seqs": global_seqs}
        with_entropy = bool(getattr(loss_fn, "with_entropy", False)) and self.role != "critic"
        for c in self.ddp_chunks:
            c.train()
            c.zero_grad_buffer()
        self.optimizer.zero_grad()
        results, _, _ = self._run(batch, forward_only=False, temperature=temperature, with_entropy=with_entropy,
                                  loss_fn=loss_fn)
        finalize_model_grads(self.ddp_chunks)
        lr = self._lr_at(self.global_step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        if self.device.type == "cuda":
            ok, grad_norm, _ = self.optimizer.step()
            grad_norm, skipped = float(grad_norm if grad_norm is not None else float("nan")), not ok
        else:
            grad_norm, skipped = self._cpu_optimizer_step()
        self.global_step += 1
        for c in self.ddp_chunks:
            c.eval()
        names = sorted({k for r in results for k in r if k != "loss"})
        n = max(1, len(results))
        total = [sum(r["loss"] for r in results)] + [sum(r.get(k, 0.0) for r in results) / n for k in names]
        total = self._dp_reduce(total)
        from megatron.core import parallel_state as ps

        dp = ps.get_data_parallel_world_size()
        out = {"loss": total[0], "grad_norm": grad_norm, "lr": lr, "skipped": float(skipped)}
        out.update({k: total[1 + j] / dp for j, k in enumerate(names)})
        return out

    # ------------------------------------------------------------------ weights

    @torch.no_grad()
    def export_weights(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Full weights with Hugging Face names, layer by layer, one megatron parameter at a time.

        A collective: every rank consumes the iterator to the end. The data-parallel-0 ranks holding a
        parameter all-gather its tensor-parallel shards; the exporting rank converts them and sends
        the Hugging Face tensors to global rank 0 (point to point), which yields them. Other ranks
        yield nothing. No rank ever holds more than one full parameter.
        """
        me = dist.get_rank()
        local = dict(self._named_params())
        for name, owner, hf in self._plan:
            param = local.get(name)
            if param is not None:  # data-parallel replicas other than the first do not take part
                dp = _replica_rank(param)
                param = param if dp == 0 else None
            if param is not None:
                pieces = self._tp_gather(param, self._split[name])
                if owner == me:
                    src = hf_sources(name, self.arch, tied=self.tied)
                    split = self._split[name]
                    pairs = from_mcore_shards(src, pieces, shapes=self.shapes, partition_dim=split)
                    for hf_name, tensor in pairs:
                        if me == 0:
                            yield from self._with_tied(hf_name, tensor)
                        else:
                            dist.send(tensor.contiguous(), dst=0)
            elif me == 0:
                dtype = self.dtype
                for hf_name, shape in hf:
                    buf = torch.empty(shape, dtype=dtype, device=self.device)
                    dist.recv(buf, src=owner)
                    yield from self._with_tied(hf_name, buf)

    def _with_tied(self, hf_name: str, tensor: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        """``(hf_name, tensor)``, and for a tied embedding ``lm_head.weight`` too, as the Hugging Face
        ``state_dict`` has it: an engine that keeps the output layer apart (vLLM's CPU backend repacks it)
        would otherwise sample from the stale one."""
        yield hf_name, tensor
        if self.tied and hf_name == "model.embed_tokens.weight":
            yield "lm_head.weight", tensor

    def _tp_gather(self, param: torch.nn.Parameter, split: int | None) -> list[torch.Tensor]:
        _, size, group = self._tp(param)
        data = param.detach()
        if size == 1 or split is None:
            return [data]
        pieces = [torch.empty_like(data) for _ in range(size)]
        dist.all_gather(pieces, data.contiguous(), group=group)
        return pieces

    # ------------------------------------------------------------------ checkpoints

    def _sharded_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"model": {f"model{i}": c.sharded_state_dict() for i, c in enumerate(self.chunks)}}
        if self.optimizer is None:
            return state
        if self.device.type == "cuda":
            state["optimizer"] = self.optimizer.sharded_state_dict(state["model"])
            return state
        from megatron.core.dist_checkpointing.optimizer import (
            get_param_id_to_sharded_param_map,
            optim_state_to_sharding_state,
        )

        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        for p in params:  # Adam state exists only after a step: create it so it can be saved / loaded into
            st = self.optimizer.state[p]
            if not st:
                st.update(step=torch.zeros(()), exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
        sd = self.optimizer.state_dict()
        steps = {float(s["step"]) for s in sd["state"].values() if "step" in s}
        optim_state_to_sharding_state(sd, get_param_id_to_sharded_param_map(state["model"], params),
                                      exclude_keys=("step",))
        sd["common_step"] = max(steps) if steps else 0.0
        state["optimizer"] = sd
        return state

    def save_checkpoint(self, path: str) -> None:
        """Model and optimizer with ``megatron.core.dist_checkpointing`` (sharded; resumable with the same
        layout), plus step, LR schedule position and RNG in ``extra_state_rank{r}.pt``. Every rank calls it."""
        from megatron.core import dist_checkpointing

        os.makedirs(path, exist_ok=True)
        dist_checkpointing.save(self._sharded_state(), path)
        extra = {"global_step": self.global_step, "rng": _rng_state(), "world_size": self.world_size}
        torch.save(extra, os.path.join(path, f"extra_state_rank{self.rank}.pt"))
        dist.barrier()

    def load_checkpoint(self, path: str) -> None:
        """Restore what :meth:`save_checkpoint` wrote."""
        from megatron.core import dist_checkpointing

        if not os.path.isdir(path):
            raise FileNotFoundError(f"megatron backend: checkpoint directory {path} does not exist")
        loaded = dist_checkpointing.load(self._sharded_state(), path)
        for i, c in enumerate(self.chunks):
            c.load_state_dict(loaded["model"][f"model{i}"], strict=False)
        if self.optimizer is not None:
            sd = loaded["optimizer"]
            if self.device.type == "cuda":
                self.optimizer.load_state_dict(sd)
            else:
                step = torch.tensor(float(sd.pop("common_step")))
                for st in sd["state"].values():
                    st["step"] = step.clone()
                self.optimizer.load_state_dict(sd)
        extra_path = os.path.join(path, f"extra_state_rank{self.rank}.pt")
        if not os.path.exists(extra_path):
            extra_path = os.path.join(path, "extra_state_rank0.pt")
        extra = torch.load(extra_path, weights_only=False)
        self.global_step = int(extra["global_step"])
        _set_rng_state(extra["rng"])

    # ------------------------------------------------------------------ memory

    def offload(self) -> None:
        """Move parameters, gradient buffers and optimizer state to host memory (no-op on the CPU)."""
        if self.device.type == "cpu":
            return
        for c in self.ddp_chunks:
            c.offload_grad_buffers()
        if self.optimizer is not None and hasattr(self.optimizer, "offload_to_cpu"):
            self.optimizer.offload_to_cpu()
        if not self.options.use_distributed_optimizer:
            for c in self.chunks:
                for p in c.parameters():
                    p.data = p.data.to("cpu", non_blocking=True)
        torch.cuda.synchronize()
        torch.cuda.empty_cache()

    def onload(self) -> None:
        """Undo :meth:`offload`."""
        if self.device.type == "cpu":
            return
        if not self.options.use_distributed_optimizer:
            for c in self.chunks:
                for p in c.parameters():
                    p.data = p.data.to(self.device, non_blocking=True)
        for c in self.ddp_chunks:
            c.restore_grad_buffers()
        if self.optimizer is not None and hasattr(self.optimizer, "restore_from_cpu"):
            self.optimizer.restore_from_cpu()
        torch.cuda.synchronize()


__all__ = ["MegatronBackend"]
