"""The inline executor: every worker in the driver process, one rank per group, no extra service.

Calls run at once, in the caller's thread, so breakpoints and stack traces work as in any Python
program. A group placed on several devices runs as one rank here (a note is logged). A call cannot be
interrupted here, so ``cluster.call_timeout_s`` does not apply; the watchdog still logs a late call's
stack. A worker's ``SystemExit`` becomes a :class:`WorkerError` (it never ends the driver). Removing a
group or shutting down calls each worker's ``close()`` where it defines one.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from typing import Any

from rlinf_core.runtime.channel import InlineChannel
from rlinf_core.runtime.executors.base import Executor, GroupFuture, WorkerGroup
from rlinf_core.runtime.limits import Limits
from rlinf_core.runtime.placement import GroupPlacement
from rlinf_core.runtime.watchdog import Watchdog
from rlinf_core.runtime.worker import RankInfo, WorkerError, check_call, construct_worker

log = logging.getLogger("rlinf.runtime")


class InlineFuture(GroupFuture):
    def __init__(self, group: str, method: str, outcomes: list[tuple[int, bool, Any]]):
        self.group, self.method, self._outcomes = group, method, outcomes

    @property
    def handles(self) -> list[Any]:
        self._raise_first_error()
        return [value for _, _, value in self._outcomes]

    def _raise_first_error(self) -> None:
        for rank, ok, value in self._outcomes:
            if not ok:
                raise WorkerError(self.group, rank, self.method, value)

    def result(self, timeout: float | None = None) -> list[Any]:
        return self.handles


class InlineGroup(WorkerGroup):
    concurrent = False

    def __init__(self, name: str, placement: GroupPlacement, worker: Any, watchdog: Watchdog):
        super().__init__(name, placement, type(worker))
        self.worker, self._watchdog = worker, watchdog

    @property
    def world_size(self) -> int:
        return 1

    def _run(self, method: str, args: tuple, kwargs: dict[str, Any]) -> InlineFuture:
        check_call(self.name, type(self.worker), method, [0], 1)
        try:
            with self._watchdog.track(f"group {self.name!r} rank 0", method):
                value = getattr(self.worker, method)(*args, **kwargs)
            return InlineFuture(self.name, method, [(0, True, value)])
        except KeyboardInterrupt:
            raise
        except BaseException:  # SystemExit included; reported, with the traceback, when the result is asked for
            return InlineFuture(self.name, method, [(0, False, traceback.format_exc())])

    def call(self, method: str, *args: Any, ranks: Sequence[int] | None = None, **kwargs: Any) -> GroupFuture:
        if ranks is not None:
            check_call(self.name, type(self.worker), method, list(ranks), 1)
        return self._run(method, args, kwargs)

    def scatter(self, method: str, per_rank: Sequence[Any], **kwargs: Any) -> GroupFuture:
        if len(per_rank) != 1:
            raise ValueError(f"scatter to group {self.name!r}: {len(per_rank)} items for 1 rank")
        return self._run(method, (per_rank[0],), kwargs)


class InlineExecutor(Executor):
    name = "inline"

    def __init__(self, plugin_fingerprint: str | None = None, limits: Limits | None = None):
        self._groups: list[InlineGroup] = []
        self._fingerprint = plugin_fingerprint
        self.limits = limits or Limits()
        self._watchdog = Watchdog(self.limits.watchdog_factor, self.limits.watchdog_min_s)

    def create_group(self, name: str, cls: type, placement: GroupPlacement, *args: Any,
                     share_counts: dict[int, int] | None = None, **kwargs: Any) -> WorkerGroup:
        if placement.world_size > 1:
            log.info("inline executor: running worker group %r as 1 rank (its placement has %d); "
                     "use cluster.executor=ray for several", name, placement.world_size)
        info = RankInfo(name, 0, 1, placement.devices, "cpu", self.name, self._fingerprint)
        try:
            worker = construct_worker(cls, info, args, kwargs)
        except KeyboardInterrupt:
            raise
        except BaseException:
            raise WorkerError(name, 0, "__init__", traceback.format_exc()) from None
        group = InlineGroup(name, placement, worker, self._watchdog)
        self._groups.append(group)
        return group

    def remove_group(self, group: WorkerGroup) -> None:
        if group in self._groups:
            self._groups.remove(group)
            _close(group)

    def channel(self, name: str, maxsize: int = 0) -> InlineChannel:
        return InlineChannel(name, maxsize)

    def shutdown(self) -> None:
        """Close every worker (last created first), then forget them; safe to call twice."""
        groups, self._groups = self._groups[::-1], []
        for group in groups:
            _close(group)
        self._watchdog.stop()


def _close(group: InlineGroup) -> None:
    """Call the worker's ``close()`` if it has one (engines free their memory and subprocesses there);
    an error is logged, never raised, so that one worker cannot keep the others open."""
    close = getattr(group.worker, "close", None)
    if not callable(close):
        return
    try:
        close()
    except KeyboardInterrupt:
        raise
    except Exception:
        log.warning("worker group %r: close() failed\n%s", group.name, traceback.format_exc())
