"""Rollout throughput of the tiny VLAs (``openvla``, ``openvla_oft``, ``pi0``) on rlinf/InstructionTargets-v0.

1. Batched sampling: actions per second of ``policy.sample`` at several batch sizes (one env step's
   worth of actions per row: ``K`` actions for a chunk), with the ratio to batch size 1.
2. ``--pipeline``: the embodied flow's env and rollout workers (``run_env_rollout_loop``), env steps per
   second when env and policy are in separate Ray processes, sequential (``pipeline_stage_num`` 1)
   vs pipelined (2 and 4 micro-batches), as a ratio to the sequential run; the inline run, also with the
   env's sub-envs in slices stepped in parallel (``init_params.vectorization: async``, 1 and 2 stages); and
   ``cluster.placement: auto`` (the embodied flow's profile of both stages picks the placement and
   stage count), against the fastest fixed configuration. ``--sim metaworld``: a real simulator,
   Meta-World ``reach-v3`` rendering its ``corner`` camera (MuJoCo; ``MUJOCO_GL=egl`` or ``osmesa``),
   instead of the toy instruction env.

    python benchmarks/vla_rollout.py                      # needs rlinf-envs-embodied[vla]
    python benchmarks/vla_rollout.py --pipeline --models openvla_oft   # also needs rlinf-core[ray]
    python benchmarks/vla_rollout.py --pipeline --models openvla_oft --sim metaworld --sizes   # and [metaworld]

Timings on a shared machine are inflated by the load: compare the ratios, not the absolute numbers.

Measured 2026-12-03 on the 2-core dev machine (quiet; ``--pipeline --models openvla_oft --sim metaworld --sizes
--envs 8 --steps 10``): Meta-World renders a 32x32 camera image in about 58 ms with Mesa's software EGL here, so
the env stage dominates (8 sub-envs: about 0.5 s a step, the tiny VLA's ``sample`` a small part of that).
Disaggregated (one env process, one policy process), pipelining gains nothing: 1.01x at 2 micro-batches, 0.98x
at 4. Collocated on both devices (two env ranks and two policy ranks, so the rendering runs on both cores):
1.38x at 2 and at 4 micro-batches; sequential collocated 0.99x, inline 1.02x. ``cluster.placement: auto``
picked collocated with 2 micro-batches, the fastest fixed configuration, and measured 0.95x its throughput
(run to run noise); its prediction was 15.4 env steps/s against 9.7 measured (0.63x: the profile times each
stage alone in one process, and misses what two processes rendering at once cost each other on 2 cores).

Measured again the same day with the async env (same command, 4 minutes): the Ray rows as before (collocated
1.35x / 1.37x at 2 / 4 micro-batches, auto collocated with 2 at 1.35x, 0.99x the fastest placement, its
prediction 0.64x of measured); inline with ``vectorization: async`` (two slices per micro-batch: one in a
worker process, one in the env worker's own) 1.40x sequential with 1 stage and 1.93x with 2 stages, the
fastest configuration. ``cluster.placement: auto`` chooses among Ray placements and stage counts only, so it
does not reach that one (0.70x of it).

The same command with ``LP_NUM_THREADS=1`` (Mesa's llvmpipe renders on one thread per process instead of one
per core), to test why auto's prediction is off: one process renders slower (sequential 5.6 vs 7 env calls/s),
but processes rendering side by side no longer take each other's cores: Ray collocated 1.78x sequential at 2
stages, auto picked it (0.99x the fastest placement) and its prediction was 0.81x of measured (12.3 predicted,
10.0 measured); inline with the async env 1.96x. Ray ranks already get ``OMP_NUM_THREADS`` = their CPU share;
giving llvmpipe the same limit, and the profile the ranks' thread count, is the fix this points to.

Measured after that fix (Ray ranks get ``LP_NUM_THREADS`` = their CPU share, unless set; ``auto`` profiles the
stages in a rank's process, with its thread settings, instead of the driver; same command, no environment
variable, twice): ``auto`` picked collocated with 2 micro-batches, 1.01x and 1.00x the fastest fixed placement,
and its prediction was 0.82x and 0.81x of measured (11.7 / 12.0 predicted, 9.6 / 9.7 measured; before: 0.64x).
Ray collocated 1.73x / 1.72x sequential at 2 stages; inline with the async env 2.42x / 2.43x at 2 stages (its
rollout now runs torch on the one core the env's worker process leaves free), still the fastest configuration:
``auto`` chooses among Ray placements and stage counts, not the env's vectorization (0.72x of it).
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

ENV_ID = "rlinf_envs_embodied.envs.instruction_targets:rlinf/InstructionTargets-v0"
#: The tiny models of examples/embodied/<model>_instruction_cpu.yaml.
MODELS = {
    "openvla": {"model_type": "openvla", "num_action_chunks": 1, "num_action_bins": 16, "add_value_head": True},
    "openvla_oft": {"model_type": "openvla_oft", "num_action_chunks": 2, "num_action_bins": 16, "add_value_head": True,
                    "config": {"use_proprio": True}},
    "pi0": {"model_type": "pi0", "num_action_chunks": 2, "add_value_head": True, "config": {"num_steps": 3}},
}
SIZES = {"hidden_size": 64, "num_layers": 2, "intermediate_size": 128, "vision_hidden": 32, "vision_layers": 2,
         "image_size": 32, "patch_size": 8}


def model_section(name: str) -> dict:
    section = dict(MODELS[name])
    section["config"] = {**SIZES, **({"num_heads": 2, "head_dim": 32} if name == "pi0" else {"num_heads": 4}),
                         **section.get("config", {})}
    return section


def batched_sampling(names: list[str], sizes: list[int], repeats: int) -> None:
    import torch
    from rlinf_core.plugins import get_plugins
    from rlinf_envs_embodied.envs.gymnasium_env import GymnasiumEnv

    print(f"{'model':<12} {'batch':>5} {'sample ms':>10} {'actions/s':>10} {'vs batch 1':>10}")
    for name in names:
        section = model_section(name)
        base = None
        for n in sizes:
            env = GymnasiumEnv({"env_id": ENV_ID}, num_envs=n, seed=0)
            obs, _ = env.reset()
            torch.manual_seed(0)
            cls = get_plugins().registries.load("model", section["model_type"])
            policy = cls(section, observation_space=env.observation_space, action_space=env.action_space)
            policy.sample(obs)  # warm-up
            start = time.perf_counter()
            for _ in range(repeats):
                sample = policy.sample(obs)
            elapsed = (time.perf_counter() - start) / repeats
            rate = sample.actions.shape[0] * sample.actions.shape[1] / elapsed
            base = base or rate
            print(f"{name:<12} {n:>5} {elapsed * 1e3:>10.1f} {rate:>10.0f} {rate / base:>9.2f}x")
            env.close()


#: ``env.train`` of each ``--sim``; the VLA reads the first camera of the env's ``images``.
SIMS = {
    "instruction": {"simulator_type": "gymnasium", "env_id": ENV_ID, "max_episode_steps": 12},
    "metaworld": {"simulator_type": "metaworld", "env_id": "reach-v3", "max_episode_steps": 50,
                  "init_params": {"images": True, "camera_heights": 32, "camera_widths": 32}},
}


def pipeline(name: str, envs: int, steps: int, sim: str = "instruction") -> None:
    from functools import partial

    import ray
    import torch
    from rlinf_core import get_plugins
    from rlinf_core.config import load_config
    from rlinf_core.flows.embodied import profile_stages
    from rlinf_core.flows.embodied_workers import EmbodiedEnvWorker, PolicyRolloutWorker
    from rlinf_core.runtime import AutoPlacement, Runtime, WorkerSpec
    from rlinf_core.runtime.pipeline import run_env_rollout_loop

    torch.set_num_threads(1)
    section = model_section(name)
    if sim != "instruction":  # a simulator with no instruction of its own
        section["config"] = {**section["config"], "instruction": "reach the goal", "use_proprio": False}
    overrides = {"runner": {"task_type": "embodied"}, "actor": {"model": section},
                 "env": {"train": {**SIMS[sim], "total_num_envs": envs, "seed": 0}}}
    from omegaconf import OmegaConf

    container = OmegaConf.to_container(load_config(overrides), resolve=True)
    auto_choice = {}

    def measure(executor: str, spec: dict, devices: int, stage_num: int, auto: bool = False,
                vectorization: str = "sync") -> float:
        cluster = SimpleNamespace(executor=executor, component_placement=spec, placement="auto" if auto else None,
                                  num_nodes=1, num_devices_per_node=devices, ray_address=None)
        config = container
        if vectorization != "sync":  # the sub-envs in slices stepped in parallel (one per core)
            train = config["env"]["train"]
            config = {**config, "env": {**config["env"], "train": {
                **train, "init_params": {**train.get("init_params", {}), "vectorization": vectorization}}}}
        workers = {"env": WorkerSpec(EmbodiedEnvWorker, (config, "train", "continue")),
                   "rollout": WorkerSpec(PolicyRolloutWorker, (config,))}
        planner = AutoPlacement(partial(profile_stages, container), num_envs=envs, stage_nums=(1, 2, 4),
                                env_group="env", policy_group="rollout") if auto else None
        with Runtime(cluster, get_plugins(), workers, auto=planner) as rt:
            if rt.auto_choice is not None:
                stage_num = rt.auto_choice.stage_num
                auto_choice.update(mode=rt.placement.mode, stage_num=stage_num)
            rt["env"].call("setup", stage_num).result()
            spaces = rt["env"].call("spaces", ranks=[0]).result()[0]
            rt["rollout"].call("build", *spaces).result()
            rt["rollout"].call("reseed", 0).result()
            run_env_rollout_loop(rt["env"], rt["rollout"], steps=2, stage_num=stage_num)  # warm-up
            start = time.perf_counter()
            run_env_rollout_loop(rt["env"], rt["rollout"], steps=steps, stage_num=stage_num)
            rate = steps * envs / (time.perf_counter() - start)
            report = rt.report_throughput(rate) if auto else ""
        print(f"  measured {executor} {spec or ('auto' if auto else '')} stages={stage_num} {vectorization} env: "
              f"{rate:.0f} env calls/s", flush=True)
        if report:
            print("  " + report, flush=True)
        return rate

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        runs = [("inline", 1, measure("inline", {}, 1, 1))]
        inline_async = [("inline, async env", k, measure("inline", {}, 1, k, vectorization="async")) for k in (1, 2)]
        for k in (1, 2, 4):
            runs.append(("ray disaggregated", k, measure("ray", {"env": 0, "rollout": 1}, 2, k)))
        for k in (1, 2, 4):
            runs.append(("ray collocated", k, measure("ray", {"env,rollout": "all"}, 2, k)))
        auto_rate = measure("ray", {}, 2, 0, auto=True)
    finally:
        ray.shutdown()
    seq = runs[1][2]
    print(f"\n{name} on {sim}: {envs} envs x {steps} calls (K={MODELS[name]['num_action_chunks']} actions each)")
    print(f"{'executor':<20} {'stages':>6} {'env calls/s':>12} {'vs sequential':>14}")
    for label, k, rate in runs:
        print(f"{label:<20} {k:>6} {rate:>12.0f} {rate / seq:>13.2f}x")
    label = f"ray auto ({auto_choice.get('mode')})"
    print(f"{label:<20} {auto_choice.get('stage_num', 0):>6} {auto_rate:>12.0f} {auto_rate / seq:>13.2f}x")
    for label, k, rate in inline_async:
        print(f"{label:<20} {k:>6} {rate:>12.0f} {rate / seq:>13.2f}x")
    best = max(runs[1:], key=lambda r: r[2])  # what cluster.placement: auto chooses among (Ray placements, stages)
    print(f"fastest fixed placement: {best[0]} stages={best[1]}; auto reaches {auto_rate / best[2]:.2f}x its throughput")
    top = max(runs + inline_async, key=lambda r: r[2])
    print(f"fastest of all: {top[0]} stages={top[1]}, {top[2] / seq:.2f}x sequential")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--sizes", nargs="*", type=int, default=[1, 8, 32, 128],
                        help="batch sizes of the sampling benchmark; none: skip it")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pipeline", action="store_true", help="also measure pipelined env + rollout (Ray)")
    parser.add_argument("--envs", type=int, default=32)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--sim", choices=list(SIMS), default="instruction", help="the env of --pipeline")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    if args.sizes:
        batched_sampling(args.models, args.sizes, args.repeats)
    if args.pipeline:
        for name in args.models:
            pipeline(name, args.envs, args.steps, args.sim)


if __name__ == "__main__":
    main()
