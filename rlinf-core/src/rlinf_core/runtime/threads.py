"""CPU thread budgets: torch's intra-op threads against the processes that share the same cores.

Under the inline executor the driver runs the policy while an env's worker processes step their
sub-envs (``init_params.vectorization: async``). torch's default of one thread per core then
oversubscribes the cores: its OpenMP threads spin between ops on the cores the env processes
step on. Measured (Meta-World reach-v3, 16 sub-envs in two slices, 2 cores): 3570 env steps/s
with one torch thread, 1782 with torch's default two. The embodied flow therefore caps torch's
threads during a rollout at the cores the env's processes leave free (:func:`torch_threads_at_most`)
and gives them back for the update, where the env processes are idle. Ray ranks get their CPU
share as ``OMP_NUM_THREADS`` instead (``executors/ray.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask; ``os.cpu_count()`` where that is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


@contextmanager
def torch_threads_at_most(n: int) -> Iterator[int]:
    """Lower torch's intra-op threads to ``max(1, n)`` inside the block (never raise them: a user's
    ``OMP_NUM_THREADS`` or ``torch.set_num_threads`` below that stands); yields the count in use."""
    import torch

    before = torch.get_num_threads()
    inside = max(1, min(before, int(n)))
    if inside != before:
        torch.set_num_threads(inside)
    try:
        yield inside
    finally:
        if inside != before:
            torch.set_num_threads(before)
