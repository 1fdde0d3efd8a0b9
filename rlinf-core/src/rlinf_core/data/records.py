"""Prompt records and the readers that load them (``data.train_data_paths`` / ``val_data_paths``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rlinf_core.errors import ConfigError


@dataclass(frozen=True)
class PromptRecord:
    """One prompt and its reference answer; ``index`` is its position in the dataset."""

    prompt: str
    answer: str
    index: int


def _value(row: dict, key: str, where: str, role: str) -> str:
    if key not in row or row[key] is None:
        found = ", ".join(map(str, row)) or "none"
        raise ConfigError(f"{where}: no {role} key {key!r} (data.{role}_key); keys found: {found}")
    value = row[key]
    if isinstance(value, list) and value and isinstance(value[-1], dict) and "content" in value[-1]:
        value = value[-1]["content"]  # a chat-style [{"role": ..., "content": ...}] prompt: its last message
    return str(value)


def read_jsonl(path: str | Path, prompt_key: str = "prompt", answer_key: str = "answer", *, start: int = 0) -> list[PromptRecord]:
    """Read one JSON object per line; a bad line or a missing key raises naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"data file {str(path)!r} does not exist (data.train_data_paths / data.val_data_paths)")
    records = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise ConfigError(f"{where}: expected a JSON object, got {type(row).__name__}")
            records.append(PromptRecord(_value(row, prompt_key, where, "prompt"), _value(row, answer_key, where, "answer"),
                                        start + len(records)))
    return records


def read_parquet(path: str | Path, prompt_key: str = "prompt", answer_key: str = "answer", *,
                 start: int = 0) -> list[PromptRecord]:
    """Read a Parquet table (pyarrow, imported lazily); a missing key raises naming file and row."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"data file {str(path)!r} does not exist (data.train_data_paths / data.val_data_paths)")
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(f"reading {str(path)!r} needs pyarrow, which is not installed. Fix: pip install pyarrow") from None
    rows = pq.read_table(path).to_pylist()
    return [PromptRecord(_value(r, prompt_key, f"{path} row {i}", "prompt"), _value(r, answer_key, f"{path} row {i}", "answer"),
                         start + i) for i, r in enumerate(rows)]


def load_records(paths: Sequence[str | Path], prompt_key: str = "prompt", answer_key: str = "answer") -> list[PromptRecord]:
    """Every record of ``paths`` (``.jsonl`` / ``.json`` lines or ``.parquet``), indexed in order."""
    records: list[PromptRecord] = []
    for path in paths:
        suffix = Path(path).suffix.lower()
        if suffix == ".parquet":
            records += read_parquet(path, prompt_key, answer_key, start=len(records))
        elif suffix in (".jsonl", ".json", ".ndjson"):
            records += read_jsonl(path, prompt_key, answer_key, start=len(records))
        else:
            raise ConfigError(f"data file {str(path)!r}: unknown format {suffix or '(no suffix)'!r}; use .jsonl or .parquet")
    return records
