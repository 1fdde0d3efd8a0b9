"""Fixtures for the fsdp backend and huggingface engine tests: one tiny Qwen2 on disk."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from fsdp_helpers import VOCAB  # noqa: E402


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> str:
    from rlinf_backends_fsdp.tiny import save_tiny_model

    # head size 32 (64 / 2); 16 tokens: fast on two cores
    return str(save_tiny_model(tmp_path_factory.mktemp("tiny") / "m", vocab=VOCAB, hidden_size=64, num_heads=2,
                               num_kv_heads=1, seed=3))
