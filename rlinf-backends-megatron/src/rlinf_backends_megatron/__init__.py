"""megatron-core training backend for rlinf: the ``megatron`` training backend (the ``megatron`` extra
installs megatron-core) and Hugging Face <-> megatron-core weight conversion.
"""

__version__ = "0.1.0"
