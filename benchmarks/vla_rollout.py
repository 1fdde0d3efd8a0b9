"""Rollout throughput of the tiny VLAs (``openvla``, ``openvla_oft``, ``pi0``) on rlinf/InstructionTargets-v0.

1. Batched sampling: actions per second of ``policy.sample`` at several batch sizes (one env step's
   worth of actions per row: ``K`` actions for a chunk), with the ratio to batch size 1.
2. ``--pipeline``: the embodied flow's env and rollout workers (``run_env_rollout_loop``), env steps per
   second when env and policy are in separate Ray processes, sequential (``pipeline_stage_num`` 1)
   vs pipelined (2 and 4 micro-batches), as a ratio to the sequential run; and the inline run.

    python benchmarks/vla_rollout.py                      # needs rlinf-envs-embodied[vla]
    python benchmarks/vla_rollout.py --pipeline --models openvla_oft   # also needs rlinf-core[ray]

Timings on a shared machine are inflated by the load: compare the ratios, not the absolute numbers.
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


def pipeline(name: str, envs: int, steps: int) -> None:
    import ray
    import torch
    from rlinf_core import get_plugins
    from rlinf_core.config import load_config
    from rlinf_core.flows.embodied_workers import EmbodiedEnvWorker, PolicyRolloutWorker
    from rlinf_core.runtime import Runtime, WorkerSpec
    from rlinf_core.runtime.pipeline import run_env_rollout_loop

    torch.set_num_threads(1)
    overrides = {"runner": {"task_type": "embodied"}, "actor": {"model": model_section(name)},
                 "env": {"train": {"simulator_type": "gymnasium", "env_id": ENV_ID, "total_num_envs": envs,
                                   "max_episode_steps": 12, "seed": 0}}}
    from omegaconf import OmegaConf

    container = OmegaConf.to_container(load_config(overrides), resolve=True)

    def measure(executor: str, spec: dict, devices: int, stage_num: int) -> float:
        cluster = SimpleNamespace(executor=executor, component_placement=spec, placement=None, num_nodes=1,
                                  num_devices_per_node=devices, ray_address=None)
        workers = {"env": WorkerSpec(EmbodiedEnvWorker, (container, "train", "continue")),
                   "rollout": WorkerSpec(PolicyRolloutWorker, (container,))}
        with Runtime(cluster, get_plugins(), workers) as rt:
            rt["env"].call("setup", stage_num).result()
            spaces = rt["env"].call("spaces", ranks=[0]).result()[0]
            rt["rollout"].call("build", *spaces).result()
            rt["rollout"].call("reseed", 0).result()
            run_env_rollout_loop(rt["env"], rt["rollout"], steps=2, stage_num=stage_num)  # warm-up
            start = time.perf_counter()
            run_env_rollout_loop(rt["env"], rt["rollout"], steps=steps, stage_num=stage_num)
            rate = steps * envs / (time.perf_counter() - start)
        print(f"  measured {executor} {spec or ''} stages={stage_num}: {rate:.0f} env calls/s", flush=True)
        return rate

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        runs = [("inline", 1, measure("inline", {}, 1, 1))]
        for k in (1, 2, 4):
            runs.append(("ray disaggregated", k, measure("ray", {"env": 0, "rollout": 1}, 2, k)))
    finally:
        ray.shutdown()
    seq = runs[1][2]
    print(f"\n{name}: {envs} envs x {steps} calls (K={MODELS[name]['num_action_chunks']} actions each)")
    print(f"{'executor':<20} {'stages':>6} {'env calls/s':>12} {'vs sequential':>14}")
    for label, k, rate in runs:
        print(f"{label:<20} {k:>6} {rate:>12.0f} {rate / seq:>13.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[1, 8, 32, 128])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pipeline", action="store_true", help="also measure pipelined env + rollout (Ray)")
    parser.add_argument("--envs", type=int, default=32)
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    batched_sampling(args.models, args.sizes, args.repeats)
    if args.pipeline:
        for name in args.models:
            pipeline(name, args.envs, args.steps)


if __name__ == "__main__":
    main()
