"""Run by `nox -s minimal`: only rlinf-core is installed."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_only_core_is_installed():
    dists = {d.metadata["Name"] for d in importlib.metadata.distributions()}
    assert "rlinf-core" in dists and "rlinf-algos" not in dists and "torch" not in dists


def test_import_and_plugins_list_import_no_torch():
    out = _run(
        "import sys, json\n"
        "import rlinf_core, rlinf_core.config\n"
        "from rlinf_core.cli import main\n"
        "main(['plugins', 'list'], standalone_mode=False)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy'))))"
    )
    lines = out.strip().splitlines()
    assert "core" in out and "loaded" in out
    assert json.loads(lines[-1]) == []


def test_plugins_list_shows_only_the_core_plugin():
    out = subprocess.run(["rlinf", "plugins", "list", "--json"], capture_output=True, text=True, check=True).stdout
    plugins = json.loads(out)["plugins"]
    assert [(p["name"], p["distribution"], p["status"]) for p in plugins] == [("core", "rlinf-core", "loaded")]
    assert {(c["kind"], c["name"]) for c in plugins[0]["components"]} == {
        ("placement", "collocated"), ("placement", "disaggregated"), ("placement", "hybrid"), ("placement", "auto"),
        ("reward", "math"), ("reward", "exact_match"), ("flow", "reasoning"), ("flow", "embodied"),
    }
