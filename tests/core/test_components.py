"""ComponentSpec: validation, lazy loading, and errors that say what to install."""

from __future__ import annotations

import sys

import pytest
from rlinf_core import ComponentLoadError, ComponentSpec


def test_spec_imports_nothing_until_loaded(tmp_path, monkeypatch):
    (tmp_path / "lazy_target_mod.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = ComponentSpec("env", "lazy", "lazy_target_mod:VALUE", "a lazy one")
    assert "lazy_target_mod" not in sys.modules
    assert spec.load() == 42
    assert "lazy_target_mod" in sys.modules



@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kind": "envs"}, "kind 'envs' is not a component kind"),
        ({"name": ""}, "name '' \\(env\\) is invalid"),
        ({"name": "has space"}, "is invalid"),
        ({"target": "no_colon"}, "must look like 'package.module:attribute'"),
        ({"aliases": ("ok", "bad alias")}, "'bad alias'"),
    ],
)
def test_invalid_specs_are_refused_with_the_field_named(kwargs, message):
    base = {"kind": "env", "name": "x", "target": "a.b:c"}
    with pytest.raises(ValueError, match=message):
        ComponentSpec(**{**base, **kwargs})


def test_missing_requirement_names_the_pip_install_line():
    spec = ComponentSpec("env", "maniskill", "x.y:Z", requires=("mani-skill-not-installed>=3",), extra="maniskill")
    spec = spec.with_origin("embodied", "rlinf-envs-embodied")
    with pytest.raises(ComponentLoadError) as err:
        spec.load()
    msg = str(err.value)
    assert "env 'maniskill' from plugin 'embodied' (distribution rlinf-envs-embodied)" in msg
    assert "needs mani-skill-not-installed>=3, which is not installed" in msg
    assert "pip install 'rlinf-envs-embodied[maniskill]'" in msg
    # Without an extra, the requirement itself is the hint.
    bare = ComponentSpec("env", "m", "x.y:Z", requires=("nope-pkg-xyz",))
    with pytest.raises(ComponentLoadError, match="pip install 'nope-pkg-xyz'"):
        bare.load()


def test_import_failure_keeps_the_original_error():
    spec = ComponentSpec("model", "ghost", "no_such_module_abc:Thing").with_origin("p", "dist-p")
    with pytest.raises(ComponentLoadError, match="model 'ghost' from plugin 'p' .* failed to load target 'no_such_module_abc:Thing': ModuleNotFoundError") as err:
        spec.load()
    assert isinstance(err.value.__cause__, ModuleNotFoundError)
    with pytest.raises(ComponentLoadError, match="AttributeError"):
        ComponentSpec("model", "ghost", "collections:NoSuchClass").load()


def test_to_dict_round_trips_the_fields():
    spec = ComponentSpec("kl", "k3", "m:f", "low variance", aliases=("low_var_kl",)).with_origin("algos", "rlinf-algos")
    d = spec.to_dict()
    assert d == {
        "kind": "kl", "name": "k3", "target": "m:f", "description": "low variance", "requires": [], "extra": None,
        "aliases": ["low_var_kl"], "options": None, "options_key": None, "plugin": "algos", "distribution": "rlinf-algos",
    }


def test_dotted_attribute_targets():
    import collections
    import os

    assert ComponentSpec("env", "j", "os.path:join").load() is os.path.join
    assert ComponentSpec("env", "fk", "collections:OrderedDict.fromkeys").load().__self__ is collections.OrderedDict
