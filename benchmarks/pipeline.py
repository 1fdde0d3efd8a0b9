"""Env <-> policy loop throughput: sequential vs pipelined, collocated vs disaggregated, in one run.

The env and policy stages are balanced (the same compute per env row). Each configuration runs the
same flow (rlinf_core.runtime.pipeline.run_env_rollout_loop); throughput is env steps per second,
printed with its ratio to the sequential Ray run (disaggregated, pipeline_stage_num 1) and to
the inline run (one process, no overlap possible).

    python benchmarks/pipeline.py              # needs rlinf-core[ray] and torch
    python benchmarks/pipeline.py --envs 64 --steps 15 --cost 250
"""

from __future__ import annotations

import argparse
import os
import time
from functools import partial
from types import SimpleNamespace

from rlinf_core import get_plugins
from rlinf_core.runtime import AutoPlacement, Runtime, WorkerSpec
from rlinf_core.runtime.pipeline import run_env_rollout_loop
from rlinf_core.testing.demo_flow import EnvWorker, RolloutWorker, profile_env_rollout


def measure(executor: str, spec: dict, devices: int, stage_num: int, args, auto: bool = False) -> tuple[str, int, float, str]:
    """(placement mode, stage_num, env steps/s, report) of one configuration; ``auto`` lets the Runtime choose."""
    cluster = SimpleNamespace(executor=executor, component_placement=spec, placement="auto" if auto else None,
                              num_nodes=1, num_devices_per_node=devices, ray_address=None)
    workers = {"env": WorkerSpec(EnvWorker, (args.envs,), {"cost": args.cost}),
               "rollout": WorkerSpec(RolloutWorker, kwargs={"cost": args.cost})}
    planner = AutoPlacement(partial(profile_env_rollout, cost=args.cost), args.envs, (1, 2, 4)) if auto else None
    with Runtime(cluster, get_plugins(), workers, auto=planner) as rt:
        if rt.auto_choice is not None:
            stage_num = rt.auto_choice.stage_num
        run_env_rollout_loop(rt["env"], rt["rollout"], steps=2, stage_num=stage_num)  # warm-up
        start = time.perf_counter()
        run_env_rollout_loop(rt["env"], rt["rollout"], steps=args.steps, stage_num=stage_num)
        throughput = args.steps * args.envs / (time.perf_counter() - start)
        return rt.placement.mode, stage_num, throughput, rt.report_throughput(throughput)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--cost", type=int, default=250, help="work per env row in each stage (256x256 matmuls)")
    args = parser.parse_args()
    import ray
    import torch

    torch.set_num_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    runs = []
    try:
        runs.append(("inline", *measure("inline", {}, 1, 1, args)[:3]))
        for k in (1, 2, 4):
            runs.append(("ray", *measure("ray", {"env": 0, "rollout": 1}, 2, k, args)[:3]))
        for k in (1, 2, 4):
            runs.append(("ray", *measure("ray", {"env,rollout": "all"}, 2, k, args)[:3]))
        auto_mode, auto_k, auto_tp, auto_report = measure("ray", {}, 2, 0, args, auto=True)
    finally:
        ray.shutdown()
    base = next(t for ex, mode, k, t in runs if ex == "ray" and k == 1 and mode == "disaggregated")
    inline = runs[0][3]
    print(f"{os.cpu_count()} CPU cores, {args.envs} envs, {args.steps} steps, cost {args.cost}")
    print(f"{'executor':<8} {'placement':<14} {'stage_num':>9} {'env steps/s':>12} {'x sequential':>13} {'x inline':>9}")
    for executor, mode, k, throughput in [*runs, ("ray/auto", auto_mode, auto_k, auto_tp)]:
        print(f"{executor:<8} {mode:<14} {k:>9} {throughput:>12.1f} {throughput / base:>13.2f} {throughput / inline:>9.2f}")
    print(auto_report)
    best = max(runs[1:], key=lambda r: r[3])
    same = (best[1], best[2]) == (auto_mode, auto_k)
    print(f"fastest fixed configuration: {best[1]} stage_num={best[2]} ({best[3]:.1f}); auto picked "
          f"{'that one' if same else f'{auto_mode} stage_num={auto_k}'}, at {auto_tp / best[3]:.2f} x its throughput")


if __name__ == "__main__":
    main()
