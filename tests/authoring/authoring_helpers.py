"""Helpers for the authoring tests: "install" a plugin package for discovery without pip, run its tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path


def fake_install(pkg: Path, site: Path) -> None:
    """What ``pip install pkg`` writes for discovery: a dist-info with the entry points and Requires-Dist."""
    meta = tomllib.loads((pkg / "pyproject.toml").read_text())["project"]
    info = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    info.mkdir(parents=True)
    requires = "".join(f"Requires-Dist: {d}\n" for d in meta["dependencies"])
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n{requires}")
    eps = meta["entry-points"]["rlinf.plugins"]
    (info / "entry_points.txt").write_text("[rlinf.plugins]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))


def package_env(site: Path, packages: Sequence[Path]) -> dict[str, str]:
    """Environment variables that put ``site`` and each package's ``src`` on the path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *(str(p / "src") for p in packages)]),
           "OMP_NUM_THREADS": "1"}
    for var in ("RLINF_LOAD_PLUGINS", "RLINF_DISABLE_PLUGINS"):
        env.pop(var, None)
    return env


def run_package_tests(workdir: Path, packages: Sequence[Path]) -> subprocess.CompletedProcess:
    """Fake-install ``packages`` into ``workdir/site`` and run all their ``tests/`` in one pytest process."""
    site = workdir / "site"
    for pkg in packages:
        fake_install(pkg, site)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(workdir),
                           *(str(p / "tests") for p in packages)], cwd=workdir, env=package_env(site, packages),
                          capture_output=True, text=True, timeout=900)


def summary(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout[-4000:] + proc.stderr[-2000:]
