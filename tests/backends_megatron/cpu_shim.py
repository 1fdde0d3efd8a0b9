"""TEST-ONLY shim that lets megatron-core run on a CPU-only torch (never imported by library code).

megatron-core assumes CUDA in places that have nothing to do with the math: it calls
``torch.cuda.current_device()`` and ``torch.cuda.synchronize()``, creates small bookkeeping tensors with ``device="cuda"`` (or in pinned memory) and calls
``Tensor.cuda()``. :func:`install` redirects those to the CPU for the whole process (it is
process-global: call it only in test processes and CPU benchmarks), and sets up megatron's RNG
tracker the way a CPU torch allows (``inference_rng_tracker=True``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.overrides import TorchFunctionMode

_installed = False


def _cpu(device):
    if device is None:
        return None
    text = str(device)
    return torch.device("cpu") if text.startswith("cuda") or (isinstance(device, int)) else device


class _CudaToCpu(TorchFunctionMode):
    """Rewrites ``device="cuda..."`` arguments to the CPU and makes ``Tensor.cuda()`` a no-op."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is torch.Tensor.cuda:
            return args[0]
        if "device" in kwargs:
            kwargs["device"] = _cpu(kwargs["device"])
        if kwargs.get("pin_memory"):  # pinned host memory needs an accelerator
            kwargs["pin_memory"] = False
        if func in (torch.Tensor.to,) and len(args) > 1 and (isinstance(args[1], (str, torch.device))
                                                            and str(args[1]).startswith("cuda")):
            args = (args[0], torch.device("cpu"), *args[2:])
        return func(*args, **kwargs)


def _patch() -> None:
    torch.cuda.current_device = lambda: torch.device("cpu")
    torch.cuda.synchronize = lambda *args, **kwargs: None  # dist_checkpointing waits for CUDA copies
    # megatron-core 0.16.1 without Transformer Engine leaves this name undefined, then reads it in the MoE router
    from megatron.core.transformer.moe import moe_utils

    if not hasattr(moe_utils, "te_general_gemm"):
        moe_utils.te_general_gemm = None


@contextlib.contextmanager
def enabled() -> Iterator[None]:
    """The shim for the duration of a ``with`` block (pytest fixtures)."""
    saved = torch.cuda.current_device, torch.cuda.synchronize
    _patch()
    try:
        with _CudaToCpu():
            yield
    finally:
        torch.cuda.current_device, torch.cuda.synchronize = saved


@contextlib.contextmanager
def unless_cuda() -> Iterator[None]:
    """:func:`enabled` on a CPU-only torch; nothing where CUDA is available (megatron-core runs as it is)."""
    if torch.cuda.is_available():
        yield
        return
    with enabled():
        yield


def install() -> None:
    """Patch the process for good (worker scripts, CPU benchmarks); idempotent."""
    global _installed
    if _installed:
        return
    _patch()
    _CudaToCpu().__enter__()  # stays active for the life of the process
    _installed = True


def seed_megatron(seed: int) -> None:
    """megatron-core's model-parallel RNG tracker on a CPU torch."""
    from megatron.core import tensor_parallel

    tensor_parallel.model_parallel_cuda_manual_seed(seed, inference_rng_tracker=True)
