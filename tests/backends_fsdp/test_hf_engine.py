"""The huggingface rollout engine: sampling, log-probs against the fsdp backend, weight sync."""

from __future__ import annotations

import pytest
import torch
from fsdp_helpers import PGLoss, make_batch, make_config, random_batch
from rlinf_backends_fsdp.fsdp_backend import FSDPBackend
from rlinf_backends_fsdp.hf_engine import HFRolloutEngine
from rlinf_backends_fsdp.weights import iter_buckets
from rlinf_core.interfaces import SamplingParams, check_conformance

PROMPTS = [[4, 5, 13, 6, 14], [7, 14], [8, 9, 10, 13, 4, 14], [5, 14], [3, 3, 13, 3, 14], [11, 12, 14]]


def _batch_of(out):
    batch = make_batch(out.prompt_ids, out.response_ids)
    rlen = batch["response_mask"].shape[1]
    batch["old"] = torch.tensor([lp + [0.0] * (rlen - len(lp)) for lp in out.response_logprobs])
    return batch


def _max_gap(engine, actor, sampling):
    out = engine.generate(PROMPTS, sampling)
    batch = _batch_of(out)
    mine = actor.compute_log_probs(batch, temperature=sampling.temperature)["log_probs"]
    return float((mine - batch["old"]).abs().max()), out


def test_conforms_to_the_interface():
    assert check_conformance("rollout_engine", HFRolloutEngine) == []


def test_log_probs_match_the_backend_before_and_after_a_weight_sync(tiny_dir):
    cfg = make_config(tiny_dir, optim={"lr": 5e-2})
    engine, actor = HFRolloutEngine(cfg), FSDPBackend(cfg, role="actor")
    sampling = SamplingParams(temperature=0.8, max_new_tokens=10, seed=0)
    gap, out = _max_gap(engine, actor, sampling)
    assert gap < 1e-5
    assert out.weight_version == 0 and sum(map(len, out.response_ids)) > len(PROMPTS)

    actor.train_step({**random_batch(6, seed=1)}, PGLoss())
    stale, _ = _max_gap(engine, actor, sampling)
    assert stale > 1e-2  # the check bites: the engine still has the old weights

    engine.update_weights(actor.export_weights(), version=1)
    gap, out = _max_gap(engine, actor, sampling)
    assert gap < 1e-5 and out.weight_version == 1 and engine.weight_version == 1

    # bucketed transfer (as between processes) gives the same weights
    actor.train_step({**random_batch(6, seed=2)}, PGLoss())
    buckets = list(iter_buckets(((k, v.clone()) for k, v in actor.export_weights()), bucket_bytes=20_000))
    assert len(buckets) > 3 and all(sum(t.numel() * 4 for _, t in b) <= 20_000 or len(b) == 1 for b in buckets)
    for bucket in buckets:
        engine.update_weights(bucket, version=2)
    gap, _ = _max_gap(engine, actor, sampling)
    assert gap < 1e-5


def test_sampling_controls(tiny_dir):
    engine = HFRolloutEngine(make_config(tiny_dir))
    greedy = SamplingParams(do_sample=False, max_new_tokens=6)
    a, b = engine.generate(PROMPTS, greedy), engine.generate(PROMPTS, greedy)
    assert a.response_ids == b.response_ids
    # greedy = argmax of a teacher-forced forward at every step
    from transformers import AutoModelForCausalLM

    ref = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    for p, r in zip(PROMPTS, a.response_ids, strict=True):
        with torch.no_grad():
            logits = ref(torch.tensor([p + r])).logits[0, len(p) - 1:-1]
        assert logits.argmax(-1).tolist() == r
    # top_k=1 samples the argmax too
    topk = engine.generate(PROMPTS, SamplingParams(top_k=1, max_new_tokens=6, seed=5))
    assert topk.response_ids == a.response_ids
    # a seed reproduces; different seeds differ
    s1 = engine.generate(PROMPTS, SamplingParams(max_new_tokens=8, seed=1))
    s1b = engine.generate(PROMPTS, SamplingParams(max_new_tokens=8, seed=1))
    s2 = engine.generate(PROMPTS, SamplingParams(max_new_tokens=8, seed=2))
    assert s1.response_ids == s1b.response_ids != s2.response_ids
    # max_new_tokens and finish reasons
    assert all(len(r) <= 8 for r in s1.response_ids)
    for r, why in zip(s1.response_ids, s1.finish_reasons, strict=True):
        assert (why == "length") == (len(r) == 8 and r[-1] not in (2,))


def test_stop_tokens_end_rows_independently(tiny_dir):
    engine = HFRolloutEngine(make_config(tiny_dir))
    sampling = SamplingParams(temperature=1.5, max_new_tokens=12, stop_token_ids=(4, 5, 6, 7), seed=3)
    out = engine.generate(PROMPTS * 3, sampling)
    stopped = [r for r, why in zip(out.response_ids, out.finish_reasons, strict=True) if why == "stop"]
    assert stopped, "with four stop tokens at temperature 1.5 some rows stop"
    for r, why in zip(out.response_ids, out.finish_reasons, strict=True):
        inner = r[:-1]
        assert not set(inner) & {2, 4, 5, 6, 7}  # nothing after the first stop / eos
        assert why == ("stop" if r[-1] in (2, 4, 5, 6, 7) else "length")
        assert why == "stop" or len(r) == 12
    assert len({len(r) for r in out.response_ids}) > 1
    assert all(len(lp) == len(r) for lp, r in zip(out.response_logprobs, out.response_ids, strict=True))


def test_batches_padding_and_top_p_agree_with_the_backend(tiny_dir):
    cfg = make_config(tiny_dir)
    actor = FSDPBackend(cfg, role="actor")
    engine = HFRolloutEngine(cfg)
    sampling = SamplingParams(temperature=0.7, top_p=0.8, repetition_penalty=1.2, max_new_tokens=8, seed=4)
    gap, out = _max_gap(engine, actor, sampling)  # the log-prob reported is of logits / T, unfiltered
    assert gap < 1e-5
    # one prompt alone gives the same tokens as in a left-padded batch (greedy)
    greedy = SamplingParams(do_sample=False, max_new_tokens=6)
    batched = engine.generate(PROMPTS, greedy).response_ids
    alone = [engine.generate([p], greedy).response_ids[0] for p in PROMPTS]
    assert batched == alone


def test_errors_and_close(tiny_dir, tmp_path):
    engine = HFRolloutEngine(make_config(tiny_dir))
    with pytest.raises(KeyError, match="names its model does not have: nope"):
        engine.update_weights([("nope", torch.zeros(1))], 3)
    name, tensor = next(iter(engine.model.state_dict().items()))
    with pytest.raises(ValueError, match=f"weight {name} has shape"):
        engine.update_weights([(name, torch.zeros(*tensor.shape, 2))], 3)
    with pytest.raises(ValueError, match="empty prompt"):
        engine.generate([[]], SamplingParams())
    engine.offload()
    engine.onload()
    engine.close()
    with pytest.raises(RuntimeError, match="after close"):
        engine.generate(PROMPTS, SamplingParams())
    with pytest.raises(FileNotFoundError, match=r"^actor\.model\.model_path: /missing does not exist"):
        HFRolloutEngine(make_config("/missing"))
    from rlinf_core.config import load_config

    cfg = load_config({"rollout": {"model": {"model_path": "/missing2"}}, "actor": {"model": {"model_path": tiny_dir}}})
    with pytest.raises(FileNotFoundError, match=r"^rollout\.model\.model_path: /missing2"):
        HFRolloutEngine(cfg)


def test_registered_through_the_plugin():
    from rlinf_core.plugins import get_plugins

    registries = get_plugins().registries
    assert registries.load("rollout_engine", "huggingface") is HFRolloutEngine
    assert registries.load("rollout_engine", "hf") is HFRolloutEngine
    assert registries.load("training_backend", "fsdp") is FSDPBackend
