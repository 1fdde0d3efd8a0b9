"""The six distributions: lockstep versions, rlinf-core pins, entry points, and the torch pin."""

from __future__ import annotations

import importlib
import importlib.metadata
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {
    "rlinf-core": "rlinf_core",
    "rlinf-algos": "rlinf_algos",
    "rlinf-backends-fsdp": "rlinf_backends_fsdp",
    "rlinf-backends-megatron": "rlinf_backends_megatron",
    "rlinf-envs-embodied": "rlinf_envs_embodied",
    "rlinf-cli": "rlinf_cli",
}


def _project(dist: str) -> dict:
    return tomllib.loads((ROOT / dist / "pyproject.toml").read_text())["project"]


def test_versions_are_in_lockstep_and_pin_core():
    core_version = _project("rlinf-core")["version"]
    for dist, module in PACKAGES.items():
        project = _project(dist)
        assert project["name"] == dist
        assert project["version"] == core_version, dist
        assert importlib.import_module(module).__version__ == core_version, module
        assert (ROOT / dist / "src" / module / "__init__.py").is_file()
        if dist != "rlinf-core":
            assert f"rlinf-core=={core_version}" in project["dependencies"], dist
            assert project["entry-points"]["rlinf.plugins"], dist


@pytest.mark.parametrize("dist, extras", [
    ("rlinf-backends-fsdp", {"vllm", "sglang"}),
    ("rlinf-envs-embodied", {"metaworld", "maniskill", "libero"}),
    ("rlinf-backends-megatron", {"megatron"}),
])
def test_heavy_dependencies_are_extras(dist, extras):
    project = _project(dist)
    assert extras <= set(project.get("optional-dependencies", {}))
    heavy = ("vllm", "sglang", "megatron-core", "mani-skill", "libero", "metaworld")
    assert not [d for d in project["dependencies"] if d.startswith(heavy)]


def test_core_depends_on_nothing_heavy():
    deps = {d.split(">")[0].split("=")[0].split("<")[0] for d in _project("rlinf-core")["dependencies"]}
    assert deps == {"pluggy", "omegaconf", "click", "rich", "packaging"}


def test_torch_is_pinned_in_the_shared_constraints():
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text().split()
    noxfile = (ROOT / "noxfile.py").read_text()
    assert "constraints.txt" in noxfile


def test_installed_distributions_match_the_source_tree():
    for dist in PACKAGES:
        assert importlib.metadata.version(dist) == _project(dist)["version"]
