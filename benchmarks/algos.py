"""GAE and GRPO advantages on a (4096, 1024) batch: rlinf_algos beside a per-token Python loop and veRL.

Run (sets up veRL's core_algos beside ours, then runs this script):
    .venv-nox/bin/nox -s bench_algos
or, in an environment with rlinf-algos (and optionally verl) installed:
    python benchmarks/algos.py [--batch 4096 --length 1024 --repeat 5]

Prints the median wall time of each and its ratio to ours (> 1: ours is faster). veRL's GAE
also whitens its advantages; the check compares against our GAE followed by
``normalize_advantages``, which the flows apply. GRPO is timed with contiguous groups
(``group_size``) and with shuffled per-row group ids (``index``), the form the flows pass.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from rlinf_algos import gae, grpo, normalize_advantages


def timed(fn, repeat: int) -> tuple[float, object]:
    out = fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def python_loop_gae(rewards: list, values: list, mask: list, gamma: float, lam: float) -> list:
    out = []
    for r_row, v_row, m_row in zip(rewards, values, mask, strict=True):
        adv = [0.0] * len(r_row)
        carry, next_v = 0.0, 0.0
        for t in range(len(r_row) - 1, -1, -1):
            if m_row[t]:
                carry = r_row[t] + gamma * next_v - v_row[t] + gamma * lam * carry
                adv[t] = carry
                next_v = v_row[t]
        out.append(adv)
    return out


def python_loop_grpo(scores: list, group_size: int, eps: float = 1e-6) -> list:
    out = []
    for g in range(0, len(scores), group_size):
        group = scores[g:g + group_size]
        mean = sum(group) / len(group)
        std = (sum((s - mean) ** 2 for s in group) / (len(group) - 1)) ** 0.5
        out += [(s - mean) / (std + eps) for s in group]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--length", type=int, default=1024)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    b, t, g = args.batch, args.length, args.group_size
    lengths = torch.randint(1, t + 1, (b,))
    mask = torch.arange(t).expand(b, t) < lengths[:, None]
    rewards = torch.randn(b, t) * mask
    values = torch.randn(b, t) * mask
    gamma, lam = 0.99, 0.95
    print(f"batch ({b}, {t}), group_size {g}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = []

    ours_gae, (adv, _) = timed(lambda: gae(rewards=rewards, values=values, mask=mask, gamma=gamma, gae_lambda=lam), args.repeat)
    rows.append(("gae", "rlinf_algos.gae", ours_gae, ours_gae))
    r_l, v_l, m_l = rewards.tolist(), values.tolist(), mask.tolist()
    start = time.perf_counter()
    ref = python_loop_gae(r_l, v_l, m_l, gamma, lam)
    rows.append(("gae", "per-token Python loop", time.perf_counter() - start, ours_gae))
    torch.testing.assert_close(adv, torch.tensor(ref), atol=1e-3, rtol=1e-4)

    scores = rewards.sum(-1)
    ours_grpo, (gadv, _) = timed(lambda: grpo(rewards=scores, mask=mask, group_size=g), args.repeat)
    rows.append(("grpo", "rlinf_algos.grpo", ours_grpo, ours_grpo))
    start = time.perf_counter()
    gref = torch.tensor(python_loop_grpo(scores.tolist(), g))
    rows.append(("grpo", "per-row Python loop", time.perf_counter() - start, ours_grpo))
    torch.testing.assert_close(gadv[:, 0], gref, atol=1e-4, rtol=1e-4)
    perm = torch.randperm(b)
    ids = torch.arange(b) // g
    ours_idx, (iadv, _) = timed(lambda: grpo(rewards=scores[perm], mask=mask[perm], index=ids[perm]), args.repeat)
    rows.append(("grpo", "rlinf_algos.grpo, shuffled rows, index=", ours_idx, ours_grpo))
    torch.testing.assert_close(iadv, gadv[perm])

    try:
        import numpy as np
        from verl.trainer.ppo import core_algos as verl
    except ImportError as exc:
        print(f"veRL not importable ({exc}); `.venv-nox/bin/nox -s bench_algos` installs it for this comparison")
    else:
        fmask = mask.float()
        verl_gae, (vadv, _) = timed(lambda: verl.compute_gae_advantage_return(rewards, values, fmask, gamma, lam), args.repeat)
        rows.append(("gae", "veRL compute_gae_advantage_return", verl_gae, ours_gae))
        torch.testing.assert_close(vadv * fmask, normalize_advantages(adv, mask), atol=1e-3, rtol=1e-3)
        token_rewards = torch.zeros(b, t)
        token_rewards[torch.arange(b), lengths - 1] = scores
        index = np.repeat(np.arange(b // g), g)
        verl_grpo, (vg, _) = timed(lambda: verl.compute_grpo_outcome_advantage(token_rewards, fmask, index), args.repeat)
        rows.append(("grpo", "veRL compute_grpo_outcome_advantage", verl_grpo, ours_grpo))
        torch.testing.assert_close(vg, gadv, atol=1e-4, rtol=1e-4)
        if hasattr(verl, "compute_grpo_vectorized_outcome_advantage"):
            verl_vec, _ = timed(lambda: verl.compute_grpo_vectorized_outcome_advantage(token_rewards, fmask, index), args.repeat)
            rows.append(("grpo", "veRL compute_grpo_vectorized_outcome_advantage", verl_vec, ours_grpo))

    print(f"{'quantity':<6} {'implementation':<48} {'median ms':>10} {'x ours':>8}")
    for quantity, name, seconds, ours in rows:
        print(f"{quantity:<6} {name:<48} {seconds * 1000:>10.1f} {seconds / ours:>8.2f}")


if __name__ == "__main__":
    main()
