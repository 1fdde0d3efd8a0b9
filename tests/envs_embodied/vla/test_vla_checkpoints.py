"""The real loading path: tiny checkpoints written in each model's published format and loaded back
(key names, shapes, dtypes, normalisation statistics), and clear errors for directories that are not."""

from __future__ import annotations

import json

import pytest
import torch
from rlinf_core.errors import ConfigError
from rlinf_envs_embodied.vla.prismatic import hf_tower_to_timm, timm_tower_to_hf, tower_specs


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sorted(sa) == sorted(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype, k
        torch.testing.assert_close(sa[k], sb[k], msg=k)


def test_openvla_checkpoint_has_the_published_layout_and_round_trips(build_vla, obs, tmp_path):
    from safetensors import safe_open

    policy = build_vla("openvla", config={"vision": "dinosiglip"})
    policy.save_pretrained(tmp_path)
    assert {"config.json", "model.safetensors", "dataset_statistics.json", "tokenizer.json"} <= {p.name for p in tmp_path.iterdir()}
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["use_fused_vision_backbone"] is True and cfg["n_action_bins"] == 16
    assert cfg["norm_stats"]["rlinf_tiny"]["action"] == {"q01": [-1.0, -1.0], "q99": [1.0, 1.0], "mask": [True, True]}
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        qkv = f.get_tensor("vision_backbone.featurizer.blocks.0.attn.qkv.weight")
        pos = f.get_tensor("vision_backbone.featurizer.pos_embed")
    # Prismatic's names: timm towers (DINOv2-reg + SigLIP), fused projector, transformers' Llama
    for key in ("vision_backbone.featurizer.cls_token", "vision_backbone.featurizer.reg_token",
                "vision_backbone.featurizer.blocks.0.ls1.gamma", "vision_backbone.fused_featurizer.blocks.1.attn.qkv.bias",
                "vision_backbone.fused_featurizer.patch_embed.proj.weight", "projector.fc3.weight",
                "language_model.model.layers.1.self_attn.q_proj.weight", "language_model.lm_head.weight"):
        assert key in keys, key
    assert not any(".q_proj." in k and k.startswith("vision_backbone") for k in keys)
    assert tuple(qkv.shape) == (96, 32) and qkv.dtype == torch.float32
    assert tuple(pos.shape) == (1, 16, 32)  # patches only: timm's DINOv2-reg has no class position

    loaded = build_vla("openvla", seed=5, model_path=str(tmp_path))
    same_weights(policy.vla, loaded.vla)
    assert loaded.bins.n_bins == 16 and loaded.bins.vocab_end == policy.bins.vocab_end
    assert loaded.unnorm_key == "rlinf_tiny"
    loaded.value_head.load_state_dict(policy.value_head.state_dict())
    a, b = policy.sample(obs, deterministic=True), loaded.sample(obs, deterministic=True)
    torch.testing.assert_close(a.actions, b.actions)
    torch.testing.assert_close(a.log_probs, b.log_probs, atol=1e-5, rtol=0)
    loaded.save_pretrained(tmp_path / "again")  # a loaded checkpoint saves back in the same format
    same_weights(policy.vla, build_vla("openvla", model_path=str(tmp_path / "again")).vla)


def test_published_tower_ids_name_their_transformers_configs():
    specs = tower_specs({"timm_model_ids": ["vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224"]})
    assert [(s["model_type"], s["hidden_size"], s["num_hidden_layers"]) for s in specs] == [
        ("dinov2_with_registers", 1024, 24), ("siglip_vision_model", 1152, 27)]
    assert specs[0]["num_register_tokens"] == 4 and specs[1]["intermediate_size"] == 4304
    with pytest.raises(ConfigError, match="vision tower 'vit_base_patch16_clip_224' is not supported"):
        tower_specs({"timm_model_ids": ["vit_base_patch16_clip_224"]})


def test_timm_names_map_onto_transformers_and_back():
    d, n = 8, 4
    state = {"blocks.0.attn.qkv.weight": torch.arange(3 * d * d, dtype=torch.float32).view(3 * d, d),
             "blocks.0.attn.qkv.bias": torch.arange(3 * d, dtype=torch.float32),
             "pos_embed": torch.randn(1, n, d), "blocks.0.ls1.gamma": torch.ones(d), "reg_token": torch.zeros(1, 4, d)}
    hf = timm_tower_to_hf(state, "dinov2_with_registers")
    torch.testing.assert_close(hf["encoder.layer.0.attention.k_proj.weight"], state["blocks.0.attn.qkv.weight"][d:2 * d])
    torch.testing.assert_close(hf["encoder.layer.0.attention.v_proj.bias"], state["blocks.0.attn.qkv.bias"][2 * d:])
    assert hf["embeddings.position_embeddings"].shape == (1, n + 1, d) and not hf["embeddings.position_embeddings"][0, 0].any()
    assert "encoder.layer.0.layer_scale1.lambda1" in hf and "embeddings.register_tokens" in hf
    back = hf_tower_to_timm(hf, "dinov2_with_registers")
    assert sorted(back) == sorted(state)
    for k in state:
        torch.testing.assert_close(back[k], state[k])
    siglip = timm_tower_to_hf({"pos_embed": torch.randn(1, n, d), "norm.weight": torch.ones(d),
                               "attn_pool.latent": torch.zeros(1, 1, d)}, "siglip_vision_model")
    assert siglip["embeddings.position_embedding.weight"].shape == (n, d) and "post_layernorm.weight" in siglip
    assert not any(k.startswith("attn_pool") for k in siglip)  # unused head dropped
    with pytest.raises(ConfigError, match="unknown vision-tower weight 'blocks.0.weird'"):
        timm_tower_to_hf({"blocks.0.weird": torch.zeros(1)}, "siglip_vision_model")


def test_openvla_unnorm_key_picks_the_dataset_statistics(build_vla, obs, tmp_path):
    policy = build_vla("openvla")
    policy.norm_stats = {"bridge_orig": {"action": {"q01": [0.0, 0.0], "q99": [2.0, 4.0]}},
                         "libero_spatial": {"action": {"q01": [-1.0, -1.0], "q99": [1.0, 1.0]}}}
    policy.save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match=r"actor.model.unnorm_key: .*\['bridge_orig', 'libero_spatial'\]"):
        build_vla("openvla", model_path=str(tmp_path))
    with pytest.raises(ConfigError, match="'bridge' is not in .*Did you mean 'bridge_orig'"):
        build_vla("openvla", model_path=str(tmp_path), unnorm_key="bridge")
    loaded = build_vla("openvla", model_path=str(tmp_path), unnorm_key="bridge_orig")
    s = loaded.sample(obs)
    centres = loaded.bins.index_to_action(s.extras["action_tokens"])
    torch.testing.assert_close(s.actions, (centres + 1) / 2 * torch.tensor([2.0, 4.0]))


def test_oft_checkpoint_carries_the_proprio_projector(build_vla, obs, tmp_path):
    policy = build_vla("openvla_oft")
    policy.save_pretrained(tmp_path)
    files = sorted(p.name for p in tmp_path.glob("proprio_projector--*_checkpoint.pt"))
    assert files == ["proprio_projector--0_checkpoint.pt"]
    saved = torch.load(tmp_path / files[0], weights_only=True)
    assert sorted(saved) == ["module.fc1.bias", "module.fc1.weight", "module.fc2.bias", "module.fc2.weight"]
    loaded = build_vla("openvla_oft", seed=3, model_path=str(tmp_path), config={})
    assert loaded.proprio_projector is not None  # found in the directory, no option needed
    same_weights(policy.proprio_projector, loaded.proprio_projector)
    loaded.value_head.load_state_dict(policy.value_head.state_dict())
    torch.testing.assert_close(policy.sample(obs, deterministic=True).log_probs,
                               loaded.sample(obs, deterministic=True).log_probs, atol=1e-5, rtol=0)
    (tmp_path / files[0]).unlink()
    with pytest.raises(ConfigError, match="use_proprio: .*no proprio_projector"):
        build_vla("openvla_oft", model_path=str(tmp_path))


def test_pi0_checkpoint_round_trips_in_transformers_format(build_vla, obs, tmp_path):
    policy = build_vla("pi0", num_action_chunks=3)
    policy.stats = {"actions_mean": [0.5, -0.5], "actions_std": [2.0, 1.0], "state_mean": [0.1, 0.2], "state_std": [1.0, 3.0]}
    policy.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["model_type"] == "pi0" and cfg["chunk_size"] == 3
    proc = json.loads((tmp_path / "processor_config.json").read_text())
    assert proc["actions_std"] == [2.0, 1.0] and proc["state_mean"] == [0.1, 0.2]
    from safetensors import safe_open

    with safe_open(str(next(tmp_path.glob("*.safetensors"))), "pt") as f:
        keys = set(f.keys())
    # transformers writes PI0 with openpi / lerobot's key names
    assert {"action_out_proj.weight", "action_in_proj.weight", "state_proj.weight", "action_time_mlp_in.weight",
            "paligemma_with_expert.paligemma.model.multi_modal_projector.linear.weight"} <= keys
    assert any(k.startswith("paligemma_with_expert.paligemma.model.vision_tower.") for k in keys)
    assert any(k.startswith("paligemma_with_expert.gemma_expert.model.layers.") for k in keys)

    loaded = build_vla("pi0", seed=9, model_path=str(tmp_path), num_action_chunks=2)
    same_weights(policy.model, loaded.model)
    assert loaded.num_chunks == 2 and loaded.model.config.chunk_size == 3
    s = loaded.sample(obs, deterministic=True)
    # actions are un-normalised with the checkpoint's statistics
    torch.testing.assert_close(s.actions, s.extras["chain"][:, -1, :2, :2] * torch.tensor([2.0, 1.0])
                               + torch.tensor([0.5, -0.5]))
    loaded.value_head.load_state_dict(policy.value_head.state_dict())
    policy.state_norm = loaded.state_norm  # the statistics were replaced after construction above
    torch.testing.assert_close(policy.sample(obs, deterministic=True).extras["chain"], s.extras["chain"], atol=1e-5, rtol=0)
    with pytest.raises(ConfigError, match=r"num_action_chunks: must be in 1..3"):
        build_vla("pi0", model_path=str(tmp_path), num_action_chunks=4)


@pytest.mark.parametrize("name", ["openvla", "openvla_oft", "pi0"])
def test_a_directory_that_is_not_a_checkpoint_is_one_clear_error(name, build_vla, tmp_path):
    with pytest.raises(ConfigError, match=r"actor.model.model_path: .* is not a directory"):
        build_vla(name, model_path=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=r"actor.model.model_path: .* lacks config.json"):
        build_vla(name, model_path=str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2", "hidden_size": 8}))
    (tmp_path / "processor_config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"actor.model.model_path: .*(not an OpenVLA|not 'pi0')"):
        build_vla(name, model_path=str(tmp_path))


def test_weights_that_do_not_fit_the_config_are_named(build_vla, tmp_path):
    policy = build_vla("openvla")
    policy.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["text_config"]["num_hidden_layers"] = 3
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=r"does not fit .*missing \(\d+\): \['language_model.model.layers.2"):
        build_vla("openvla", model_path=str(tmp_path))
