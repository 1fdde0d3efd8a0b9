"""The config sections this package's components declare (``ComponentSpec(options=...)``).

``actor.fsdp_config`` (the ``fsdp`` backend), ``rollout.hf``, ``rollout.vllm`` and ``rollout.sglang``:
``rlinf config validate`` checks the section of the component in use against these classes
(``rlinf_core.config.options``), and each component reads its own with :meth:`from_config`, so a run
gets exactly what validation accepted. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlinf_core.config.options import read_options
from rlinf_core.config.precision import precision_problem
from rlinf_core.config.ranges import bounded
from rlinf_core.errors import suggestion_text

#: ``rollout.vllm.weight_sync`` modes (see ``vllm_engine``'s module docstring).
WEIGHT_SYNC_MODES = ("auto", "in_process", "disk")


def _sleep_level_problems(path: str, level: int) -> list[str]:
    if level in (1, 2):
        return []
    return [f"{path}.sleep_level: must be 1 (weights to host memory) or 2 (discard weights), got {level!r}"]


@dataclass(frozen=True)
class MixedPrecisionOptions:
    """``actor.fsdp_config.mixed_precision`` (FSDP2's ``MixedPrecisionPolicy``)."""

    #: Compute dtype of the sharded parameters (at world size 1: ``torch.autocast`` to it); null: the model's.
    param_dtype: str | None = None
    #: Dtype of the gradient reduce-scatter; null: ``param_dtype``.
    reduce_dtype: str | None = None
    #: Accepted for RLinf configs; FSDP2 keeps buffers in the model's dtype, so it has no effect.
    buffer_dtype: str | None = None


@dataclass(frozen=True)
class FSDPOptions:
    """The keys of ``actor.fsdp_config`` (the ``fsdp`` backend; all optional). RLinf's other FSDP1
    keys (``strategy``, ``cpu_offload``, prefetching, ...) are reported by ``rlinf config migrate``."""

    mixed_precision: MixedPrecisionOptions = field(default_factory=MixedPrecisionOptions)
    #: Recompute each decoder layer's activations in backward (less memory, about a third more time).
    gradient_checkpointing: bool = False
    #: Free the gathered parameters after forward (FSDP2's ``reshard_after_forward``).
    reshard_after_forward: bool = True

    def problems(self, path: str) -> list[str]:
        mp = self.mixed_precision
        found = (precision_problem(value, f"{path}.mixed_precision.{key}") if value is not None else None
                 for key, value in (("param_dtype", mp.param_dtype), ("reduce_dtype", mp.reduce_dtype),
                                    ("buffer_dtype", mp.buffer_dtype)))
        return [problem for problem in found if problem]

    @classmethod
    def from_config(cls, config: Any) -> FSDPOptions:
        return read_options(cls, config, "actor.fsdp_config")


@dataclass(frozen=True)
class HFEngineOptions:
    """The keys of ``rollout.hf`` (the ``huggingface`` engine; all optional)."""

    #: Prompts per ``generate`` call (0: all prompts of a request at once).
    max_batch_size: int = bounded(0, ge=0)

    @classmethod
    def from_config(cls, config: Any) -> HFEngineOptions:
        return read_options(cls, config, "rollout.hf")


@dataclass(frozen=True)
class VllmOptions:
    """The keys of ``rollout.vllm`` (all optional)."""

    #: No CUDA graphs / torch.compile. Default: true on CPU (compiling costs more than it saves on
    #: small CPU runs), false on CUDA.
    enforce_eager: bool | None = None
    #: Longest prompt + response in tokens; default: the model's ``max_position_embeddings``.
    max_model_len: int | None = bounded(None, gt=0)
    #: KV cache size in GiB. Default: 1 on CPU (vLLM's ``VLLM_CPU_KVCACHE_SPACE``); on CUDA the
    #: cache is sized by ``rollout.gpu_memory_utilization`` unless this is set.
    kv_cache_space_gib: float | None = bounded(None, gt=0)
    #: Sampling seed of rank 0 (rank r uses ``seed + r``); default ``actor.seed``.
    seed: int | None = None
    enable_prefix_caching: bool = True
    max_num_seqs: int | None = bounded(None, gt=0)
    max_num_batched_tokens: int | None = bounded(None, gt=0)
    #: ``auto``, ``in_process`` or ``disk`` (see ``vllm_engine``'s module docstring).
    weight_sync: str = "auto"
    #: 1 (weights to host memory) or 2 (weights discarded) for ``VLLMRolloutEngine.offload`` on CUDA.
    sleep_level: int = 1
    #: Any other ``vllm.LLM`` argument, passed through unchanged (overrides the values above).
    engine_kwargs: dict[str, Any] = field(default_factory=dict)

    def problems(self, path: str) -> list[str]:
        bad_sync = self.weight_sync not in WEIGHT_SYNC_MODES
        return _sleep_level_problems(path, self.sleep_level) + (
            [f"{path}.weight_sync: {self.weight_sync!r} is not a weight sync mode."
             f"{suggestion_text(str(self.weight_sync), WEIGHT_SYNC_MODES)} Valid: {', '.join(WEIGHT_SYNC_MODES)}"]
            if bad_sync else [])

    @classmethod
    def from_config(cls, config: Any) -> VllmOptions:
        return read_options(cls, config, "rollout.vllm")


@dataclass(frozen=True)
class SGLangOptions:
    """The keys of ``rollout.sglang`` (all optional)."""

    #: Longest prompt + response in tokens (SGLang's ``context_length``); default: the model's.
    max_model_len: int | None = bounded(None, gt=0)
    #: Sampling seed of rank 0 (rank r uses ``seed + r``); default ``actor.seed``.
    seed: int | None = None
    #: CUDA graphs off (faster start, slower decoding).
    disable_cuda_graph: bool = False
    #: Bytes per ``update_weights_from_tensor`` call.
    bucket_bytes: int = bounded(512 << 20, gt=0)
    #: 1 (weights backed up to host memory) or 2 (weights discarded) for ``SGLangRolloutEngine.offload``.
    sleep_level: int = 1
    #: Any other ``sglang.Engine`` (``ServerArgs``) argument, passed through (overrides the values above).
    engine_kwargs: dict[str, Any] = field(default_factory=dict)

    def problems(self, path: str) -> list[str]:
        return _sleep_level_problems(path, self.sleep_level)

    @classmethod
    def from_config(cls, config: Any) -> SGLangOptions:
        return read_options(cls, config, "rollout.sglang")
