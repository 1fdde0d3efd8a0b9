"""The rlinf plugin of rlinf-backends-megatron (entry point in the group ``rlinf.plugins``).

Cheap to import: the backend (torch, megatron-core) is imported only when a run uses it.
"""

from __future__ import annotations

from rlinf_core import ComponentSpec, hookimpl


@hookimpl
def rlinf_register_training_backends() -> list[ComponentSpec]:
    return [
        ComponentSpec("training_backend", "megatron", "rlinf_backends_megatron.megatron_backend:MegatronBackend",
                      "megatron-core GPTModel from a Hugging Face decoder (Qwen2/2.5/3, Llama, Mistral, Qwen2/3-MoE): "
                      "tensor, pipeline and expert parallelism; CUDA",
                      requires=("megatron-core", "transformers"), extra="megatron"),
    ]


@hookimpl
def rlinf_validate_config(config) -> list[str]:
    """``actor.megatron`` keys and values and, where the config fixes them, its parallel layout against
    the actor's world size and the model, when the actor's training backend is ``megatron``."""
    actor = getattr(config, "actor", None)
    if str(getattr(actor, "training_backend", None) or "").removeprefix("megatron:") != "megatron":
        return []
    from rlinf_backends_megatron.options import validate_megatron_section

    return validate_megatron_section(config)
