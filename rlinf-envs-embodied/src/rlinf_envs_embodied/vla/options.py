"""The keys of ``actor.model.config`` for the VLA policies, as options dataclasses (torch-free).

Each VLA component declares its class here as its ``options`` (``plugin.py``), so ``rlinf config
validate`` checks ``actor.model.config`` (unknown keys with a "did you mean", types, ranges, choices)
before anything starts, and the policy reads the section with the same class when it is built
(:func:`rlinf_envs_embodied.vla.common.vla_options`): the fields are the keys the constructors take,
their defaults the values they use. The sizes apply to a model built without ``model_path``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlinf_core.config.ranges import bounded
from rlinf_core.errors import suggestion_text

#: ``architecture`` of a Prismatic VLA built without a checkpoint: ``tiny`` (sized by the size keys) or a
#: published architecture with random weights (``openvla_7b``: :func:`rlinf_envs_embodied.vla.prismatic.openvla_7b_config`).
PRISMATIC_ARCHITECTURES = ("tiny", "openvla_7b")
#: The tiny Prismatic's vision: one SigLIP tower or DINOv2 + SigLIP fused (OpenVLA's ``dinosiglip``).
TINY_VISIONS = ("siglip", "dinosiglip")
#: pi0's noise-injection schemes (see :mod:`rlinf_envs_embodied.vla.pi0`).
NOISE_METHODS = ("flow_sde", "flow_noise")


def _choice(path: str, key: str, value: Any, choices: tuple[str, ...]) -> list[str]:
    if value in choices:
        return []
    return [f"{path}.{key}: {value!r} is not one of {list(choices)}.{suggestion_text(str(value), choices)}"]


@dataclass
class VLAOptions:
    """Keys every VLA policy reads."""

    #: Camera (an env ``images`` key) or cameras the policy reads; default: ``openvla`` the env's first
    #: (sorted), ``openvla_oft`` and ``pi0`` all of them.
    cameras: Any = None
    #: The task in words, for envs whose observations carry no ``instruction``.
    instruction: str | None = None
    #: Hidden width of the value head (``add_value_head``).
    value_hidden: int = bounded(256, gt=0)
    #: LoRA scaling (``is_lora``); default: 2 x ``lora_rank``.
    lora_alpha: int | None = bounded(None, gt=0)
    #: Module names LoRA adapts; default: every linear layer but the LM head.
    lora_target_modules: Any = None

    def problems(self, path: str) -> list[str]:
        return []


@dataclass
class TinyVLAOptions(VLAOptions):
    """Size keys of a VLA built without ``model_path`` (a tiny random model), shared by ``openvla`` and ``pi0``."""

    #: Tiny model: the language model's width, layers, attention heads and MLP width.
    hidden_size: int = bounded(32, gt=0)
    num_layers: int = bounded(2, gt=0)
    num_heads: int = bounded(4, gt=0)
    intermediate_size: int = bounded(64, gt=0)
    #: Tiny model: each vision tower's width and layers, the image side and the patch side in pixels.
    vision_hidden: int = bounded(32, gt=0)
    vision_layers: int = bounded(2, gt=0)
    image_size: int = bounded(32, gt=0)
    patch_size: int = bounded(8, gt=0)


@dataclass
class OpenVLAOptions(TinyVLAOptions):
    """``actor.model.config`` of ``openvla``."""

    #: Without ``model_path``: ``tiny`` (random, sized by the keys below) or ``openvla_7b`` (random weights
    #: at the published OpenVLA 7B architecture; the size keys are then ignored).
    architecture: str = "tiny"
    #: Sampling temperature of the action tokens.
    temperature: float = bounded(1.0, gt=0)
    #: Tiny model (a Llama language model): ``siglip`` (one vision tower) or ``dinosiglip`` (DINOv2 + SigLIP,
    #: fused as OpenVLA's).
    vision: str = "siglip"

    def problems(self, path: str) -> list[str]:
        return (super().problems(path) + _choice(path, "architecture", self.architecture, PRISMATIC_ARCHITECTURES)
                + _choice(path, "vision", self.vision, TINY_VISIONS))


@dataclass
class OpenVLAOFTOptions(OpenVLAOptions):
    """``actor.model.config`` of ``openvla_oft``."""

    #: Feed the env's ``state`` through the proprio projector as one more token; default: when the
    #: checkpoint has a projector (``proprio_projector--*_checkpoint.pt``) and the env gives a state.
    use_proprio: bool | None = None


@dataclass
class Pi0Options(TinyVLAOptions):
    """``actor.model.config`` of ``pi0``."""

    #: Denoising steps; default: the checkpoint's ``num_inference_steps`` (4 for a tiny model).
    num_steps: int | None = bounded(None, ge=1)
    #: ``flow_sde`` (the SDE with the flow's marginals) or ``flow_noise`` (Euler mean, fixed std).
    noise_method: str = "flow_sde"
    #: Noise scale of each denoising step (log-probs need noise).
    noise_level: float = bounded(0.5, gt=0)
    #: Tiny model (a Gemma VLM, one SigLIP tower): 2 attention heads of ``head_dim``; the action expert's width.
    num_heads: int = bounded(2, gt=0)
    head_dim: int = bounded(16, gt=0)
    expert_hidden_size: int = bounded(32, gt=0)
    #: Tiny model: the padded state / action width (at least the env's).
    max_dim: int = bounded(8, gt=0)

    def problems(self, path: str) -> list[str]:
        return super().problems(path) + _choice(path, "noise_method", self.noise_method, NOISE_METHODS)
