"""``rollout.vllm`` / ``rollout.sglang``: declared by the engines (``ComponentSpec.options``) and checked by
``rlinf config validate``, one line each.

Needs neither vllm nor sglang (the options classes import no engine and no torch).
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from rlinf_backends_fsdp.sglang_engine import SGLangOptions
from rlinf_backends_fsdp.vllm_engine import VllmOptions
from rlinf_core import get_plugins
from rlinf_core.config import load_config, validate_config
from rlinf_core.errors import ConfigError


def _validate(*overrides: str) -> None:
    plugins = get_plugins()
    validate_config(load_config(None, list(overrides), plugins=plugins), plugins)


def test_defaults_and_values_are_read():
    cfg = load_config(None, ["rollout.vllm.max_model_len=128", "rollout.vllm.weight_sync=disk",
                             "rollout.vllm.engine_kwargs.max_logprobs=3", "rollout.vllm.seed=null"])
    opts = VllmOptions.from_config(cfg)
    assert (opts.max_model_len, opts.weight_sync, opts.engine_kwargs, opts.seed) == (128, "disk", {"max_logprobs": 3}, None)
    assert VllmOptions.from_config(load_config(None)) == VllmOptions()
    assert SGLangOptions.from_config(load_config(None, ["rollout.sglang.sleep_level=2"])).sleep_level == 2


@pytest.mark.parametrize(("override", "expected"), [
    ("rollout.vllm.max_model_lem=64", "unknown config key 'rollout.vllm.max_model_lem'. Did you mean 'max_model_len'?"),
    ("rollout.vllm.weight_sync=inprocess", "rollout.vllm.weight_sync: 'inprocess' is not a weight sync mode. "
                                           "Did you mean 'in_process'?"),
    ("rollout.vllm.sleep_level=3", "rollout.vllm.sleep_level: must be 1"),
    ("rollout.vllm.kv_cache_space_gib=0", "rollout.vllm.kv_cache_space_gib: must be > 0, got 0.0"),
    ("rollout.vllm.max_num_seqs=many", "config key 'rollout.vllm.max_num_seqs': Value 'many' of type 'str' could not "
                                       "be converted to Integer"),
    ("rollout.vllm.engine_kwargs=7", "config key 'rollout.vllm.engine_kwargs': Cannot assign int to Dict"),
])
def test_bad_vllm_options_fail_validation_naming_the_key(override, expected):
    with pytest.raises(ConfigError) as err:
        _validate("rollout.rollout_backend=vllm", override)
    assert len(err.value.problems) == 1
    problem = err.value.problems[0]
    assert expected in problem and "\n" not in problem


def test_bad_sglang_options_fail_validation_and_other_engines_ignore_the_section():
    with pytest.raises(ConfigError, match=r"unknown config key 'rollout.sglang.bucket_byte'. Did you mean 'bucket_bytes'\?"):
        _validate("rollout.rollout_backend=sglang", "rollout.sglang.bucket_byte=1")
    _validate("rollout.rollout_backend=huggingface", "rollout.vllm.not_a_key=1")  # not the engine in use


def test_the_options_modules_import_no_torch_and_no_engine():
    code = ("import sys, rlinf_backends_fsdp.options, rlinf_backends_fsdp.vllm_engine, rlinf_backends_fsdp.sglang_engine; "
            "print(sorted(m for m in ('torch', 'vllm', 'sglang', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_sglang_refuses_a_cpu_device_before_importing_anything():
    from rlinf_backends_fsdp.sglang_engine import SGLangRolloutEngine

    with pytest.raises(ConfigError, match=r"^rollout.rollout_backend: sglang runs on CUDA GPUs only .*use vllm or huggingface on CPU$"):
        SGLangRolloutEngine(load_config(None), device="cpu")


def test_disk_sync_writes_bounded_shards_and_copies_tied_weights(tmp_path, monkeypatch):
    """``weight_sync: disk`` without vLLM: the shards it writes hold every tensor once, tied ones copied."""
    torch = pytest.importorskip("torch")
    from rlinf_backends_fsdp import vllm_engine
    from safetensors.torch import load_file

    monkeypatch.setattr(vllm_engine, "SHARD_BYTES", 128 * 4)  # 128 float32 per shard
    engine = object.__new__(vllm_engine.VLLMRolloutEngine)
    engine._sync_dir = str(tmp_path)
    (tmp_path / "model-00009.safetensors").write_bytes(b"stale")  # an earlier update's shard is removed
    embed = torch.arange(48.0).reshape(12, 4)
    weights = [("model.embed_tokens.weight", embed), ("lm_head.weight", embed),  # tied: one storage
               ("model.norm.weight", torch.ones(4)), ("big", torch.zeros(100))]
    engine._write_shards(iter(weights))
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["model-00000.safetensors", "model-00001.safetensors"]  # 100 floats do not fit beside 100
    loaded = {k: v for f in files for k, v in load_file(tmp_path / f).items()}
    assert sorted(loaded) == sorted(name for name, _ in weights)
    for name, tensor in weights:
        torch.testing.assert_close(loaded[name], tensor, rtol=0, atol=0)
    with pytest.raises(ValueError, match="got no weights"):
        engine._write_shards(iter([]))


def test_hf_engine_section_is_checked_and_read():
    from rlinf_backends_fsdp.options import HFEngineOptions

    with pytest.raises(ConfigError, match=r"unknown config key 'rollout.hf.max_batch'. Did you mean 'max_batch_size'\?"):
        _validate("rollout.rollout_backend=huggingface", "rollout.hf.max_batch=4")
    with pytest.raises(ConfigError, match=r"rollout.hf.max_batch_size: must be >= 0, got -1"):
        HFEngineOptions.from_config(load_config(None, ["rollout.hf.max_batch_size=-1"]))
    assert HFEngineOptions.from_config(load_config(None, ["rollout.hf.max_batch_size=4"])).max_batch_size == 4
