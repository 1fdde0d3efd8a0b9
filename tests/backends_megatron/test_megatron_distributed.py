"""The megatron backend on several processes (gloo, ``torch.distributed.run``) against one process.

Layouts on two processes: TP = 2; PP = 2 (megatron-core's 1F1B schedule over gloo send/recv); DP = 2;
EP = 2 (Qwen2-MoE, experts split over ranks); PP = 2 with two virtual stages (interleaved schedule,
4 layers); CP = 2 (context parallel: each rank holds half of every sequence's columns). On four
processes: TP = 2 x PP = 2, CP = 2 x PP = 2, TP = 2 x CP = 2. Sequence parallelism is not covered: it needs Apex's
fused norm, and megatron-core's torch-norm fallback refuses it. Each run takes 25-40 s on two loaded
cores, so they are marked slow (the ``megatron`` nox session runs them).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mcore_helpers import PGLoss, critic_batch, hf_log_probs, make_config, random_batch
from safetensors.torch import load_file

WORKER = Path(__file__).with_name("mcore_dist_worker.py")


def run_worker(model_dir: str, out: Path, layout: str, *, nproc: int = 2, env: dict[str, str] | None = None) -> dict:
    """Run mcore_dist_worker.py on ``nproc`` ranks; rank 0's results."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           str(WORKER), model_dir, str(out), layout]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"{layout}: the two-process run timed out after 300 s:\n" + output[-3000:])
    assert proc.returncode == 0, output[-6000:]
    return torch.load(out / "result.pt", weights_only=False)


@pytest.fixture(scope="module")
def one_process():
    """The one-process step each layout is compared with, per model directory."""
    from rlinf_backends_megatron.megatron_backend import MegatronBackend

    cache: dict[str, tuple] = {}

    def get(model_dir: str):
        if model_dir not in cache:
            cfg = make_config(model_dir, micro_batch_size=2, megatron={"moe_token_dispatcher_type": "allgather"})
            backend = MegatronBackend(cfg, role="actor")
            step = backend.train_step(random_batch(8, vocab=17, seed=2), PGLoss(), temperature=0.9)
            cache[model_dir] = step, {k: v.clone() for k, v in backend.export_weights()}
        return cache[model_dir]

    return get


@pytest.mark.slow
@pytest.mark.parametrize(("layout", "model", "nproc"), [
    ("tp2", "qwen2", 2), ("pp2", "qwen2", 2), ("dp2", "qwen2", 2), ("ep2", "qwen2_moe", 2), ("pp2vpp2", "qwen2x4", 2),
    ("tp2pp2", "qwen2", 4), ("cp2", "qwen2", 2), ("cp2pp2", "qwen2", 4), ("tp2cp2", "qwen2", 4),
])
def test_several_processes_equal_one(layout, model, nproc, qwen2_dir, moe_dirs, qwen2_4layer_dir, tmp_path, one_process):
    model_dir = {"qwen2": qwen2_dir, "qwen2_moe": moe_dirs["qwen2_moe"], "qwen2x4": qwen2_4layer_dir}[model]
    res = run_worker(model_dir, tmp_path, layout, nproc=nproc)
    reference = load_file(f"{model_dir}/model.safetensors")
    # HF -> megatron (sharded) -> HF through the streaming export: bit-exact
    assert set(res["export0"]) == set(reference)
    for name, tensor in reference.items():
        assert torch.equal(res["export0"][name], tensor), name
    lp, ent = hf_log_probs(model_dir, random_batch(8, vocab=17, seed=1), temperature=0.9)
    torch.testing.assert_close(res["logp"], lp, atol=2e-5, rtol=0)
    torch.testing.assert_close(res["entropy"], ent, atol=2e-5, rtol=0)
    step, params = one_process(model_dir)
    assert res["step1"]["loss"] == pytest.approx(step["loss"], abs=1e-6)
    assert res["step1"]["grad_norm"] == pytest.approx(step["grad_norm"], rel=1e-5)
    for name, value in params.items():
        torch.testing.assert_close(res["params1"][name], value, atol=5e-5, rtol=0)
    # dist_checkpointing: reload is exact and training continues identically
    for name, value in res["params1"].items():
        assert torch.equal(res["reloaded"][name], value), name
    assert res["step2_again"] == res["step2"]
    for name, value in res["params2"].items():
        assert torch.equal(res["params2_again"][name], value), name
    if "critic_values" in res:  # the same two value steps in one process
        from omegaconf import OmegaConf
        from rlinf_backends_megatron.megatron_backend import MegatronBackend
        from rlinf_core.flows.objectives import ValueObjective

        cfg = OmegaConf.merge(make_config(model_dir, micro_batch_size=2), {"critic": {"optim": {"lr": 1e-2}}})
        critic = MegatronBackend(cfg, role="critic")
        for got in res["critic_steps"]:
            want = critic.train_step(critic_batch(), ValueObjective())
            assert got["loss"] == pytest.approx(want["loss"], abs=1e-6)
            assert got["grad_norm"] == pytest.approx(want["grad_norm"], rel=1e-5)
        values = critic.compute_values(critic_batch())
        assert float(values.abs().max()) > 1e-2  # the value head learned, so the comparison bites
        torch.testing.assert_close(res["critic_values"], values, atol=5e-5, rtol=0)
