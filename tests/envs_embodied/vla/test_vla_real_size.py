"""The real-size OpenVLA-OFT of ``benchmarks/vla_rollout.py --real-size`` (``actor.model.config.architecture:
openvla_7b``), built on the meta device (no memory): the published parameter count and dimensions."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from rlinf_envs_embodied.vla.options import PRISMATIC_ARCHITECTURES
from rlinf_envs_embodied.vla.prismatic import ARCHITECTURES, openvla_7b_config

BENCHMARK = Path(__file__).resolve().parents[3] / "benchmarks" / "vla_rollout.py"
#: Llama-2 7B's parameters (``meta-llama/Llama-2-7b-hf``, 32000-token vocabulary).
LLAMA2_7B = 6_738_415_616
#: The parameters in OpenVLA 7B's published safetensors (``openvla/openvla-7b``; the Hub rounds it to 7.54B).
OPENVLA_7B = 7_541_237_184
#: SigLIP so400m's attention-pool head (width 1152, MLP 4304): in the published checkpoint, never run by Prismatic
#: (it reads the second-to-last block's patches), so not built: latent, q, kv, out proj, norm, MLP.
SIGLIP_POOL_HEAD = 1152 + (1152 * 1152 + 1152) + (1152 * 2304 + 2304) + (1152 * 1152 + 1152) + 2 * 1152 + (
    1152 * 4304 + 4304) + (4304 * 1152 + 1152)
#: What transformers' DINOv2 has and timm's lacks: the mask token and a position row for the class token (1024 each).
DINOV2_HF_ONLY = 2 * 1024


def _benchmark():
    spec = importlib.util.spec_from_file_location("vla_rollout", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def policy():
    return _benchmark().build_real_size("meta", "bf16")


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_the_parameter_count_is_openvla_7b(policy):
    """7,526,000,880 here; the published 7,541,237,184 (7.54e9) less SigLIP's unused pool head, plus the two DINOv2
    entries only transformers has: exactly that, and within 0.5% of the published figure."""
    n = count(policy.vla)
    assert n == OPENVLA_7B - SIGLIP_POOL_HEAD + DINOV2_HF_ONLY == 7_526_000_880
    assert abs(n - OPENVLA_7B) / OPENVLA_7B < 0.005
    assert count(policy.vla.language_model) == LLAMA2_7B + 2 * 64 * 4096  # + 64 padding rows in embeddings and head
    assert count(policy.proprio_projector) == (8 * 4096 + 4096) + (4096 * 4096 + 4096)
    assert policy.value_head is None


def test_built_on_the_device_in_the_dtype(policy):
    assert {(p.device.type, p.dtype) for p in policy.vla.parameters()} == {("meta", torch.bfloat16)}
    assert {(p.device.type, p.dtype) for p in policy.proprio_projector.parameters()} == {("meta", torch.bfloat16)}
    assert torch.get_default_dtype() == torch.float32  # restored after the build


def test_the_language_model_is_llama2_7b(policy):
    text = policy.vla.language_model.config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.num_key_value_heads,
            text.intermediate_size, text.vocab_size, text.pad_token_id) == (4096, 32, 32, 32, 11008, 32064, 32000)
    assert (policy.bins.n_bins, policy.bins.first, policy.bins.vocab_end) == (256, 32000 - 255, 32000)


def test_the_vision_towers_are_dinov2_large_and_siglip_so400m(policy):
    dino, siglip = policy.vla.vision_backbone.towers()
    d, s = dino.model.config, siglip.model.config
    assert (d.model_type, d.hidden_size, d.num_hidden_layers, d.num_attention_heads, d.mlp_ratio, d.num_register_tokens,
            d.patch_size, d.image_size) == ("dinov2_with_registers", 1024, 24, 16, 4, 4, 14, 224)
    assert (s.model_type, s.hidden_size, s.num_hidden_layers, s.num_attention_heads, s.intermediate_size, s.patch_size,
            s.image_size) == ("siglip_vision_model", 1152, 27, 16, 4304, 14, 224)
    assert dino.prefix == 5 and siglip.prefix == 0  # class + 4 registers dropped: 256 patches from each
    p = policy.vla.projector
    assert p.fused and (p.fc1.in_features, p.fc1.out_features, p.fc2.out_features, p.fc3.out_features) == (
        2176, 4 * 2176, 4096, 4096)


def test_the_libero_setting(policy):
    assert (policy.num_chunks, policy.action_dim, policy.cameras) == (8, 7, ["agentview", "wrist"])
    assert policy.proprio_projector.fc1.in_features == 8
    # no Llama-2 tokenizer offline: words and punctuation, about Llama's length (its ~35 tokens), BOS first
    ids = policy.prompt_ids(_benchmark().LIBERO["instruction"])
    assert len(ids) == 30 and ids[0] == 1


def test_the_config_is_the_published_one():
    assert {"tiny", *ARCHITECTURES} == set(PRISMATIC_ARCHITECTURES)  # what validation accepts is what can be built
    cfg = openvla_7b_config()
    assert cfg["timm_model_ids"] == ["vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224"]
    assert cfg["image_sizes"] == [224, 224] and cfg["use_fused_vision_backbone"]
    assert (cfg["pad_to_multiple_of"], cfg["n_action_bins"]) == (64, 256)
    cfg["text_config"]["vocab_size"] = 0
    assert openvla_7b_config()["text_config"]["vocab_size"] == 32064  # a fresh copy each call


def test_the_benchmark_builds_and_counts_on_meta(capsys):
    _benchmark().real_size_sampling([1, 8], 1, "meta", "bf16")
    out = capsys.readouterr().out
    assert "openvla_oft real size: 7,542,819,056 parameters (7.54e9), bf16 on meta, 2 camera(s), K=8 x D=7" in out
    assert "nothing to time" in out
