"""Workers: the classes whose instances run as the ranks of a worker group.

Subclass :class:`Worker`; the runtime sets ``group_name``, ``rank``, ``world_size``, ``devices``
and ``device_type`` *before* ``__init__`` runs, so a worker can shard its work by rank from the
start. Every public method can be called on the whole group (see ``executors``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, TypeVar

from rlinf_core.errors import PluginError, RlinfError


class WorkerError(RlinfError):
    """A rank raised or died. Names the group, rank and method, and quotes the remote traceback."""

    def __init__(self, group: str, rank: int, method: str, detail: str, died: bool = False):
        self.group, self.rank, self.method, self.detail, self.died = group, rank, method, detail, died
        what = "died (killed or crashed)" if died else "raised"
        super().__init__(f"worker group {group!r} rank {rank} {what} in {method}():\n{detail}")


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
