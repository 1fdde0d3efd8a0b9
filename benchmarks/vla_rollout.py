"""Rollout throughput of the tiny VLAs (``openvla``, ``openvla_oft``, ``pi0``) on rlinf/InstructionTargets-v0,
and of the real-size OpenVLA-OFT.

1. Batched sampling: actions per second of ``policy.sample`` at several batch sizes (one env step's
   worth of actions per row: ``K`` actions for a chunk), with the ratio to batch size 1.
   ``--real-size``: the same for ``openvla_oft`` at the published OpenVLA(-OFT) 7B architecture
   (``actor.model.config.architecture: openvla_7b``, :func:`rlinf_envs_embodied.vla.prismatic.openvla_7b_config`:
   DINOv2 ViT-L/14 + SigLIP so400m/14 at 224 px, fused MLP projector, Llama-2 7B) with random weights, made
   directly on ``--device`` in ``--dtype``, in OpenVLA-OFT's LIBERO setting (:data:`LIBERO`: two 224 px
   cameras, 8-D proprio, 7-D actions in chunks of 8) on random observations; it prints the parameter count,
   and per batch size the time of one ``sample`` call, actions/s and the peak device memory. Without a GPU the
   device defaults to ``meta``: the model is built (no memory) and counted, nothing is timed. With no Llama-2
   tokenizer offline, prompts are cut into words and punctuation (30 tokens for :data:`LIBERO`'s, about 35 with
   Llama-2's), beside 2 x 256 patch tokens, the proprio token and 56 action tokens.
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
    python benchmarks/vla_rollout.py --real-size --sizes 1 8 32 128   # a GPU with 20+ GB; --device, --dtype bf16

No GPU was available when ``--real-size`` was written, so it has no measured numbers yet. It ran here on the
``meta`` device (build and count: 7,526,000,880 parameters in the VLA, 7,542,819,056 with OFT's proprio projector;
``tests/envs_embodied/vla/test_vla_real_size.py``), and, to try its sampling path, on the CPU with the real widths
but 1 language-model layer and 2 layers per vision tower (a local override of ``prismatic.ARCHITECTURES``, bf16 and
fp32): ``sample`` ran, and ``evaluate`` re-scored its actions to the same log-probs.

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

The inline rows now run first, before Ray starts, because Ray's newly started worker processes take CPU.
``--inline-only`` skips Ray, and ``auto`` under the inline executor is measured too. Measured 2026-12-03 with
``--pipeline --inline-only --models openvla_oft --sim metaworld --sizes --envs 8 --steps 10``, in env calls/s:

- sync env: 6.0 / 6.3 / 5.5 at 1 / 2 / 4 stages;
- async env: 12.2 / 8.0 / 7.3 at 1 / 2 / 4 stages;
- ``auto``: 6.4 with the sync env and 8.3 with the async env, choosing 1 stage both times.

Those rows depended on their order in the process (12.2 for async at 1 stage when it ran first among the async
rows, 8.3 when it ran last), and ``auto``'s profile once predicted 300+ env calls/s. The cause, found 2026-12-04:
gymnasium's MuJoCo renderer makes its OpenGL context current only when it creates it, so once an env in the
process had been closed (an earlier row's), the living envs' frames came back blank, fast and without an error.
Meta-World's sub-envs now make their own context current before each frame, and free MuJoCo's render context
in their own context when closed (the garbage collector freed it in whichever was current: the close fix).
Measured after the first fix (same command, quiet machine; the ``auto`` rows, run last, now agree with the fixed
rows), in env calls/s:

- sync env: 6.5 / 6.5 / 6.6 at 1 / 2 / 4 stages (each step renders 8 frames in one process; stages cannot help);
- async env: 8.7 / 8.4 / 8.1 at 1 / 2 / 4 stages (1.35x the sync env);
- ``auto`` (under the inline executor the cost model counts one device: one call at a time): 1 stage with both,
  6.4 (0.96x the fastest stage count) and 8.6 (0.99x); predictions 0.91x and 0.90x of measured.

Again after the close fix, on a host running slower and drifting (the ppo_vs_sb3 runs of that day slowed the
same way): sync 5.4 / 5.5 / 4.6, async 7.5 / 7.2 / 5.6; ``auto`` chose 1 stage with both, the fastest fixed
configuration with the async env, yet measured it at 6.3 against the fixed row's 7.5 (0.83x; the same
configuration, timed minutes apart); predictions 1.04x and 0.86x of measured.

Session 9's 2.42x for the async env at 2 stages (rows run after others in one process) does not hold: 2 stages are
no faster than 1 now. The frames cost most of a step here: each Meta-World frame renders a 4096 px
shadow map in software (``init_params.shadow_size`` lowers it).
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

ENV_ID = "rlinf_envs_embodied.envs.instruction_targets:rlinf/InstructionTargets-v0"
#: OpenVLA-OFT's LIBERO setting (its published LIBERO checkpoints): a third-person and a wrist camera at 224 px,
#: 8-D proprio (end-effector position 3, axis-angle 3, gripper 2), 7-D actions in chunks of 8.
LIBERO = {"cameras": ("agentview", "wrist"), "image_size": 224, "state_dim": 8, "action_dim": 7, "num_action_chunks": 8,
          "instruction": "pick up the black bowl between the plate and the ramekin and place it on the plate"}
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


def real_size_section(precision: str = "bf16") -> dict:
    """``actor.model`` of the real-size OpenVLA-OFT: random weights at the published 7B architecture, LIBERO's
    chunk of 8 with the proprio projector, no value head (as RLinf's OFT GRPO recipes)."""
    return {"model_type": "openvla_oft", "precision": precision, "num_action_chunks": LIBERO["num_action_chunks"],
            "add_value_head": False, "config": {"architecture": "openvla_7b", "use_proprio": True}}


def libero_spaces(cameras: int = 2) -> tuple:
    """Observation and action spaces of :data:`LIBERO` with its first ``cameras`` cameras."""
    import numpy as np
    from gymnasium import spaces

    side = LIBERO["image_size"]
    images = spaces.Dict({c: spaces.Box(0, 255, (side, side, 3), np.uint8) for c in LIBERO["cameras"][:cameras]})
    state = spaces.Box(-np.inf, np.inf, (LIBERO["state_dim"],), np.float32)
    return spaces.Dict({"images": images, "state": state}), spaces.Box(-1.0, 1.0, (LIBERO["action_dim"],), np.float32)


def libero_obs(n: int, cameras: int = 2, seed: int = 0) -> dict:
    """``n`` random observations of :func:`libero_spaces` (uint8 images, states, the instruction), on the host."""
    import numpy as np

    rng = np.random.default_rng(seed)
    side = LIBERO["image_size"]
    return {"images": {c: rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8) for c in LIBERO["cameras"][:cameras]},
            "state": rng.standard_normal((n, LIBERO["state_dim"])).astype(np.float32),
            "instruction": [LIBERO["instruction"]] * n}


def build_real_size(device: str, precision: str = "bf16", cameras: int = 2):
    """The ``openvla_oft`` plugin at the real size, its weights made on ``device`` in ``precision`` (never a
    float32 copy on the host; ``meta``: no memory at all)."""
    import torch
    from rlinf_core.plugins import get_plugins

    obs_space, action_space = libero_spaces(cameras)
    cls = get_plugins().registries.load("model", "openvla_oft")
    torch.manual_seed(0)
    with torch.device(device):
        policy = cls(real_size_section(precision), observation_space=obs_space, action_space=action_space)
    return policy.eval()


def _synchronize(device: str) -> None:
    import torch

    module = getattr(torch, torch.device(device).type, None)
    if module is not None and hasattr(module, "synchronize"):
        module.synchronize()


def real_size_sampling(sizes: list[int], repeats: int, device: str, precision: str, cameras: int = 2) -> None:
    """Batched ``sample`` of the real-size OpenVLA-OFT (see the module docstring): one line per batch size."""
    import torch

    start = time.perf_counter()
    policy = build_real_size(device, precision, cameras)
    _synchronize(device)
    params = sum(p.numel() for p in policy.parameters())
    print(f"openvla_oft real size: {params:,} parameters ({params / 1e9:.2f}e9), {precision} on {device}, "
          f"{cameras} camera(s), K={policy.num_chunks} x D={policy.action_dim}; built in {time.perf_counter() - start:.1f} s",
          flush=True)
    if torch.device(device).type == "meta":
        print("meta device: built and counted only, nothing to time (pass --device cuda on a GPU machine)")
        return
    cuda = torch.device(device).type == "cuda"
    base = None
    for n in sizes:
        obs = libero_obs(n, cameras, seed=n)
        try:
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            for _ in range(2):  # warm-up (kernel selection, allocator)
                policy.sample(obs)
            _synchronize(device)
            begin = time.perf_counter()
            for _ in range(repeats):
                sample = policy.sample(obs)
            _synchronize(device)
        except torch.OutOfMemoryError:
            print(f"openvla_oft-7b batch {n:>4}: out of memory on {device}; larger batches skipped", flush=True)
            break
        elapsed = (time.perf_counter() - begin) / repeats
        rate = sample.actions.shape[0] * sample.actions.shape[1] / elapsed
        base = base or rate
        memory = f", peak memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB" if cuda else ""
        print(f"openvla_oft-7b batch {n:>4}: {elapsed * 1e3:8.1f} ms per sample, {rate:8.1f} actions/s "
              f"({rate / base:.2f}x batch 1){memory}", flush=True)


#: ``env.train`` of each ``--sim``; the VLA reads the first camera of the env's ``images``.
SIMS = {
    "instruction": {"simulator_type": "gymnasium", "env_id": ENV_ID, "max_episode_steps": 12},
    "metaworld": {"simulator_type": "metaworld", "env_id": "reach-v3", "max_episode_steps": 50,
                  "init_params": {"images": True, "camera_heights": 32, "camera_widths": 32}},
}


def pipeline(name: str, envs: int, steps: int, sim: str = "instruction", with_ray: bool = True) -> None:
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
        planner = AutoPlacement(partial(profile_stages, config), num_envs=envs, stage_nums=(1, 2, 4),
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

    # inline first, before Ray starts (its freshly started worker processes take CPU for a while): each env
    # vectorization at each stage count, then auto (under the inline executor its cost model counts one device)
    inline = {(vec, k): measure("inline", {}, 1, k, vectorization=vec) for vec in ("sync", "async") for k in (1, 2, 4)}
    inline_auto = {}
    for vec in ("sync", "async"):
        rate = measure("inline", {}, 1, 0, auto=True, vectorization=vec)
        inline_auto[vec] = (auto_choice["stage_num"], rate)
    if not with_ray:
        ray_runs, auto_rate = [], None
    else:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            ray_runs = [("ray disaggregated", k, measure("ray", {"env": 0, "rollout": 1}, 2, k)) for k in (1, 2, 4)]
            ray_runs += [("ray collocated", k, measure("ray", {"env,rollout": "all"}, 2, k)) for k in (1, 2, 4)]
            auto_rate = measure("ray", {}, 2, 0, auto=True)
        finally:
            ray.shutdown()
    seq = inline[("sync", 1)]
    print(f"\n{name} on {sim}: {envs} envs x {steps} calls (K={MODELS[name]['num_action_chunks']} actions each)")
    print(f"{'executor':<26} {'stages':>6} {'env calls/s':>12} {'vs inline sequential':>21}")
    rows = [(f"inline, {vec} env", k, rate) for (vec, k), rate in inline.items()]
    rows += [(f"inline auto, {vec} env", k, rate) for vec, (k, rate) in inline_auto.items()]
    rows += ray_runs
    if auto_rate is not None:
        rows.append((f"ray auto ({auto_choice.get('mode')})", auto_choice.get("stage_num", 0), auto_rate))
    for label, k, rate in rows:
        print(f"{label:<26} {k:>6} {rate:>12.1f} {rate / seq:>20.2f}x")
    for vec, (k, rate) in inline_auto.items():
        best = max((r, kk) for (v, kk), r in inline.items() if v == vec)
        print(f"inline, {vec} env: auto chose {k} stages, {rate / best[0]:.2f}x the fastest fixed stage count ({best[1]})")
    if ray_runs:
        best = max(ray_runs, key=lambda r: r[2])  # what cluster.placement: auto chooses among under Ray
        print(f"ray: fastest fixed placement {best[0]} stages={best[1]}; auto reaches {auto_rate / best[2]:.2f}x its throughput")
    top = max(rows, key=lambda r: r[2])
    print(f"fastest of all: {top[0]} stages={top[1]}, {top[2] / seq:.2f}x inline sequential")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--sizes", nargs="*", type=int, default=[1, 8, 32, 128],
                        help="batch sizes of the sampling benchmark; none: skip it")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pipeline", action="store_true", help="also measure pipelined env + rollout (Ray)")
    parser.add_argument("--inline-only", action="store_true", help="--pipeline: the inline executor's rows only (no Ray)")
    parser.add_argument("--envs", type=int, default=32)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--sim", choices=list(SIMS), default="instruction", help="the env of --pipeline")
    parser.add_argument("--real-size", action="store_true",
                        help="sample with the real-size OpenVLA-OFT (7B, random weights) instead of the tiny VLAs")
    parser.add_argument("--device", default=None,
                        help="--real-size: where the model is built and run; default cuda when available, else meta "
                             "(build and count only)")
    parser.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"], help="--real-size: the weights' dtype")
    parser.add_argument("--cameras", type=int, default=2, choices=[1, 2],
                        help="--real-size: LIBERO cameras fed to the model (OFT's LIBERO checkpoints: 2)")
    args = parser.parse_args()
    import torch

    if args.real_size:
        device = args.device or ("cuda" if torch.cuda.is_available() else "meta")
        if args.sizes:
            real_size_sampling(args.sizes, args.repeats, device, args.dtype, args.cameras)
    else:
        torch.set_num_threads(1)
        if args.sizes:
            batched_sampling(args.models, args.sizes, args.repeats)
    if args.pipeline:
        for name in args.models:
            pipeline(name, args.envs, args.steps, args.sim, with_ray=not args.inline_only)


if __name__ == "__main__":
    main()
