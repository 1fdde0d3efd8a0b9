"""save_tiny_model: a directory that transformers loads back, with a character-level tokenizer."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

import torch  # noqa: E402
from rlinf_backends_fsdp.tiny import build_char_tokenizer, save_tiny_model  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402


def test_tiny_model_round_trips_through_auto_classes(tmp_path):
    path = save_tiny_model(tmp_path / "m", vocab="0123456789+= ", hidden_size=64, num_heads=2, num_kv_heads=1)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    # 3 special tokens + 13 characters, and the embedding table has exactly that many rows
    assert len(tok) == 16 == model.config.vocab_size
    assert model.config.model_type == "qwen2"
    assert (tok.pad_token, tok.eos_token) == ("<|endoftext|>", "<|im_end|>")
    assert model.config.eos_token_id == tok.eos_token_id == 2
    assert model.generation_config.eos_token_id == 2
    ids = tok("12+3= 4")["input_ids"]
    assert len(ids) == 7 and tok.decode(ids) == "12+3= 4"  # one token per character
    # the saved tokenizer and the in-memory one agree (AutoTokenizer reloads qwen2 as Qwen2Tokenizer)
    assert build_char_tokenizer("0123456789+= ")("12+3= 4")["input_ids"] == ids
    out = model(torch.tensor([ids]))
    assert out.logits.shape == (1, 7, 16)


def test_default_alphabet_chat_template_and_seed(tmp_path):
    a = save_tiny_model(tmp_path / "a", seed=1)
    b = save_tiny_model(tmp_path / "b", seed=1)
    c = save_tiny_model(tmp_path / "c", seed=2)
    tok = AutoTokenizer.from_pretrained(a)
    assert len(tok) == 3 + 96  # specials + printable ASCII + newline
    text = tok.apply_chat_template([{"role": "user", "content": "What is 2+2?"}], tokenize=False,
                                   add_generation_prompt=True)
    assert text == "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    assert tok.decode(tok(text)["input_ids"]) == text
    ma, mb, mc = (AutoModelForCausalLM.from_pretrained(p) for p in (a, b, c))
    assert ma.config.hidden_size // ma.config.num_attention_heads == 32  # vLLM's CPU attention needs 32, 64, ...
    wa, wb, wc = (m.model.layers[0].self_attn.q_proj.weight for m in (ma, mb, mc))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_bad_shapes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="num_heads"):
        save_tiny_model(tmp_path / "m", hidden_size=100, num_heads=3)
    with pytest.raises(ValueError, match="vocab"):
        save_tiny_model(tmp_path / "m", vocab="")
