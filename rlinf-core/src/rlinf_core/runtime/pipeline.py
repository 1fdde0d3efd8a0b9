"""Micro-batch pipelining (``rollout.pipeline_stage_num``): the env <-> policy loop, and linear
stage chains such as generate -> reward -> advantage.

:func:`run_stage_pipeline` pushes micro-batches through a chain of (group, method) stages; under
Ray, stage ``s`` of micro-batch ``j`` overlaps stage ``s - 1`` of micro-batch ``j + 1`` (generation
overlaps reward computation). The env loop follows.

The envs are split into ``stage_num`` micro-batches. Micro-batch ``j`` lives on env rank
``j % E`` and is served by rollout rank ``j % R``. Each step issues, for every micro-batch,
``act`` then ``step`` without waiting in between: the calls form a dependency graph whose handles
move rank to rank. Under Ray, the env stepping of micro-batch ``j`` overlaps the policy inference
of micro-batch ``j + 1``. Under the inline executor every call runs to its end, so the loop overlaps
them only where the env worker can start a step and collect it later (``step_send`` /
``step_receive``: an env that steps in worker processes of its own): micro-batch ``j``'s sub-envs
step in their processes while the driver runs the policy on micro-batch ``j + 1``.

Worker protocol:
    env ranks:     ``reset(mb, num_micro_batches) -> obs``, ``step(mb, actions) -> obs``, and with
                   ``finish=NAME``: ``NAME(mb, actions) -> anything`` (after the last step);
                   optionally ``step_send(mb, actions)`` + ``step_receive(mb) -> obs``, together
                   what ``step`` does (used inline, with ``stage_num > 1``)
    rollout ranks: ``act(obs) -> actions``
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlinf_core.runtime.executors.base import GroupFuture, WorkerGroup


def run_env_rollout_loop(env: WorkerGroup, rollout: WorkerGroup, *, steps: int, stage_num: int = 1,
                         finish: str | None = None) -> list[Any]:
    """Run ``steps`` env steps for every micro-batch; returns the last observations, by micro-batch.

    With ``finish``, the rollout acts once more on the last observations (e.g. to give the value
    that bootstraps past the horizon) and the env rank's method ``finish`` takes ``(mb, output)``
    instead of a step; its results are returned, by micro-batch.

    A failure anywhere in the chain raises :class:`~rlinf_core.runtime.WorkerError` naming the
    rank where it started (the executor traces a failed input back to the rank that produced it).
    """
    if stage_num < 1:
        raise ValueError(f"rollout.pipeline_stage_num must be >= 1, got {stage_num}")
    env_rank = [j % env.world_size for j in range(stage_num)]
    rollout_rank = [j % rollout.world_size for j in range(stage_num)]
    split = (stage_num > 1 and not env.concurrent and not rollout.concurrent
             and callable(getattr(env.worker_cls, "step_send", None)))
    last = [env.call("reset", j, stage_num, ranks=[env_rank[j]]) for j in range(stage_num)]
    sent = [False] * stage_num

    def observation(j: int) -> GroupFuture:
        if sent[j]:  # inline: collect the step started one micro-batch ago (a failed start raises here)
            last[j].result()
            last[j], sent[j] = env.call("step_receive", j, ranks=[env_rank[j]]), False
        return last[j]

    for _ in range(steps):
        for j in range(stage_num):
            act = rollout.call("act", observation(j).handles[0], ranks=[rollout_rank[j]])
            if split:
                last[j], sent[j] = env.call("step_send", j, act.handles[0], ranks=[env_rank[j]]), True
            else:
                last[j] = env.call("step", j, act.handles[0], ranks=[env_rank[j]])
    for j in range(stage_num):
        observation(j)
    if finish is not None:
        for j in range(stage_num):
            act = rollout.call("act", last[j].handles[0], ranks=[rollout_rank[j]])
            last[j] = env.call(finish, j, act.handles[0], ranks=[env_rank[j]])
    return [future.result()[0] for future in last]


def run_stage_pipeline(stages: Sequence[tuple[WorkerGroup, str]], micro_batches: Sequence[Any]) -> list[Any]:
    """Push every micro-batch through ``stages`` (``(group, method)`` pairs) in order.

    Micro-batch ``j`` runs on rank ``j % world_size`` of each stage's group; nothing waits until
    the end, so stages of different micro-batches overlap under Ray. Returns the last stage's
    outputs in micro-batch order; a failure raises :class:`WorkerError` naming its rank.
    """
    if not stages:
        raise ValueError("run_stage_pipeline needs at least one (group, method) stage")
    futures: list[list[GroupFuture]] = []
    for j, item in enumerate(micro_batches):
        chain, arg = [], item
        for group, method in stages:
            future = group.call(method, arg, ranks=[j % group.world_size])
            chain.append(future)
            arg = future.handles[0]
        futures.append(chain)
    for chain in futures:  # report the first stage that failed, not the stages it poisoned
        for future in chain:
            future.result()
    return [chain[-1].result()[0] for chain in futures]
