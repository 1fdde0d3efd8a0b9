"""Every hook is documented where declared, covered by a registration table, and exercised by a test."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
from rlinf_core import KINDS, hookspecs

TESTS = Path(__file__).resolve().parent.parent
HOOKS = hookspecs.hook_names()


def test_the_design_hooks_are_all_declared():
    expected = {
        "rlinf_register_models", "rlinf_register_rollout_engines", "rlinf_register_training_backends",
        "rlinf_register_envs", "rlinf_register_algorithms", "rlinf_register_rewards",
        "rlinf_register_placement_strategies", "rlinf_register_flows", "rlinf_register_commands",
        "rlinf_configure", "rlinf_validate_config", "rlinf_worker_init",
    }
    assert set(HOOKS) == expected


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_documented(name):
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    assert len(doc) > 40, f"hook {name} needs a docstring saying when it is called and what it returns"


@pytest.mark.parametrize("name", [h for h in HOOKS if h not in hookspecs.REGISTRATION_HOOKS])
def test_hook_is_called_by_some_test(name):
    """A lifecycle hook without a test that implements-and-triggers or calls it fails here.

    Registration hooks are all exercised by ``test_each_registration_hook_registers_its_kinds``,
    and ``test_registration_table_covers_every_registration_hook_and_kind`` forces a new one into
    that table.
    """
    pattern = re.compile(rf"(def {name}\(|\.{name}\(|call_each\(\"{name}\")")
    sources = [p for p in TESTS.rglob("*.py") if p.resolve() != Path(__file__).resolve()]
    hits = [p for p in sources if pattern.search(p.read_text())]
    assert hits, f"no test implements or calls hook {name}; add one"


def test_registration_table_covers_every_registration_hook_and_kind():
    registration = {h for h in HOOKS if h.startswith("rlinf_register_")}
    assert set(hookspecs.REGISTRATION_HOOKS) == registration
    covered = {k for kinds in hookspecs.REGISTRATION_HOOKS.values() for k in kinds}
    assert covered == set(KINDS)


@pytest.mark.parametrize("name", sorted(hookspecs.REGISTRATION_HOOKS))
def test_each_registration_hook_registers_its_kinds(name, fake_plugin, discover_only):
    kinds = hookspecs.REGISTRATION_HOOKS[name]
    specs = ", ".join(f'ComponentSpec("{k}", "n-{k}", "collections:OrderedDict")' for k in kinds)
    src = f"from rlinf_core import ComponentSpec\n\ndef {name}():\n    return [{specs}]\n"
    ps = discover_only(fake_plugin(src, plugin="reg"))
    assert ps.record("reg").status == "loaded", ps.record("reg").error
    for kind in kinds:
        assert ps.registries.get_spec(kind, f"n-{kind}").plugin == "reg"


def test_worker_init_hook_reaches_a_third_party_plugin(discover_only):
    from rlinf_demo_plugin import plugin as demo

    ps = discover_only("rlinf-demo-plugin")

    class Worker:
        group_name, rank = "actor", 3

    demo.INITIALISED_WORKERS.clear()
    ps.hook.rlinf_worker_init(worker=Worker())
    assert demo.INITIALISED_WORKERS == ["actor/3"]
