"""The fsdp training backend at world size 1: log-probs, accumulation, schedule, checkpoints, roles, errors."""

from __future__ import annotations

import math

import pytest
import torch
from fsdp_helpers import PGLoss, make_batch, make_config, random_batch
from rlinf_backends_fsdp.fsdp_backend import FSDPBackend
from rlinf_core.interfaces import check_conformance


def _params(backend):
    return {k: v.detach().clone() for k, v in backend.export_weights()}


def test_conforms_to_the_interface():
    assert check_conformance("training_backend", FSDPBackend) == []


def test_log_probs_and_entropy_equal_a_plain_teacher_forced_forward(tiny_dir):
    from transformers import AutoModelForCausalLM

    backend = FSDPBackend(make_config(tiny_dir), role="actor")
    batch = random_batch(4, seed=1)
    out = backend.compute_log_probs(batch, temperature=0.5, with_entropy=True)
    ref = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    P = batch["input_ids"].shape[1] - batch["response_mask"].shape[1]
    for i in range(4):  # each row alone, unpadded
        keep = batch["attention_mask"][i].bool()
        ids = batch["input_ids"][i][keep][None]
        n = int(batch["response_mask"][i].sum())
        with torch.no_grad():
            logits = ref(ids).logits[0, -n - 1:-1] / 0.5
        logp = torch.log_softmax(logits, -1)
        expect = logp.gather(-1, ids[0, -n:, None]).squeeze(-1)
        ent = -(logp.exp() * logp).sum(-1)
        torch.testing.assert_close(out["log_probs"][i, :n], expect, atol=1e-5, rtol=0)
        torch.testing.assert_close(out["entropy"][i, :n], ent, atol=1e-5, rtol=0)
        assert (out["log_probs"][i, n:] == 0).all()  # masked positions are zero
    assert P > 0 and out["log_probs"].shape == batch["response_mask"].shape


def test_gradient_accumulation_equals_one_big_micro_batch(tiny_dir):
    batch = random_batch(8, seed=2)
    results = []
    for mbs in (8, 2):
        # lr 1e-3: Adam's first step is about lr * sign(grad), so float noise in tiny gradients stays < 1e-6
        backend = FSDPBackend(make_config(tiny_dir, micro_batch_size=mbs, optim={"lr": 1e-3}), role="actor")
        metrics = backend.train_step(batch, PGLoss(), temperature=0.9)
        results.append((_params(backend), metrics))
    (a, ma), (b, mb) = results
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-6, rtol=0)
    assert ma["loss"] == pytest.approx(mb["loss"], abs=1e-6)
    assert ma["grad_norm"] == pytest.approx(mb["grad_norm"], rel=1e-5)
    assert ma["grad_norm"] > 0 and "entropy" in ma
    before = FSDPBackend(make_config(tiny_dir), role="actor")
    assert any(not torch.equal(v, a[k]) for k, v in _params(before).items())  # the step changed weights


def test_clip_and_cosine_schedule_with_warmup(tiny_dir):
    cfg = make_config(tiny_dir, optim={"clip_grad": 1e-3}, lr_sched={"lr_decay_style": "cosine", "lr_warmup_fraction": 0.25,
                                                                     "min_lr": 1e-3})
    backend = FSDPBackend(cfg, role="actor", total_steps=8)
    batch = random_batch(4, seed=3)
    before = _params(backend)
    lrs = [backend.train_step(batch, PGLoss())["lr"] for _ in range(4)]
    # warmup 2 steps from 0, then cosine from 1e-2 to 1e-3 over 6 steps
    expect = [0.0, 0.5e-2] + [1e-3 + 0.5 * (1e-2 - 1e-3) * (1 + math.cos(math.pi * s / 6)) for s in (0, 1)]
    assert lrs == pytest.approx(expect, rel=1e-6)
    # clipped to norm 1e-3: after Adam's first steps the change is lr-bounded anyway; check the norm
    m = backend.train_step(batch, PGLoss())
    assert m["grad_norm"] > 1e-3
    assert any(not torch.equal(v, before[k]) for k, v in _params(backend).items())


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled")
def test_checkpoint_round_trip_is_exact_and_training_continues_identically(tiny_dir, tmp_path):
    cfg = make_config(tiny_dir, lr_sched={"lr_decay_style": "linear"})
    b1 = FSDPBackend(cfg, role="actor", total_steps=10)
    b1.train_step(random_batch(4, seed=4), PGLoss())
    b1.save_checkpoint(str(tmp_path / "ckpt"))
    saved = _params(b1)
    draw = torch.rand(3)  # RNG after the save
    m1 = b1.train_step(random_batch(4, seed=5), PGLoss())
    after1 = _params(b1)

    b2 = FSDPBackend(cfg, role="actor", total_steps=10)
    b2.load_checkpoint(str(tmp_path / "ckpt"))
    for k, v in _params(b2).items():
        assert torch.equal(v, saved[k]), k
    assert torch.equal(torch.rand(3), draw)  # RNG restored
    assert b2.global_step == 1
    m2 = b2.train_step(random_batch(4, seed=5), PGLoss())
    for k, v in _params(b2).items():
        assert torch.equal(v, after1[k]), k  # optimizer moments and schedule restored exactly
    assert m2["lr"] == m1["lr"] and m2["loss"] == m1["loss"]


def test_critic_values_shape_and_training(tiny_dir):
    critic = FSDPBackend(make_config(tiny_dir, critic={"optim": {"lr": 3e-2}}), role="critic")
    batch = random_batch(4, seed=6)
    values = critic.compute_values(batch)
    assert values.shape == batch["response_mask"].shape
    assert (values == 0).all()  # zero-initialised head
    batch["returns"] = torch.full_like(values, 0.7) * batch["response_mask"]

    def value_loss(outputs, mb):
        err = (outputs["values"] - mb["returns"]) ** 2
        return (err * mb["response_mask"]).sum() / mb["global_tokens"], {}

    losses = [critic.train_step(batch, value_loss)["loss"] for _ in range(15)]
    assert losses[-1] < 0.35 * losses[0]
    values = critic.compute_values(batch)
    assert ((values - 0.7).abs() * batch["response_mask"]).sum() / batch["response_mask"].sum() < 0.3
    assert (values[batch["response_mask"] == 0] == 0).all()
    with pytest.raises(RuntimeError, match="compute_values"):
        critic.compute_log_probs(batch)


def test_reference_is_frozen(tiny_dir):
    ref = FSDPBackend(make_config(tiny_dir), role="reference")
    assert ref.optimizer is None
    assert not any(p.requires_grad for p in ref.model.parameters())
    with pytest.raises(RuntimeError, match="reference has no optimizer"):
        ref.train_step(random_batch(2), PGLoss())
    out = ref.compute_log_probs(random_batch(2))
    assert out["log_probs"].shape[0] == 2 and not out["log_probs"].requires_grad


def test_built_from_config_is_seeded(tmp_path):
    from rlinf_backends_fsdp.tiny import save_tiny_model
    from rlinf_core.config import load_config

    tok = save_tiny_model(tmp_path / "tok", vocab="0123456789")
    model_cfg = {"model_type": "qwen2", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                 "num_attention_heads": 1, "num_key_value_heads": 1}

    def build(seed):
        cfg = load_config({"actor": {"model": {"config": model_cfg}, "tokenizer": {"tokenizer_model": str(tok)},
                                     "seed": seed}})
        return FSDPBackend(cfg, role="actor")

    a, b, c = build(1), build(1), build(2)
    assert a.hf_config.vocab_size == 13  # from the tokenizer
    wa, wb, wc = (_params(x)["model.layers.0.mlp.up_proj.weight"] for x in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_bad_input_gives_one_line_naming_the_key(tiny_dir, tmp_path):
    from transformers import ViTConfig

    with pytest.raises(FileNotFoundError, match=r"^actor\.model\.model_path: /nope/x does not exist"):
        FSDPBackend(make_config("/nope/x"), role="actor")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"actor\.model\.model_path: .* is not a Hugging Face model directory"):
        FSDPBackend(make_config(str(tmp_path / "empty")), role="actor")
    ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=1, intermediate_size=32).save_pretrained(tmp_path / "vit")
    with pytest.raises(ValueError, match=r"actor\.model\.model_path: .* holds a 'vit' model .*not a causal LM"):
        FSDPBackend(make_config(str(tmp_path / "vit")), role="actor")
    import shutil

    shutil.copytree(tiny_dir, tmp_path / "noweights", ignore=shutil.ignore_patterns("*.safetensors"))
    with pytest.raises(OSError, match=r"^actor\.model\.model_path: cannot load the weights in .*noweights"):
        FSDPBackend(make_config(str(tmp_path / "noweights")), role="actor")
    backend = FSDPBackend(make_config(tiny_dir, micro_batch_size=4), role="actor")
    with pytest.raises(ValueError) as err:
        backend.train_step(random_batch(6), PGLoss())
    msg = str(err.value)
    assert "\n" not in msg and "actor.micro_batch_size=4 x world size 1 does not divide the batch of 6 rows" in msg
    with pytest.raises(ValueError, match="unknown config key 'actor.fsdp_config.gradient_checkpoint'. Did you mean "
                                         "'gradient_checkpointing'"):
        FSDPBackend(make_config(tiny_dir, fsdp_config={"gradient_checkpoint": True}), role="actor")
    with pytest.raises(ValueError, match=r"actor.fsdp_config.mixed_precision.param_dtype: unknown precision 'fp8'"):
        FSDPBackend(make_config(tiny_dir, fsdp_config={"mixed_precision": {"param_dtype": "fp8"}}), role="actor")
    with pytest.raises(ValueError, match="actor.model.precision: unknown precision 'fp8'"):
        FSDPBackend(make_config(tiny_dir, model={"model_path": tiny_dir, "precision": "fp8"}), role="actor")


def test_gradient_checkpointing_and_bf16_autocast_still_train(tiny_dir):
    batch = random_batch(4, seed=7)
    plain = FSDPBackend(make_config(tiny_dir), role="actor")
    gc = FSDPBackend(make_config(tiny_dir, fsdp_config={"gradient_checkpointing": True}), role="actor")
    a, b = plain.train_step(batch, PGLoss()), gc.train_step(batch, PGLoss())
    assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-5)
    mp = FSDPBackend(make_config(tiny_dir, fsdp_config={"mixed_precision": {"param_dtype": "bf16"}}), role="actor")
    m = mp.train_step(batch, PGLoss())
    assert m["grad_norm"] == pytest.approx(a["grad_norm"], rel=0.1) and m["grad_norm"] != a["grad_norm"]


def test_padding_columns_do_not_change_results(tiny_dir):
    backend = FSDPBackend(make_config(tiny_dir), role="actor")
    batch = make_batch([[4, 5, 13], [6, 14]], [[7, 8], [9]])
    wide = make_batch([[4, 5, 13], [6, 14]], [[7, 8], [9]])
    # two extra all-padding columns on the left of the prompts and the right of the responses
    pad = torch.zeros(2, 2, dtype=torch.long)
    wide["input_ids"] = torch.cat([pad, wide["input_ids"], pad], 1)
    wide["attention_mask"] = torch.cat([pad, wide["attention_mask"], pad], 1)
    wide["response_mask"] = torch.cat([wide["response_mask"], pad.float()], 1)
    a = backend.compute_log_probs(batch)["log_probs"]
    b = backend.compute_log_probs(wide)["log_probs"]
    assert b.shape == (2, 4)
    torch.testing.assert_close(b[:, :2], a, atol=1e-6, rtol=0)
    assert (b[:, 2:] == 0).all()
