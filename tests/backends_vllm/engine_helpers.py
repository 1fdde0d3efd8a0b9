"""Helpers for the rollout engine tests: configs, a teacher-forced reference, perturbed weights."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: Tolerance of engine log-probs against a float32 transformers forward (measured: about 2e-6).
LOGPROB_ATOL = 2e-5


def engine_config(rollout: dict[str, Any] | None = None, actor: dict[str, Any] | None = None) -> Any:
    """A loaded config for the ``vllm`` engine; ``rollout`` / ``actor`` sections merged in."""
    from rlinf_core.config import load_config

    rollout = dict(rollout or {})
    vllm = {"max_model_len": 128, "kv_cache_space_gib": 0.25, **rollout.pop("vllm", {})}
    return load_config({"rollout": {"rollout_backend": "vllm", "vllm": vllm, **rollout},
                        "actor": {"seed": 3, **(actor or {})}})


def reference_logprobs(model: Any, prompt: Sequence[int], response: Sequence[int], temperature: float) -> list[float]:
    """``log_softmax(logits / T)`` of each response token, teacher-forced through a transformers model."""
    import torch

    ids = torch.tensor([list(prompt) + list(response)])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1:-1].float() / temperature
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(response)[:, None])[:, 0].tolist()


def max_logprob_error(model: Any, out: Any, temperature: float) -> float:
    """Largest |engine - reference| log-prob over every token of a GenerationOutput."""
    worst = 0.0
    for prompt, response, lps in zip(out.prompt_ids, out.response_ids, out.response_logprobs, strict=True):
        ref = reference_logprobs(model, prompt, response, temperature)
        worst = max([worst, *(abs(a - b) for a, b in zip(ref, lps, strict=True))])
    return worst


def perturbed_state(model: Any, scale: float, seed: int) -> dict[str, Any]:
    """``model``'s weights plus seeded Gaussian noise (``scale`` x each tensor's std), as new tensors."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    return {k: v + (torch.randn(v.shape, generator=gen) * scale).to(v.device) * (v.std() if v.numel() > 1 else 1.0)
            for k, v in model.state_dict().items()}
