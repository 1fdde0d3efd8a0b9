"""docs/plugins.md: its generated blocks (hooks, interfaces, conformance kit) match the code."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCS = REPO_ROOT / "docs"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_plugins_md", DOCS / "gen_plugins_md.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_blocks_are_up_to_date():
    gen = _generator()
    committed = (DOCS / "plugins.md").read_text(encoding="utf-8")
    assert gen.render(committed) == committed, "docs/plugins.md is out of date: run `python docs/gen_plugins_md.py`"


def test_every_hook_interface_and_kit_class_is_documented():
    from rlinf_core import hookspecs, interfaces, testing

    text = (DOCS / "plugins.md").read_text(encoding="utf-8")
    for name in hookspecs.hook_names():
        assert f"#### `{name}(" in text
    for proto in ("RolloutEngine", "TrainingBackend", "VectorEnv", "Policy", "Flow"):
        assert f"### `{proto}`" in text and hasattr(interfaces, proto)
    for name in testing.__all__:
        if name != "PluginTests":
            assert f"### `{name}`" in text
    assert set(re.findall(r"<!-- BEGIN GENERATED: (\w+) -->", text)) == set(_generator().SECTIONS)


def test_a_stale_block_is_detected():
    gen = _generator()
    committed = (DOCS / "plugins.md").read_text(encoding="utf-8")
    stale = committed.replace("#### `rlinf_register_envs()", "#### `rlinf_register_environments()", 1)
    assert stale != committed and gen.render(stale) == committed


def test_readme_links_the_guide():
    assert "docs/plugins.md" in (REPO_ROOT / "README.md").read_text(encoding="utf-8")
