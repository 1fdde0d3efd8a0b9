"""Training throughput of the megatron backend against the fsdp backend on the CPU, one process.

Same tiny Qwen2, same batches, same loss (token-mean policy gradient with entropy), same AdamW
settings; steps alternate between the two backends (both see the same machine load). Prints the
training tokens/s of each (tokens of a step over its median wall time) and the ratio megatron / fsdp
(> 1: megatron is faster).

This is a CPU measurement at world size 1: it shows the per-step overhead of megatron-core's
machinery (pipeline schedule, DDP buffers, vocab-parallel cross entropy, CUDA calls redirected by
the test shim) beside a plain Hugging Face model; it says nothing about GPU speed or parallel scaling.

Run (megatron-core installed: ``pip install -c constraints.txt -e './rlinf-backends-megatron[megatron]'``):
    python benchmarks/megatron_vs_fsdp.py [--rows 32 --prompt 16 --response 16 --hidden 128 --layers 2 --steps 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "backends_megatron"))


def make_batch(rows: int, prompt: int, response: int, vocab: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (rows, prompt + response), generator=g)
    mask = torch.ones(rows, response, dtype=torch.long)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "response_mask": mask,
            "advantages": torch.randn(rows, response, generator=g), "old_log_probs": torch.zeros(rows, response)}


def time_steps(backends: dict, batches, loss) -> dict[str, list[float]]:
    """Step times of each backend, alternating backends step by step so that both see the same machine load."""
    times: dict[str, list[float]] = {name: [] for name in backends}
    for batch in batches:
        for name, backend in backends.items():
            start = time.perf_counter()
            backend.train_step(batch, loss)
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--prompt", type=int, default=16)
    parser.add_argument("--response", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import cpu_shim  # test-only: lets megatron-core run on a CPU torch
    from mcore_helpers import VOCAB, PGLoss, make_config
    from rlinf_backends_fsdp.fsdp_backend import FSDPBackend
    from rlinf_backends_fsdp.tiny import save_tiny_model
    from rlinf_backends_megatron.megatron_backend import MegatronBackend

    cpu_shim.install()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(save_tiny_model(Path(tmp) / "m", vocab=VOCAB, hidden_size=args.hidden, num_layers=args.layers,
                                   num_heads=4, num_kv_heads=2, seed=0))
        vocab = len(VOCAB) + 3
        batches = [make_batch(args.rows, args.prompt, args.response, vocab, s) for s in range(args.steps + 2)]
        tokens = args.rows * (args.prompt + args.response)
        backends = {
            "fsdp": FSDPBackend(make_config(path, micro_batch_size=args.micro_batch), role="actor", total_steps=100),
            "megatron": MegatronBackend(make_config(path, micro_batch_size=args.micro_batch), role="actor"),
        }
        results = {}
        for name, times in time_steps(backends, batches, PGLoss()).items():
            times = times[2:]  # the first two steps warm up
            results[name] = tokens / statistics.median(times)
            print(f"{name:9s} {results[name]:10.0f} tokens/s  (median {statistics.median(times) * 1e3:.1f} ms a step "
                  f"of {args.rows} rows x {args.prompt + args.response} tokens, {len(times)} steps)")
        print(f"ratio megatron / fsdp: {results['megatron'] / results['fsdp']:.2f}  (CPU, world size 1, "
              f"hidden {args.hidden}, {args.layers} layers, {args.threads} thread(s))")


if __name__ == "__main__":
    main()
