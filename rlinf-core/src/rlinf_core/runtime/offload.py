"""Moving a rank's model and optimizer state between the device and host memory.

Used by collocated placements on GPU, where the actor's and the rollout's weights and optimizer
state take turns on the same device (see :meth:`rlinf_core.runtime.Runtime.phase`). Workers call
these from their ``offload`` / ``onload`` methods. Needs torch (imported here, lazily by callers).
"""

from __future__ import annotations

from typing import Any

import torch


def _move_optimizer_state(optimizer: Any, device: torch.device, pin: bool) -> None:
    for state in optimizer.state.values():
        for key, value in list(state.items()):
            if isinstance(value, torch.Tensor):
                moved = value.to(device, non_blocking=True)
                state[key] = moved.pin_memory() if pin and moved.device.type == "cpu" else moved


def offload_to_host(module: torch.nn.Module, optimizer: Any = None) -> None:
    """Move parameters, gradients, buffers and optimizer state to (pinned, when CUDA is present) host memory,
    then release the device's cached blocks."""
    cpu = torch.device("cpu")
    pin = torch.cuda.is_available()
    module.to(cpu)
    for p in module.parameters():
        if p.grad is not None:
            p.grad = p.grad.to(cpu)
    if optimizer is not None:
        _move_optimizer_state(optimizer, cpu, pin)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def reload_to_device(module: torch.nn.Module, device: torch.device | str, optimizer: Any = None) -> None:
    """Move what :func:`offload_to_host` moved back to ``device``."""
    device = torch.device(device)
    module.to(device)
    for p in module.parameters():
        if p.grad is not None:
            p.grad = p.grad.to(device)
    if optimizer is not None:
        _move_optimizer_state(optimizer, device, pin=False)
