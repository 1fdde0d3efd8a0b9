"""The huggingface engine prefills a prompt given several times (a GRPO group) once and decodes every row
from its cache: the reported log-probs still equal the backend's teacher-forced ones."""

from __future__ import annotations

import torch
from fsdp_helpers import make_batch, make_config
from rlinf_backends_fsdp.fsdp_backend import FSDPBackend
from rlinf_backends_fsdp.hf_engine import HFRolloutEngine
from rlinf_core.interfaces import SamplingParams

DISTINCT = [[4, 5, 13, 6, 14], [7, 14], [8, 9, 10, 13, 4, 14]]
ROWS = [DISTINCT[g] for g in (0, 1, 0, 2, 1, 0, 2, 2)]


def _forward_rows(engine: HFRolloutEngine) -> list[int]:
    rows: list[int] = []
    engine.model.register_forward_pre_hook(lambda _m, _a, kw: rows.append(int(kw["input_ids"].shape[0])),
                                           with_kwargs=True)
    return rows


def test_repeated_prompts_are_prefilled_once_and_log_probs_match_the_backend(tiny_dir):
    cfg = make_config(tiny_dir, micro_batch_size=len(ROWS))
    engine = HFRolloutEngine(cfg)
    actor = FSDPBackend(cfg, role="actor")
    actor._shared_prompt_arg = None  # the ordinary full forward as the reference
    rows = _forward_rows(engine)
    sampling = SamplingParams(temperature=0.8, max_new_tokens=6, seed=3)
    out = engine.generate(ROWS, sampling)
    assert rows[0] == len(DISTINCT) and set(rows[1:]) == {len(ROWS)} and len(rows) > 1
    batch = make_batch(out.prompt_ids, out.response_ids)
    rlen = batch["response_mask"].shape[1]
    reported = torch.tensor([lp + [0.0] * (rlen - len(lp)) for lp in out.response_logprobs])
    mine = actor.compute_log_probs(batch, temperature=0.8)["log_probs"]
    assert float((mine - reported).abs().max()) < 1e-5
    # the rows of a group (rows 0, 2, 5) are sampled independently from the shared prompt
    assert len({tuple(out.response_ids[i]) for i in (0, 2, 5)}) > 1


def test_greedy_rows_of_a_group_equal_the_prompt_alone(tiny_dir):
    engine = HFRolloutEngine(make_config(tiny_dir))
    greedy = SamplingParams(do_sample=False, max_new_tokens=6)
    rows = _forward_rows(engine)
    batched = engine.generate(ROWS, greedy).response_ids
    assert rows[0] == len(DISTINCT)
    alone = {tuple(p): engine.generate([p], greedy).response_ids[0] for p in DISTINCT}
    assert batched == [alone[tuple(p)] for p in ROWS]


def test_distinct_prompts_take_one_ordinary_prefill(tiny_dir):
    engine = HFRolloutEngine(make_config(tiny_dir))
    rows = _forward_rows(engine)
    engine.generate(DISTINCT, SamplingParams(do_sample=False, max_new_tokens=3))
    assert rows and set(rows) == {len(DISTINCT)}
