"""Configuration: YAML + overrides onto the schema, RLinf renames, and validation errors."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf
from rlinf_core import ConfigError
from rlinf_core.config import RENAMED_KEYS, load_config, validate_config


def _yaml(tmp_path, text):
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def test_defaults_yaml_and_overrides_merge(tmp_path):
    path = _yaml(tmp_path, "algorithm:\n  gamma: 0.99\n  group_size: 8\nactor:\n  optim:\n    lr: 1.0e-5\n")
    cfg = load_config(path, ["algorithm.group_size=4", "cluster.executor=ray", "actor.model.config.hidden_size=64"])
    assert cfg.algorithm.gamma == 0.99 and cfg.algorithm.group_size == 4
    assert cfg.actor.optim.lr == 1e-5 and cfg.actor.optim.adam_beta1 == 0.9
    assert cfg.cluster.executor == "ray" and cfg.actor.model.config.hidden_size == 64
    assert cfg.runner.logger.logger_backends == ["console"]


def test_unknown_key_names_path_valid_keys_and_suggestion(tmp_path):
    path = _yaml(tmp_path, "algorithm:\n  adv_typ: gae\n  sampling_params:\n    temprature: 0.7\nfoo: 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    problems = err.value.problems
    assert len(problems) == 3
    assert problems[0].startswith("unknown config key 'algorithm.adv_typ'. Did you mean 'adv_type'")
    assert "Valid keys of algorithm: adv_type, loss_type," in problems[0]
    assert problems[1].startswith("unknown config key 'algorithm.sampling_params.temprature'. Did you mean 'temperature'?")
    assert "Valid keys of the top level: cluster, runner, algorithm" in problems[2]


def test_unknown_key_in_an_override_is_caught_too():
    with pytest.raises(ConfigError, match="unknown config key 'runner.max_step'. Did you mean 'max_steps'"):
        load_config(None, ["runner.max_step=3"])
    with pytest.raises(ConfigError, match="override 'runner.max_steps' must look like key=value"):
        load_config(None, ["runner.max_steps"])


def test_wrong_type_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match="config key 'algorithm.group_size': Value 'eight'"):
        load_config(_yaml(tmp_path, "algorithm:\n  group_size: eight\n"))


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(_yaml(tmp_path, "- a\n- b\n"))


def test_rlinf_keys_are_renamed_with_a_note(tmp_path):
    path = _yaml(tmp_path, "algorithm:\n  kl_penalty_type: low_var_kl\nenv:\n  train:\n    env_type: maniskill\n")
    notes: list[str] = []
    cfg = load_config(path, notes=notes)
    assert cfg.algorithm.kl_penalty == "low_var_kl" and cfg.env.train.simulator_type == "maniskill"
    assert "RLinf key algorithm.kl_penalty_type is read as algorithm.kl_penalty" in notes
    assert "RLinf key env.train.env_type is read as env.train.simulator_type" in notes
    assert set(RENAMED_KEYS) >= {"algorithm.kl_penalty_type", "rollout.generation_backend"}


def test_component_names_are_checked_against_registries(discover_only, monkeypatch):
    from rlinf_core import registry

    monkeypatch.setattr(registry, "_is_installed", lambda d: d != "rlinf-envs-embodied")
    ps = discover_only("rlinf-demo-plugin")
    cfg = load_config({"env": {"train": {"simulator_type": "demo-chian"}, "eval": {"simulator_type": "maniskill"}},
                       "algorithm": {"adv_type": "demo-rtg"}, "cluster": {"executor": "rya"}}, plugins=ps)
    with pytest.raises(ConfigError) as err:
        validate_config(cfg, ps)
    problems = err.value.problems
    by_key = {p.split(":", 1)[0]: p for p in problems}
    assert set(by_key) == {"env.train.simulator_type", "env.eval.simulator_type", "cluster.executor"}
    assert "unknown env 'demo-chian'. Did you mean 'demo-chain'? Registered: demo-chain." in by_key["env.train.simulator_type"]
    assert "Fix: pip install 'rlinf-envs-embodied[maniskill]'" in by_key["env.eval.simulator_type"]
    assert "Did you mean 'ray'?" in by_key["cluster.executor"]


def test_plugin_configure_and_validate_hooks_run(discover_only):
    ps = discover_only("rlinf-demo-plugin")
    cfg = load_config({"env": {"train": {"simulator_type": "demo-chain", "total_num_envs": 100}}}, plugins=ps)
    assert cfg.env.train.env_id == "chain-5"  # set by the demo plugin's rlinf_configure
    with pytest.raises(ConfigError) as err:
        validate_config(cfg, ps)
    assert err.value.problems == [
        "env.train.total_num_envs: demo-chain supports at most 64 envs, got 100 (reported by plugin 'demo')"
    ]
    cfg.env.train.total_num_envs = 8
    validate_config(cfg, ps)  # valid now


def test_bad_interpolation_is_reported(discover_only):
    ps = discover_only()
    cfg = load_config({"runner": {"logger": {"experiment_name": "${extra.nope}"}}})
    with pytest.raises(ConfigError, match="runner.logger.experiment_name.*interpolation"):
        validate_config(cfg, ps)
    ok = load_config({"extra": {"name": "x"}, "runner": {"logger": {"experiment_name": "${extra.name}"}}})
    validate_config(ok, ps)
    assert OmegaConf.to_container(ok, resolve=True)["runner"]["logger"]["experiment_name"] == "x"
