"""Prompts for the reasoning flow: JSONL / Parquet readers, the synthetic arithmetic task, a
seeded, resumable prompt sampler and chat-template rendering. Imports no torch."""

from rlinf_core.data.arithmetic import ArithmeticTask
from rlinf_core.data.records import PromptRecord, load_records, read_jsonl, read_parquet
from rlinf_core.data.sampler import PromptSampler
from rlinf_core.data.templates import render_prompt

__all__ = ["ArithmeticTask", "PromptRecord", "PromptSampler", "load_records", "read_jsonl", "read_parquet", "render_prompt"]
