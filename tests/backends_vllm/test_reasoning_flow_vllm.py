"""The CPU quickstart's reasoning flow with ``rollout.rollout_backend=vllm``, a few GRPO steps.

With ``recompute_logprobs: false`` the PPO ratio of the first update is exp(actor - engine log-prob)
on the engine's own samples, so a ratio of 1 (to 1e-4) on every token at every step says the
flow's weight sync leaves vLLM exactly on-policy; the engines' weight version is checked too.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

pytest.importorskip("vllm")

from rlinf_core import get_plugins  # noqa: E402
from rlinf_core.config import load_config, validate_config  # noqa: E402
from rlinf_core.flows.tracking import read_metrics  # noqa: E402

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "reasoning" / "quickstart_cpu.yaml"


def test_quickstart_with_the_vllm_engine_stays_on_policy(tmp_path):
    plugins = get_plugins()
    cfg = load_config(QUICKSTART, [
        "rollout.rollout_backend=vllm", "rollout.vllm.max_model_len=32", "rollout.vllm.kv_cache_space_gib=0.25",
        "runner.max_steps=3", "runner.save_interval=-1", "data.arithmetic.format_warmup_steps=2",
        "data.rollout_batch_size=8", "algorithm.group_size=8", "actor.micro_batch_size=64", "actor.global_batch_size=64",
    ], plugins=plugins)
    validate_config(cfg, plugins)
    flow = plugins.registries.load("flow", "reasoning")(cfg, plugins=plugins, run_dir=tmp_path / "run")
    flow.train()
    rows = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["step"] >= 1]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert r["rollout/staleness"] == 0 and r["rollout/weight_version"] == r["step"]  # warm-up sync = version 1
        assert abs(r["actor/ratio_max"] - 1) < 1e-4 and abs(1 - r["actor/ratio_min"]) < 1e-4
        assert math.isfinite(r["actor/loss"]) and 0 <= r["reward/mean"] <= 1
