"""Helpers for the reasoning-flow tests: a tiny model directory and a small config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Run these tiny models on one intra-op thread. On this shared 2-core machine torch's default
    (one thread per core) spins against the other processes: a step took ~3.7 s instead of ~0.17 s.
    Ray ranks already get ``OMP_NUM_THREADS=1``; the kill test's child gets it through its env."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_arith_model(tmp_path_factory) -> Path:
    """A tiny Qwen2 + character tokenizer over the arithmetic alphabet (shared by the session)."""
    from rlinf_backends_fsdp.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("model") / "m", vocab="0123456789=+-*", hidden_size=64,
                           num_layers=1, num_heads=2, num_kv_heads=1, max_position_embeddings=32, seed=0)


def _flow_config(run_root: Path, model: Path, **overrides: Any) -> dict[str, Any]:
    """A small reasoning config on the arithmetic task: 0..1 + 0..1 (answers 0..2), group 8."""
    cfg: dict[str, Any] = {
        "cluster": {"executor": "inline", "num_devices_per_node": 1},
        "runner": {"task_type": "reasoning", "max_steps": 3, "seed": 1,
                   "logger": {"log_path": str(run_root), "experiment_name": "t", "logger_backends": ["console"]}},
        "algorithm": {"adv_type": "grpo", "loss_type": "ppo", "loss_agg_func": "token-mean", "group_size": 8,
                      "sampling_params": {"temperature": 1.0, "max_new_tokens": 2}},
        "actor": {"training_backend": "fsdp", "micro_batch_size": 32, "global_batch_size": 32, "seed": 1,
                  "model": {"model_path": str(model)}, "optim": {"lr": 3e-3},
                  "fsdp_config": {"gradient_checkpointing": False}},
        "rollout": {"rollout_backend": "huggingface"},
        "reward": {"reward_type": "exact_match"},
        "data": {"type": "arithmetic", "rollout_batch_size": 4,
                 "arithmetic": {"max_value": 1, "answer_width": 1, "format_warmup_steps": 0}},
    }
    for dotted, value in overrides.items():
        node = cfg
        *path, last = dotted.split(".")
        for key in path:
            node = node.setdefault(key, {})
        node[last] = value
    return cfg


def _make_flow(cfg: dict[str, Any]):
    from rlinf_core.config import load_config, validate_config
    from rlinf_core.flows.reasoning import ReasoningFlow
    from rlinf_core.plugins import get_plugins

    plugins = get_plugins()
    conf = load_config(cfg, plugins=plugins)
    validate_config(conf, plugins)
    run_dir = Path(conf.runner.logger.log_path) / conf.runner.logger.experiment_name
    return ReasoningFlow(conf, plugins=plugins, run_dir=run_dir), run_dir


@pytest.fixture
def flow_config():
    """``flow_config(run_root, model_dir, **{"dotted.key": value})`` -> a config dict."""
    return _flow_config


@pytest.fixture
def make_flow():
    """``make_flow(cfg_dict)`` -> ``(ReasoningFlow, run_dir)``, the config loaded and validated."""
    return _make_flow
