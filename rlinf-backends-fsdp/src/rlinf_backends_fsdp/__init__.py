"""FSDP2 + Hugging Face training backend and rollout engines (HF generate; vLLM and SGLang as the
vllm / sglang extras) for rlinf. This release registers no components yet.
"""

__version__ = "0.1.0"
