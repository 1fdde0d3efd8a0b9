"""``rlinf run`` / ``rlinf eval``: bad input fails in one line before any worker starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from rlinf_core.cli import main
from rlinf_core.plugins import get_plugins

QUICKSTART = str(Path(__file__).resolve().parents[2] / "examples/reasoning/quickstart_cpu.yaml")


def _run(*args: str):
    return CliRunner().invoke(main, list(args))


def test_unknown_reward_names_the_key_with_did_you_mean(tmp_path):
    res = _run("run", QUICKSTART, "reward.reward_type=mathh", f"runner.logger.log_path={tmp_path}")
    assert res.exit_code == 1
    assert "reward.reward_type: unknown reward 'mathh'. Did you mean 'math'?" in res.output
    assert not (tmp_path / "quickstart_cpu").exists()  # nothing started


def test_missing_engine_extra_gives_the_pip_line_before_any_worker(tmp_path):
    try:
        spec = get_plugins().registries.get_spec("rollout_engine", "vllm")
    except LookupError:
        pytest.skip("no vllm engine registered")
    if not spec.missing_requirements():
        pytest.skip("vllm is installed here")
    res = _run("run", QUICKSTART, "rollout.rollout_backend=vllm", f"runner.logger.log_path={tmp_path}")
    assert res.exit_code == 1 and "pip install 'rlinf-backends-fsdp[vllm]'" in res.output
    assert not (tmp_path / "quickstart_cpu").exists()


def test_task_type_unset_and_eval_without_val_data(tmp_path):
    res = _run("run", QUICKSTART, "runner.task_type=null", f"runner.logger.log_path={tmp_path}")
    assert res.exit_code == 1 and "runner.task_type is not set" in res.output and "reasoning" in res.output
    data = tmp_path / "d.jsonl"
    data.write_text('{"prompt": "1+1=", "answer": "2"}\n')
    res = _run("eval", QUICKSTART, "data.type=null", "data.arithmetic.format_warmup_steps=0", f"data.train_data_paths=[{data}]",
               f"runner.logger.log_path={tmp_path}")
    assert res.exit_code == 1 and "rlinf eval needs data.val_data_paths" in res.output
