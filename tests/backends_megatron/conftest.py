"""Fixtures of the megatron backend tests: megatron-core on the CPU (test-only shim), tiny models on disk."""

from __future__ import annotations

import os
import sys

import pytest

pytest.importorskip("megatron.core", reason="megatron-core is not installed: pip install 'rlinf-backends-megatron[megatron]'")
pytest.importorskip("transformers")
sys.path.insert(0, os.path.dirname(__file__))

import cpu_shim  # noqa: E402
from mcore_helpers import VOCAB  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def megatron_on_cpu():
    """megatron-core's CUDA bookkeeping redirected to the CPU while this directory's tests run (see cpu_shim); after
    each module, the one-rank process group and parallel state that the in-process backends made are taken down
    (a later test in the same pytest process may start its own default group)."""
    with cpu_shim.unless_cuda():
        yield
    import torch.distributed as dist
    from megatron.core import parallel_state

    parallel_state.destroy_model_parallel()
    if dist.is_initialized():
        dist.destroy_process_group()


@pytest.fixture(scope="session")
def qwen2_dir(tmp_path_factory) -> str:
    from rlinf_backends_fsdp.tiny import save_tiny_model

    # 4 heads in 2 query groups: GQA interleaving matters; vocab 17 pads to 128 x TP
    return str(save_tiny_model(tmp_path_factory.mktemp("qwen2") / "m", vocab=VOCAB, hidden_size=64, num_heads=4,
                               num_kv_heads=2, seed=3))


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory) -> str:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    path = tmp_path_factory.mktemp("llama") / "m"
    config = LlamaConfig(vocab_size=40, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, rope_theta=5e5)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        LlamaForCausalLM(config).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def moe_dirs(tmp_path_factory) -> dict[str, str]:
    """Tiny Qwen2-MoE (4 experts, top-2, a gated shared expert) and Qwen3-MoE (q/k norms, renormalised top-2)."""
    import torch
    from transformers import Qwen2MoeConfig, Qwen2MoeForCausalLM, Qwen3MoeConfig, Qwen3MoeForCausalLM

    common = dict(vocab_size=40, hidden_size=64, intermediate_size=96, moe_intermediate_size=32, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, num_experts=4, num_experts_per_tok=2,
                  max_position_embeddings=128)
    out = {}
    for name, cfg, cls in (
        ("qwen2_moe", Qwen2MoeConfig(**common, shared_expert_intermediate_size=48, norm_topk_prob=False), Qwen2MoeForCausalLM),
        ("qwen3_moe", Qwen3MoeConfig(**common, head_dim=16, norm_topk_prob=True), Qwen3MoeForCausalLM),
    ):
        path = tmp_path_factory.mktemp(name) / "m"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(7)
            cls(cfg).save_pretrained(path)
        out[name] = str(path)
    return out


@pytest.fixture(scope="session")
def qwen2_4layer_dir(tmp_path_factory) -> str:
    from rlinf_backends_fsdp.tiny import save_tiny_model

    return str(save_tiny_model(tmp_path_factory.mktemp("qwen2x4") / "m", vocab=VOCAB, hidden_size=64, num_layers=4,
                               num_heads=4, num_kv_heads=2, seed=4))


@pytest.fixture(scope="session")
def qwen2_tied_dir(tmp_path_factory) -> str:
    """Tied input / output embeddings: the checkpoint has no lm_head.weight."""
    from rlinf_backends_fsdp.tiny import save_tiny_model

    return str(save_tiny_model(tmp_path_factory.mktemp("qwen2tied") / "m", vocab=VOCAB, hidden_size=64, num_heads=4,
                               num_kv_heads=2, seed=6, tie_word_embeddings=True))
