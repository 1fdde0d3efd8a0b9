"""GRPO on the CPU quickstart task: rlinf's reasoning flow against TRL's ``GRPOTrainer``, in one run.

Run in the venv of ``nox -s bench_trl`` (rlinf + trl, CPU torch):
    .venv-nox/bin/nox -s bench_trl -- [--steps 300 --seeds 1,2,3]
    .nox/bench_trl/bin/python benchmarks/grpo_vs_trl.py --steps 300 --seeds 1,2,3

Both sides get, per seed, the same starting weights, prompts, reward and hyper-parameters, all read
from ``examples/reasoning/quickstart_cpu.yaml``:

- the model: the tiny Qwen2 that config describes (``rlinf_backends_fsdp.tiny``, seeded), given the
  quickstart's format warm start here, once, by a plain supervised loop on random two-digit
  targets (never a prompt's true sum), then saved; both trainers load that directory;
- the prompts: the ``data.arithmetic`` task (``rlinf_core.data.ArithmeticTask``), ``rollout_batch_size``
  prompts a step, ``group_size`` samples each, temperature / ``max_new_tokens`` as configured;
- the reward: rlinf's ``exact_match`` component (TRL calls it as its reward function);
- the update: one on-policy step per batch, PPO clip ``ratio_clip_eps``, token-mean loss over the
  batch (TRL: ``loss_type="dapo"``), group-std-normalised advantages (``scale_rewards="group"``),
  no KL (``beta=0``), AdamW with the config's lr / betas / clip and its lr schedule; no entropy bonus
  (TRL's GRPOTrainer has none: the benchmark sets the quickstart's ``algorithm.entropy_bonus`` to 0).

The RL phase starts a fresh AdamW on each side (the quickstart's flow instead keeps the optimizer
state of its warm start), so both get a short linear lr warm-up (``--lr-warmup-fraction``, default
0.05): a fresh Adam's first steps are lr-sized whatever the gradient, and without the warm-up 2 of 3
seeds lost the answer format on both sides (measured, 300 steps: final reward 0.08-0.14).

Each side runs in a fresh process of its own (spawned), so that its peak memory is its own. Reported
per side: completions per second (responses generated in the timed call, divided by its wall time:
generation, reward, training and weight sync included; rlinf's call also starts its workers), the same
per second of the process's CPU time (less sensitive to other processes on a shared machine: each side
runs one torch thread), the mean training reward of the last fifth of the steps, the same at equal wall
time (the last fifth of the steps each side had finished when the faster one ended; rlinf's start-up is
counted before its first step), and the peak RSS of the side's process (``ru_maxrss``: imports, model,
optimizer and the run). Seeds alternate rlinf / TRL so that a change of machine load hits both. One
torch thread each (``--threads``).

Measured 2026-11-28 (the 2-core dev machine shared with other jobs, load average 4-9; trl 1.16.0,
torch 2.13.0+cpu; ``--steps 300 --seeds 1,2,3``): rlinf 1519 completions/s (1780 per CPU second), TRL
1144 (1374): 1.33x wall, 1.30x per CPU second; final reward 0.557 vs 0.529 (per seed 0.58 / 0.52 /
0.58 vs 0.37 / 0.45 / 0.77). Below the goal of 1.5x at equal reward: about 70% of rlinf's step is the
actor update (forward + backward of 512 rows), 25% generation.

Measured 2026-12-03, after the fsdp backend forwards each distinct prompt of a GRPO group once (its KV
cache shared by the group's rows; the huggingface engine likewise prefills it once) and computes the
entropy metric without gradient (same machine, load average 4-5, same versions and command): rlinf 1529
completions/s (4188 per CPU second), TRL 454 (1324): 3.37x wall, 3.16x per CPU second; final reward
0.636 vs 0.556 (per seed 0.76 / 0.55 / 0.60 vs 0.48 / 0.45 / 0.74). The actor's ``train_step`` on a
quickstart-shaped batch (512 rows, 32 prompts): 0.206 -> 0.070 CPU seconds.

Measured 2026-12-03, each side in its own process (same command; a quieter machine, load average 1-2, a
quickstart sweep on the other core): rlinf 4454 completions/s (4481 per CPU second), TRL 1552 (1592): 2.87x
wall, 2.81x per CPU second (TRL's rate is higher than above, rlinf's lower: the earlier run was under heavier
load); final reward 0.636 vs 0.556 (the same per-seed values as above: both sides are deterministic); reward at
equal wall time 0.636 vs 0.133 (when rlinf had finished its 300 steps, TRL was about 100 steps in); peak RSS
660 vs 756 MiB.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "examples" / "reasoning" / "quickstart_cpu.yaml"
#: The quickstart's keys that model and model building read (``_materialize_model``'s names).
ARCH_KEYS = {"hidden_size": "hidden_size", "num_hidden_layers": "num_layers", "num_attention_heads": "num_heads",
             "num_key_value_heads": "num_kv_heads", "intermediate_size": "intermediate_size",
             "max_position_embeddings": "max_position_embeddings", "tie_word_embeddings": "tie_word_embeddings"}


def load(config_path: Path, steps: int, seed: int, overrides: list[str]):
    from rlinf_core.config import load_config, validate_config
    from rlinf_core.plugins import get_plugins

    plugins = get_plugins()
    cfg = load_config(config_path, [f"runner.max_steps={steps}", f"runner.seed={seed}", f"actor.seed={seed}",
                                    f"data.seed={seed}", "runner.save_interval=-1", *overrides], plugins=plugins)
    validate_config(cfg, plugins)
    return cfg, plugins


def warm_started_model(cfg: Any, target: Path) -> Path:
    """The quickstart's tiny model after its format warm start (``data.arithmetic.format_warmup_steps``
    supervised steps on random answers of the right width + EOS), saved to ``target``."""
    import torch
    from rlinf_backends_fsdp.tiny import save_tiny_model
    from rlinf_core.data import ArithmeticTask
    from transformers import AutoModelForCausalLM, AutoTokenizer

    task = ArithmeticTask.from_config(cfg.data.arithmetic)
    arch = {ARCH_KEYS[k]: v for k, v in dict(cfg.actor.model.config).items() if k in ARCH_KEYS}
    save_tiny_model(target, vocab=task.alphabet, seed=int(cfg.actor.seed), **arch)
    tok = AutoTokenizer.from_pretrained(target)
    model = AutoModelForCausalLM.from_pretrained(target)
    o = cfg.actor.optim
    opt = torch.optim.AdamW(model.parameters(), lr=float(o.lr), betas=(float(o.adam_beta1), float(o.adam_beta2)),
                            eps=float(o.adam_eps), weight_decay=float(o.weight_decay))
    rng = random.Random(int(cfg.runner.seed) * 31337)
    records, _ = task.splits()
    rows = int(cfg.data.rollout_batch_size) * int(cfg.algorithm.group_size)
    for _ in range(int(cfg.data.arithmetic.format_warmup_steps)):
        prompts = [tok(rng.choice(records).prompt, add_special_tokens=False)["input_ids"] for _ in range(rows)]
        answers = [tok(a, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
                   for a in task.format_only_answers(rows, rng)]
        width = max(len(p) + len(a) for p, a in zip(prompts, answers, strict=True))
        ids = torch.full((rows, width), tok.pad_token_id)
        labels = torch.full((rows, width), -100)
        mask = torch.zeros((rows, width), dtype=torch.long)
        for i, (p, a) in enumerate(zip(prompts, answers, strict=True)):
            start = width - len(p) - len(a)  # left padding, as at generation
            ids[i, start:] = torch.tensor(p + a)
            mask[i, start:] = 1
            labels[i, width - len(a):] = torch.tensor(a)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), float(o.clip_grad))
        opt.step()
    model.save_pretrained(target)
    return target


def run_rlinf(cfg: Any, plugins: Any, model_dir: Path, run_root: Path) -> dict[str, Any]:
    from omegaconf import OmegaConf
    from rlinf_core.flows.reasoning import ReasoningFlow

    cfg = OmegaConf.merge(cfg, {"actor": {"model": {"model_path": str(model_dir)}},
                                "data": {"arithmetic": {"format_warmup_steps": 0}},
                                "runner": {"logger": {"log_path": str(run_root), "logger_backends": []}}})
    run_dir = run_root / str(cfg.runner.logger.experiment_name)
    flow = ReasoningFlow(cfg, plugins=plugins, run_dir=run_dir)
    rss_start = _rss_mb()
    start, cpu = time.perf_counter(), time.process_time()
    flow.train()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "reward/mean" in r]
    rewards = [r["reward/mean"] for r in rows]
    # step end times: the steps' own durations, all other time of the call (worker start-up) counted up front
    step_s = [float(r["time/step_s"]) for r in rows]
    elapsed, t = [], wall - sum(step_s)
    for d in step_s:
        t += d
        elapsed.append(t)
    completions = len(rewards) * int(cfg.data.rollout_batch_size) * int(cfg.algorithm.group_size)
    return {"wall_s": wall, "cpu_s": cpu, "completions": completions, "rewards": rewards, "elapsed_s": elapsed,
            "rss_start_mb": rss_start}


def trl_config(cfg: Any, out_dir: Path, seed: int):
    from trl import GRPOConfig

    a, o, sched, sp = cfg.algorithm, cfg.actor.optim, cfg.actor.lr_sched, cfg.algorithm.sampling_params
    if a.adv_type != "grpo" or a.loss_agg_func != "token-mean" or float(a.kl_beta) or int(a.update_epoch) != 1 \
            or int(a.n_minibatches) != 1 or a.dynamic_sampling or float(a.entropy_bonus):
        raise SystemExit("grpo_vs_trl: the config must be plain GRPO (adv_type grpo, token-mean, no KL, no entropy "
                         "bonus, one update of one mini-batch, no dynamic sampling) for an equivalent TRL config")
    style = str(sched.lr_decay_style)
    scheduler = {"constant": ("constant", {}), "cosine": ("cosine_with_min_lr", {"min_lr": float(sched.min_lr)}),
                 "linear": ("linear", {})}[style]
    if style == "constant" and float(sched.lr_warmup_fraction):
        scheduler = ("constant_with_warmup", {})
    rows = int(cfg.data.rollout_batch_size) * int(a.group_size)
    return GRPOConfig(
        output_dir=str(out_dir), use_cpu=True, bf16=False, fp16=False, report_to=[], save_strategy="no",
        logging_steps=1, disable_tqdm=True, dataloader_num_workers=0, seed=seed, data_seed=seed,
        max_steps=int(cfg.runner.max_steps), per_device_train_batch_size=rows, gradient_accumulation_steps=1,
        steps_per_generation=1, num_generations=int(a.group_size), num_iterations=1, shuffle_dataset=True,
        max_completion_length=int(sp.max_new_tokens), temperature=float(sp.temperature), top_p=float(sp.top_p),
        top_k=max(0, int(sp.top_k)), use_vllm=False, beta=0.0, epsilon=float(a.ratio_clip_eps),
        loss_type="dapo", scale_rewards="group" if a.norm_by_std else "none", mask_truncated_completions=False,
        learning_rate=float(o.lr), adam_beta1=float(o.adam_beta1), adam_beta2=float(o.adam_beta2),
        adam_epsilon=float(o.adam_eps), weight_decay=float(o.weight_decay), max_grad_norm=float(o.clip_grad),
        optim="adamw_torch", lr_scheduler_type=scheduler[0], lr_scheduler_kwargs=scheduler[1],
        warmup_steps=int(float(sched.lr_warmup_fraction) * int(cfg.runner.max_steps)),
    )


def run_trl(cfg: Any, model_dir: Path, out_dir: Path, seed: int) -> dict[str, Any]:
    from datasets import Dataset
    from rlinf_core.data import ArithmeticTask
    from rlinf_core.plugins import get_plugins
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import GRPOTrainer

    reward = get_plugins().registries.load("reward", cfg.reward.reward_type)
    scale = float(cfg.reward.reward_scale)

    def exact_match(completions: list[str], answer: list[str], **_: Any) -> list[float]:
        return [float(s) * scale for s in reward(list(completions), list(answer))]

    records, _ = ArithmeticTask.from_config(cfg.data.arithmetic).splits()
    data = Dataset.from_list([{"prompt": r.prompt, "answer": r.answer} for r in records])
    trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir), reward_funcs=exact_match,
                          args=trl_config(cfg, out_dir, seed), train_dataset=data,
                          processing_class=AutoTokenizer.from_pretrained(model_dir))
    trainer.remove_callback(PrinterCallback)  # no per-step print (rlinf's side logs to its metrics file only)
    elapsed: list[float] = []

    class StepClock(TrainerCallback):
        def on_step_end(self, *_: Any, **__: Any) -> None:
            elapsed.append(time.perf_counter() - start)

    trainer.add_callback(StepClock())
    rss_start = _rss_mb()
    start, cpu = time.perf_counter(), time.process_time()
    trainer.train()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    completions = len(rewards) * int(cfg.data.rollout_batch_size) * int(cfg.algorithm.group_size)
    return {"wall_s": wall, "cpu_s": cpu, "completions": completions, "rewards": rewards, "elapsed_s": elapsed,
            "rss_start_mb": rss_start}


def _rss_mb() -> float:
    """Resident memory of this process now (MiB), from /proc (Linux); 0 elsewhere."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def reward_by(run: dict[str, Any], seconds: float) -> float:
    """Mean training reward of the last fifth of the steps (by count) that ``run`` finished within ``seconds``."""
    done = sum(1 for t in run["elapsed_s"] if t <= seconds)
    window = run["rewards"][max(0, done - max(1, len(run["rewards"]) // 5)):done]
    return statistics.fmean(window) if window else float("nan")


def summarize(runs: list[dict[str, Any]], budgets: list[float]) -> dict[str, Any]:
    """Per side; ``budgets[i]``: seed i's shorter wall time of the two sides (the reward at equal wall time)."""
    tail = [statistics.fmean(r["rewards"][-max(1, len(r["rewards"]) // 5):]) for r in runs]
    at_budget = [reward_by(r, b) for r, b in zip(runs, budgets, strict=True)]
    return {"completions_per_s": statistics.fmean(r["completions"] / r["wall_s"] for r in runs),
            "completions_per_cpu_s": statistics.fmean(r["completions"] / r["cpu_s"] for r in runs),
            "final_reward": statistics.fmean(tail), "final_reward_per_seed": tail,
            "reward_at_equal_wall": statistics.fmean(at_budget), "reward_at_equal_wall_per_seed": at_budget,
            "first_reward": statistics.fmean(statistics.fmean(r["rewards"][:5]) for r in runs),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "start_rss_mb": max(r["rss_start_mb"] for r in runs),
            "wall_s_per_seed": [r["wall_s"] for r in runs], "cpu_s_per_seed": [r["cpu_s"] for r in runs]}


def run_side(side: str, config: Path, steps: int, seed: int, overrides: list[str], model_dir: Path, out: Path,
             threads: int) -> dict[str, Any]:
    """One side's run, in the fresh process this is called in (see ``in_child``): its peak RSS is its own."""
    import resource

    import torch

    torch.set_num_threads(threads)
    cfg, plugins = load(config, steps, seed, overrides)
    result = run_rlinf(cfg, plugins, model_dir, out) if side == "rlinf" else run_trl(cfg, model_dir, out, seed)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return result


def in_child(*args: Any) -> dict[str, Any]:
    """``run_side(*args)`` in a new spawned process: each side's memory is measured apart from the other's."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(run_side, *args).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=QUICKSTART)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated; final reward is their mean")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (both sides)")
    parser.add_argument("--lr-warmup-fraction", type=float, default=0.05,
                        help="linear lr warm-up of the RL phase, both sides (see the module docstring)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides (both sides)")
    args = parser.parse_args()

    import logging

    import torch
    import trl

    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    ours, theirs = [], []
    with tempfile.TemporaryDirectory(prefix="grpo_vs_trl_") as tmp:
        root = Path(tmp)
        for seed in seeds:
            # TRL's GRPOTrainer has no entropy bonus: both sides run plain GRPO (the quickstart adds one)
            overrides = [f"actor.lr_sched.lr_warmup_fraction={args.lr_warmup_fraction}", "algorithm.entropy_bonus=0",
                         *args.overrides]
            cfg, _ = load(args.config, args.steps, seed, overrides)
            model_dir = warm_started_model(cfg, root / f"model_{seed}")
            common = (args.config, args.steps, seed, overrides)
            ours.append(in_child("rlinf", *common, model_dir, root / f"rlinf_{seed}", args.threads))
            print(f"seed {seed} rlinf: {ours[-1]['completions'] / ours[-1]['wall_s']:.0f} completions/s "
                  f"({ours[-1]['completions'] / ours[-1]['cpu_s']:.0f} per CPU s), "
                  f"last-fifth reward {statistics.fmean(ours[-1]['rewards'][-max(1, args.steps // 5):]):.3f}", flush=True)
            theirs.append(in_child("trl", *common, model_dir, root / f"trl_{seed}", args.threads))
            print(f"seed {seed} TRL:   {theirs[-1]['completions'] / theirs[-1]['wall_s']:.0f} completions/s "
                  f"({theirs[-1]['completions'] / theirs[-1]['cpu_s']:.0f} per CPU s), "
                  f"last-fifth reward {statistics.fmean(theirs[-1]['rewards'][-max(1, args.steps // 5):]):.3f}", flush=True)
    budgets = [min(a["wall_s"], b["wall_s"]) for a, b in zip(ours, theirs, strict=True)]
    result = {"steps": args.steps, "seeds": seeds, "config": str(args.config), "overrides": args.overrides,
              "lr_warmup_fraction": args.lr_warmup_fraction,
              "torch": torch.__version__, "trl": trl.__version__, "threads": args.threads,
              "rlinf": summarize(ours, budgets), "trl_grpo": summarize(theirs, budgets)}
    r, t = result["rlinf"], result["trl_grpo"]
    result["speedup"] = r["completions_per_s"] / t["completions_per_s"]
    result["speedup_cpu"] = r["completions_per_cpu_s"] / t["completions_per_cpu_s"]
    result["reward_delta"] = r["final_reward"] - t["final_reward"]
    print(f"\n{'':8}{'completions/s':>15}{'per CPU s':>11}{'first reward':>14}{'final reward':>14}"
          f"{'at equal wall':>15}{'peak RSS MiB':>14}   (mean of seeds {args.seeds}, {args.steps} steps; final = last "
          "fifth; at equal wall = last fifth of the steps done when the faster side finished)")
    for name, s in (("rlinf", r), ("TRL", t)):
        print(f"{name:8}{s['completions_per_s']:>15.1f}{s['completions_per_cpu_s']:>11.1f}{s['first_reward']:>14.3f}"
              f"{s['final_reward']:>14.3f}{s['reward_at_equal_wall']:>15.3f}{s['peak_rss_mb']:>14.0f}")
    print(f"rlinf / TRL completions/s: {result['speedup']:.2f}x wall, {result['speedup_cpu']:.2f}x per CPU second; "
          f"final reward rlinf - TRL: {result['reward_delta']:+.3f}; peak RSS {r['peak_rss_mb']:.0f} vs "
          f"{t['peak_rss_mb']:.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    sys.exit(main())
