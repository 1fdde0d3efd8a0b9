"""Prompt data: JSONL / Parquet readers, the arithmetic generator, the resumable sampler."""

from __future__ import annotations

import json
import random

import pytest
from rlinf_core.data import ArithmeticTask, PromptSampler, load_records, read_jsonl
from rlinf_core.errors import ConfigError


def test_jsonl_reads_keys_and_names_file_and_line_of_a_missing_key(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"q": "1+1", "a": 2}) + "\n\n" + json.dumps({"q": "2+2"}) + "\n")
    with pytest.raises(ConfigError, match=r"d\.jsonl:3: no answer key 'a' \(data\.answer_key\); keys found: q"):
        read_jsonl(path, "q", "a")
    path.write_text(json.dumps({"q": "1+1", "a": 2}) + "\n" + json.dumps({"q": [{"role": "user", "content": "hi"}], "a": "x"}) + "\n")
    records = read_jsonl(path, "q", "a")
    assert [(r.prompt, r.answer, r.index) for r in records] == [("1+1", "2", 0), ("hi", "x", 1)]


def test_jsonl_bad_json_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "a", "answer": "b"}\n{oops\n')
    with pytest.raises(ConfigError, match=r"bad\.jsonl:2: not valid JSON"):
        read_jsonl(path)


def test_parquet_and_jsonl_are_indexed_in_order(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    pq.write_table(pa.table({"prompt": ["p0", "p1"], "answer": ["a0", "a1"]}), tmp_path / "a.parquet")
    (tmp_path / "b.jsonl").write_text(json.dumps({"prompt": "p2", "answer": "a2"}) + "\n")
    records = load_records([tmp_path / "a.parquet", tmp_path / "b.jsonl"])
    assert [(r.prompt, r.index) for r in records] == [("p0", 0), ("p1", 1), ("p2", 2)]
    pq.write_table(pa.table({"prompt": ["p0"]}), tmp_path / "c.parquet")
    with pytest.raises(ConfigError, match=r"c\.parquet row 0: no answer key"):
        load_records([tmp_path / "c.parquet"])


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown format '.csv'"):
        load_records([tmp_path / "x.csv"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_records([tmp_path / "missing.jsonl"])


def test_arithmetic_task_answers_and_splits():
    task = ArithmeticTask(max_value=9, answer_width=2)
    train, val = task.splits()
    assert len(train) == 100 and val == train
    by_prompt = {r.prompt: r.answer for r in train}
    assert by_prompt["7+8="] == "15" and by_prompt["0+3="] == "03"
    sub = ArithmeticTask(max_value=9, operations=("-",), val_fraction=0.2, seed=3)
    train, val = sub.splits()
    assert len(train) + len(val) == 55 and len(val) == 11 and not {r.index for r in train} & {r.index for r in val}
    assert all(int(r.answer) == int(r.prompt[0]) - int(r.prompt[2]) for r in train)
    with pytest.raises(ConfigError, match="answer_width=1 is too narrow"):
        ArithmeticTask(max_value=9, answer_width=1)
    with pytest.raises(ConfigError, match="operations"):
        ArithmeticTask(operations=("/",))


def test_format_only_answers_are_in_range_and_ignore_prompts():
    task = ArithmeticTask(max_value=9, answer_width=2)
    answers = task.format_only_answers(2000, random.Random(0))
    assert all(len(a) == 2 for a in answers)
    assert {int(a) for a in answers} == set(range(19))  # uniform over the answer range, not tied to any sum


def test_sampler_is_seeded_spans_epochs_and_resumes_in_the_same_order():
    items = list(range(10))
    a = PromptSampler(items, seed=5)
    first = a.next_batch(4) + a.next_batch(4) + a.next_batch(4)
    assert sorted(first[:10]) == items and first[:4] != items[:4]
    b = PromptSampler(items, seed=5)
    b.next_batch(4)
    state = b.state_dict()
    c = PromptSampler(items, seed=5)
    c.load_state_dict(state)
    assert c.next_batch(8) == first[4:]
    assert PromptSampler(items, shuffle=False).next_batch(3) == [0, 1, 2]
    with pytest.raises(ValueError, match="data.seed"):
        PromptSampler(items, seed=6).load_state_dict(state)
