"""Moving weights between a training backend and rollout engines: size-bounded buckets."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any


def iter_buckets(named_tensors: Iterable[tuple[str, Any]], bucket_bytes: int = 256 << 20) -> Iterator[list[tuple[str, Any]]]:
    """Group ``(name, tensor)`` pairs, in order, into lists of at most ``bucket_bytes`` bytes each.

    A tensor larger than ``bucket_bytes`` is a bucket of its own. Lazy: consumes the input as it
    goes, so with :meth:`FSDPBackend.export_weights` at most one bucket is held at a time (send
    each bucket, e.g. through Ray's object store, then ask for the next).
    """
    if bucket_bytes <= 0:
        raise ValueError(f"iter_buckets: bucket_bytes must be positive, got {bucket_bytes}")
    bucket: list[tuple[str, Any]] = []
    size = 0
    for name, tensor in named_tensors:
        nbytes = tensor.numel() * tensor.element_size()
        if bucket and size + nbytes > bucket_bytes:
            yield bucket
            bucket, size = [], 0
        bucket.append((name, tensor))
        size += nbytes
    if bucket:
        yield bucket


__all__ = ["iter_buckets"]
