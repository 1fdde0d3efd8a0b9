"""Automatic placement for the env <-> policy loop: profile the stages, predict, pick the best.

1. :func:`profile_stage` times a stage at several micro-batch sizes and fits
   ``seconds = overhead + per_row * rows``.
2. :func:`predict_step_time` is the cost model of one env step of all envs for a candidate
   (mode, device split, ``pipeline_stage_num`` k), with ``E``/``P`` the env / policy time of one
   micro-batch call (plus the executor's per-call overhead ``c``):

   - disaggregated, ``d_e`` env and ``d_p`` policy devices:
     ``max(ceil(k/d_e) E, ceil(k/d_p) P, E + P)``: the busier stage, but never less than one
     micro-batch's own env-then-policy chain;
   - collocated on ``D`` devices (both groups on every device, taking turns):
     ``ceil(k/D) (E + P)``.
3. :func:`choose` ranks every candidate by predicted throughput (env steps per second).
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

log = logging.getLogger("rlinf.runtime")


@dataclass(frozen=True)
class StageProfile:
    """Seconds per call of one stage: ``overhead_s + per_row_s * rows``."""

    name: str
    overhead_s: float
    per_row_s: float

    def time(self, rows: float) -> float:
        return self.overhead_s + self.per_row_s * rows


def profile_stage(name: str, run: Callable[[int], object], rows: Iterable[int], repeat: int = 3) -> StageProfile:
    """Time ``run(r)`` (median of ``repeat``) for each ``r`` in ``rows`` and fit a line through them."""
    rows = sorted(set(rows))
    if not rows:
        raise ValueError("profile_stage needs at least one micro-batch size")
    samples = []
    for r in rows:
        run(r)  # warm-up
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            run(r)
            times.append(time.perf_counter() - start)
        samples.append((r, statistics.median(times)))
    if len(samples) == 1:
        r, t = samples[0]
        return StageProfile(name, 0.0, t / r)
    mean_r = statistics.fmean(r for r, _ in samples)
    mean_t = statistics.fmean(t for _, t in samples)
    var = sum((r - mean_r) ** 2 for r, _ in samples)
    slope = max(0.0, sum((r - mean_r) * (t - mean_t) for r, t in samples) / var)
    return StageProfile(name, max(0.0, mean_t - slope * mean_r), slope)


@dataclass(frozen=True)
class Candidate:
    """One way to run the loop, and what the cost model predicts for it."""

    mode: str
    component_placement: dict[str, str]
    stage_num: int
    predicted_steps_per_s: float
    detail: dict[str, float] = field(default_factory=dict, compare=False)

    def describe(self) -> str:
        spec = ", ".join(f"{k}: {v}" for k, v in self.component_placement.items())
        return (f"{self.mode} {{{spec}}} pipeline_stage_num={self.stage_num}: "
                f"{self.predicted_steps_per_s:.1f} env steps/s predicted")


def _range(first: int, count: int) -> str:
    return str(first) if count == 1 else f"{first}-{first + count - 1}"


def predict_step_time(env: StageProfile, policy: StageProfile, *, num_envs: int, stage_num: int, mode: str,
                      num_devices: int, env_devices: int = 0, call_overhead_s: float = 0.0) -> float:
    """Predicted seconds for one env step of all ``num_envs`` envs (see the module docstring)."""
    rows = num_envs / stage_num
    e = env.time(rows) + call_overhead_s
    p = policy.time(rows) + call_overhead_s
    k = stage_num
    if mode == "collocated":
        return math.ceil(k / num_devices) * (e + p)
    if mode == "disaggregated":
        d_e, d_p = env_devices, num_devices - env_devices
        if d_e < 1 or d_p < 1:
            raise ValueError(f"disaggregated needs devices for both stages, got env {d_e}, policy {d_p}")
        return max(math.ceil(k / d_e) * e, math.ceil(k / d_p) * p, e + p)
    raise ValueError(f"mode must be collocated or disaggregated, got {mode!r}")


def choose(env: StageProfile, policy: StageProfile, *, num_envs: int, num_devices: int,
           stage_nums: Iterable[int] = (1, 2, 4, 8), call_overhead_s: float = 0.0,
           env_group: str = "env", policy_group: str = "rollout") -> list[Candidate]:
    """Every candidate, best first (the first is the choice). Logs the choice and its prediction."""
    candidates = []
    for k in stage_nums:
        if k < 1 or num_envs % k:
            continue
        t = predict_step_time(env, policy, num_envs=num_envs, stage_num=k, mode="collocated",
                              num_devices=num_devices, call_overhead_s=call_overhead_s)
        candidates.append(Candidate("collocated", {f"{env_group},{policy_group}": "all"}, k, num_envs / t, {"step_s": t}))
        for d_e in range(1, num_devices):
            t = predict_step_time(env, policy, num_envs=num_envs, stage_num=k, mode="disaggregated",
                                  num_devices=num_devices, env_devices=d_e, call_overhead_s=call_overhead_s)
            spec = {env_group: _range(0, d_e), policy_group: _range(d_e, num_devices - d_e)}
            candidates.append(Candidate("disaggregated", spec, k, num_envs / t, {"step_s": t}))
    if not candidates:
        raise ValueError(f"no pipeline_stage_num in {list(stage_nums)} divides num_envs={num_envs}")
    candidates.sort(key=lambda c: (-c.predicted_steps_per_s, c.stage_num))
    log.info("auto placement chose %s (profile: %s, %s; call overhead %.2f ms)", candidates[0].describe(),
             env, policy, call_overhead_s * 1e3)
    return candidates


def measure_call_overhead(group, repeat: int = 20) -> float:
    """Median seconds of a chained no-op call on ``group`` rank 0 (the executor's per-call cost)."""
    handle = None
    times = []
    group.call("ping", ranks=[0]).result()
    for _ in range(repeat):
        start = time.perf_counter()
        future = group.call("echo", handle, ranks=[0])
        future.result()
        handle = future.handles[0]
        times.append(time.perf_counter() - start)
    return statistics.median(times)
