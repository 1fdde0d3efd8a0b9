"""Env <-> policy loop throughput: sequential vs pipelined, collocated vs disaggregated, in one run.

The env and policy stages are balanced (the same compute per env row). Each configuration runs the
same flow (rlinf_core.runtime.pipeline.run_env_rollout_loop); throughput is env steps per second,
printed with its ratio to the sequential Ray run (disaggregated, pipeline_stage_num 1) and to
the inline run (one process, no overlap possible).

    python benchmarks/pipeline.py              # needs rlinf-core[ray] and torch
    python benchmarks/pipeline.py --envs 64 --steps 6 --cost 250
"""

from __future__ import annotations

import argparse
import os
import time
from types import SimpleNamespace

from rlinf_core import get_plugins
from rlinf_core.runtime import Runtime, WorkerSpec
from rlinf_core.runtime.pipeline import run_env_rollout_loop
from rlinf_core.runtime.scheduler import choose, measure_call_overhead
from rlinf_core.testing.demo_flow import EnvWorker, RolloutWorker, profile_env_rollout


def measure(executor: str, spec: dict, devices: int, stage_num: int, args) -> tuple[str, float]:
    cluster = SimpleNamespace(executor=executor, component_placement=spec, placement=None, num_nodes=1,
                              num_devices_per_node=devices, ray_address=None)
    workers = {"env": WorkerSpec(EnvWorker, (args.envs, stage_num), {"cost": args.cost}),
               "rollout": WorkerSpec(RolloutWorker, kwargs={"cost": args.cost})}
    with Runtime(cluster, get_plugins(), workers) as rt:
        run_env_rollout_loop(rt["env"], rt["rollout"], steps=2, stage_num=stage_num)  # warm-up
        start = time.perf_counter()
        run_env_rollout_loop(rt["env"], rt["rollout"], steps=args.steps, stage_num=stage_num)
        elapsed = time.perf_counter() - start
        return rt.placement.mode, args.steps * args.envs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--cost", type=int, default=250, help="work per env row in each stage (256x256 matmuls)")
    args = parser.parse_args()
    import ray
    import torch

    torch.set_num_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    runs = []
    stage_nums = (1, 2, 4)
    env_prof, pol_prof = profile_env_rollout(args.envs, stage_nums, args.cost)
    probe = SimpleNamespace(executor="ray", component_placement={"env": 0}, placement=None, num_nodes=1,
                            num_devices_per_node=2, ray_address=None)
    try:
        with Runtime(probe, get_plugins(), {"env": WorkerSpec(RolloutWorker)}) as rt:
            overhead = measure_call_overhead(rt["env"])
        ranked = choose(env_prof, pol_prof, num_envs=args.envs, num_devices=2, stage_nums=stage_nums,
                        call_overhead_s=overhead)
        pick = ranked[0]
        runs.append(("inline", 1, *measure("inline", {}, 1, 1, args)))
        for k in (1, 2, 4):
            runs.append(("ray", k, *measure("ray", {"env": 0, "rollout": 1}, 2, k, args)))
        for k in (1, 2, 4):
            runs.append(("ray", k, *measure("ray", {"env,rollout": "all"}, 2, k, args)))
        auto_mode, auto_tp = measure("ray", pick.component_placement, 2, pick.stage_num, args)
    finally:
        ray.shutdown()
    base = next(t for ex, k, mode, t in runs if ex == "ray" and k == 1 and mode == "disaggregated")
    print(f"{os.cpu_count()} CPU cores, {args.envs} envs, {args.steps} steps, cost {args.cost}")
    inline = runs[0][3]
    print(f"{'executor':<8} {'placement':<14} {'stage_num':>9} {'env steps/s':>12} {'x sequential':>13} {'x inline':>9}")
    for executor, k, mode, throughput in runs:
        print(f"{executor:<8} {mode:<14} {k:>9} {throughput:>12.1f} {throughput / base:>13.2f} {throughput / inline:>9.2f}")
    print(f"profile: {env_prof}, {pol_prof}, Ray call overhead {overhead * 1e3:.2f} ms")
    print(f"auto chose: {pick.describe()}; measured {auto_tp:.1f} env steps/s ({auto_tp / base:.2f} x sequential)")
    best = max(runs[1:], key=lambda r: r[3])
    print(f"fastest measured above: {best[2]} stage_num={best[1]} at {best[3]:.1f}; auto's pick is "
          f"{'the same configuration' if (best[2], best[1]) == (pick.mode, pick.stage_num) else 'a different one'}"
          f" ({auto_tp / best[3]:.2f} x the fastest)")


if __name__ == "__main__":
    main()
