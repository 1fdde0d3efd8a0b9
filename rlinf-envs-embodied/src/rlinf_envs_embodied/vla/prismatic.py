"""The Prismatic VLA of OpenVLA / OpenVLA-OFT, built from transformers components.

``PrismaticVLA`` = ``vision_backbone`` (a DINOv2-with-registers and / or SigLIP tower from transformers;
OpenVLA's ``dinosiglip`` fuses both by concatenating their patch features) -> ``projector`` (GELU MLP)
-> ``language_model`` (``LlamaForCausalLM``). Patch features are the output of the second-to-last
block without prefix tokens, as Prismatic takes them.

Checkpoint format (OpenVLA's published Hugging Face export): ``config.json`` (``vision_backbone_id``,
``timm_model_ids``, ``image_sizes``, ``use_fused_vision_backbone``, ``text_config``, ``n_action_bins``,
``norm_stats``), ``*.safetensors`` with the keys ``vision_backbone.featurizer.*`` /
``vision_backbone.fused_featurizer.*`` (timm's ViT names), ``projector.fc1..3.*`` and
``language_model.*`` (transformers' Llama names), and the tokenizer files. timm names are mapped
onto transformers' on load and back on save (:func:`timm_to_hf`, :func:`hf_to_timm`); the tower
sizes come from ``timm_model_ids`` (:data:`TIMM_TOWERS`) or, for checkpoints written by rlinf,
``rlinf_vision_configs``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from rlinf_core.errors import ConfigError
from torch import nn

from rlinf_envs_embodied.vla.common import HALF_MEAN, HALF_STD, IMAGENET_MEAN, IMAGENET_STD, KEY

#: timm ids Prismatic uses -> the transformers vision config of the same tower.
TIMM_TOWERS: dict[str, dict[str, Any]] = {
    "vit_large_patch14_reg4_dinov2.lvd142m": {
        "model_type": "dinov2_with_registers", "hidden_size": 1024, "num_hidden_layers": 24,
        "num_attention_heads": 16, "mlp_ratio": 4, "patch_size": 14, "num_register_tokens": 4},
    "vit_so400m_patch14_siglip_224": {
        "model_type": "siglip_vision_model", "hidden_size": 1152, "num_hidden_layers": 27,
        "num_attention_heads": 16, "intermediate_size": 4304, "patch_size": 14},
}


def openvla_7b_config() -> dict[str, Any]:
    """The architecture of OpenVLA 7B's published ``config.json`` (``openvla/openvla-7b``; OpenVLA-OFT's
    checkpoints keep it): DINOv2 ViT-L/14 with 4 registers and SigLIP so400m/14, both at 224 px and fused
    (:data:`TIMM_TOWERS`), the fused GELU MLP projector, and Llama-2 7B: width 4096, 32 layers of 32 heads,
    MLP 11008, its 32000-token vocabulary padded to a multiple of 64 (32064 rows, pad id 32000), 256 action
    bins on the last 255 text ids. The export's ``text_config`` names only the vocabulary and pad id; the rest
    are the ``LlamaConfig`` defaults it was written with (Llama-2 7B's sizes, 2048 positions, RMS eps 1e-6),
    written out here. Built as :class:`PrismaticVLA`: 7,526,000,880 parameters (the published safetensors hold
    7,541,237,184: SigLIP's attention-pool head too, which Prismatic never runs, but not the mask token and class
    position row only transformers' DINOv2 has)."""
    return {
        "model_type": "openvla", "vision_backbone_id": "dinosiglip-vit-so-224px", "llm_backbone_id": "llama2-7b-pure",
        "use_fused_vision_backbone": True, "image_sizes": [224, 224],
        "timm_model_ids": ["vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224"],
        "text_config": {"model_type": "llama", "vocab_size": 32064, "hidden_size": 4096, "intermediate_size": 11008,
                        "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
                        "max_position_embeddings": 2048, "rms_norm_eps": 1e-6, "pad_token_id": 32000},
        "pad_to_multiple_of": 64, "pad_token_id": 32000, "n_action_bins": 256,
    }


#: Published Prismatic architectures a policy can be built at with random weights (``actor.model.config.architecture``).
ARCHITECTURES = {"openvla_7b": openvla_7b_config}


def action_vocab_end(cfg: Mapping[str, Any], vocab_size: int) -> int:
    """The id after the last action token of a model built from the OpenVLA ``config.json`` ``cfg`` with
    ``vocab_size`` embedding rows: the text vocabulary's end (the rows less ``pad_to_multiple_of``, as OpenVLA's),
    or ``rlinf_action_vocab_end`` (checkpoints rlinf wrote)."""
    return int(cfg.get("rlinf_action_vocab_end") or vocab_size - int(cfg.get("pad_to_multiple_of") or 0))


def vision_config(spec: Mapping[str, Any], image_size: int) -> Any:
    """A transformers vision config from ``spec`` (``model_type`` ``dinov2_with_registers`` or
    ``siglip_vision_model``)."""
    from transformers import Dinov2WithRegistersConfig, SiglipVisionConfig

    spec = dict(spec)
    kind = spec.pop("model_type")
    if kind == "dinov2_with_registers":
        return Dinov2WithRegistersConfig(image_size=image_size, layerscale_value=1.0, **spec)
    if kind == "siglip_vision_model":
        return SiglipVisionConfig(image_size=image_size, vision_use_head=False, **spec)
    raise ConfigError(f"{KEY}.model_path: vision tower type {kind!r} is not supported "
                      "(dinov2_with_registers, siglip_vision_model)")


def _zero_first_position(grad: torch.Tensor) -> torch.Tensor:
    grad = grad.clone()
    grad[:, 0] = 0
    return grad


class Tower(nn.Module):
    """One vision tower: pixels ``(N, 3, S, S)`` -> patch features ``(N, P, C)`` (second-to-last block)."""

    def __init__(self, config: Any):
        super().__init__()
        from transformers import AutoModel

        self.kind = config.model_type
        self.model = AutoModel.from_config(config)
        self.prefix = 1 + config.num_register_tokens if self.kind == "dinov2_with_registers" else 0
        self.mean, self.std = (IMAGENET_MEAN, IMAGENET_STD) if self.kind == "dinov2_with_registers" else (HALF_MEAN, HALF_STD)
        self.image_size = int(config.image_size)
        self.dim = int(config.hidden_size)
        if self.kind == "dinov2_with_registers":
            # timm's DINOv2-reg gives the class token no position: keep transformers' row 0 at zero
            pos = self.model.embeddings.position_embeddings
            with torch.no_grad():
                pos[:, 0].zero_()
            pos.register_hook(_zero_first_position)
        last = config.num_hidden_layers - 1
        self._unused = (f"layers.{last}.", f"layer.{last}.", "post_layernorm.", "layernorm.", "mask_token")
        self.freeze_unused()

    def freeze_unused(self) -> None:
        """Prismatic reads the second-to-last block: the last block and the final norm never run (call
        again after adding adapters)."""
        for name, param in self.model.named_parameters():
            if any(u in name for u in self._unused):
                param.requires_grad_(False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=pixels, output_hidden_states=True)
        return out.hidden_states[-2][:, self.prefix:]


class Projector(nn.Module):
    """Prismatic's projector: ``fc1 -> GELU -> fc2`` or, fused, ``fc1 (4x) -> GELU -> fc2 -> GELU -> fc3``."""

    def __init__(self, vision_dim: int, llm_dim: int, fused: bool):
        super().__init__()
        self.fused = fused
        if fused:
            self.fc1 = nn.Linear(vision_dim, 4 * vision_dim)
            self.fc2 = nn.Linear(4 * vision_dim, llm_dim)
            self.fc3 = nn.Linear(llm_dim, llm_dim)
        else:
            self.fc1 = nn.Linear(vision_dim, llm_dim)
            self.fc2 = nn.Linear(llm_dim, llm_dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc2(self.act(self.fc1(x)))
        return self.fc3(self.act(x)) if self.fused else x


class VisionBackbone(nn.Module):
    """``featurizer`` (and ``fused_featurizer``): the patch features of each, concatenated per patch."""

    def __init__(self, configs: Sequence[Any]):
        super().__init__()
        self.featurizer = Tower(configs[0])
        self.fused_featurizer = Tower(configs[1]) if len(configs) > 1 else None
        self.dim = self.featurizer.dim + (self.fused_featurizer.dim if self.fused_featurizer else 0)

    def towers(self) -> list[Tower]:
        return [self.featurizer] + ([self.fused_featurizer] if self.fused_featurizer is not None else [])

    def forward(self, pixels: Sequence[torch.Tensor]) -> torch.Tensor:
        feats = [tower(p) for tower, p in zip(self.towers(), pixels, strict=True)]
        return torch.cat(feats, dim=-1)


class PrismaticVLA(nn.Module):
    """``vision_backbone``, ``projector``, ``language_model`` with Prismatic's names (see the module docstring)."""

    def __init__(self, vision_configs: Sequence[Any], text_config: Any):
        super().__init__()
        from transformers import LlamaForCausalLM

        if not 1 <= len(vision_configs) <= 2:
            raise ConfigError(f"{KEY}: a Prismatic backbone has one or two vision towers, got {len(vision_configs)}")
        self.vision_backbone = VisionBackbone(vision_configs)
        self.llm_dim = int(text_config.hidden_size)
        self.projector = Projector(self.vision_backbone.dim, self.llm_dim, fused=len(vision_configs) > 1)
        self.language_model = LlamaForCausalLM(text_config)

    def patch_embeddings(self, pixels: Sequence[torch.Tensor]) -> torch.Tensor:
        """Projected patch embeddings ``(N, P, llm_dim)`` of one camera (one tensor per tower)."""
        return self.projector(self.vision_backbone(pixels))


# --------------------------------------------------------------------------- timm <-> transformers names

#: ``(timm name, transformers name)`` templates per tower kind: ``{i}`` a block, ``{p}`` weight/bias,
#: ``{f}`` fc1/fc2. The attention ``qkv`` and position embeddings are handled apart.
_RULES: dict[str, list[tuple[str, str]]] = {
    "siglip_vision_model": [
        ("patch_embed.proj.{p}", "embeddings.patch_embedding.{p}"),
        ("blocks.{i}.norm1.{p}", "encoder.layers.{i}.layer_norm1.{p}"),
        ("blocks.{i}.norm2.{p}", "encoder.layers.{i}.layer_norm2.{p}"),
        ("blocks.{i}.attn.proj.{p}", "encoder.layers.{i}.self_attn.out_proj.{p}"),
        ("blocks.{i}.mlp.{f}.{p}", "encoder.layers.{i}.mlp.{f}.{p}"),
        ("norm.{p}", "post_layernorm.{p}"),
    ],
    "dinov2_with_registers": [
        ("patch_embed.proj.{p}", "embeddings.patch_embeddings.projection.{p}"),
        ("cls_token", "embeddings.cls_token"),
        ("reg_token", "embeddings.register_tokens"),
        ("blocks.{i}.norm1.{p}", "encoder.layer.{i}.norm1.{p}"),
        ("blocks.{i}.norm2.{p}", "encoder.layer.{i}.norm2.{p}"),
        ("blocks.{i}.attn.proj.{p}", "encoder.layer.{i}.attention.o_proj.{p}"),
        ("blocks.{i}.ls1.gamma", "encoder.layer.{i}.layer_scale1.lambda1"),
        ("blocks.{i}.ls2.gamma", "encoder.layer.{i}.layer_scale2.lambda1"),
        ("blocks.{i}.mlp.{f}.{p}", "encoder.layer.{i}.mlp.{f}.{p}"),
        ("norm.{p}", "layernorm.{p}"),
    ],
}
_FIELDS = {"i": r"\d+", "p": "weight|bias", "f": "fc1|fc2"}
_QKV_HF = {"siglip_vision_model": "encoder.layers.{i}.self_attn.{q}_proj.{p}",
           "dinov2_with_registers": "encoder.layer.{i}.attention.{q}_proj.{p}"}
#: timm entries Prismatic's towers carry but never use (SigLIP's attention-pool head).
_UNUSED = ("attn_pool.", "head.", "fc_norm.")


def _regex(template: str) -> re.Pattern:
    text = re.escape(template)
    for name, alt in _FIELDS.items():
        text = text.replace(re.escape("{" + name + "}"), f"(?P<{name}>{alt})")
    return re.compile(f"^{text}$")


def _rename(name: str, rules: list[tuple[str, str]], forward: bool) -> str | None:
    for timm_t, hf_t in rules:
        src, dst = (timm_t, hf_t) if forward else (hf_t, timm_t)
        hit = _regex(src).match(name)
        if hit:
            return dst.format(**hit.groupdict())
    return None


def timm_tower_to_hf(state: Mapping[str, torch.Tensor], kind: str) -> dict[str, torch.Tensor]:
    """One tower's timm state dict -> transformers names (qkv split, position embeddings reshaped)."""
    qkv = _regex("blocks.{i}.attn.qkv.{p}")
    out: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        if name.startswith(_UNUSED):
            continue
        hit = qkv.match(name)
        if hit:
            for q, chunk in zip("qkv", value.chunk(3, dim=0), strict=True):
                out[_QKV_HF[kind].format(q=q, **hit.groupdict())] = chunk.clone()
        elif name == "pos_embed":
            if kind == "siglip_vision_model":
                out["embeddings.position_embedding.weight"] = value[0]
            else:  # timm's DINOv2-reg adds no position to the class token: a zero row for transformers'
                out["embeddings.position_embeddings"] = torch.cat([torch.zeros_like(value[:, :1]), value], dim=1)
        else:
            new = _rename(name, _RULES[kind], forward=True)
            if new is None:
                raise ConfigError(f"{KEY}.model_path: unknown vision-tower weight {name!r} for a {kind} tower")
            out[new] = value
    return out


def hf_tower_to_timm(state: Mapping[str, torch.Tensor], kind: str) -> dict[str, torch.Tensor]:
    """The inverse of :func:`timm_tower_to_hf` (to write checkpoints in the published format)."""
    qkv_hf = re.compile("^" + re.escape(_QKV_HF[kind]).replace(re.escape("{i}"), r"(?P<i>\d+)")
                        .replace(re.escape("{q}"), "(?P<q>[qkv])").replace(re.escape("{p}"), "(?P<p>weight|bias)") + "$")
    out: dict[str, torch.Tensor] = {}
    parts: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for name, value in state.items():
        hit = qkv_hf.match(name)
        if hit:
            parts.setdefault((hit["i"], hit["p"]), {})[hit["q"]] = value
        elif name == "embeddings.mask_token":
            continue
        elif name == "embeddings.position_embedding.weight":
            out["pos_embed"] = value[None]
        elif name == "embeddings.position_embeddings":
            out["pos_embed"] = value[:, 1:]
        else:
            new = _rename(name, _RULES[kind], forward=False)
            if new is None:
                raise ValueError(f"no timm name for {name!r} ({kind})")
            out[new] = value
    for (block, p), qkv in parts.items():
        out[f"blocks.{block}.attn.qkv.{p}"] = torch.cat([qkv["q"], qkv["k"], qkv["v"]], dim=0)
    return out


def timm_to_hf(state: Mapping[str, torch.Tensor], kinds: Sequence[str]) -> dict[str, torch.Tensor]:
    """A whole Prismatic state dict with timm tower names -> this module's names."""
    towers: dict[str, dict[str, torch.Tensor]] = {"featurizer": {}, "fused_featurizer": {}}
    out: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        m = re.match(r"^vision_backbone\.(featurizer|fused_featurizer)\.(.+)$", name)
        if m:
            towers[m.group(1)][m.group(2)] = value
        else:
            out[name] = value
    for (tower, sub), kind in zip(towers.items(), kinds, strict=False):  # one tower: no fused_featurizer
        for k, v in timm_tower_to_hf(sub, kind).items():
            out[f"vision_backbone.{tower}.model.{k}"] = v
    return out


def hf_to_timm(state: Mapping[str, torch.Tensor], kinds: Sequence[str]) -> dict[str, torch.Tensor]:
    """This module's state dict -> Prismatic's published names (timm towers)."""
    towers: dict[str, dict[str, torch.Tensor]] = {"featurizer": {}, "fused_featurizer": {}}
    out: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        m = re.match(r"^vision_backbone\.(featurizer|fused_featurizer)\.model\.(.+)$", name)
        if m:
            towers[m.group(1)][m.group(2)] = value
        else:
            out[name] = value
    for (tower, sub), kind in zip(towers.items(), kinds, strict=False):  # one tower: no fused_featurizer
        for k, v in hf_tower_to_timm(sub, kind).items():
            out[f"vision_backbone.{tower}.{k}"] = v
    return out


# --------------------------------------------------------------------------- config.json


def tower_specs(cfg: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The vision tower specs of an OpenVLA ``config.json``."""
    if cfg.get("rlinf_vision_configs"):
        return [dict(c) for c in cfg["rlinf_vision_configs"]]
    ids = list(cfg.get("timm_model_ids") or [])
    if not ids:
        raise ConfigError(f"{KEY}.model_path: config.json has neither timm_model_ids nor rlinf_vision_configs; "
                          "it is not an OpenVLA (Prismatic) config")
    unknown = [i for i in ids if i not in TIMM_TOWERS]
    if unknown:
        raise ConfigError(f"{KEY}.model_path: vision tower {unknown[0]!r} is not supported; supported: "
                          f"{sorted(TIMM_TOWERS)}")
    return [dict(TIMM_TOWERS[i]) for i in ids]


def build_from_config_json(cfg: Mapping[str, Any]) -> tuple[PrismaticVLA, list[str]]:
    """A randomly initialised :class:`PrismaticVLA` shaped as ``config.json`` says, and its tower kinds."""
    from transformers import LlamaConfig

    specs = tower_specs(cfg)
    sizes = list(cfg.get("image_sizes") or [224] * len(specs))
    vision = [vision_config(s, int(sizes[i] if i < len(sizes) else sizes[0])) for i, s in enumerate(specs)]
    text = dict(cfg.get("text_config") or {})
    text.pop("model_type", None)
    text.setdefault("pad_token_id", cfg.get("pad_token_id"))
    text_config = LlamaConfig(**{k: v for k, v in text.items() if k not in ("architectures", "torch_dtype", "dtype")})
    text_config._attn_implementation = "sdpa"
    return PrismaticVLA(vision, text_config), [s["model_type"] for s in specs]


def config_json(model: PrismaticVLA, specs: Sequence[Mapping[str, Any]], norm_stats: Mapping[str, Any],
                n_action_bins: int, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An OpenVLA-format ``config.json`` for ``model`` (sizes of our towers in ``rlinf_vision_configs``)."""
    text = model.language_model.config.to_dict()
    keep = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "rope_theta", "pad_token_id",
            "bos_token_id", "eos_token_id", "rope_parameters", "head_dim")
    towers = model.vision_backbone.towers()
    return {
        "architectures": ["OpenVLAForActionPrediction"], "model_type": "openvla",
        "vision_backbone_id": "rlinf-tiny", "llm_backbone_id": "rlinf-tiny-llama",
        "use_fused_vision_backbone": len(towers) > 1, "image_sizes": [t.image_size for t in towers],
        "timm_model_ids": [], "rlinf_vision_configs": [dict(s) for s in specs],
        "text_config": {"model_type": "llama", **{k: text[k] for k in keep if k in text}},
        "n_action_bins": int(n_action_bins), "norm_stats": json.loads(json.dumps(norm_stats)),
        "pad_token_id": text.get("pad_token_id"), **(extra or {}),
    }


def save_prismatic(model: PrismaticVLA, kinds: Sequence[str], path: Path, cfg: Mapping[str, Any]) -> None:
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(hf_to_timm(state, kinds), str(path / "model.safetensors"), metadata={"format": "pt"})
    (path / "config.json").write_text(json.dumps(cfg, indent=2))
    (path / "dataset_statistics.json").write_text(json.dumps(cfg["norm_stats"], indent=2))
