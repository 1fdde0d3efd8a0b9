"""Atomic checkpoint directories: ``<run_dir>/checkpoints/global_step_<N>/`` with a ``COMPLETE`` marker.

A checkpoint is written into a hidden temporary directory, marked complete, then renamed into
place with ``os.replace``; a process killed mid-write leaves only the temporary directory, which
the next save removes and resume ignores.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("rlinf.flow")

MARKER = "COMPLETE"
STATE = "trainer_state.json"
_NAME = re.compile(r"^global_step_(\d+)$")


def checkpoint_root(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(run_dir: str | Path, step: int, write: Callable[[Path], None], state: dict[str, Any]) -> Path:
    """Write checkpoint ``step``: ``write(tmp_dir)`` saves the models, ``state`` goes to ``trainer_state.json``."""
    root = checkpoint_root(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp_global_step_*"):
        shutil.rmtree(stale, ignore_errors=True)
    final = root / f"global_step_{step}"
    tmp = root / f".tmp_global_step_{step}"
    tmp.mkdir()
    write(tmp)
    (tmp / STATE).write_text(json.dumps(state, indent=1))
    (tmp / MARKER).write_text(f"{step}\n")
    _fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    return final


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def complete_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every complete checkpoint, oldest first."""
    root = checkpoint_root(run_dir)
    found = []
    if root.is_dir():
        for child in root.iterdir():
            m = _NAME.match(child.name)
            if m and (child / MARKER).is_file() and (child / STATE).is_file():
                found.append((int(m.group(1)), child))
    return sorted(found)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = complete_checkpoints(run_dir)
    return found[-1][1] if found else None


def read_state(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not (path / MARKER).is_file():
        raise FileNotFoundError(f"{path} is not a complete rlinf checkpoint (no {MARKER} marker)")
    return json.loads((path / STATE).read_text())


# ---------------------------------------------------------------- what the flows share


def start_run_dir(run_dir: str | Path, config: Any) -> None:
    """Create the run directory and write the resolved config beside the checkpoints."""
    from omegaconf import OmegaConf

    Path(run_dir).mkdir(parents=True, exist_ok=True)
    (Path(run_dir) / "config.yaml").write_text(OmegaConf.to_yaml(config, resolve=True))


def resume_point(run_dir: str | Path, resume_dir: str | Path | None = None) -> Path | None:
    """The checkpoint ``--resume`` starts from: the latest complete one in ``resume_dir`` (default
    the run directory). None, with a warning, when there is none (the run starts from scratch)."""
    where = resume_dir or run_dir
    found = latest_checkpoint(where)
    if found is None:
        log.warning("--resume: no complete checkpoint in %s; starting from scratch", where)
    return found


def save_groups(rt: Any, run_dir: str | Path, step: int, groups: Sequence[str], state: dict[str, Any]) -> Path:
    """Checkpoint ``step`` atomically: each worker group in ``groups`` runs ``save_checkpoint`` into
    ``<checkpoint>/<group>`` (on every rank), and ``state`` (JSON) goes beside them."""

    def write(tmp: Path) -> None:
        for group in groups:
            rt[group].call("save_checkpoint", str(tmp / group)).result()

    return save_checkpoint(run_dir, step, write, state)


def load_groups(rt: Any, path: str | Path, groups: Sequence[str], optional: Collection[str] = ()) -> dict[str, Any]:
    """Load checkpoint ``path`` into each worker group of ``groups`` (``load_checkpoint`` on every
    rank) and return its trainer state. A group in ``optional`` that the checkpoint lacks (a critic
    added after it was written) keeps its fresh weights."""
    state = read_state(path)
    for group in groups:
        if group in optional and not (Path(path) / group).exists():
            continue
        rt[group].call("load_checkpoint", str(Path(path) / group)).result()
    return state
