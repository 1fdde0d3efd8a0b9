"""FSDP2 + Hugging Face training backend (``fsdp``) and rollout engines (``huggingface``; vLLM and
SGLang as the vllm / sglang extras) for rlinf.

Modules: ``fsdp_backend`` (the training backend), ``hf_engine`` (the HF rollout engine),
``hf_model`` (loading / building models from the config), ``weights`` (bucketed weight transfer),
``tiny`` (tiny models for tests and the CPU quickstart). Nothing heavy is imported here.
"""

__version__ = "0.1.0"
