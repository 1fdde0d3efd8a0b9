"""Entry-point discovery: statuses, errors, selection by environment variables, conflicts."""

from __future__ import annotations

import sys

import pytest
from rlinf_core import ComponentConflictError, PluginError, UnknownComponentError
from rlinf_core.plugins import CONFLICT, DISABLED, FAILED, LOADED, discover

GOOD = """
from rlinf_core import ComponentSpec, hookimpl

@hookimpl
def rlinf_register_envs():
    return [ComponentSpec("env", "{name}", "collections:OrderedDict", "an env")]
"""


def test_good_plugin_is_loaded_with_its_components(fake_plugin, discover_only):
    dist = fake_plugin(GOOD.format(name="grid"), dist="fake-good", plugin="good", version="2.0")
    ps = discover_only(dist)
    (rec,) = ps.records
    assert (rec.name, rec.distribution, rec.version, rec.status, rec.error) == ("good", "fake-good", "2.0", LOADED, None)
    assert rec.hooks == ["rlinf_register_envs"]
    assert [(c.kind, c.name, c.plugin, c.distribution) for c in rec.components] == [("env", "grid", "good", "fake-good")]
    import collections

    assert ps.registries.load("env", "grid") is collections.OrderedDict


def test_module_that_raises_is_failed_and_others_still_load(fake_plugin, discover_only):
    bad = fake_plugin("raise ValueError('boom at import')", dist="fake-bad", plugin="bad", version="0.3")
    good = fake_plugin(GOOD.format(name="grid2"), dist="fake-good2")
    ps = discover_only(bad, good)
    rec = ps.record("bad")
    assert rec.status == FAILED and rec.distribution == "fake-bad" and rec.version == "0.3"
    assert rec.error == "ValueError: boom at import"
    assert "Traceback" in rec.traceback
    assert ps.record("fake-good2").status == LOADED
    assert "grid2" in ps.registries["env"]
    # An unknown name mentions the failed plugin that may provide it.
    with pytest.raises(UnknownComponentError, match="plugin 'bad' \\(fake-bad\\) failed to load.*boom at import"):
        ps.registries.get_spec("env", "something")


def test_entry_point_naming_a_missing_module_or_attribute(fake_plugin, discover_only):
    no_mod = fake_plugin(dist="fake-nomod", plugin="nomod", entry_value="no_such_module_xyz")
    no_attr = fake_plugin("", dist="fake-noattr", plugin="noattr", entry_value="collections:no_such_attr")
    ps = discover_only(no_mod, no_attr)
    assert ps.record("nomod").status == FAILED
    assert "No module named 'no_such_module_xyz'" in ps.record("nomod").error
    assert ps.record("noattr").status == FAILED
    assert "no_such_attr" in ps.record("noattr").error


def test_hook_with_wrong_signature_is_failed_with_pluggy_message(fake_plugin, discover_only):
    src = """
from rlinf_core import hookimpl

@hookimpl
def rlinf_validate_config(config, bogus):
    return []
"""
    ps = discover_only(fake_plugin(src, plugin="sig"))
    rec = ps.record("sig")
    assert rec.status == FAILED
    assert "PluginValidationError" in rec.error and "bogus" in rec.error
    assert rec.traceback is None  # a clear message, not a traceback
    assert not ps.manager.get_plugins()  # nothing half-registered


def test_misspelt_hook_is_failed_with_did_you_mean(fake_plugin, discover_only):
    src = """
def rlinf_register_env():   # missing 's'; no @hookimpl needed for rlinf_* functions
    return []
"""
    rec = discover_only(fake_plugin(src, plugin="typo")).record("typo")
    assert rec.status == FAILED
    assert "unknown hook(s) rlinf_register_env" in rec.error and "rlinf_register_envs" in rec.error


@pytest.mark.parametrize(
    "body, message",
    [
        ("raise RuntimeError('no specs today')", "RuntimeError: no specs today"),
        ("return ['not a spec']", "must return ComponentSpec objects"),
        ("return [ComponentSpec('model', 'm', 'a:b')]", "returned a 'model' component"),
    ],
)
def test_bad_registration_hook_fails_the_plugin(fake_plugin, discover_only, body, message):
    src = f"""
from rlinf_core import ComponentSpec

def rlinf_register_envs():
    {body}
"""
    ps = discover_only(fake_plugin(src, plugin="badreg"))
    rec = ps.record("badreg")
    assert rec.status == FAILED and message in rec.error
    assert rec.components == []
    assert not ps.manager.get_plugins()


def test_clashing_component_fails_only_the_bare_name_and_both_plugins_stay_loaded(fake_plugin, discover_only):
    a = fake_plugin(GOOD.format(name="same"), dist="fake-a", plugin="pa")
    src_b = """
from rlinf_core import ComponentSpec

def rlinf_register_envs():
    return [ComponentSpec("env", "same", "collections:deque"), ComponentSpec("env", "only-b", "collections:deque")]
"""
    b = fake_plugin(src_b, dist="fake-b", plugin="pb")
    ps = discover_only(a, b)
    import collections

    expected = "env 'same' is registered by plugins 'pa' and 'pb': the bare name is ambiguous; use pa:same or pb:same"
    for name in ("pa", "pb"):
        rec = ps.record(name)
        assert (rec.status, rec.error, rec.clashes) == (LOADED, None, [expected])
    assert expected in ps.warnings
    with pytest.raises(ComponentConflictError) as err:
        ps.registries.get_spec("env", "same")
    msg = str(err.value)
    assert msg.startswith("env 'same' is registered by plugin 'pa' (distribution fake-a) and plugin 'pb' (distribution fake-b)")
    assert "Name one: 'pa:same' or 'pb:same' (set e.g. `env.train.simulator_type: pa:same`)" in msg
    # Qualified names always resolve; nothing else is lost.
    assert ps.registries.load("env", "pa:same") is collections.OrderedDict
    assert ps.registries.load("env", "pb:same") is collections.deque
    assert ps.registries.load("env", "only-b") is collections.deque
    assert ps.registries.load("env", "pb:only-b") is collections.deque
    assert list(ps.registries["env"]) == ["only-b", "pa:same", "pb:same"]
    assert not ps.failures()


def test_alias_colliding_with_a_name_clashes_on_that_name_only(fake_plugin, discover_only):
    a = fake_plugin(GOOD.format(name="alpha"), plugin="pa")
    src = """
from rlinf_core import ComponentSpec

def rlinf_register_envs():
    return [ComponentSpec("env", "beta", "collections:deque", aliases=("alpha", "b"))]
"""
    ps = discover_only(a, fake_plugin(src, plugin="pb"))
    with pytest.raises(ComponentConflictError, match="'pa:alpha' or 'pb:alpha'"):
        ps.registries.get_spec("env", "alpha")
    assert ps.registries.get_spec("env", "pb:alpha").name == "beta"
    assert ps.registries.get_spec("env", "pa:alpha").plugin == "pa"
    for key in ("beta", "b"):
        assert ps.registries.get_spec("env", key).plugin == "pb"


def test_a_plugin_registering_one_name_twice_fails(fake_plugin, discover_only):
    src = """
from rlinf_core import ComponentSpec

def rlinf_register_envs():
    return [ComponentSpec("env", "x", "collections:deque"), ComponentSpec("env", "y", "collections:deque", aliases=("x",))]
"""
    rec = discover_only(fake_plugin(src, plugin="twice")).record("twice")
    assert rec.status == FAILED
    assert "it registers env 'x' twice (for 'x' and 'y')" in rec.error


def test_disable_and_allowlist_never_import_the_module(fake_plugin, discover_only):
    src = "import sys; sys.modules['__rlinf_test_marker_' + __name__] = True\n" + GOOD.format(name="g")
    d1 = fake_plugin(src, dist="fake-one", plugin="one")
    d2 = fake_plugin(src, dist="fake-two", plugin="two")
    ps = discover_only(d1, d2, environ={"RLINF_DISABLE_PLUGINS": "one"})
    assert ps.record("one").status == DISABLED and "RLINF_DISABLE_PLUGINS" in ps.record("one").error
    assert ps.record("two").status == LOADED
    markers = [m for m in sys.modules if m.startswith("__rlinf_test_marker_")]
    assert len(markers) == 1  # only 'two' was imported

    ps = discover_only(d1, d2, environ={"RLINF_LOAD_PLUGINS": "fake-one"})  # by distribution name
    assert ps.record("one").status == LOADED
    assert ps.record("two").status == DISABLED and "RLINF_LOAD_PLUGINS" in ps.record("two").error


def test_unknown_names_in_selection_variables_are_warned(fake_plugin, discover_only):
    d = fake_plugin(GOOD.format(name="g"), plugin="realname")
    ps = discover_only(d, environ={"RLINF_DISABLE_PLUGINS": "realnme"})
    assert ps.record("realname").status == LOADED
    assert ps.warnings == ["RLINF_DISABLE_PLUGINS names 'realnme', which is no installed plugin. Did you mean 'realname'?"]


def test_strict_mode_raises_on_failure(fake_plugin, discover_only):
    ps = discover_only(fake_plugin("raise ImportError('needs libfoo')", plugin="strictbad"))
    ps.raise_if_strict({})  # not strict: nothing
    with pytest.raises(PluginError, match="(?s)RLINF_STRICT_PLUGINS=1 and 1 plugin.*strictbad.*needs libfoo"):
        ps.raise_if_strict({"RLINF_STRICT_PLUGINS": "1"})


def test_duplicate_plugin_names_load_neither_and_each_stays_disableable(fake_plugin, discover_only):
    a = fake_plugin(GOOD.format(name="x1"), dist="fake-a1", plugin="same-name")
    b = fake_plugin(GOOD.format(name="x2"), dist="fake-b1", plugin="same-name")
    c = fake_plugin(GOOD.format(name="x3"), dist="fake-c1", plugin="other")
    ps = discover_only(a, b, c)
    recs = {r.distribution: r for r in ps.records}
    assert {d: r.status for d, r in recs.items()} == {"fake-a1": CONFLICT, "fake-b1": CONFLICT, "fake-c1": LOADED}
    for dist, other in (("fake-a1", "fake-b1"), ("fake-b1", "fake-a1")):
        err = recs[dist].error
        assert "plugin name 'same-name' is declared by distributions fake-a1, fake-b1; none is loaded" in err
        assert err.endswith(f"RLINF_DISABLE_PLUGINS={other}")
    assert "x1" not in ps.registries["env"] and "x2" not in ps.registries["env"] and "x3" in ps.registries["env"]
    # Disabling one by its distribution name loads the other.
    ps = discover_only(a, b, environ={"RLINF_DISABLE_PLUGINS": "fake-b1"})
    recs = {r.distribution: r for r in ps.records}
    assert (recs["fake-a1"].status, recs["fake-b1"].status) == (LOADED, DISABLED)
    assert ps.registries.get_spec("env", "same-name:x1").distribution == "fake-a1"


def test_first_party_plugin_keeps_its_name_against_a_third_party(fake_plugin, discover_only):
    third = fake_plugin(GOOD.format(name="intruder"), dist="acme-algos", plugin="algos")
    ps = discover_only("rlinf-algos", third)
    recs = {r.distribution: r for r in ps.records}
    assert recs["rlinf-algos"].status == LOADED
    assert recs["rlinf-algos"].clashes == ["plugin name 'algos' is also declared by acme-algos, which is not loaded"]
    assert recs["acme-algos"].status == CONFLICT
    assert recs["acme-algos"].error.startswith("plugin name 'algos' belongs to first-party rlinf-algos; acme-algos is not loaded")
    assert ps.registries.get_spec("advantage", "algos:gae").distribution == "rlinf-algos"


def test_fingerprint_is_stable_and_changes_with_the_plugin_set(fake_plugin, discover_only):
    a = fake_plugin(GOOD.format(name="fa"), plugin="fpa")
    b = fake_plugin(GOOD.format(name="fb"), plugin="fpb")
    assert discover_only(a).fingerprint() == discover_only(a).fingerprint()
    assert discover_only(a).fingerprint() != discover_only(a, b).fingerprint()


def test_call_each_names_the_plugin_that_raised(fake_plugin, discover_only):
    src = """
def rlinf_configure(config):
    raise KeyError('cfg')
"""
    ps = discover_only(fake_plugin(src, plugin="raiser"))
    with pytest.raises(PluginError, match="plugin 'raiser' raised in rlinf_configure: KeyError"):
        ps.call_each("rlinf_configure", config={})


def test_first_party_plugins_all_load():
    ps = discover()
    first_party = {"core", "algos", "fsdp", "megatron", "embodied", "cli"}
    status = {r.name: r.status for r in ps.records}
    assert {name: status.get(name) for name in first_party} == dict.fromkeys(first_party, LOADED)
