"""Micro-batch pipelining of the env <-> policy loop (``rollout.pipeline_stage_num``).

The envs are split into ``stage_num`` micro-batches. Micro-batch ``j`` lives on env rank
``j % E`` and is served by rollout rank ``j % R``. Each step issues, for every micro-batch,
``act`` then ``step`` without waiting in between: the calls form a dependency graph whose handles
move rank to rank. Under Ray, the env stepping of micro-batch ``j`` overlaps the policy inference
of micro-batch ``j + 1``; under the inline executor the same code runs them one after the other.

Worker protocol:
    env ranks:     ``reset(mb, num_micro_batches) -> obs``, ``step(mb, actions) -> obs``
    rollout ranks: ``act(obs) -> actions``
"""

from __future__ import annotations

from typing import Any

from rlinf_core.runtime.executors.base import GroupFuture, WorkerGroup
from rlinf_core.runtime.worker import WorkerError


def run_env_rollout_loop(env: WorkerGroup, rollout: WorkerGroup, *, steps: int, stage_num: int = 1) -> list[Any]:
    """Run ``steps`` env steps for every micro-batch; returns the last observations, by micro-batch.

    A failure anywhere in the chain raises :class:`~rlinf_core.runtime.WorkerError` naming the
    rank where it started.
    """
    if stage_num < 1:
        raise ValueError(f"rollout.pipeline_stage_num must be >= 1, got {stage_num}")
    env_rank = [j % env.world_size for j in range(stage_num)]
    rollout_rank = [j % rollout.world_size for j in range(stage_num)]
    last = [env.call("reset", j, stage_num, ranks=[env_rank[j]]) for j in range(stage_num)]
    acts: list[GroupFuture] = []
    for _ in range(steps):
        acts = []
        for j in range(stage_num):
            acts.append(rollout.call("act", last[j].handles[0], ranks=[rollout_rank[j]]))
            last[j] = env.call("step", j, acts[j].handles[0], ranks=[env_rank[j]])
    try:
        return [future.result()[0] for future in last]
    except WorkerError:
        for future in acts:  # a failed act poisons its step: report the act's own error
            future.result()
        raise
