"""The fsdp backend at world size 2 (FSDP2 over gloo, two processes) against world size 1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fsdp_helpers import PGLoss, make_config, random_batch
from rlinf_backends_fsdp.fsdp_backend import FSDPBackend

WORKER = Path(__file__).with_name("fsdp_dist_worker.py")


@pytest.fixture(scope="module")
def ws2(tiny_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ws2")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(WORKER), tiny_dir, str(out)]
    # its own session, so a hang kills the launcher and both ranks, not only the launcher
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail("world-size-2 run timed out after 240 s:\n" + output[-3000:])
    assert proc.returncode == 0, output[-6000:]
    return out, torch.load(out / "ws2.pt", weights_only=False)


def _ws1(tiny_dir):
    cfg = make_config(tiny_dir, micro_batch_size=2, optim={"lr": 1e-3}, lr_sched={"lr_decay_style": "cosine"})
    return FSDPBackend(cfg, role="actor", total_steps=4)


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled")
def test_world_size_2_equals_world_size_1_and_checkpoints_reshard(tiny_dir, ws2):
    out, res = ws2
    one = _ws1(tiny_dir)
    step1 = one.train_step(random_batch(8, seed=2), PGLoss(), temperature=0.9)
    params1 = {k: v.clone() for k, v in one.export_weights()}
    assert set(res["params1"]) == set(params1)
    for name, value in params1.items():
        torch.testing.assert_close(res["params1"][name], value, atol=1e-6, rtol=0)
    assert res["step1"]["loss"] == pytest.approx(step1["loss"], abs=1e-6)
    assert res["step1"]["grad_norm"] == pytest.approx(step1["grad_norm"], rel=1e-5)
    assert res["step1"]["entropy"] == pytest.approx(step1["entropy"], rel=1e-5)
    logp = one.compute_log_probs(random_batch(8, seed=3), temperature=0.9)["log_probs"]
    torch.testing.assert_close(res["logp"], logp, atol=1e-5, rtol=0)

    # world size 2: reload is exact and training continues identically
    for name, value in res["params1"].items():
        assert torch.equal(res["reloaded"][name], value), name
    for name, value in res["params2"].items():
        assert torch.equal(res["params2b"][name], value), name
    assert res["step2b"]["lr"] == res["step2"]["lr"]

    # the world-size-2 checkpoint loads at world size 1 and continues the same way
    back = _ws1(tiny_dir)
    back.load_checkpoint(str(out / "ckpt"))
    for name, value in back.export_weights():
        torch.testing.assert_close(value, res["params1"][name], atol=1e-7, rtol=0)
    step2 = back.train_step(random_batch(8, seed=4), PGLoss(), temperature=0.9)
    assert step2["lr"] == pytest.approx(res["step2"]["lr"])
    for name, value in back.export_weights():
        torch.testing.assert_close(value, res["params2"][name], atol=1e-5, rtol=0)
    assert res["values_shape"] == (4, random_batch(8, seed=3)["response_mask"].shape[1])
