"""Soak: run the demo flow on Ray for many iterations and fail if memory keeps growing after warm-up.

    python tests/runtime/soak.py                  # short (CI): 600 iterations
    python tests/runtime/soak.py --long           # 6000 iterations
    python tests/runtime/soak.py --iterations N

Every ``--every`` iterations it samples the resident memory (RSS) of the driver, of each rank and
of Ray's GCS server. After the warm-up (the first ``--warmup`` fraction of the run) it fits a
least-squares line to each series over the rest and fails when a slope exceeds its limit, in MB per
1000 iterations. The limits leave a wide margin over what a healthy run shows (README "Runtime");
a real leak of one tensor or one object reference per iteration exceeds them.
"""

from __future__ import annotations

import argparse
import sys
import time
from types import SimpleNamespace

#: MB per 1000 iterations: driver, any one rank, the GCS (bounded by cluster.ray_task_events_max,
#: here 2000 events; at Ray's default of 100,000 the GCS grows about 3.5 MB per 1000 tasks until then).
LIMITS = {"driver": 8.0, "rank": 8.0, "gcs": 8.0}


def rss_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def slope_per_1000(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return 1000 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--long", action="store_true", help="6000 iterations instead of 600")
    parser.add_argument("--every", type=int, default=None, help="sample memory every N iterations")
    parser.add_argument("--warmup", type=float, default=0.4, help="fraction of the run not fitted")
    parser.add_argument("--inject-leak-kb", type=int, default=0, help="keep N KB per iteration in the driver "
                        "(to check that the soak catches a leak)")
    args = parser.parse_args()
    iterations = args.iterations or (6000 if args.long else 600)
    every = args.every or max(1, iterations // 60)

    import ray
    from rlinf_core import get_plugins
    from rlinf_core.runtime import Runtime, WorkerSpec
    from rlinf_core.testing.demo_flow import WORKERS, run_demo_flow

    # a small task-event cap, so that the GCS reaches its bound during the warm-up (about 17 tasks an iteration)
    cluster = SimpleNamespace(executor="ray", component_placement={"env,rollout,actor": "all"}, placement=None,
                              num_nodes=1, num_devices_per_node=2, ray_address=None, ray_task_events_max=2000)
    workers = {"env": WorkerSpec(WORKERS["env"], (8,)), "rollout": WorkerSpec(WORKERS["rollout"]),
               "actor": WorkerSpec(WORKERS["actor"])}
    series: dict[str, list[float]] = {}
    at: list[int] = []
    start = time.monotonic()
    with Runtime(cluster, get_plugins(), workers) as rt:
        ranks = {f"{g}/{r}": pid for g in workers for _, r, pid in rt[g].call("ping").result()}
        node = ray._private.worker._global_node  # private, but the only way to find the GCS process
        gcs = [p.process.pid for name, infos in node.all_processes.items() if "gcs" in name for p in infos]

        leak: list[bytearray] = []

        def sample(rt, i):
            if args.inject_leak_kb:
                leak.append(bytearray(b"x" * (args.inject_leak_kb << 10)))
            if i % every:
                return
            at.append(i)
            for name, pid in {"driver": "self", **ranks, **({"gcs": gcs[0]} if gcs else {})}.items():
                series.setdefault(name, []).append(rss_mb(pid))

        run_demo_flow(rt, iterations=iterations + 1, steps=3, stage_num=2, between_iterations=sample)
    took = time.monotonic() - start
    first = int(len(at) * args.warmup)
    print(f"soak: {iterations} demo-flow iterations on Ray in {took:.0f} s ({1000 * took / iterations:.1f} ms each); "
          f"{len(at)} samples, slopes fitted over iterations {at[first]}-{at[-1]}")
    failed = []
    for name, ys in series.items():
        kind = "rank" if "/" in name else name
        slope = slope_per_1000(at[first:], ys[first:])
        ok = slope <= LIMITS[kind]
        print(f"  {name:12s} RSS {ys[0]:7.1f} -> {ys[first]:7.1f} (warm) -> {ys[-1]:7.1f} MB; "
              f"slope {slope:+6.2f} MB/1000 it (limit {LIMITS[kind]:g}) {'ok' if ok else 'GROWING'}")
        if not ok:
            failed.append(name)
    if failed:
        print(f"soak FAILED: memory keeps growing after warm-up in {', '.join(failed)}")
        return 1
    print("soak ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
