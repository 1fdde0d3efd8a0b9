"""The hang watchdog: a side thread in each rank's process that logs a call running far longer than usual.

A call is late when it has run longer than ``max(cluster.watchdog_min_s, cluster.watchdog_factor x``
the median of that method's last durations)`` (just ``watchdog_min_s`` before the method has
finished once). The watchdog then logs the group, rank, method, how long it has run, and the Python
stack of the thread running it (``sys._current_frames``, so nothing is interrupted), and logs again
each time the running time doubles. Under Ray the log line reaches the driver's console through
Ray's log forwarding; :meth:`Watchdog.reports` keeps the last ones.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Iterator

log = logging.getLogger("rlinf.runtime")

HISTORY = 20  # durations kept per method


def thread_stack(ident: int) -> str:
    """The Python stack of thread ``ident`` in this process, innermost call last, from the worker's
    method down (the executor's and Ray's frames above it are left out)."""
    frame = sys._current_frames().get(ident)
    if frame is None:
        return "(thread has ended)"
    frames = traceback.extract_stack(frame)
    ours = [i for i, f in enumerate(frames) if f"{os.sep}rlinf_core{os.sep}runtime{os.sep}executors{os.sep}" in f.filename]
    if ours and ours[-1] + 1 < len(frames):
        frames = traceback.StackSummary.from_list(frames[ours[-1] + 1:])
    return "".join(frames.format()).rstrip()


class Watchdog:
    """Watches the calls made inside :meth:`track`; logs those that run late (see the module doc)."""

    def __init__(self, factor: float, min_s: float, interval_s: float | None = None):
        self.factor, self.min_s = float(factor), float(min_s)
        self.enabled = self.min_s > 0 and self.factor > 0
        self.interval_s = interval_s if interval_s is not None else min(1.0, max(0.05, self.min_s / 10))
        self._history: dict[str, collections.deque[float]] = {}
        self._running: dict[int, list] = {}  # thread ident -> [where, method, start, next report at]
        self._lock = threading.Lock()
        self._reports: collections.deque[str] = collections.deque(maxlen=10)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def limit(self, method: str) -> float:
        """Seconds after which a call of ``method`` is late."""
        past = self._history.get(method)
        typical = statistics.median(past) if past else 0.0
        return max(self.min_s, self.factor * typical)

    @contextlib.contextmanager
    def track(self, where: str, method: str) -> Iterator[None]:
        """Watch the call of ``method`` that the body makes; ``where`` names the rank ("group 'env' rank 1")."""
        if not self.enabled:
            yield
            return
        self._start_thread()
        ident, start = threading.get_ident(), time.monotonic()
        with self._lock:
            self._running[ident] = [where, method, start, start + self.limit(method)]
        try:
            yield
        finally:
            with self._lock:
                self._running.pop(ident, None)
                self._history.setdefault(method, collections.deque(maxlen=HISTORY)).append(time.monotonic() - start)

    def reports(self) -> list[str]:
        """The last late-call reports (newest last)."""
        return list(self._reports)

    def stop(self) -> None:
        self._stop.set()

    def _start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="rlinf-watchdog", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            now = time.monotonic()
            with self._lock:
                late = [(ident, list(entry)) for ident, entry in self._running.items() if now >= entry[3]]
                for ident, entry in late:  # report again when the running time doubles
                    self._running[ident][3] = entry[2] + 2 * (now - entry[2])
            for ident, (where, method, start, _) in late:
                report = (f"watchdog: worker {where}: {method}() has run {now - start:.1f} s, over its limit of "
                          f"{self.limit(method):.1f} s (cluster.watchdog_factor={self.factor:g} x its median "
                          f"duration, at least cluster.watchdog_min_s={self.min_s:g}); its stack:\n{thread_stack(ident)}")
                self._reports.append(report)
                log.warning("%s", report)
