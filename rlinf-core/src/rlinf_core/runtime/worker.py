"""Workers: the classes whose instances run as the ranks of a worker group.

Subclass :class:`Worker`; the runtime sets ``group_name``, ``rank``, ``world_size``, ``devices``
and ``device_type`` *before* ``__init__`` runs, so a worker can shard its work by rank from the
start. Every public method can be called on the whole group (see ``executors``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, TypeVar

from rlinf_core.errors import PluginError, RlinfError

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(text: str) -> str:
    """``text`` without ANSI colour codes (Ray colours the tracebacks it forwards)."""
    return _ANSI.sub("", text)


class WorkerError(RlinfError):
    """A rank raised or died. Names the group, rank and method, and quotes the remote traceback.

    When several ranks failed, this names the *cause* (a rank that died beats one that raised, and
    a failure traced back through a call's inputs beats the call that received it); ``outcomes``
    holds every rank's outcome of the awaited call (``rank -> "ok" / "raised ..." / "still running"``)
    and ``seen_by`` the call that found the failure when it is not the cause's own.
    """

    verb: str | None = None

    def __init__(self, group: str, rank: int, method: str, detail: str, died: bool = False, *,
                 seen_by: str | None = None, outcomes: dict[int, str] | None = None):
        self.group, self.rank, self.method, self.detail, self.died = group, rank, method, plain(detail).rstrip(), died
        self.seen_by, self.outcomes = seen_by, dict(outcomes or {})
        what = self.verb or ("died (killed or crashed)" if died else "raised")
        lines = [f"worker group {group!r} rank {rank} {what} in {method}():"]
        if seen_by:
            lines.append(f"(found by {seen_by})")
        if self.outcomes:
            note = " (the other ranks' errors are consequences)" if died else ""
            lines.append(f"every rank of the awaited call{note}: " + "; ".join(
                f"rank {r}: {o}" for r, o in sorted(self.outcomes.items())))
        lines.append(self.detail)
        super().__init__(plain("\n".join(lines)))

    def __reduce__(self):
        return (_rebuild_worker_error, (type(self), self.group, self.rank, self.method, self.detail, self.died,
                                        self.seen_by, self.outcomes))


def _rebuild_worker_error(cls, group, rank, method, detail, died, seen_by, outcomes):
    return cls(group, rank, method, detail, died, seen_by=seen_by, outcomes=outcomes)


class WorkerTimeout(WorkerError, TimeoutError):
    """A call did not finish within its time limit; the group was stopped so that the run can end."""

    verb = "timed out"


class WorkerCallError(RlinfError, ValueError):
    """A call that cannot be sent: private method, unknown method, rank out of range, unpicklable argument."""


class RemoteFailure(Exception):
    """Raised inside a rank process: which rank failed in which method, with its traceback text.

    Carried back by the executor (and through every call that received the failed call's output
    as an input), so the driver can name the rank where a failure started.
    """

    def __init__(self, group: str, rank: int, method: str, pid: int, text: str):
        super().__init__(group, rank, method, pid, text)
        self.group, self.rank, self.method, self.pid, self.text = group, rank, method, pid, text

    def __reduce__(self):
        return (RemoteFailure, (self.group, self.rank, self.method, self.pid, self.text))

    def __str__(self) -> str:
        return f"{self.group} rank {self.rank} in {self.method}(): {self.text.rstrip().splitlines()[-1] if self.text else ''}"


def check_call(group: str, cls: type, method: str, ranks: list[int], world_size: int) -> None:
    """Refuse, before anything is sent, a call no rank could run: one line naming group, rank and method."""
    if not isinstance(method, str) or not method:
        raise WorkerCallError(f"worker group {group!r}: method name must be a non-empty string, got {method!r}")
    if method.startswith("_"):
        raise WorkerCallError(
            f"worker group {group!r}: cannot call {method}(): names starting with '_' are private to the worker "
            "(constructors and dunder methods are never called remotely); call a public method"
        )
    if not callable(getattr(cls, method, None)):
        from rlinf_core.errors import suggestion_text

        public = [n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n, None))]
        raise WorkerCallError(f"worker group {group!r} ({cls.__name__}) has no method {method}()."
                              f"{suggestion_text(method, public)}")
    bad = [r for r in ranks if not isinstance(r, int) or not 0 <= r < world_size]
    if bad:
        has = "one rank, 0" if world_size == 1 else f"ranks 0-{world_size - 1}"
        raise WorkerCallError(f"worker group {group!r}: {method}() on ranks={ranks}: rank {bad[0]} does not exist "
                              f"(the group has {has})")


@dataclass(frozen=True)
class RankInfo:
    """What a rank knows about itself."""

    group_name: str
    rank: int
    world_size: int
    devices: tuple[int, ...]
    device_type: str = "cpu"
    executor: str = "inline"
    #: The driver's plugin fingerprint; a worker whose plugins differ refuses to start.
    plugin_fingerprint: str | None = None


def leave_process_group() -> None:
    """Barrier, then destroy this process's ``torch.distributed`` default group, if it joined one.

    The barrier lets every rank's collectives finish first; without it a rank that exits early can
    abort its peers (gloo's worker threads still hold their work at interpreter exit).
    """
    import sys

    dist = sys.modules.get("torch.distributed")  # never imports torch: no torch, no process group
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return
    try:
        dist.barrier()
    finally:
        dist.destroy_process_group()


class Worker:
    """Base class of every worker (actor, critic, reference, rollout, env, reward)."""

    group_name: str
    rank: int
    world_size: int
    devices: tuple[int, ...]
    device_type: str
    executor: str

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {getattr(self, 'group_name', '?')}/{getattr(self, 'rank', '?')}>"

    def init_process_group(self, master_addr: str, master_port: int, backend: str | None = None) -> None:
        """Join this group's ``torch.distributed`` process group (gloo on CPU, NCCL on GPU).

        Called by the Ray executor on every rank of a group with ``world_size > 1``.
        """
        import torch.distributed as dist

        if dist.is_initialized():
            return
        backend = backend or ("nccl" if self.device_type == "cuda" else "gloo")
        dist.init_process_group(backend, init_method=f"tcp://{master_addr}:{master_port}", rank=self.rank,
                                world_size=self.world_size)

    def offload(self) -> None:
        """Move this rank's device state (weights, optimizer state, caches) to host memory.

        Called by :meth:`Runtime.phase` before another group that shares the device runs. The
        default does nothing; GPU workers use :mod:`rlinf_core.runtime.offload`.
        """

    def onload(self) -> None:
        """Bring back what :meth:`offload` moved to host memory (before this group's phase)."""

    def echo(self, value: Any = None) -> Any:
        """Return ``value``: a no-op call, used to measure the executor's per-call cost."""
        return value

    def ping(self) -> tuple[str, int, int]:
        """``(group_name, rank, pid)``: a cheap call to check a rank is alive."""
        return self.group_name, self.rank, os.getpid()


W = TypeVar("W", bound=Worker)


def construct_worker(cls: type[W], info: RankInfo, args: tuple, kwargs: dict[str, Any]) -> W:
    """Create ``cls(*args, **kwargs)`` with its rank attributes set before ``__init__``.

    Then runs the plugins' ``rlinf_worker_init`` hooks, after checking that this process sees
    the same plugins as the driver.
    """
    from rlinf_core.plugins import get_plugins

    if not (isinstance(cls, type) and issubclass(cls, Worker)):
        raise TypeError(f"worker class {cls!r} must subclass rlinf_core.runtime.Worker")
    worker = cls.__new__(cls)
    for attr in ("group_name", "rank", "world_size", "devices", "device_type", "executor"):
        setattr(worker, attr, getattr(info, attr))
    plugins = get_plugins(strict=False)
    if info.plugin_fingerprint is not None and plugins.fingerprint() != info.plugin_fingerprint:
        listed = ", ".join(f"{r.name}={r.version}:{r.status}" for r in plugins.records)
        raise PluginError(
            f"worker {info.group_name}/{info.rank} (pid {os.getpid()}) sees different rlinf plugins than the driver "
            f"(fingerprint {plugins.fingerprint()} vs {info.plugin_fingerprint}; here: {listed}). "
            "Install the same packages on every node."
        )
    worker.__init__(*args, **kwargs)
    plugins.hook.rlinf_worker_init(worker=worker)
    return worker
