"""Shared test helpers: fake plugin distributions on sys.path, and a clean plugin state."""

from __future__ import annotations

import importlib.metadata
import os
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from rlinf_core.plugins import ENTRY_POINT_GROUP, PluginSet, discover, reset_plugins

_PLUGIN_ENV = ("RLINF_LOAD_PLUGINS", "RLINF_DISABLE_PLUGINS", "RLINF_STRICT_PLUGINS")


@pytest.fixture(autouse=True)
def clean_plugin_state(monkeypatch):
    """Each test starts with no cached plugin discovery and none of the RLINF_* plugin variables."""
    for var in _PLUGIN_ENV:
        monkeypatch.delenv(var, raising=False)
    reset_plugins()
    yield
    reset_plugins()


FakePlugin = Callable[..., str]


@pytest.fixture
def fake_plugin(tmp_path: Path, monkeypatch) -> FakePlugin:
    """Create a fake installed distribution (a ``*.dist-info`` with ``entry_points.txt``) on sys.path.

    ``fake_plugin(source, dist="fake-x", plugin="x")`` writes ``source`` as the plugin module and
    returns the distribution name. ``entry_value`` overrides the entry point's target.
    """
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(source: str = "", dist: str | None = None, plugin: str | None = None, version: str = "0.0.1",
             entry_value: str | None = None) -> str:
        tag = uuid.uuid4().hex[:8]
        dist = dist or f"fake-dist-{tag}"
        plugin = plugin or f"fake_{tag}"
        module = f"fake_plugin_mod_{tag}"
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        info = tmp_path / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{plugin} = {entry_value or module}\n")
        return dist

    return make


@pytest.fixture
def discover_only() -> Callable[..., PluginSet]:
    """``discover_only(*distributions, environ={})``: discovery over those distributions' entry points only."""

    def run(*distributions: str, environ: dict[str, str] | None = None) -> PluginSet:
        eps = [ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
               if ep.dist and ep.dist.name in distributions]
        return discover(eps, environ=environ if environ is not None else {})

    return run


REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples"
os.environ.setdefault("COLUMNS", "200")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` are skipped, with the reason, where no CUDA device is visible."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none visible)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
