"""The megatron backend in one process on the CPU (megatron-core under the test shim, gloo).

Reference values: the Hugging Face checkpoint itself (round trip), transformers' forward (log-probs,
entropy) and the fsdp backend (one optimizer step on the same batch and loss).
"""

from __future__ import annotations

import pytest
import torch
from mcore_helpers import PGLoss, hf_log_probs, make_config, random_batch
from safetensors.torch import load_file


@pytest.fixture(scope="module")
def qwen2_actor(qwen2_dir):
    from rlinf_backends_megatron.megatron_backend import MegatronBackend

    return MegatronBackend(make_config(qwen2_dir), role="actor")


@pytest.mark.parametrize("model", ["qwen2", "llama", "qwen2_tied"])
def test_hf_to_megatron_to_hf_round_trip_is_bit_exact(model, qwen2_dir, llama_dir, qwen2_tied_dir):
    from rlinf_backends_megatron.megatron_backend import MegatronBackend

    path = {"qwen2": qwen2_dir, "llama": llama_dir, "qwen2_tied": qwen2_tied_dir}[model]
    backend = MegatronBackend(make_config(path), role="reference")
    exported = dict(backend.export_weights())
    reference = load_file(f"{path}/model.safetensors")
    assert list(exported) == list(dict.fromkeys(exported))  # each name once
    # the names of the HF model's state_dict: a tied checkpoint file omits lm_head, the state_dict has it
    assert set(exported) == set(reference) | {"lm_head.weight"}
    for name, tensor in reference.items():
        assert torch.equal(exported[name], tensor), name
    if model == "qwen2_tied":
        assert torch.equal(exported["lm_head.weight"], reference["model.embed_tokens.weight"])
    assert exported["model.embed_tokens.weight"].shape[0] < backend.padded_vocab  # padding was stripped
    batch = random_batch(4, vocab=17, seed=7)
    lp, _ = hf_log_probs(path, batch)
    torch.testing.assert_close(backend.compute_log_probs(batch)["log_probs"], lp, atol=2e-5, rtol=0)


@pytest.mark.parametrize("model", ["qwen2_moe", "qwen3_moe"])
def test_mixture_of_experts_round_trip_and_log_probs(model, moe_dirs):
    from rlinf_backends_megatron.megatron_backend import MegatronBackend

    path = moe_dirs[model]
    # the alltoall dispatcher needs CUDA streams; allgather runs on the CPU
    backend = MegatronBackend(make_config(path, megatron={"moe_token_dispatcher_type": "allgather"}), role="actor")
    exported = dict(backend.export_weights())
    reference = load_file(f"{path}/model.safetensors")
    assert set(exported) == set(reference)
    for name, tensor in reference.items():
        assert torch.equal(exported[name], tensor), name
    batch = random_batch(4, vocab=40, seed=1)
    out = backend.compute_log_probs(batch, with_entropy=True)
    lp, ent = hf_log_probs(path, batch)
    torch.testing.assert_close(out["log_probs"], lp, atol=2e-5, rtol=0)
    torch.testing.assert_close(out["entropy"], ent, atol=2e-5, rtol=0)
    assert backend.train_step(batch, PGLoss())["grad_norm"] > 0


def test_tensor_parallel_split_and_merge_of_every_kind_is_exact(qwen2_dir):
    """TP = 2 shards (qkv with 2 query groups, fc1 gate/up, vocab padding, row/column splits) merge back exactly."""
    from rlinf_backends_megatron.convert import ARCHITECTURES, from_mcore_shards, hf_sources, shapes_of, to_mcore_shard
    from transformers import AutoConfig

    hf = load_file(f"{qwen2_dir}/model.safetensors")
    shapes = shapes_of(AutoConfig.from_pretrained(qwen2_dir))
    arch = ARCHITECTURES["qwen2"]
    cases = {"embedding.word_embeddings.weight": 0, "output_layer.weight": 0,
             "decoder.layers.1.self_attention.linear_qkv.weight": 0, "decoder.layers.1.self_attention.linear_qkv.bias": 0,
             "decoder.layers.0.self_attention.linear_proj.weight": 1, "decoder.layers.0.mlp.linear_fc1.weight": 0,
             "decoder.layers.0.mlp.linear_fc2.weight": 1, "decoder.layers.0.input_layernorm.weight": None}
    for name, dim in cases.items():
        src = hf_sources(name, arch)
        parts = [to_mcore_shard(src, [hf[n] for n in src.names], shapes=shapes, padded_vocab=256, tp_rank=r, tp_size=2,
                                partition_dim=dim) for r in range(2)]
        if dim is not None:
            assert parts[0].shape[dim] * 2 == sum(p.shape[dim] for p in parts)
        for hf_name, tensor in from_mcore_shards(src, parts, shapes=shapes, partition_dim=dim):
            assert torch.equal(tensor, hf[hf_name]), (name, hf_name)
    # rank 0 of the fused qkv holds query group 0 whole: its 2 q heads, then k_0, then v_0 (head dim 16)
    src = hf_sources("decoder.layers.0.self_attention.linear_qkv.weight", arch)
    shard0 = to_mcore_shard(src, [hf[n] for n in src.names], shapes=shapes, padded_vocab=256, tp_rank=0, tp_size=2,
                            partition_dim=0)
    q, k, v = (hf[f"model.layers.0.self_attn.{x}_proj.weight"] for x in "qkv")
    assert torch.equal(shard0, torch.cat([q[:32], k[:16], v[:16]]))


def test_unsupported_architecture_lists_the_supported_ones():
    from rlinf_backends_megatron.convert import architecture_of
    from transformers import GPT2Config

    with pytest.raises(ValueError, match=r"model_type 'gpt2'.*supported: llama, mistral, qwen2, qwen2_moe, qwen3, qwen3_moe"):
        architecture_of(GPT2Config())


def test_bad_layout_is_one_error_naming_keys_and_numbers(qwen2_dir):
    from rlinf_backends_megatron.megatron_backend import MegatronBackend

    cfg = make_config(qwen2_dir, megatron={"tensor_model_parallel_size": 3})
    with pytest.raises(ValueError, match=r"tensor_model_parallel_size \(3\).*world size \(1\).*num_attention_heads=4"):
        MegatronBackend(cfg, role="actor")


def test_log_probs_and_entropy_match_transformers(qwen2_actor, qwen2_dir):
    batch = random_batch(6, vocab=17, seed=1)
    out = qwen2_actor.compute_log_probs(batch, temperature=0.9, with_entropy=True)
    lp, ent = hf_log_probs(qwen2_dir, batch, temperature=0.9)
    assert out["log_probs"].shape == batch["response_mask"].shape
    torch.testing.assert_close(out["log_probs"], lp, atol=2e-5, rtol=0)
    torch.testing.assert_close(out["entropy"], ent, atol=2e-5, rtol=0)
    assert float(out["log_probs"].abs().sum()) > 1.0  # not trivially zero


def test_train_step_equals_the_fsdp_backend(qwen2_dir):
    from rlinf_backends_fsdp.fsdp_backend import FSDPBackend
    from rlinf_backends_megatron.megatron_backend import MegatronBackend

    cfg = make_config(qwen2_dir, micro_batch_size=2)
    mcore = MegatronBackend(cfg, role="actor")
    fsdp = FSDPBackend(make_config(qwen2_dir, micro_batch_size=2), role="actor", total_steps=4)
    batch = random_batch(8, vocab=17, seed=2)
    a = mcore.train_step(batch, PGLoss(), temperature=0.9)
    b = fsdp.train_step(batch, PGLoss(), temperature=0.9)
    assert a["loss"] == pytest.approx(b["loss"], abs=1e-6)
    assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-5)
    assert a["entropy"] == pytest.approx(b["entropy"], rel=1e-5)
    after_fsdp = {k: v.clone() for k, v in fsdp.export_weights()}
    after_mcore = dict(mcore.export_weights())
    moved = max(float((after_fsdp[k] - load_file(f"{qwen2_dir}/model.safetensors")[k]).abs().max()) for k in after_fsdp)
    assert moved > 5e-4  # the step changed the weights, so the comparison below bites
    for name, value in after_fsdp.items():
        torch.testing.assert_close(after_mcore[name], value, atol=2e-5, rtol=0)


def test_checkpoint_resumes_exactly(qwen2_dir, tmp_path):
    from rlinf_backends_megatron.megatron_backend import MegatronBackend

    backend = MegatronBackend(make_config(qwen2_dir, lr_sched={"lr_decay_style": "cosine"}), role="actor")
    backend.train_step(random_batch(4, vocab=17, seed=4), PGLoss())
    backend.save_checkpoint(str(tmp_path / "ckpt"))
    first = backend.train_step(random_batch(4, vocab=17, seed=5), PGLoss())
    after = {k: v.clone() for k, v in backend.export_weights()}
    backend.train_step(random_batch(4, vocab=17, seed=6), PGLoss())  # move away, then restore
    backend.load_checkpoint(str(tmp_path / "ckpt"))
    assert backend.global_step == 1
    again = backend.train_step(random_batch(4, vocab=17, seed=5), PGLoss())
    assert again == first  # same loss, grad norm, lr (cosine position restored)
    for name, value in backend.export_weights():
        assert torch.equal(value, after[name]), name


def test_weight_sync_to_the_hf_engine_gives_the_actors_log_probs(qwen2_dir):
    from omegaconf import OmegaConf
    from rlinf_backends_fsdp.hf_engine import HFRolloutEngine
    from rlinf_backends_megatron.megatron_backend import MegatronBackend
    from rlinf_core.flows.batch import pad_rows
    from rlinf_core.interfaces import SamplingParams

    cfg = make_config(qwen2_dir, optim={"lr": 1e-2})
    actor = MegatronBackend(cfg, role="actor")
    for seed in range(3):  # large steps: the synced weights differ clearly from the checkpoint's
        actor.train_step(random_batch(8, vocab=17, seed=10 + seed), PGLoss())
    engine = HFRolloutEngine(OmegaConf.merge(cfg, {"rollout": {"model": {"model_path": qwen2_dir}}}))
    prompts = [[5, 6, 7, 8], [9, 10, 11], [4, 4, 12, 13, 14], [15, 3]]
    sampling = SamplingParams(temperature=1.0, max_new_tokens=5, logprobs=True, seed=0)
    stale = engine.generate(prompts, sampling)
    engine.update_weights(((k, v.clone()) for k, v in actor.export_weights()), version=1)
    out = engine.generate(prompts, sampling)
    assert out.weight_version == 1
    batch = pad_rows(out.prompt_ids, out.response_ids, 0, out.response_logprobs)
    mine = actor.compute_log_probs(batch)["log_probs"]
    torch.testing.assert_close(batch["rollout_log_probs"] * batch["response_mask"], mine, atol=1e-4, rtol=0)
    stale_batch = pad_rows(stale.prompt_ids, stale.response_ids, 0, stale.response_logprobs)
    stale_actor = actor.compute_log_probs(stale_batch)["log_probs"]
    gap = (stale_batch["rollout_log_probs"] * stale_batch["response_mask"] - stale_actor).abs().max()
    assert float(gap) > 1e-2  # before the sync the engine's log-probs are the old model's


def test_critic_values_and_value_steps_equal_the_fsdp_critic(qwen2_dir):
    from omegaconf import OmegaConf
    from rlinf_backends_fsdp.fsdp_backend import FSDPBackend
    from rlinf_backends_megatron.megatron_backend import MegatronBackend
    from rlinf_core.flows.objectives import ValueObjective

    cfg = OmegaConf.merge(make_config(qwen2_dir, micro_batch_size=2), {"critic": {"optim": {"lr": 1e-2}}})
    mcore = MegatronBackend(cfg, role="critic")
    fsdp = FSDPBackend(cfg, role="critic", total_steps=4)
    batch = random_batch(8, vocab=17, seed=3)
    batch["old_values"] = torch.zeros_like(batch["advantages"])
    batch["returns"] = torch.randn(batch["advantages"].shape, generator=torch.Generator().manual_seed(1)) * batch["response_mask"]
    assert float(mcore.compute_values(batch).abs().max()) == 0.0  # zero-initialised value head, as fsdp's
    for _ in range(2):
        a, b = mcore.train_step(batch, ValueObjective()), fsdp.train_step(batch, ValueObjective())
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6) and a["lr"] == b["lr"] == pytest.approx(1e-2)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-5)
    values = mcore.compute_values(batch)
    assert float(values.abs().max()) > 1e-2  # the head learned something, so the comparison bites
    torch.testing.assert_close(values, fsdp.compute_values(batch), atol=2e-5, rtol=0)
    assert float(values[batch["response_mask"] == 0].abs().max()) == 0.0
