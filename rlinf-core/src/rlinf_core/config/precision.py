"""Precision names: ``*.model.precision`` and ``actor.fsdp_config.mixed_precision.*``.

One torch-free table for every backend and policy, so that ``bf16-mixed`` means the same thing to
the fsdp and megatron backends, the small policies and the VLAs, and a typo gets the same error
everywhere. A component turns the name into its dtype with ``getattr(torch, precision_dtype_name(...))``.
"""

from __future__ import annotations

from typing import Any

from rlinf_core.errors import ConfigError, suggestion_text

#: Precision names (RLinf / Lightning spellings) -> torch dtype attribute names.
PRECISION_DTYPES: dict[str, str] = {
    "fp32": "float32", "float32": "float32", "32": "float32", "32-true": "float32",
    "bf16": "bfloat16", "bfloat16": "bfloat16", "bf16-mixed": "bfloat16", "bf16-true": "bfloat16",
    "fp16": "float16", "float16": "float16", "16": "float16", "16-mixed": "float16",
}
VALID_PRECISIONS = "fp32, bf16, fp16"


def precision_problem(value: Any, key: str) -> str | None:
    """One line naming ``key`` when ``value`` is not a precision name (``torch.bfloat16`` is one), else ``None``."""
    name = str(value).lower().removeprefix("torch.")
    if name in PRECISION_DTYPES:
        return None
    return f"{key}: unknown precision {value!r}.{suggestion_text(name, PRECISION_DTYPES)} Valid: {VALID_PRECISIONS}"


def precision_dtype_name(value: Any, key: str) -> str:
    """The torch dtype name (``float32``, ``bfloat16``, ``float16``) of a precision name; a ConfigError naming ``key``."""
    problem = precision_problem(value, key)
    if problem is not None:
        raise ConfigError(problem)
    return PRECISION_DTYPES[str(value).lower().removeprefix("torch.")]
