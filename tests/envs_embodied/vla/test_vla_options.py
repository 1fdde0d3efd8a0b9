"""The VLAs' ``actor.model.config`` schemas (``rlinf_envs_embodied.vla.options``): ``rlinf config validate`` names
a misspelt key with a "did you mean", every VLA example validates, and building a policy gives the same error."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from rlinf_core.cli import main
from rlinf_core.errors import ConfigError
from rlinf_core.plugins import get_plugins
from rlinf_envs_embodied.vla import options

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "embodied"
VLA_EXAMPLES = sorted(p for p in EXAMPLES.glob("*.yaml") if p.name.startswith(("openvla", "pi0")))
CLASSES = {"openvla": options.OpenVLAOptions, "openvla_oft": options.OpenVLAOFTOptions, "pi0": options.Pi0Options}


def validate(path: Path, *overrides: str):
    return CliRunner().invoke(main, ["config", "validate", str(path), *overrides])


def test_each_vla_declares_its_options_class():
    registries = get_plugins().registries
    for name, cls in CLASSES.items():
        assert registries.get_spec("model", name).options == f"rlinf_envs_embodied.vla.options:{cls.__name__}"
    assert registries.get_spec("model", "openpi").options.endswith(":Pi0Options")  # the alias too


@pytest.mark.parametrize("path", VLA_EXAMPLES, ids=lambda p: p.name)
def test_every_vla_example_validates(path):
    result = validate(path)
    assert result.exit_code == 0, result.output
    assert f"{path}: valid" in result.output


@pytest.mark.parametrize(("example", "override", "expected"), [
    ("pi0_instruction_cpu", "actor.model.config.num_step=3",
     "unknown config key 'actor.model.config.num_step'. Did you mean 'num_steps'?"),
    ("pi0_libero_spatial_ppo", "actor.model.config.noise_levle=0.3",
     "unknown config key 'actor.model.config.noise_levle'. Did you mean 'noise_level'"),
    ("openvla_oft_libero_spatial_grpo", "actor.model.config.temprature=1.6",
     "unknown config key 'actor.model.config.temprature'. Did you mean 'temperature'?"),
    ("openvla_oft_instruction_cpu", "actor.model.config.use_propio=true",
     "unknown config key 'actor.model.config.use_propio'. Did you mean 'use_proprio'?"),
    ("openvla_instruction_cpu", "actor.model.config.vision_hiden=16",
     "unknown config key 'actor.model.config.vision_hiden'. Did you mean 'vision_hidden'"),
    ("openvla_instruction_cpu", "actor.model.config.use_proprio=true",  # openvla (not OFT) has no proprio input
     "unknown config key 'actor.model.config.use_proprio'."),
    ("openvla_oft_instruction_cpu", "actor.model.config.architecture=openvla7b",
     "actor.model.config.architecture: 'openvla7b' is not one of ['tiny', 'openvla_7b']. Did you mean 'openvla_7b'?"),
    ("openvla_instruction_cpu", "actor.model.config.vision=dinosiglp",
     "actor.model.config.vision: 'dinosiglp' is not one of ['siglip', 'dinosiglip']. Did you mean 'dinosiglip'"),
    ("pi0_instruction_cpu", "actor.model.config.noise_method=flow_sdee",
     "actor.model.config.noise_method: 'flow_sdee' is not one of ['flow_sde', 'flow_noise']. Did you mean 'flow_sde'"),
    ("pi0_instruction_cpu", "actor.model.config.num_steps=0", "actor.model.config.num_steps: must be >= 1, got 0"),
    ("openvla_oft_maniskill_pickcube_ppo", "actor.model.config.temperature=0",
     "actor.model.config.temperature: must be > 0, got 0.0"),
])
def test_validate_names_a_bad_model_option(example, override, expected):
    """The best "did you mean" comes first (others may follow)."""
    result = validate(EXAMPLES / f"{example}.yaml", override)
    assert result.exit_code != 0
    assert expected in result.output, result.output


@pytest.mark.parametrize(("name", "config", "expected"), [
    ("openvla_oft", {"use_propio": True}, "unknown config key 'actor.model.config.use_propio'. Did you mean 'use_proprio'?"),
    ("pi0", {"num_step": 3}, "unknown config key 'actor.model.config.num_step'. Did you mean 'num_steps'?"),
])
def test_building_a_policy_gives_the_same_error(name, config, expected, build_vla):
    with pytest.raises(ConfigError) as err:
        build_vla(name, config=config)
    assert str(err.value).startswith(expected)


@pytest.mark.parametrize("name", CLASSES)
def test_the_defaults_pass_their_own_checks(name):
    assert get_plugins().registries.get_spec("model", name).check() == []
    assert CLASSES[name]().problems("actor.model.config") == []


def test_each_policy_reads_its_defaults_from_its_options_class(build_vla):
    """One source of truth: a tiny model built with no sizes has the options class's default sizes."""
    oft = build_vla("openvla_oft", config={})
    defaults = options.OpenVLAOFTOptions()
    text = oft.vla.language_model.config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.intermediate_size) == (
        defaults.hidden_size, defaults.num_layers, defaults.num_heads, defaults.intermediate_size)
    assert oft.vla.vision_backbone.featurizer.image_size == defaults.image_size
    assert oft.temperature == defaults.temperature and isinstance(oft.options, options.OpenVLAOFTOptions)
    pi0 = build_vla("pi0", config={})
    assert (pi0.noise_method, pi0.noise_level) == (options.Pi0Options().noise_method, options.Pi0Options().noise_level)
    assert {f.name for f in dataclasses.fields(options.OpenVLAOptions)} < {f.name for f in dataclasses.fields(defaults)}


def test_the_options_module_imports_no_torch():
    code = ("import sys, rlinf_envs_embodied.vla.options; "
            "print(sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
