"""Every example config loads and validates against the installed plugins."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from rlinf_core.cli import main

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.yaml"))


def test_there_are_examples():
    assert EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates(path):
    result = CliRunner().invoke(main, ["config", "validate", str(path)])
    assert result.exit_code == 0, result.output
    assert f"{path}: valid" in result.output
