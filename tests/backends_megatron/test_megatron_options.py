"""``actor.megatron`` parsing and the layout checks (torch-free parts of the plugin)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf
from rlinf_backends_megatron.options import MegatronConfigError, MegatronOptions


def _cfg(**megatron):
    return OmegaConf.create({"actor": {"training_backend": "megatron", "megatron": megatron}})


def test_rlinf_keys_parse_and_unknown_keys_suggest_the_right_name():
    opts = MegatronOptions.from_config(_cfg(tensor_model_parallel_size=2, pipeline_model_parallel_size=2,
                                            sequence_parallel=True, apply_rope_fusion=True,
                                            optim={"use_distributed_optimizer": True, "bf16": True}))
    assert (opts.tensor_model_parallel_size, opts.pipeline_model_parallel_size, opts.model_parallel_size) == (2, 2, 4)
    assert opts.sequence_parallel and opts.use_distributed_optimizer and opts.precision == "bf16"
    with pytest.raises(MegatronConfigError) as err:
        MegatronOptions.from_config(_cfg(tensor_parallel_size=2, recompute_granularity="ful"))
    text = str(err.value)
    assert "actor.megatron.tensor_parallel_size" in text and "did you mean tensor_model_parallel_size" in text
    assert "recompute_granularity: 'ful'" in text and "did you mean full" in text


def test_bad_values_are_named():
    with pytest.raises(MegatronConfigError, match="pipeline_model_parallel_size: must be an integer >= 1, got 0"):
        MegatronOptions.from_config(_cfg(pipeline_model_parallel_size=0))
    with pytest.raises(MegatronConfigError, match="context_parallel_size: must be an integer >= 1, got 0"):
        MegatronOptions.from_config(_cfg(context_parallel_size=0))
    with pytest.raises(MegatronConfigError, match="needs recompute_method"):
        MegatronOptions.from_config(_cfg(recompute_granularity="full"))


def test_layout_problems_name_keys_and_numbers():
    opts = MegatronOptions.from_config(_cfg(tensor_model_parallel_size=3, pipeline_model_parallel_size=2))
    problems = opts.layout_problems(4, num_layers=3, num_heads=4, num_kv_heads=2)
    assert any("tensor_model_parallel_size (3) x pipeline_model_parallel_size (2)" in p and "world size (4)" in p
               for p in problems)
    assert any("tensor_model_parallel_size=3 does not divide the model's num_attention_heads=4" in p for p in problems)
    assert any("num_key_value_heads=2" in p for p in problems)
    assert any("pipeline_model_parallel_size=2 does not divide the model's num_hidden_layers=3" in p for p in problems)
    ep = MegatronOptions.from_config(_cfg(expert_model_parallel_size=3))
    assert any("does not divide the model's number of experts (8)" in p
               for p in ep.layout_problems(3, num_layers=2, num_heads=2, num_kv_heads=2, num_experts=8))
    assert MegatronOptions.from_config(_cfg(tensor_model_parallel_size=2)).layout_problems(
        4, num_layers=2, num_heads=4, num_kv_heads=2) == []
    cp = MegatronOptions.from_config(_cfg(tensor_model_parallel_size=2, context_parallel_size=2))
    assert cp.layout_problems(4, num_layers=2, num_heads=4, num_kv_heads=2) == []
    assert any("x context_parallel_size (2) = 4 does not divide the actor's world size (6)" in p
               for p in cp.layout_problems(6, num_layers=2, num_heads=4, num_kv_heads=2))


def test_plugin_validates_only_for_the_megatron_backend():
    from rlinf_backends_megatron.plugin import rlinf_validate_config

    assert rlinf_validate_config(_cfg(tensor_model_paralel_size=2)) and \
        "did you mean tensor_model_parallel_size" in rlinf_validate_config(_cfg(tensor_model_paralel_size=2))[0]
    fsdp = OmegaConf.create({"actor": {"training_backend": "fsdp", "megatron": {"bogus": 1}}})
    assert rlinf_validate_config(fsdp) == []


def test_the_plugin_registers_a_conforming_megatron_backend():
    from rlinf_backends_megatron.megatron_backend import MegatronBackend
    from rlinf_core.interfaces import check_conformance
    from rlinf_core.plugins import get_plugins

    registries = get_plugins().registries
    assert registries.load("training_backend", "megatron") is MegatronBackend
    assert check_conformance("training_backend", MegatronBackend) == []


def test_validate_checks_the_layout_against_placement_and_model(tmp_path):
    import json

    from rlinf_core import get_plugins
    from rlinf_core.config import load_config, validate_config
    from rlinf_core.errors import ConfigError

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2", "num_hidden_layers": 6,
                                                      "num_attention_heads": 6, "num_key_value_heads": 2}))

    def problems(placement, devices, **megatron):
        plugins = get_plugins()
        cfg = load_config({"cluster": {"num_devices_per_node": devices, "component_placement": placement},
                           "actor": {"training_backend": "megatron", "model": {"model_path": str(tmp_path)},
                                     "megatron": megatron}}, plugins=plugins)
        try:
            validate_config(cfg, plugins)
        except ConfigError as exc:
            return [p.removesuffix(" (reported by plugin 'megatron')") for p in exc.problems]
        return []

    assert problems({"actor,rollout": "0-3"}, 4, tensor_model_parallel_size=2) == []
    (line,) = problems({"actor": "0-2", "rollout": 3}, 4, tensor_model_parallel_size=2)
    assert "= 2 does not divide the actor's world size (3)" in line and line.endswith("gives the actor 3 rank(s))")
    assert set(problems({}, 4, tensor_model_parallel_size=4, pipeline_model_parallel_size=1)) == {
        "actor.megatron.tensor_model_parallel_size=4 does not divide the model's num_attention_heads=6",
        "actor.megatron.tensor_model_parallel_size=4 does not divide the model's num_key_value_heads=2 "
        "(GQA groups are split across TP ranks)"}
    (line,) = problems({}, 4, pipeline_model_parallel_size=4)
    assert line == "actor.megatron.pipeline_model_parallel_size=4 does not divide the model's num_hidden_layers=6"
    # the device count known only at run time: the layout waits for the backend's own check
    assert problems({"actor": "0-2", "rollout": 3}, None, tensor_model_parallel_size=2) == []
