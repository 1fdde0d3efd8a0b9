"""Loading and building Hugging Face causal LMs from an rlinf config, and the critic's value model.

Where a component's model comes from (first match wins):

- rollout engines: ``rollout.model.model_path``, then ``actor.model.model_path``, then ``actor.model.config``;
- actor / reference: ``actor.model.model_path``, then ``actor.model.config``;
- critic: ``critic.model.model_path``, then the actor's.

``*.model_path`` is a Hugging Face directory (``config.json`` + safetensors + tokenizer files).
``actor.model.config`` is a dict of Hugging Face config fields with ``model_type`` (e.g. ``qwen2``):
the model is built with random weights seeded by ``actor.seed`` (so every component that builds it
gets the same weights) and its tokenizer is ``actor.tokenizer.tokenizer_model`` (a directory).
Every error is one line naming the config key at fault.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from rlinf_core.config.precision import precision_dtype_name
from torch import nn

from rlinf_backends_fsdp.config_access import get as _get
from rlinf_backends_fsdp.config_access import plain as _plain


def parse_dtype(value: Any, key: str) -> torch.dtype:
    """A torch dtype from a precision name (``fp32``, ``bf16``, ``fp16``, ...; see
    :mod:`rlinf_core.config.precision`); a ConfigError naming ``key`` otherwise."""
    if isinstance(value, torch.dtype):
        return value
    return getattr(torch, precision_dtype_name(value, key))


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: a directory (``path``) or a config dict to build from (``config``)."""

    #: The config key that chose it (for error messages).
    key: str
    path: str | None = None
    config: dict[str, Any] | None = None
    tokenizer_path: str | None = None
    seed: int = 0
    #: ``AutoTokenizer.from_pretrained`` options (``actor.tokenizer.use_fast`` / ``trust_remote_code``).
    use_fast: bool = True
    trust_remote_code: bool = False


def resolve_model_source(config: Any, component: str) -> ModelSource:
    """Where ``component`` (``"rollout"``, ``"actor"``, ``"reference"`` or ``"critic"``) loads its model from."""
    keys = {
        "rollout": ["rollout.model.model_path", "actor.model.model_path"],
        "actor": ["actor.model.model_path"],
        "reference": ["actor.model.model_path"],
        "critic": ["critic.model.model_path", "actor.model.model_path"],
    }[component]
    tokenizer = _get(config, "actor.tokenizer.tokenizer_model")
    common = dict(tokenizer_path=str(tokenizer) if tokenizer else None, seed=int(_get(config, "actor.seed", 0)),
                  use_fast=bool(_get(config, "actor.tokenizer.use_fast", True)),
                  trust_remote_code=bool(_get(config, "actor.tokenizer.trust_remote_code", False)))
    for key in keys:
        path = _get(config, key)
        if path:
            return ModelSource(key=key, path=str(path), **common)
    build = _plain(_get(config, "actor.model.config")) or None
    if build:
        return ModelSource(key="actor.model.config", config=dict(build), **common)
    raise ValueError(
        f"{keys[0]} is not set: point it at a Hugging Face model directory (config.json + *.safetensors), "
        "or give actor.model.config (with model_type) to build a model from scratch"
    )


def load_hf_config(source: ModelSource):
    """The ``transformers`` config of ``source``, checked to be a causal LM."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if source.path is not None:
        path = source.path
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"{source.key}: {path} does not exist; give a local Hugging Face model directory "
                "(config.json + *.safetensors + tokenizer files)"
            )
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise ValueError(f"{source.key}: {path} is not a Hugging Face model directory (no config.json in it)")
        try:
            hf_config = AutoConfig.from_pretrained(path)
        except (ValueError, OSError, KeyError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ValueError(f"{source.key}: {path}/config.json cannot be read by transformers: {first}") from None
    else:
        fields = dict(source.config or {})
        model_type = fields.pop("model_type", None)
        if not model_type:
            raise ValueError("actor.model.config: needs a model_type (e.g. qwen2, llama) to build a model from scratch")
        if not source.tokenizer_path and "vocab_size" not in fields:
            raise ValueError(
                "actor.tokenizer.tokenizer_model is not set: a model built from actor.model.config needs a "
                "tokenizer directory (or give actor.model.config.vocab_size)"
            )
        if "vocab_size" not in fields:
            fields["vocab_size"] = len(load_tokenizer(source))
        try:
            hf_config = AutoConfig.for_model(model_type, **fields)
        except ValueError as err:
            raise ValueError(f"actor.model.config.model_type: {err}".splitlines()[0]) from None
    if hf_config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        where = source.path or "actor.model.config"
        raise ValueError(
            f"{source.key}: {where} holds a {hf_config.model_type!r} model ({type(hf_config).__name__}), "
            "not a causal LM: give a decoder-only language model (e.g. qwen2, llama)"
        )
    return hf_config


def load_tokenizer(source: ModelSource):
    """The tokenizer: ``actor.tokenizer.tokenizer_model`` when set, else the model directory's."""
    from transformers import AutoTokenizer

    path = source.tokenizer_path or source.path
    key = "actor.tokenizer.tokenizer_model" if source.tokenizer_path else source.key
    if path is None or not os.path.isdir(path):
        raise FileNotFoundError(f"{key}: tokenizer directory {path} does not exist")
    return AutoTokenizer.from_pretrained(path, use_fast=source.use_fast, trust_remote_code=source.trust_remote_code)


def load_causal_lm(source: ModelSource, *, dtype: torch.dtype = torch.float32, base_only: bool = False,
                   attn_implementation: str | None = "sdpa") -> nn.Module:
    """The causal LM of ``source`` in ``dtype`` on the CPU (``base_only``: the decoder without its LM head)."""
    from transformers import AutoModel, AutoModelForCausalLM

    hf_config = load_hf_config(source)
    if attn_implementation:
        hf_config._attn_implementation = attn_implementation
    cls = AutoModel if base_only else AutoModelForCausalLM
    if source.path is not None:
        from transformers.utils import logging as hf_logging

        level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # the decoder of a causal LM checkpoint "lacks" lm_head: expected
        try:
            model = cls.from_pretrained(source.path, config=hf_config, dtype=dtype)
        except OSError as err:
            first = str(err).strip().splitlines()[0]
            raise OSError(f"{source.key}: cannot load the weights in {source.path}: {first}") from None
        finally:
            hf_logging.set_verbosity(level)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(source.seed)
            # the same weights whichever head is built: build the LM, keep its decoder when asked
            model = AutoModelForCausalLM.from_config(hf_config, dtype=dtype)
        if base_only:
            model = model.get_decoder() if hasattr(model, "get_decoder") else model.base_model
    return model


def special_token_ids(source: ModelSource, hf_config: Any) -> tuple[list[int], int | None]:
    """``(eos_ids, pad_id)``: from the generation config / model config, else from the tokenizer."""
    eos: Any = None
    pad: Any = getattr(hf_config, "pad_token_id", None)
    if source.path is not None:
        try:
            from transformers import GenerationConfig

            gen = GenerationConfig.from_pretrained(source.path)
            eos, pad = gen.eos_token_id, pad if pad is not None else gen.pad_token_id
        except OSError:
            pass
    if eos is None:
        eos = getattr(hf_config, "eos_token_id", None)
    if eos is None or pad is None:
        try:
            tok = load_tokenizer(source)
        except (OSError, ValueError):
            tok = None
        if tok is not None:
            eos = tok.eos_token_id if eos is None else eos
            pad = tok.pad_token_id if pad is None else pad
    eos_ids = [] if eos is None else ([int(eos)] if isinstance(eos, int) else [int(e) for e in eos])
    if pad is None and eos_ids:
        pad = eos_ids[0]
    return eos_ids, (int(pad) if pad is not None else None)


class ValueModel(nn.Module):
    """A critic: a decoder (``AutoModel``) and a linear value head on its last hidden state.

    ``forward`` returns ``(B, T)`` values, one per position; the head starts at zero output
    (zero weights and bias) so initial values do not depend on the random head.
    """

    def __init__(self, decoder: nn.Module, hidden_size: int):
        super().__init__()
        self.decoder = decoder
        self.value_head = nn.Linear(hidden_size, 1, dtype=next(decoder.parameters()).dtype)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    @property
    def config(self):
        return self.decoder.config

    def enable_checkpointing(self) -> None:
        enable_checkpointing(self.decoder)

    def forward(self, input_ids, attention_mask=None, position_ids=None, **_: Any):
        out = self.decoder(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                           use_cache=False)
        return self.value_head(out.last_hidden_state).squeeze(-1)


def enable_checkpointing(model: nn.Module) -> None:
    """Activation (gradient) checkpointing of every decoder layer, non-reentrant."""
    if hasattr(model, "enable_checkpointing"):
        model.enable_checkpointing()
    elif hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def hidden_size_of(hf_config: Any) -> int:
    """The decoder's hidden size (text config for multimodal configs)."""
    text = hf_config.get_text_config() if hasattr(hf_config, "get_text_config") else hf_config
    return int(text.hidden_size)
