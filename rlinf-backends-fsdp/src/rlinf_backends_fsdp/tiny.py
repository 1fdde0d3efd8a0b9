"""Tiny Hugging Face models for tests, examples and the CPU quickstart.

:func:`save_tiny_model` writes a randomly initialised Qwen2 causal LM and a character-level
tokenizer (built offline with ``tokenizers``, no hub access) into a directory that
``AutoModelForCausalLM.from_pretrained``, ``AutoTokenizer.from_pretrained`` and vLLM load.
"""

from __future__ import annotations

from pathlib import Path

#: Special tokens of the tiny tokenizer (Qwen2's names): padding, chat turn start, end of turn/EOS.
PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
EOS_TOKEN = "<|im_end|>"

#: The default alphabet: printable ASCII (space to ``~``) and newline.
DEFAULT_ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))

#: Qwen2's pre-tokenization split (digits one by one, words, punctuation runs, whitespace).
_QWEN2_SPLIT = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

#: A ChatML template, so ``tokenizer.apply_chat_template`` works on the tiny model too.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_char_tokenizer(vocab: str | list[str] | None = None):
    """A character-level ``PreTrainedTokenizerFast`` over ``vocab``, laid out as Qwen2's tokenizer.

    ``vocab`` is a string (its distinct characters), a list of tokens (one-character entries are
    the alphabet; longer ones are added tokens, matched whole), or ``None`` for
    :data:`DEFAULT_ALPHABET`. Token ids: the three special tokens first (``<|endoftext|>`` = pad,
    ``<|im_start|>``, ``<|im_end|>`` = eos), then the alphabet, then longer tokens.

    It is a byte-level BPE without merges (Qwen2's normalizer, pre-tokenizer and decoder), because
    ``AutoTokenizer`` reloads any ``qwen2`` model's tokenizer as ``Qwen2Tokenizer``, which rebuilds
    that pipeline from the vocabulary: both then tokenize identically. Characters outside the
    alphabet are dropped (there is no unknown token), so choose ``vocab`` to cover your data.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    if vocab is None:
        vocab = DEFAULT_ALPHABET
    items = list(dict.fromkeys(vocab))  # distinct, order kept (a str iterates characters)
    if not items or any(not isinstance(t, str) or not t for t in items):
        raise ValueError("save_tiny_model: vocab must be a non-empty string or a list of non-empty strings")
    byte_char = bytes_to_unicode()
    symbols: list[str] = []  # byte-level symbols of the alphabet (a non-ASCII character gives several)
    for ch in (t for t in items if len(t) == 1):
        symbols.extend(byte_char[b] for b in ch.encode("utf-8"))
    symbols = list(dict.fromkeys(symbols))
    words = [t for t in items if len(t) > 1]
    specials = [PAD_TOKEN, IM_START, EOS_TOKEN]
    table = {tok: i for i, tok in enumerate(specials + symbols)}
    tok = Tokenizer(models.BPE(vocab=table, merges=[]))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    if words:
        tok.add_tokens([AddedToken(w, special=False, normalized=False) for w in words])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD_TOKEN,
        eos_token=EOS_TOKEN,
        additional_special_tokens=[IM_START],
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )


def save_tiny_model(
    path: str | Path,
    *,
    vocab: str | list[str] | None = None,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 512,
    seed: int = 0,
    tie_word_embeddings: bool = False,
) -> Path:
    """Write a random-init tiny Qwen2 causal LM + character tokenizer to ``path``; returns it.

    ``vocab_size`` equals ``len(tokenizer)``; eos = ``<|im_end|>``, pad = ``<|endoftext|>``.
    The defaults give head size 32 (vLLM's CPU attention kernel accepts 32, 64, ... only).
    ``intermediate_size`` defaults to ``4 * hidden_size``. Deterministic for a given ``seed``.
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    if hidden_size % num_heads or num_heads % num_kv_heads:
        raise ValueError(
            f"save_tiny_model: hidden_size ({hidden_size}) must divide by num_heads ({num_heads}) "
            f"and num_heads by num_kv_heads ({num_kv_heads})"
        )
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_char_tokenizer(vocab)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 4 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tie_word_embeddings,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        torch_dtype="float32",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=True
    )
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


__all__ = ["CHAT_TEMPLATE", "DEFAULT_ALPHABET", "EOS_TOKEN", "PAD_TOKEN", "build_char_tokenizer", "save_tiny_model"]
