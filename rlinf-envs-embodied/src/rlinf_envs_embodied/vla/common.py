"""Pieces the VLA policies share: config access, tokenizers, image preprocessing, action bins,
normalisation statistics, the value head, LoRA and checkpoint-directory checks."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from rlinf_core.config.options import read_options
from rlinf_core.config.precision import precision_dtype_name
from rlinf_core.errors import ConfigError, suggestion_text
from torch import nn

from rlinf_envs_embodied.options import cfg_get, plain

KEY = "actor.model"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
HALF_MEAN, HALF_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


def option(config: Any, name: str, default: Any = None) -> Any:
    """``actor.model.<name>`` (else ``actor.model.config.<name>``) as plain Python; ``default`` where unset."""
    value = plain(cfg_get(config, name))
    if value is None:
        sub = plain(cfg_get(config, "config")) or {}
        value = sub.get(name) if isinstance(sub, Mapping) else None
    return default if value is None else value


def torch_dtype(config: Any) -> torch.dtype:
    """``actor.model.precision`` as a torch dtype (the names of :mod:`rlinf_core.config.precision`)."""
    return getattr(torch, precision_dtype_name(option(config, "precision", "fp32"), f"{KEY}.precision"))


def vla_options(config: Any, cls: type) -> Any:
    """``actor.model.config`` read with the policy's options class (:mod:`.options`): what ``rlinf config
    validate`` checks, with the same one-line errors (an unknown key names it, with a "did you mean")."""
    return read_options(cls, config, "config", where=KEY)


@contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Modules built inside get floating-point parameters of ``dtype`` (no float32 copy first)."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


# --------------------------------------------------------------------------- tokenizers


def byte_tokenizer(extra_special: Sequence[str] = ()) -> Any:
    """A byte-level tokenizer (one token per UTF-8 byte, plus ``<pad> <s> </s> <unk>`` and
    ``extra_special``) for the tiny models: built offline with ``tokenizers``, saved with the model."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>", *extra_special]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {tok: i for i, tok in enumerate([*specials, *sorted(alphabet)])}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(specials)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", additional_special_tokens=list(extra_special))


def word_tokenizer() -> Any:
    """A tokenizer with no vocabulary for random models at a published size: every word and punctuation mark is
    ``<unk>`` (ids as ``<pad> <s> </s> <unk>`` = 0..3, Llama-2's BOS is 1 too), so a prompt is about as many tokens
    as Llama-2's SentencePiece makes of it (OpenVLA's LIBERO prompts: 5 fewer) and sequence lengths, hence
    throughput, are the checkpoint's without its tokenizer files."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    tok = Tokenizer(models.WordLevel(vocab={t: i for i, t in enumerate(specials)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(specials)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>")


def load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{KEY}.model_path: {path} has no loadable tokenizer ({exc}); copy the tokenizer files "
                          "(tokenizer.json / tokenizer.model, tokenizer_config.json) of the checkpoint there") from exc


# --------------------------------------------------------------------------- observations


def camera_names(config: Any, observation_space: Any, default_count: int | None) -> list[str]:
    """The cameras a policy reads: ``actor.model.cameras`` or the env's (sorted; the first
    ``default_count`` of them when given)."""
    images = observation_space.spaces.get("images") if isinstance(observation_space, spaces.Dict) else None
    have = sorted(images.spaces) if images is not None else []
    wanted = option(config, "cameras")
    if wanted is None:
        if not have:
            raise ConfigError(f"{KEY}.model_type: a VLA needs camera images and the env gives none "
                              f"(observation keys: {sorted(getattr(observation_space, 'spaces', {}) or [])}); "
                              "enable images in env.train.init_params")
        return have[:default_count] if default_count else have
    wanted = [wanted] if isinstance(wanted, str) else list(wanted)
    for cam in wanted:
        if have and cam not in have:
            raise ConfigError(f"{KEY}.cameras: {cam!r} is not a camera of the env; it has {have}."
                              f"{suggestion_text(cam, have)}")
    return wanted


def state_dim(observation_space: Any) -> int:
    state = observation_space.spaces.get("state") if isinstance(observation_space, spaces.Dict) else None
    return int(state.shape[0]) if state is not None else 0


def to_tensor(value: Any, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.to(device=device, dtype=dtype)
    return torch.as_tensor(np.asarray(value), dtype=dtype, device=device)


def preprocess_images(pixels: Any, size: int, mean: Sequence[float], std: Sequence[float],
                      device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 ``(N, H, W, 3)`` -> normalised float ``(N, 3, size, size)`` (bicubic resize, antialiased)."""
    x = to_tensor(pixels, torch.float32, device).permute(0, 3, 1, 2) / 255.0
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    m = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=device).view(1, 3, 1, 1)
    return ((x - m) / s).to(dtype)


def instructions(obs: Mapping[str, Any], n: int, default: str | None = None) -> list[str]:
    """``obs["instruction"]`` as ``n`` strings, else ``default`` (``actor.model.config.instruction``) for every row."""
    text = obs.get("instruction", default)
    if text is None:
        raise ConfigError(f"{KEY}.config.instruction: a VLA needs obs['instruction'] (the task in words) and the env "
                          "gives none; set actor.model.config.instruction (e.g. 'pick up the cube') or use an env "
                          "with instructions (LIBERO, rlinf/InstructionTargets-v0)")
    text = [text] * n if isinstance(text, str) else [str(t) for t in text]
    if len(text) != n:
        raise ValueError(f"obs['instruction'] has {len(text)} entries for {n} observations")
    return text


# --------------------------------------------------------------------------- actions


class ActionBins:
    """OpenVLA's action tokens: ``n_bins`` edges evenly on ``[-1, 1]`` and the ``n_bins - 1`` bin centres; a
    normalised action ``a`` is token ``vocab_end - d`` with ``d = digitize(a)`` clipped to ``1..n_bins - 1``
    (OpenVLA decodes ``d = n_bins`` to the same centre as ``n_bins - 1``), so the action tokens are the
    last ``n_bins - 1`` ids below ``vocab_end`` (32000 for OpenVLA's Llama-2 tokenizer), one per centre.
    Policies sample among these tokens only ("slice index" ``j`` is token ``first + j``)."""

    def __init__(self, n_bins: int, vocab_end: int):
        if n_bins < 3:
            raise ConfigError(f"{KEY}.num_action_bins: must be >= 3, got {n_bins}")
        self.n_bins, self.vocab_end = int(n_bins), int(vocab_end)
        self.edges = torch.linspace(-1.0, 1.0, self.n_bins, device="cpu")  # also when built under torch.device(...)
        self.centers = (self.edges[:-1] + self.edges[1:]) / 2
        #: How many action tokens there are, and the first one: the slice is ``[first, vocab_end)``.
        self.count = self.n_bins - 1
        self.first = self.vocab_end - self.count

    def index_to_action(self, idx: torch.Tensor) -> torch.Tensor:
        """Normalised actions (bin centres) from slice indices ``0..n_bins - 2``."""
        digit = self.count - idx  # token = vocab_end - digit
        return self.centers.to(idx.device)[digit - 1]

    def action_to_index(self, actions: torch.Tensor) -> torch.Tensor:
        """Slice indices of normalised actions (the published tokenisation, clipped to ``[-1, 1]``)."""
        a = actions.clamp(-1.0, 1.0).detach().cpu().to(torch.float64).numpy()
        digit = torch.as_tensor(np.digitize(a, self.edges.double().numpy()), device=actions.device)
        return (self.count - digit.clamp(1, self.count)).long()


class Normalizer:
    """Per-dimension action (and proprio) normalisation, as published with each checkpoint.

    ``bounds_q99`` (OpenVLA / OFT): ``a = (x + 1) / 2 * (q99 - q01) + q01`` where ``mask`` is true, else
    ``a = x``; ``mean_std`` (pi0): ``a = x * std + mean``. :meth:`normalize` is the inverse (clipped to
    ``[-1, 1]`` for ``bounds_q99``, as the datasets were).
    """

    def __init__(self, kind: str, stats: Mapping[str, Any], dim: int):
        self.kind = kind
        if kind == "bounds_q99":
            low = np.asarray(stats["q01"], np.float32)
            high = np.asarray(stats["q99"], np.float32)
            mask = np.asarray(stats.get("mask", [True] * len(low)), bool)
            self.a, self.b, self.mask = low, high, mask
        elif kind == "mean_std":
            self.a = np.asarray(stats["mean"], np.float32)
            self.b = np.asarray(stats["std"], np.float32)
            self.mask = np.ones(len(self.a), bool)
        else:
            raise ValueError(f"unknown normalisation {kind!r}")
        if len(self.a) < dim:
            raise ConfigError(f"{KEY}.unnorm_key: the statistics have {len(self.a)} action dims, the env {dim}")
        self.a, self.b, self.mask = self.a[:dim], self.b[:dim], self.mask[:dim]

    def _t(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        def t(v):
            return torch.as_tensor(v, device=x.device)
        return t(self.a).to(x.dtype), t(self.b).to(x.dtype), t(self.mask)

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        a, b, mask = self._t(x)
        out = (x + 1) / 2 * (b - a) + a if self.kind == "bounds_q99" else x * b + a
        return torch.where(mask, out, x)

    def normalize(self, y: torch.Tensor) -> torch.Tensor:
        a, b, mask = self._t(y)
        if self.kind == "bounds_q99":
            out = (2 * (y - a) / (b - a).clamp_min(1e-8) - 1).clamp(-1, 1)
        else:
            out = (y - a) / (b + 1e-8)
        return torch.where(mask, out, y)


def default_norm_stats(action_space: Any, dim: int) -> dict[str, Any]:
    """OpenVLA-style statistics mapping ``[-1, 1]`` onto a bounded action space (identity for ``[-1, 1]``)."""
    if isinstance(action_space, spaces.Box) and np.isfinite(action_space.low).all() and np.isfinite(action_space.high).all():
        low, high = action_space.low.reshape(-1)[:dim], action_space.high.reshape(-1)[:dim]
    else:
        low, high = -np.ones(dim), np.ones(dim)
    return {"action": {"q01": [float(v) for v in low], "q99": [float(v) for v in high], "mask": [True] * dim}}


def pick_stats(norm_stats: Mapping[str, Any], unnorm_key: str | None) -> tuple[str, Mapping[str, Any]]:
    """``(key, stats)`` of one dataset in an OpenVLA ``norm_stats`` mapping."""
    if not norm_stats:
        raise ConfigError(f"{KEY}.model_path: the checkpoint has no norm_stats (config.json) or dataset_statistics.json; "
                          "a VLA needs its dataset's action statistics")
    if unnorm_key is None:
        if len(norm_stats) > 1:
            raise ConfigError(f"{KEY}.unnorm_key: the checkpoint has statistics for several datasets; choose one of "
                              f"{sorted(norm_stats)}")
        unnorm_key = next(iter(norm_stats))
    if unnorm_key not in norm_stats:
        raise ConfigError(f"{KEY}.unnorm_key: {unnorm_key!r} is not in the checkpoint's norm_stats; valid: "
                          f"{sorted(norm_stats)}.{suggestion_text(unnorm_key, norm_stats)}")
    return unnorm_key, norm_stats[unnorm_key]


def action_dim_of(config: Any, action_space: Any) -> int:
    given = option(config, "action_dim")
    if isinstance(action_space, spaces.Box) and len(action_space.shape) == 1:
        have = int(action_space.shape[0])
        if given is not None and int(given) != have:
            raise ConfigError(f"{KEY}.action_dim: {given} does not match the env's {have} action dims; remove it or "
                              f"set it to {have}")
        return have
    if action_space is not None:
        raise ConfigError(f"{KEY}.model_type: a VLA needs a flat continuous (Box) action space, not {action_space}")
    if given is None:
        raise ConfigError(f"{KEY}.action_dim: no action space was given; set action_dim")
    return int(given)


# --------------------------------------------------------------------------- heads, LoRA


class ValueHead(nn.Module):
    """``Linear -> GELU -> Linear(1)`` on a pooled hidden state; the last layer starts at zero."""

    def __init__(self, in_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h.float()).squeeze(-1)


def maybe_lora(module: nn.Module, config: Any, default_targets: Any = "all-linear") -> nn.Module:
    """Wrap ``module`` with ``peft`` LoRA adapters when ``actor.model.is_lora`` (rank ``lora_rank``; base
    weights frozen)."""
    rank = int(option(config, "lora_rank", 0) or 0)
    if not option(config, "is_lora", False):
        return module
    if rank <= 0:
        raise ConfigError(f"{KEY}.lora_rank: is_lora is true but lora_rank is {rank}; set a rank, e.g. 32")
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise ConfigError(f"{KEY}.lora_rank: LoRA needs peft: pip install 'rlinf-envs-embodied[vla]'") from exc
    targets = option(config, "lora_target_modules", default_targets)
    lora = LoraConfig(r=rank, lora_alpha=int(option(config, "lora_alpha", 2 * rank)), lora_dropout=0.0,
                      target_modules=targets, init_lora_weights="gaussian")
    return get_peft_model(module, lora)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    var = std**2
    return -((x - mean) ** 2) / (2 * var) - torch.log(std) - 0.5 * math.log(2 * math.pi)


# --------------------------------------------------------------------------- checkpoints


def checkpoint_dir(config: Any, required: Sequence[str], what: str) -> Path:
    """``actor.model.model_path`` as a directory holding ``required`` files, or a one-line error."""
    path = Path(str(option(config, "model_path"))).expanduser()
    if not path.is_dir():
        raise ConfigError(f"{KEY}.model_path: {path} is not a directory; point it at a local {what} checkpoint "
                          "(downloaded beforehand: no hub access at run time), or remove it for the tiny random model")
    missing = [f for f in required if not (path / f).exists()]
    weights = list(path.glob("*.safetensors"))
    if missing or not weights:
        have = sorted(p.name for p in path.iterdir())[:12]
        raise ConfigError(f"{KEY}.model_path: {path} is not a {what} checkpoint: it lacks "
                          f"{', '.join(missing + ([] if weights else ['*.safetensors']))} (it holds {have})")
    return path


def read_json(path: Path) -> dict[str, Any]:
    with open(path) as f:
        return json.load(f)


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the ``*.safetensors`` files (shards included) in ``path``."""
    from safetensors.torch import load_file

    out: dict[str, torch.Tensor] = {}
    for f in sorted(path.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def load_state(module: nn.Module, state: Mapping[str, torch.Tensor], where: str,
               allow_missing: Sequence[str] = ()) -> None:
    """``load_state_dict(strict)`` with a one-line error listing a few missing / unexpected keys and
    shape mismatches (``allow_missing``: key prefixes that may be absent)."""
    own = module.state_dict()
    missing = [k for k in own if k not in state and not any(k.startswith(p) for p in allow_missing)]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in state
              if k in own and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = [f"{label} ({len(keys)}): {keys[:4]}" for label, keys in
                 (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)) if keys]
        raise ConfigError(f"{KEY}.model_path: {where} does not fit the model built from its config: " + "; ".join(parts))
    module.load_state_dict(state, strict=False)
