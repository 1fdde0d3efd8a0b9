"""Every config of examples/reasoning validates here (keys, ranges, placement, the engines' own sections);
the GPU ones are validated only, never run (the CPU quickstart runs in test_quickstart_e2e.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from omegaconf import OmegaConf
from rlinf_core.cli import main

FOLDER = Path(__file__).resolve().parents[2] / "examples" / "reasoning"
#: Another package's examples (megatron) are checked by that package's tests.
EXAMPLES = sorted(p for p in FOLDER.glob("*.yaml") if "megatron" not in p.name)
GPU_EXAMPLES = [p for p in EXAMPLES if not p.name.endswith("_cpu.yaml")]


def test_there_are_cpu_and_gpu_examples():
    assert any(p.name == "quickstart_cpu.yaml" for p in EXAMPLES)
    assert {"vllm", "sglang"} <= {OmegaConf.load(p).rollout.rollout_backend for p in GPU_EXAMPLES}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates(path):
    result = CliRunner().invoke(main, ["config", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert f"{path}: valid" in result.output


@pytest.mark.parametrize("path", GPU_EXAMPLES, ids=lambda p: p.name)
def test_gpu_example_is_complete_and_consistent(path):
    """What `config validate` cannot see without the model: FSDP keys, batch arithmetic, placeholders."""
    pytest.importorskip("torch")
    import dataclasses

    from rlinf_backends_fsdp.options import FSDPOptions

    cfg = OmegaConf.load(path)
    assert set(cfg.actor.fsdp_config) <= {f.name for f in dataclasses.fields(FSDPOptions)}
    assert cfg.cluster.executor == "ray" and int(cfg.cluster.num_devices_per_node) == 8
    assert str(cfg.actor.model.model_path).startswith("/path/to/")
    assert all(str(p).startswith("/path/to/") for p in [*cfg.data.train_data_paths, *cfg.data.val_data_paths])
    # rows per step split into mini-batches of micro-batches on every actor rank (the flow's own check)
    placement = {g.strip(): v for k, v in cfg.cluster.component_placement.items() for g in str(k).split(",")}
    first, _, last = str(placement["actor"]).partition("-")
    ranks = 8 if placement["actor"] == "all" else int(last or first) - int(first) + 1
    rows = int(cfg.data.rollout_batch_size) * int(cfg.algorithm.group_size)
    minibatch = rows // int(cfg.algorithm.n_minibatches)
    assert rows % int(cfg.algorithm.n_minibatches) == 0
    assert minibatch % (ranks * int(cfg.actor.micro_batch_size)) == 0
    # prompt + response fit the engine's context
    engine = cfg.rollout.rollout_backend
    assert int(cfg.data.max_prompt_length) + int(cfg.algorithm.sampling_params.max_new_tokens) <= int(
        cfg.rollout[engine].max_model_len)
