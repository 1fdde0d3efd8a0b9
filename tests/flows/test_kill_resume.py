"""SIGKILL while a checkpoint is being written: the previous checkpoint stays complete and
``train(resume=True)`` continues from it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

CHILD = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from rlinf_backends_fsdp.fsdp_backend import FSDPBackend
    from rlinf_core.config import load_config
    from rlinf_core.flows.reasoning import ReasoningFlow
    from rlinf_core.plugins import get_plugins

    cfg, marker = json.loads(sys.argv[1]), Path(sys.argv[2])
    original = FSDPBackend.save_checkpoint

    def save_then_hang(self, path):
        original(self, path)  # the model files are on disk, the checkpoint is not complete yet
        if "global_step_4" in path:
            marker.write_text(path)
            time.sleep(120)

    FSDPBackend.save_checkpoint = save_then_hang
    plugins = get_plugins()
    conf = load_config(cfg, plugins=plugins)
    run_dir = Path(conf.runner.logger.log_path) / conf.runner.logger.experiment_name
    ReasoningFlow(conf, plugins=plugins, run_dir=run_dir).train()
""")


def test_sigkill_during_checkpoint_write_resumes_from_the_previous_one(tmp_path, tiny_arith_model, flow_config, make_flow):
    cfg = flow_config(tmp_path, tiny_arith_model, **{"runner.max_steps": 5, "runner.save_interval": 2,
                                                     "runner.logger.logger_backends": []})
    marker = tmp_path / "writing"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # as the parent (conftest): no thread spinning on 2 cores
    child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(cfg), str(marker)], env=env)
    try:
        deadline = time.time() + 120
        while not marker.exists() and child.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert marker.exists(), f"the child never reached the checkpoint write (exit code {child.poll()})"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    root = tmp_path / "t" / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == [".tmp_global_step_4", "global_step_2"]
    flow, run_dir = make_flow(cfg)
    flow.train(resume=True)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]  # steps 3-4 of the killed run were dropped, then redone
    assert sorted(p.name for p in root.iterdir()) == ["global_step_2", "global_step_4", "global_step_5"]
    state = json.loads((root / "global_step_5" / "trainer_state.json").read_text())
    assert state["step"] == 5 and state["weight_version"] == 5
