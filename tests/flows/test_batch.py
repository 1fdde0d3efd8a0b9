"""``rlinf_core.flows.batch.pad_rows``: the training batch layout, against a row-by-row construction."""

from __future__ import annotations

import random

import pytest
import torch
from rlinf_core.flows.batch import pad_rows


def _reference(prompts, responses, pad, logprobs):
    """The layout written out one row at a time: prompts left-padded, responses right-padded."""
    p, r = max(map(len, prompts)), max(1, max(map(len, responses)))
    ids = torch.full((len(prompts), p + r), pad)
    attn, mask, lps = torch.zeros_like(ids), torch.zeros(len(prompts), r, dtype=torch.long), torch.zeros(len(prompts), r)
    for i, (x, y) in enumerate(zip(prompts, responses, strict=True)):
        for j, t in enumerate(x):
            ids[i, p - len(x) + j], attn[i, p - len(x) + j] = t, 1
        for j, t in enumerate(y):
            ids[i, p + j], attn[i, p + j], mask[i, j], lps[i, j] = t, 1, 1, logprobs[i][j]
    return {"input_ids": ids, "attention_mask": attn, "response_mask": mask, "rollout_log_probs": lps}


@pytest.mark.parametrize("seed", range(5))
def test_pad_rows_equals_the_row_by_row_layout(seed):
    rng = random.Random(seed)
    rows = rng.randint(1, 9)
    prompts = [[rng.randint(1, 50) for _ in range(rng.randint(1, 7))] for _ in range(rows)]
    responses = [[rng.randint(1, 50) for _ in range(rng.randint(0, 6))] for _ in range(rows)]  # some empty
    logprobs = [[-rng.random() for _ in y] for y in responses]
    got, want = pad_rows(prompts, responses, 0, logprobs), _reference(prompts, responses, 0, logprobs)
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key].dtype == value.dtype and torch.equal(got[key], value), key
    assert "rollout_log_probs" not in pad_rows(prompts, responses, 0)


def test_pad_rows_all_empty_responses_and_bad_lengths():
    out = pad_rows([[3, 4], [5]], [[], []], 9)
    assert out["input_ids"].tolist() == [[3, 4, 9], [9, 5, 9]] and out["response_mask"].tolist() == [[0], [0]]
    with pytest.raises(ValueError, match="2 prompts, 1 responses"):
        pad_rows([[1], [2]], [[3]], 0)
    with pytest.raises(ValueError, match="log-probs and response differ in length"):
        pad_rows([[1]], [[2, 3]], 0, [[-0.5]])


def test_embodied_minibatch_parts_sent_to_ray_ranks_pickle_only_their_rows():
    import pickle

    from rlinf_core.flows.embodied import _compact, _take

    rows = 1000
    batch = {"obs": {"image": torch.zeros(rows, 3, 32, 32, dtype=torch.uint8)}, "advantages": torch.randn(rows),
             "instruction": ["x"] * rows}
    part = _take(batch, slice(0, 10), rows)  # a view of the pass's rows
    assert len(pickle.dumps(part)) > rows * 3 * 32 * 32  # the view would carry the whole storage
    small = _compact(part)
    assert len(pickle.dumps(small)) < 20 * 3 * 32 * 32
    assert torch.equal(small["obs"]["image"], batch["obs"]["image"][:10]) and small["instruction"] == ["x"] * 10
    assert torch.equal(small["advantages"], batch["advantages"][:10])
