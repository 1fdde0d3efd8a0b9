"""The ``vllm`` engine with ``weight_sync: in_process`` and a model built from ``actor.model.config``.

Its own module (and last in the folder): vLLM's CPU worker, running in this process, pins OpenMP
threads and disables ``torch.set_num_threads`` for the rest of the process.
"""

from __future__ import annotations

import os

import pytest

pytest.importorskip("vllm")

import torch  # noqa: E402
from engine_helpers import LOGPROB_ATOL, engine_config, max_logprob_error, perturbed_state  # noqa: E402
from rlinf_backends_fsdp.vllm_engine import VLLMRolloutEngine  # noqa: E402
from rlinf_core.interfaces import SamplingParams  # noqa: E402

MODEL = {"model_type": "qwen2", "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256}


@pytest.fixture(scope="module")
def built(tiny_dir):
    """``(engine, actor_model)``: an engine over a model built from a config, and the actor's build of it."""
    from rlinf_backends_fsdp.hf_model import load_causal_lm, resolve_model_source

    cfg = engine_config({"vllm": {"weight_sync": "in_process"}},
                        actor={"model": {"config": MODEL}, "tokenizer": {"tokenizer_model": tiny_dir}})
    engine = VLLMRolloutEngine(cfg, device="cpu")
    yield engine, load_causal_lm(resolve_model_source(cfg, "actor")).eval()
    engine.close()


def test_a_model_built_from_config_matches_the_actors_build(built, tiny_dir):
    engine, actor_model = built
    assert engine.weight_sync == "in_process"
    prompts = [[5, 6, 7], [9, 10, 11, 12, 13]]
    out = engine.generate(prompts, SamplingParams(temperature=0.9, max_new_tokens=16, seed=1))
    assert max_logprob_error(actor_model, out, 0.9) <= LOGPROB_ATOL  # same seed (actor.seed), same weights


def test_in_process_weight_updates(built):
    engine, actor_model = built
    prompts = [[5, 6, 7], [40, 41]]
    sp = SamplingParams(temperature=0.9, max_new_tokens=16, seed=4)
    for version in (1, 2, 3):
        state = perturbed_state(actor_model, 0.3, seed=version)
        model = type(actor_model)(actor_model.config)
        model.load_state_dict(state)
        engine.update_weights(((k, v.clone()) for k, v in state.items()), version=version)  # a generator, consumed once
        out = engine.generate(prompts, sp)
        assert out.weight_version == version
        assert max_logprob_error(model.eval(), out, 0.9) <= LOGPROB_ATOL
        assert max_logprob_error(actor_model, out, 0.9) > 0.05  # the check bites


def test_close_releases_the_engine_and_its_temporary_model(built):
    engine, _ = built
    tmp = list(engine._tmp_dirs)
    assert tmp and all(os.path.isdir(p) for p in tmp)
    engine.close()
    assert not any(os.path.exists(p) for p in tmp)
    with pytest.raises(RuntimeError, match="after close"):
        engine.generate([[1, 2]], SamplingParams())
    engine.close()  # idempotent
    assert torch.get_num_threads() >= 1
