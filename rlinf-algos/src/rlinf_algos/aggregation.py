"""Loss aggregation modes (kind ``loss_agg``): reduce a per-token loss ``(B, T)`` to a scalar.

Gradient accumulation: when an optimizer step spans several micro-batches, pass the *global*
counts of that step to every micro-batch (``global_tokens`` = valid tokens over all micro-batches,
``global_seqs`` = sequences over all micro-batches) and **sum** the micro-batch losses (calling
``backward()`` on each does exactly that). The result equals aggregating the whole batch at once.
Without them, the counts of the batch passed in are used. Every mode accepts every count (so a
caller can pass them all) and uses those its formula needs.

Sequences: only rows with at least one valid token count (``N_{seq}``, as in veRL), so dropped or
filtered rows left in the batch fully masked do not dilute the loss; ``global_seqs`` must count
the same way. With no valid token at all the loss is 0 (not NaN).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlinf_algos.checks import as_mask, check_tensor
from rlinf_algos.masked import masked_sum

Count = int | float | Tensor | None


def _prepare(loss: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    check_tensor(loss, "loss", ndim=(2,))
    return loss, as_mask(mask, loss, like_name="loss")


def _count(given: Count, default: Tensor | None, like: Tensor) -> Tensor:
    """``given`` (or ``default``, computed by the caller only when ``given`` is None) as ``like``'s float dtype, >= 1."""
    count = default if given is None else torch.as_tensor(given, device=like.device)
    return count.to(torch.promote_types(like.dtype, torch.float32)).clamp(min=1)


def _seqs(mask: Tensor) -> Tensor:
    """Rows with at least one valid token."""
    return mask.any(dim=1).sum()


def token_mean(
    loss: Tensor, mask: Tensor | None = None, *, global_tokens: Count = None, global_seqs: Count = None,
    max_tokens: int | None = None,
) -> Tensor:
    r""":math:`\sum_{i,t} m_{it} l_{it} / N_{tokens}` (DAPO's token-level loss)."""
    loss, mask = _prepare(loss, mask)
    return masked_sum(loss, mask) / _count(global_tokens, mask.sum() if global_tokens is None else None, loss)


def token_sum(
    loss: Tensor, mask: Tensor | None = None, *, global_tokens: Count = None, global_seqs: Count = None,
    max_tokens: int | None = None,
) -> Tensor:
    r""":math:`\sum_{i,t} m_{it} l_{it}`: no normalisation (the loss scales with the batch's token count)."""
    loss, mask = _prepare(loss, mask)
    return masked_sum(loss, mask)


def seq_mean_token_sum(
    loss: Tensor, mask: Tensor | None = None, *, global_tokens: Count = None, global_seqs: Count = None,
    max_tokens: int | None = None,
) -> Tensor:
    r""":math:`\frac{1}{N_{seq}} \sum_i \sum_t m_{it} l_{it}`."""
    loss, mask = _prepare(loss, mask)
    return masked_sum(loss, mask, dim=1).sum() / _count(global_seqs, _seqs(mask), loss)


def seq_mean_token_mean(
    loss: Tensor, mask: Tensor | None = None, *, global_tokens: Count = None, global_seqs: Count = None,
    max_tokens: int | None = None,
) -> Tensor:
    r""":math:`\frac{1}{N_{seq}} \sum_i \frac{\sum_t m_{it} l_{it}}{\sum_t m_{it}}` (the original GRPO loss)."""
    loss, mask = _prepare(loss, mask)
    per_seq = masked_sum(loss, mask, dim=1) / mask.sum(dim=1).clamp(min=1)
    return per_seq.sum() / _count(global_seqs, _seqs(mask), loss)


def seq_mean_token_sum_norm(
    loss: Tensor, mask: Tensor | None = None, *, global_tokens: Count = None, global_seqs: Count = None,
    max_tokens: int | None = None,
) -> Tensor:
    r""":math:`\frac{1}{N_{seq}} \sum_i \frac{\sum_t m_{it} l_{it}}{L_{max}}` (Dr. GRPO, arXiv:2503.20783).

    ``max_tokens`` is the generation budget :math:`L_{max}` (default: ``T``, the padded length),
    a constant so that long and short answers weigh the same per token.
    """
    loss, mask = _prepare(loss, mask)
    budget = float(max_tokens if max_tokens is not None else loss.shape[1])
    return masked_sum(loss, mask) / budget / _count(global_seqs, _seqs(mask), loss)


#: Mode name -> function, as used by ``algorithm.loss_agg_func``.
AGGREGATIONS = {
    "token-mean": token_mean,
    "token-sum": token_sum,
    "seq-mean-token-sum": seq_mean_token_sum,
    "seq-mean-token-mean": seq_mean_token_mean,
    "seq-mean-token-sum-norm": seq_mean_token_sum_norm,
}


def aggregate(loss: Tensor, mask: Tensor | None, mode: str = "token-mean", **counts: Count) -> Tensor:
    """Reduce ``loss`` with the named mode (see the module docstring for ``counts``)."""
    try:
        fn = AGGREGATIONS[mode]
    except KeyError:
        raise ValueError(f"loss_agg mode must be one of {', '.join(AGGREGATIONS)}, got {mode!r}") from None
    return fn(loss, mask, **counts)
