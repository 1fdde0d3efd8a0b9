"""The base of every conformance class: finding the component, and the registration check."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from rlinf_core.components import ComponentSpec


def plain_to_config(config: Mapping[str, Any] | Any) -> Any:
    """An OmegaConf ``DictConfig`` from a mapping (what the flows pass to components); other values unchanged."""
    if isinstance(config, Mapping):
        from omegaconf import OmegaConf

        return OmegaConf.create(dict(config))
    return config


def one_line(exc: BaseException) -> str:
    """The message of ``exc``; fails the test when it spans several lines (rlinf errors are one line)."""
    message = str(exc)
    assert message.strip(), f"{type(exc).__name__} raised with an empty message; say what is wrong and how to fix it"
    assert "\n" not in message.strip(), f"the error message should be one line, got:\n{message}"
    return message


class PluginTests:
    """Base of the conformance classes.

    Attributes to set in a subclass:

    - ``component``: the name your plugin registers (``"mysim"``, or ``"myplugin:mysim"`` when the
      bare name clashes). The component is looked up through plugin discovery, so your package
      must be installed (``pip install -e .``).
    - ``target`` (instead of, or beside, ``component``): the class or function itself, to test it
      before it is registered; the registration check is then skipped.
    """

    #: The component kind (set by each conformance class; ``AlgorithmPluginTests`` lets you set it).
    kind: ClassVar[str] = ""
    #: The registered name (or ``plugin:name``) of the component under test.
    component: ClassVar[str | None] = None
    #: The implementing object itself, when it should not be looked up by name.
    target: ClassVar[Any] = None

    # ------------------------------------------------------------------ helpers for subclasses

    def component_spec(self) -> ComponentSpec:
        """The registered spec of ``component`` (fails the test with the registry's message when unknown)."""
        from rlinf_core.errors import RlinfError
        from rlinf_core.plugins import get_plugins

        if not self.component:
            pytest.fail(f"{type(self).__name__}: set `component = \"<name>\"` (the {self.kind} name your plugin "
                        "registers) or `target = <the class or function>`")
        try:
            return get_plugins(strict=False).registries.get_spec(self.kind, self.component)
        except RlinfError as exc:
            pytest.fail(f"{type(self).__name__}: {exc}")

    def load_target(self) -> Any:
        """The object under test: ``target`` when set, else the registered ``component``, imported."""
        for klass in type(self).__mro__:
            if "target" in vars(klass):
                value = vars(klass)["target"]
                if isinstance(value, staticmethod):  # a function set as `target = staticmethod(fn)`
                    value = value.__func__
                if value is not None:
                    return value
                break
        from rlinf_core.errors import RlinfError

        try:
            return self.component_spec().load()
        except RlinfError as exc:
            pytest.fail(f"{type(self).__name__}: {exc}")

    # ------------------------------------------------------------------ tests

    def test_registered_and_conforms(self) -> None:
        """Discovery finds the component, its plugin loaded, and ``rlinf plugins check`` passes on it
        (the target conforms; a declared ``options`` class loads and its defaults pass its checks)."""
        if not self.component:
            pytest.skip("no `component` name set: only `target` is tested, not its registration")
        spec = self.component_spec()
        assert spec.kind == self.kind, f"{self.component!r} is a {spec.kind}, this class tests a {self.kind}"
        problems = spec.check()
        assert not problems, "rlinf plugins check fails:\n" + "\n".join(problems)
        target = self.load_target()
        if inspect.isclass(target) or callable(target):
            return
        pytest.fail(f"the target of {self.component!r} is neither a class nor a callable: {target!r}")
