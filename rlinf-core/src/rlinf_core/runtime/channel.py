"""Channels: named, bounded FIFO queues of ``(key, value)`` items between worker groups.

``key`` is usually the micro-batch id. A full channel blocks the producer (back-pressure); it
never drops an item or grows past ``maxsize``. With a ``timeout``, a put or get that waits longer
raises :class:`ChannelTimeout`. Inline, items are passed by reference; under Ray the value goes to
the object store and only its reference travels through the queue actor. Stats (depth, waits) are
counted in the process that calls.
"""

from __future__ import annotations

import asyncio
import queue
import time
from dataclasses import dataclass
from typing import Any

from rlinf_core.errors import RlinfError


class ChannelTimeout(RlinfError, TimeoutError):
    """A put on a full channel, or a get on an empty one, waited longer than its timeout."""


@dataclass
class ChannelStats:
    puts: int = 0
    gets: int = 0
    put_wait_s: float = 0.0
    get_wait_s: float = 0.0
    max_depth: int = 0


class Channel:
    """Base: ``put`` / ``get`` (blocking, with optional timeout), their ``async`` forms, ``qsize``."""

    def __init__(self, name: str, maxsize: int = 0):
        if maxsize < 0:
            raise ValueError(f"channel {name!r}: maxsize must be >= 0 (0 = unbounded), got {maxsize}")
        self.name, self.maxsize = name, maxsize
        self.stats = ChannelStats()

    # implemented by backends
    def _put(self, item: Any, timeout: float | None) -> None:
        raise NotImplementedError

    def _get(self, timeout: float | None) -> Any:
        raise NotImplementedError

    def qsize(self) -> int:
        """Items waiting now."""
        raise NotImplementedError

    def _wrap(self, value: Any) -> Any:
        return value

    def _unwrap(self, value: Any) -> Any:
        return value

    def put(self, key: Any, value: Any, timeout: float | None = None) -> None:
        """Append ``(key, value)``; blocks while the channel is full."""
        start = time.perf_counter()
        try:
            self._put((key, self._wrap(value)), timeout)
        except (queue.Full, TimeoutError) as exc:
            raise ChannelTimeout(
                f"channel {self.name!r} stayed full (maxsize {self.maxsize}) for {timeout} s; is its consumer running?"
            ) from exc
        self.stats.puts += 1
        self.stats.put_wait_s += time.perf_counter() - start
        self.stats.max_depth = max(self.stats.max_depth, self.qsize())

    def get(self, timeout: float | None = None) -> tuple[Any, Any]:
        """Remove and return the oldest ``(key, value)``; blocks while the channel is empty."""
        start = time.perf_counter()
        try:
            key, value = self._get(timeout)
        except (queue.Empty, TimeoutError) as exc:
            raise ChannelTimeout(f"channel {self.name!r} stayed empty for {timeout} s; is its producer running?") from exc
        self.stats.gets += 1
        self.stats.get_wait_s += time.perf_counter() - start
        return key, self._unwrap(value)

    async def put_async(self, key: Any, value: Any, timeout: float | None = None) -> None:
        await asyncio.to_thread(self.put, key, value, timeout)

    async def get_async(self, timeout: float | None = None) -> tuple[Any, Any]:
        return await asyncio.to_thread(self.get, timeout)


class InlineChannel(Channel):
    """A ``queue.Queue`` in this process: values are passed by reference, never copied."""

    def __init__(self, name: str, maxsize: int = 0):
        super().__init__(name, maxsize)
        self._queue: queue.Queue = queue.Queue(maxsize)

    def _put(self, item: Any, timeout: float | None) -> None:
        self._queue.put(item, block=True, timeout=timeout)

    def _get(self, timeout: float | None) -> Any:
        return self._queue.get(block=True, timeout=timeout)

    def qsize(self) -> int:
        return self._queue.qsize()


class RayChannel(Channel):
    """A ``ray.util.queue.Queue`` (an actor) holding object references; picklable into any rank."""

    def __init__(self, name: str, maxsize: int = 0):
        from ray.util.queue import Queue

        super().__init__(name, maxsize)
        self._queue = Queue(maxsize, actor_options={"num_cpus": 0, "name": None})

    def _wrap(self, value: Any) -> Any:
        import ray

        return [ray.put(value)]  # in a list, so that Ray does not resolve the reference in the queue actor

    def _unwrap(self, value: Any) -> Any:
        import ray

        return ray.get(value[0])

    def _put(self, item: Any, timeout: float | None) -> None:
        from ray.util.queue import Full

        try:
            self._queue.put(item, block=True, timeout=timeout)
        except Full as exc:
            raise queue.Full from exc

    def _get(self, timeout: float | None) -> Any:
        from ray.util.queue import Empty

        try:
            return self._queue.get(block=True, timeout=timeout)
        except Empty as exc:
            raise queue.Empty from exc

    def qsize(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        self._queue.shutdown(force=True)
