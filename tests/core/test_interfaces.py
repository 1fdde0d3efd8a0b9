"""rlinf_core.interfaces: the protocols and the structural check `rlinf plugins check` uses."""

from __future__ import annotations

import subprocess
import sys

import pytest
from rlinf_core.interfaces import INTERFACES, check_conformance


class GoodEngine:
    def __init__(self, config, *, rank=0, world_size=1, device="cpu"):
        self._v = 0

    def generate(self, prompt_ids, sampling): ...
    def update_weights(self, weights, version): self._v = version
    @property
    def weight_version(self): return self._v
    def offload(self): ...
    def onload(self): ...
    def close(self): ...


class HalfEngine:
    def generate(self, prompt_ids, sampling): ...
    update_weights = 3  # not a method


def test_a_conforming_class_has_no_problems():
    assert check_conformance("rollout_engine", GoodEngine) == []


def test_missing_and_non_callable_members_are_each_named():
    problems = check_conformance("rollout_engine", HalfEngine)
    text = "\n".join(problems)
    for name in ("weight_version", "offload", "onload", "close"):
        assert f"lacks {name}()" in text
    assert "HalfEngine.update_weights must be a method (RolloutEngine)" in text
    assert len(problems) == 5


def test_function_kinds_must_be_callable_and_commands_click_commands():
    assert check_conformance("advantage", len) == []
    assert check_conformance("advantage", 3) == ["a advantage component must be callable, got int"]
    click = pytest.importorskip("click")
    assert check_conformance("command", click.Command("x")) == []
    assert "click.Command" in check_conformance("command", len)[0]


def test_models_with_sample_are_checked_as_policies():
    class P:
        def sample(self, obs, *, deterministic=False): ...
    problems = check_conformance("model", P)
    assert any("lacks evaluate()" in p for p in problems)
    assert check_conformance("model", lambda cfg: None) == []  # a language-model factory


def test_every_protocol_kind_is_a_component_kind():
    from rlinf_core.components import KINDS
    assert set(INTERFACES) <= set(KINDS)


def test_interfaces_import_no_torch():
    code = "import rlinf_core.interfaces, sys; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
