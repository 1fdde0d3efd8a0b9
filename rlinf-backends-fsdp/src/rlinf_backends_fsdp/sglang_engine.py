"""The ``sglang`` rollout engine: SGLang's offline ``sglang.Engine`` behind :class:`rlinf_core.interfaces.RolloutEngine`.

CUDA only (SGLang's PyPI build pins a CUDA torch and has no CPU path): ``pip install
'rlinf-backends-fsdp[sglang]'`` on a GPU machine. ``sglang`` is imported only when an engine is
built. Tested under ``@pytest.mark.gpu`` (``tests/backends_vllm/test_sglang_engine.py``).

**Model**: as the other engines (``rollout.model.model_path``, else the actor's; a model built from
``actor.model.config`` is saved to a temporary directory first). dtype from
``rollout.model.precision``, ``tp_size`` from ``rollout.tensor_parallel_size``,
``mem_fraction_static`` from ``rollout.gpu_memory_utilization``, the rest from
``rollout.sglang.*`` (:class:`SGLangOptions`). The engine runs with ``skip_tokenizer_init``: token
ids in, token ids out.

**Log-probs** (``return_logprob``): SGLang's default, ``log_softmax(logits / temperature)`` after
repetition penalty and before top-k / top-p, i.e. the ``huggingface`` engine's quantity; greedy
decoding reports temperature-1 log-probs. Responses include the stop token that ended them.
``SamplingParams.seed`` is honoured (as ``sampling_seed``, row ``i`` gets ``seed + i``) only when
``rollout.sglang.engine_kwargs.enable_deterministic_inference`` is true: SGLang ignores per-request
seeds otherwise, and the engine says so once.

**Weight sync**: ``update_weights_from_tensor`` in buckets of ``rollout.sglang.bucket_bytes``
(CUDA tensors travel by CUDA IPC handles, CPU tensors through shared memory), the KV / radix cache
flushed after the last bucket. **Offload**: ``release_memory_occupation`` /
``resume_memory_occupation`` (the engine is started with ``enable_memory_saver``); with
``sleep_level: 1`` (default) the weights are backed up in host memory
(``enable_weights_cpu_backup``), with ``2`` they are discarded and the flow must
``update_weights`` after ``onload``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from typing import Any

from rlinf_core.errors import ConfigError
from rlinf_core.interfaces import GenerationOutput, SamplingParams

from rlinf_backends_fsdp.config_access import get as _get
from rlinf_backends_fsdp.config_access import plain as _plain
from rlinf_backends_fsdp.options import SGLangOptions

log = logging.getLogger(__name__)

_SGLANG_DTYPES = {"torch.float32": "float32", "torch.bfloat16": "bfloat16", "torch.float16": "float16"}


def import_sglang() -> Any:
    """``sglang``, or an ImportError whose one line says what to install."""
    try:
        import sglang
    except ImportError as exc:
        raise ImportError("rollout engine 'sglang' needs the sglang package (CUDA only), which is not installed. "
                          "Fix: pip install 'rlinf-backends-fsdp[sglang]'") from exc
    return sglang


def _finish_type(meta: dict[str, Any]) -> str:
    reason = meta.get("finish_reason")
    return reason.get("type", "") if isinstance(reason, dict) else str(reason or "")


class SGLangRolloutEngine:
    """Implements :class:`rlinf_core.interfaces.RolloutEngine` with SGLang's offline engine (CUDA)."""

    def __init__(self, config: Any, *, rank: int = 0, world_size: int = 1, device: str = "cuda"):
        self.config, self.rank, self.world_size = config, rank, world_size
        self.options = SGLangOptions.from_config(config)
        if not str(device).startswith("cuda"):
            raise ConfigError(f"rollout.rollout_backend: sglang runs on CUDA GPUs only (this rank's device is {device!r}); "
                              "use vllm or huggingface on CPU")
        sglang = import_sglang()
        from rlinf_backends_fsdp.hf_model import load_hf_config, parse_dtype, resolve_model_source, special_token_ids

        self._version = 0
        self._engine: Any = None
        self._tmp_dirs: list[str] = []
        self._warned_seed = False
        opts = self.options
        dtype = parse_dtype(_get(config, "rollout.model.precision", "fp32"), "rollout.model.precision")
        source = resolve_model_source(config, "rollout")
        hf_config = load_hf_config(source)
        self.eos_ids, _ = special_token_ids(source, hf_config)
        model_dir, tokenizer_dir = source.path, source.tokenizer_path
        if model_dir is None:
            from rlinf_backends_fsdp.hf_model import load_causal_lm, load_tokenizer

            model_dir = tempfile.mkdtemp(prefix="rlinf-sglang-model-")
            self._tmp_dirs.append(model_dir)
            load_causal_lm(source, dtype=dtype).save_pretrained(model_dir)
            load_tokenizer(source).save_pretrained(model_dir)
            tokenizer_dir = None
        index = str(device).partition(":")[2]
        kwargs: dict[str, Any] = {
            "model_path": model_dir,
            "dtype": _SGLANG_DTYPES[str(dtype)],
            "tp_size": int(_get(config, "rollout.tensor_parallel_size", 1)),
            "mem_fraction_static": float(_get(config, "rollout.gpu_memory_utilization", 0.5)),
            "random_seed": int(opts.seed if opts.seed is not None else _get(config, "actor.seed", 0)) + rank,
            "skip_tokenizer_init": True,
            "enable_memory_saver": True,
            "enable_weights_cpu_backup": opts.sleep_level == 1,
            "disable_cuda_graph": bool(opts.disable_cuda_graph),
            "base_gpu_id": int(index) if index else 0,
            "log_level": "error",
        }
        if tokenizer_dir:
            kwargs["tokenizer_path"] = tokenizer_dir
        if opts.max_model_len is not None:
            kwargs["context_length"] = int(opts.max_model_len)
        kwargs.update(_plain(opts.engine_kwargs) or {})
        self.deterministic = bool(kwargs.get("enable_deterministic_inference", False))
        self._engine = sglang.Engine(**kwargs)

    # ------------------------------------------------------------------ generation

    @property
    def weight_version(self) -> int:
        return self._version

    def _sampling_params(self, sp: SamplingParams, row_seed: int | None) -> dict[str, Any]:
        greedy = not sp.do_sample or sp.temperature <= 0
        params: dict[str, Any] = {
            "temperature": 0.0 if greedy else float(sp.temperature),
            "top_p": float(sp.top_p),
            "top_k": int(sp.top_k) if sp.top_k > 0 else -1,
            "max_new_tokens": int(sp.max_new_tokens),
            "repetition_penalty": float(sp.repetition_penalty),
            "stop_token_ids": sorted(set(self.eos_ids) | {int(t) for t in sp.stop_token_ids}),
            "no_stop_trim": True,
        }
        if row_seed is not None:
            params["sampling_seed"] = row_seed
        return params

    def generate(self, prompt_ids: Sequence[Sequence[int]], sampling: SamplingParams) -> GenerationOutput:
        """One response per prompt, in order; see :class:`~rlinf_core.interfaces.RolloutEngine`."""
        if self._engine is None:
            raise RuntimeError("sglang engine: generate() after close()")
        prompts = [[int(t) for t in p] for p in prompt_ids]
        if any(not p for p in prompts):
            raise ValueError("sglang engine: an empty prompt was given (every prompt needs at least one token)")
        if sampling.seed is not None and not self.deterministic and not self._warned_seed:
            log.warning("sglang engine: SamplingParams.seed is ignored unless "
                        "rollout.sglang.engine_kwargs.enable_deterministic_inference is true")
            self._warned_seed = True
        seeded = sampling.seed is not None and self.deterministic
        params = [self._sampling_params(sampling, int(sampling.seed) + i if seeded else None) for i in range(len(prompts))]
        results = self._engine.generate(input_ids=prompts, sampling_params=params, return_logprob=bool(sampling.logprobs))
        if isinstance(results, dict):
            results = [results]
        out = GenerationOutput(prompt_ids=prompts, response_ids=[], response_logprobs=[] if sampling.logprobs else None,
                               finish_reasons=[], weight_version=self._version)
        for i, res in enumerate(results):
            meta = res.get("meta_info", {})
            reason = _finish_type(meta)
            if reason not in ("stop", "length"):
                raise RuntimeError(f"sglang engine: row {i} ended with finish reason {meta.get('finish_reason')!r} "
                                   "(expected stop or length)")
            if sampling.logprobs:
                entries = meta.get("output_token_logprobs") or []
                tokens = [int(e[1]) for e in entries]
                out.response_logprobs.append([float(e[0]) for e in entries])  # type: ignore[union-attr]
            else:
                tokens = [int(t) for t in res.get("output_ids", [])]
                matched = (meta.get("finish_reason") or {}).get("matched")
                if reason == "stop" and isinstance(matched, int) and (not tokens or tokens[-1] != matched):
                    tokens.append(matched)  # keep the stop token, as the other engines do
            out.response_ids.append(tokens)
            out.finish_reasons.append(reason)
        return out

    # ------------------------------------------------------------------ weights and memory

    def update_weights(self, weights: Iterable[tuple[str, Any]], version: int) -> None:
        """``update_weights_from_tensor`` in buckets of ``rollout.sglang.bucket_bytes``; the cache is
        flushed after the last bucket."""
        if self._engine is None:
            raise RuntimeError("sglang engine: update_weights() after close()")
        from rlinf_backends_fsdp.weights import iter_buckets

        pending: list[tuple[str, Any]] | None = None
        for bucket in iter_buckets(((n, t.full_tensor() if hasattr(t, "full_tensor") else t) for n, t in weights),
                                   int(self.options.bucket_bytes)):
            if pending is not None:
                self._send(pending, flush=False)
            pending = bucket
        if pending is None:
            raise ValueError("sglang engine: update_weights got no weights")
        self._send(pending, flush=True)
        self._version = int(version)

    def _send(self, bucket: list[tuple[str, Any]], *, flush: bool) -> None:
        result = self._engine.update_weights_from_tensor(named_tensors=bucket, flush_cache=flush)
        ok, message = (result[0], result[1]) if isinstance(result, tuple) else (True, "")
        if not ok:
            raise RuntimeError(f"sglang engine: update_weights_from_tensor failed: {message}")

    def offload(self) -> None:
        """``release_memory_occupation``: KV cache and weights leave the GPU."""
        if self._engine is not None:
            self._engine.release_memory_occupation()

    def onload(self) -> None:
        """``resume_memory_occupation`` (then a cache flush)."""
        if self._engine is not None:
            self._engine.resume_memory_occupation()
            self._engine.flush_cache()

    def close(self) -> None:
        """Shut the engine (and its scheduler / detokenizer processes) down; remove temporary files."""
        engine, self._engine = self._engine, None
        if engine is not None:
            engine.shutdown()
        for path in self._tmp_dirs:
            shutil.rmtree(path, ignore_errors=True)
        self._tmp_dirs = []


__all__ = ["SGLangOptions", "SGLangRolloutEngine", "import_sglang"]
