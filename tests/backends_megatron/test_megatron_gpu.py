"""The megatron backend on CUDA (``@pytest.mark.gpu``): TP = 2 / PP = 2 / CP = 2 training steps over NCCL with
megatron-core's own optimizer, and a GRPO step with the SGLang rollout engine. Skipped without CUDA."""

from __future__ import annotations

import pytest
import torch
from mcore_helpers import PGLoss, hf_log_probs, make_config, random_batch
from safetensors.torch import load_file
from test_megatron_distributed import run_worker

pytestmark = pytest.mark.gpu


def _gpus(n: int) -> None:
    if not torch.cuda.is_available() or torch.cuda.device_count() < n:
        pytest.skip(f"needs {n} CUDA GPUs")


@pytest.mark.parametrize(("layout", "gpus"), [("tp2", 2), ("pp2", 2), ("cp2", 2), ("tp2pp2", 4)])
def test_parallel_training_steps_on_gpus(layout, gpus, qwen2_dir, tmp_path):
    _gpus(gpus)
    res = run_worker(qwen2_dir, tmp_path, layout, nproc=gpus, env={"MCORE_TEST_DEVICE": "cuda"})
    reference = load_file(f"{qwen2_dir}/model.safetensors")
    for name, tensor in reference.items():
        assert torch.equal(res["export0"][name], tensor), name
    lp, ent = hf_log_probs(qwen2_dir, random_batch(8, vocab=17, seed=1), temperature=0.9)
    # CUDA kernels (TF32 off by default for matmuls in fp32) differ from the CPU reference only by rounding
    torch.testing.assert_close(res["logp"], lp, atol=1e-3, rtol=0)
    torch.testing.assert_close(res["entropy"], ent, atol=1e-3, rtol=0)
    assert res["step1"]["skipped"] == 0.0 and res["step1"]["grad_norm"] > 0
    moved = max(float((res["params1"][k] - reference[k]).abs().max()) for k in reference)
    assert moved > 1e-4
    for name, value in res["params1"].items():
        assert torch.equal(res["reloaded"][name], value), name
    assert res["step2_again"]["loss"] == pytest.approx(res["step2"]["loss"], rel=1e-5)


def test_one_gpu_train_step_and_offload(qwen2_dir):
    _gpus(1)
    from rlinf_backends_megatron.megatron_backend import MegatronBackend

    backend = MegatronBackend(make_config(qwen2_dir, micro_batch_size=2), role="actor", device="cuda:0")
    batch = {k: v.cuda() for k, v in random_batch(8, vocab=17, seed=2).items()}
    step = backend.train_step(batch, PGLoss())
    assert step["skipped"] == 0.0 and step["grad_norm"] > 0
    before = {k: v.detach().cpu().clone() for k, v in backend.export_weights()}
    used = torch.cuda.memory_allocated()
    backend.offload()
    assert torch.cuda.memory_allocated() < used
    backend.onload()
    after = {k: v.detach().cpu() for k, v in backend.export_weights()}
    for name, value in before.items():
        assert torch.equal(after[name], value), name
    assert backend.train_step(batch, PGLoss())["skipped"] == 0.0


def test_grpo_step_with_sglang_and_megatron(tmp_path, qwen2_dir):
    _gpus(1)
    pytest.importorskip("sglang")
    from rlinf_core.config import load_config, validate_config
    from rlinf_core.flows.reasoning import ReasoningFlow
    from rlinf_core.plugins import get_plugins

    plugins = get_plugins()
    config = load_config({
        "cluster": {"executor": "inline"},
        "runner": {"task_type": "reasoning", "max_steps": 2, "save_interval": 0,
                   "logger": {"log_path": str(tmp_path), "logger_backends": ["console"]}},
        "algorithm": {"adv_type": "grpo", "loss_type": "ppo", "group_size": 4, "n_minibatches": 1,
                      "sampling_params": {"max_new_tokens": 4}},
        "actor": {"training_backend": "megatron", "micro_batch_size": 8, "global_batch_size": 16,
                  "model": {"model_path": qwen2_dir}, "optim": {"lr": 1e-3}, "megatron": {}},
        "rollout": {"rollout_backend": "sglang", "gpu_memory_utilization": 0.3},
        "reward": {"reward_type": "exact_match"},
        "data": {"type": "arithmetic", "rollout_batch_size": 4},
    }, plugins=plugins)
    validate_config(config, plugins)
    metrics = ReasoningFlow(config, plugins=plugins, run_dir=tmp_path / "run").train()
    assert metrics["rollout/weight_version"] == 1.0 and metrics["actor/skipped"] == 0.0
