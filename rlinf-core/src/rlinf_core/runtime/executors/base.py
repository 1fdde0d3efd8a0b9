"""What every executor provides: worker groups whose calls return futures, channels, shutdown."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

from rlinf_core.runtime.placement import GroupPlacement


class GroupFuture(abc.ABC):
    """The pending results of one call on some ranks of a group, in rank order."""

    group: str
    method: str

    @property
    @abc.abstractmethod
    def handles(self) -> list[Any]:
        """Per-rank handles that another group's call accepts as arguments without waiting
        (values inline, object references under Ray: data moves rank to rank, not via the driver)."""

    @abc.abstractmethod
    def result(self, timeout: float | None = None) -> list[Any]:
        """Wait and return every rank's result; a failed rank raises :class:`WorkerError`."""


class WorkerGroup(abc.ABC):
    """A group of ranks of one worker class."""

    #: Whether calls run apart from the caller (other processes), so that calls on different groups
    #: overlap; False where each call runs to its end before :meth:`call` returns (inline).
    concurrent: bool = True

    def __init__(self, name: str, placement: GroupPlacement, worker_cls: type | None = None):
        self.name = name
        self.placement = placement
        #: The class the ranks are instances of (what methods they have).
        self.worker_cls = worker_cls

    @property
    @abc.abstractmethod
    def world_size(self) -> int:
        """Number of ranks."""

    @abc.abstractmethod
    def call(self, method: str, *args: Any, ranks: Sequence[int] | None = None, **kwargs: Any) -> GroupFuture:
        """Run ``method(*args, **kwargs)`` on every rank (or ``ranks``); returns at once."""

    @abc.abstractmethod
    def scatter(self, method: str, per_rank: Sequence[Any], **kwargs: Any) -> GroupFuture:
        """Run ``method(per_rank[i], **kwargs)`` on rank ``i``."""

    def scale_to(self, devices: Sequence[int], share: int = 1) -> None:
        """Online scaling: one rank per device of ``devices`` (Ray executor only)."""
        raise RuntimeError(
            f"worker group {self.name!r}: online scaling needs cluster.executor=ray (inline runs one rank per group)"
        )

    def execute(self, method: str, *args: Any, **kwargs: Any) -> list[Any]:
        """:meth:`call` and wait."""
        return self.call(method, *args, **kwargs).result()


class Executor(abc.ABC):
    """Creates worker groups and channels; a context manager that shuts everything down on exit."""

    name: str

    @abc.abstractmethod
    def create_group(self, name: str, cls: type, placement: GroupPlacement, *args: Any,
                     share_counts: dict[int, int] | None = None, **kwargs: Any) -> WorkerGroup:
        """Start ``placement.world_size`` ranks of ``cls`` (constructed with ``args`` / ``kwargs``).

        ``share_counts[device]`` is how many ranks of all groups share that device, so that
        collocated ranks get a fraction of it.
        """

    @abc.abstractmethod
    def remove_group(self, group: WorkerGroup) -> None:
        """Stop every rank of ``group``."""

    @abc.abstractmethod
    def channel(self, name: str, maxsize: int = 0) -> Any:
        """A named, bounded :class:`~rlinf_core.runtime.channel.Channel` usable from any rank."""

    @abc.abstractmethod
    def shutdown(self) -> None:
        """Stop every worker; safe to call twice."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
