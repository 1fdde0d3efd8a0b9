"""The keys of ``actor.model.config`` for ``model_type: tiny_vla``, declared as a dataclass.

The plugin names :class:`TinyVLAOptions` in its ``ComponentSpec(options=...)``, so ``rlinf config
validate`` (and ``rlinf run``, before anything starts) checks ``actor.model.config`` against it: unknown
keys with a "did you mean", types, ranges and :meth:`TinyVLAOptions.problems`. The policy reads the
section with :func:`read_tiny_vla_options` when it is built, so a run gets exactly what validation
accepted. The keys every rlinf policy shares stay in ``actor.model`` (``num_action_chunks``,
``add_value_head``, ``log_std_init``). Imports neither torch nor numpy: validation imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlinf_core.config.options import read_options
from rlinf_core.config.ranges import bounded


@dataclass(frozen=True)
class TinyVLAOptions:
    """``actor.model.config`` of ``tiny_vla`` (all optional)."""

    #: Output channels of the image encoder's stride-2 3x3 convolutions; each is FiLM-modulated by the instruction.
    conv_channels: list[int] = field(default_factory=lambda: [16, 32, 32])
    #: The last feature map is average-pooled to this many cells per side (then flattened: where things are counts).
    pooled_size: int = bounded(4, ge=1)
    #: Width of the character embeddings and of the instruction transformer.
    text_dim: int = bounded(32, ge=2)
    #: Pre-norm self-attention blocks over the instruction's characters (0: embeddings only).
    text_layers: int = bounded(1, ge=0)
    #: Attention heads of those blocks; must divide text_dim.
    text_heads: int = bounded(2, ge=1)
    #: Characters the tokenizer knows (others map to one "unknown" id). Default: the charset of the env's
    #: ``instruction`` text space, else lowercase letters, digits, space and ``.,'-``.
    charset: str | None = None
    #: Instructions are cut to this many characters. Default: the env's text space's max_length, else 64.
    max_text_length: int | None = bounded(None, ge=1)
    #: Width of the two-layer MLPs that map the fused features to the action mean and to the value.
    trunk_dim: int = bounded(128, ge=1)
    #: The camera to read (a key of ``obs["images"]``). Default: the env's camera when it has exactly one.
    camera: str | None = None
    #: Feed ``obs["state"]`` (proprioception) into the trunk when the env has it.
    use_state: bool = True
    #: The instruction of every row when the env gives none (``obs["instruction"]`` absent).
    instruction: str | None = None

    def problems(self, path: str) -> list[str]:
        """Checks that types and ranges cannot express."""
        out = []
        if not self.conv_channels or any(c < 1 for c in self.conv_channels):
            out.append(f"{path}.conv_channels: needs at least one layer and every channel count >= 1, "
                       f"got {list(self.conv_channels)}")
        if self.text_dim % self.text_heads:
            out.append(f"{path}.text_heads: must divide text_dim ({self.text_dim}), got {self.text_heads}")
        if self.charset is not None and not self.charset:
            out.append(f"{path}.charset: must hold at least one character (or be unset for the env's)")
        return out


def read_tiny_vla_options(config: Any) -> TinyVLAOptions:
    """The options of the ``actor.model`` section ``config``, defaults filled in.

    Raises:
        ConfigError: one line per unknown key, wrong type, value out of range or :meth:`TinyVLAOptions.problems`
            line, naming the full key (``actor.model.config.text_dim``).
    """
    # `config` is actor.model; a node of the run's config knows its path, a plain mapping is taken as actor.model
    return read_options(TinyVLAOptions, config, "config", where="actor.model")
