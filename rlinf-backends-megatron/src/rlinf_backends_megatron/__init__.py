"""megatron-core training backend for rlinf (the megatron extra installs megatron-core). This
release registers no components yet.
"""

__version__ = "0.1.0"
