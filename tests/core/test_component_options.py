"""Components declare their own config section (``ComponentSpec(options=...)``) and ``validate``
checks it like rlinf's own: unknown keys with did-you-mean, types, ranges, the class's own checks."""

from __future__ import annotations

import pytest
from rlinf_core import ComponentSpec
from rlinf_core.config import load_config, validate_config
from rlinf_core.config.options import options_path, read_options
from rlinf_core.errors import ConfigError

PLUGIN = """
from dataclasses import dataclass, field
from rlinf_core import ComponentSpec, hookimpl
from rlinf_core.config.ranges import bounded

@dataclass(frozen=True)  # frozen sections (nested ones too) are read like any other
class Cache:
    size_mb: int = bounded(64, gt=0)

@dataclass
class FastgenOptions:
    #: prompts per engine call
    max_batch: int = bounded(16, gt=0)
    mode: str = "greedy"
    seed: int | None = None
    cache: Cache = field(default_factory=Cache)

    def problems(self, path):
        return [] if self.mode in ("greedy", "beam") else [f"{path}.mode: {self.mode!r} is not greedy or beam"]

@dataclass
class GridOptions:
    width: int = bounded(5, gt=1)

@dataclass
class Broken:
    mode: str = "nope"

    def problems(self, path):
        return [f"{path}.mode: nope"]

@hookimpl
def rlinf_register_rollout_engines():
    return [ComponentSpec("rollout_engine", "fastgen", "collections:OrderedDict", "fast", options=f"{__name__}:FastgenOptions"),
            ComponentSpec("rollout_engine", "ghostgen", "collections:OrderedDict", "x", options=f"{__name__}:Missing"),
            ComponentSpec("rollout_engine", "badgen", "collections:OrderedDict", "x", options=f"{__name__}:Broken",
                          options_key="bad_section")]

@hookimpl
def rlinf_register_envs():
    return [ComponentSpec("env", "grid", "collections:OrderedDict", "a grid", options=f"{__name__}:GridOptions")]
"""


@pytest.fixture
def plugins(fake_plugin, discover_only):
    return discover_only("rlinf-core", fake_plugin(PLUGIN, dist="fake-fastgen", plugin="fastgen"))


def _problems(plugins, data) -> list[str]:
    with pytest.raises(ConfigError) as err:
        validate_config(load_config(data, plugins=plugins), plugins)
    return err.value.problems


def test_a_third_party_section_is_accepted_read_and_checked(plugins):
    data = {"rollout": {"rollout_backend": "fastgen", "fastgen": {"max_batch": 8, "cache": {"size_mb": 32}}}}
    cfg = load_config(data, plugins=plugins)
    validate_config(cfg, plugins)
    assert cfg.rollout.fastgen.max_batch == 8
    spec = plugins.registries.get_spec("rollout_engine", "fastgen")
    assert options_path("rollout.rollout_backend", spec) == "rollout.fastgen"
    options = read_options(type(spec_options(spec)), cfg, "rollout.fastgen")
    assert (options.max_batch, options.mode, options.seed, options.cache.size_mb) == (8, "greedy", None, 32)


def spec_options(spec: ComponentSpec):
    from rlinf_core.config.options import load_options_class

    return load_options_class(spec)()


def test_errors_name_the_full_key_with_did_you_mean(plugins):
    def check(section):
        return _problems(plugins, {"rollout": {"rollout_backend": "fastgen", "fastgen": section}})

    assert check({"max_bach": None})[0].startswith("unknown config key 'rollout.fastgen.max_bach'")  # null too
    (line,) = check({"max_bach": 8})
    assert line.startswith("unknown config key 'rollout.fastgen.max_bach'. Did you mean 'max_batch'?")
    assert "Valid keys of rollout.fastgen: max_batch, mode, seed, cache" in line
    assert check({"cache": {"size": 1}})[0].startswith("unknown config key 'rollout.fastgen.cache.size'. Did you mean 'size_mb'?")
    assert check({"max_batch": "many"}) == [
        "config key 'rollout.fastgen.max_batch': Value 'many' of type 'str' could not be converted to Integer"]
    assert check({"max_batch": 0, "cache": {"size_mb": -1}}) == [
        "rollout.fastgen.max_batch: must be > 0, got 0", "rollout.fastgen.cache.size_mb: must be > 0, got -1"]
    assert check({"mode": "topk"}) == ["rollout.fastgen.mode: 'topk' is not greedy or beam"]
    assert check(7) == ["config key 'rollout.fastgen' is a section and must hold keys, not 7"]


def test_the_section_belongs_to_the_chosen_component_only(plugins):
    # not chosen: an unknown key of rlinf's schema, as before
    with pytest.raises(ConfigError, match=r"unknown config key 'rollout.fastgen'"):
        load_config({"rollout": {"rollout_backend": "huggingface", "fastgen": {"max_batch": 8}}}, plugins=plugins)
    # without the installed plugins there is nothing to accept it
    with pytest.raises(ConfigError, match=r"unknown config key 'rollout.fastgen'"):
        load_config({"rollout": {"rollout_backend": "fastgen", "fastgen": {"max_batch": 8}}})


def test_env_options_are_checked_per_split(plugins):
    data = {"env": {"train": {"simulator_type": "grid", "init_params": {"width": 9}},
                    "eval": {"simulator_type": "grid", "init_params": {"widht": 1}}}}
    (line,) = _problems(plugins, data)
    assert line.startswith("unknown config key 'env.eval.init_params.widht'. Did you mean 'width'?")
    data["env"]["eval"]["init_params"] = {"width": 1}
    assert _problems(plugins, data) == ["env.eval.init_params.width: must be > 1, got 1"]


def test_a_broken_options_class_is_the_plugins_fault(plugins):
    (line,) = _problems(plugins, {"rollout": {"rollout_backend": "ghostgen"}})
    assert "rollout_engine 'ghostgen' from plugin 'fastgen' (distribution fake-fastgen): its options class" in line
    assert "does not load (AttributeError" in line
    spec = plugins.registries.get_spec("rollout_engine", "badgen")
    assert options_path("rollout.rollout_backend", spec) == "rollout.bad_section"
    # `rlinf plugins check` (spec.check) reports it beside the target's conformance (OrderedDict is no engine)
    assert ("rollout_engine 'badgen' from plugin 'fastgen' (distribution fake-fastgen): the defaults of "
            f"{spec.options!r} fail its checks: bad_section.mode: nope") in spec.check()
    assert not [p for p in plugins.registries.get_spec("rollout_engine", "fastgen").check() if "options" in p]


def test_spec_options_must_look_like_a_target():
    with pytest.raises(ValueError, match="must look like 'package.module:Dataclass'"):
        ComponentSpec("env", "x", "a:b", options="not a target")
    with pytest.raises(ValueError, match="options_key 'a.b'"):
        ComponentSpec("env", "x", "a:b", options="a:B", options_key="a.b")


def test_read_options_from_a_section_names_the_full_key(plugins):
    spec = plugins.registries.get_spec("env", "grid")
    cls = type(spec_options(spec))
    cfg = load_config({"env": {"eval": {"simulator_type": "grid", "init_params": {"width": 3}}}}, plugins=plugins)
    assert read_options(cls, cfg.env.eval, "init_params").width == 3  # the node knows it is env.eval
    bad = load_config({"env": {"eval": {"simulator_type": "grid", "init_params": {"width": 0}}}}, plugins=plugins)
    with pytest.raises(ConfigError, match=r"^env.eval.init_params.width: must be > 1, got 0$"):
        read_options(cls, bad.env.eval, "init_params", where="env.train")
    with pytest.raises(ConfigError, match=r"^env.train.init_params.width: must be > 1, got 0$"):  # a plain mapping
        read_options(cls, {"init_params": {"width": 0}}, "init_params", where="env.train")
    assert read_options(cls, {}, "init_params").width == 5  # absent: the defaults
