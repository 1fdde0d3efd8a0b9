"""The keys of ``env.<split>.init_params`` for ``simulator_type: reacher2d``, declared as a dataclass.

The plugin names :class:`Reacher2DOptions` in its ``ComponentSpec(options=...)``, so
``rlinf config validate`` (and ``rlinf run``, before anything starts) checks ``env.train.init_params``
and ``env.eval.init_params`` against it: unknown keys with a "did you mean", types, ranges. The env
reads its section with :func:`read_reacher_options` when it is built, so a run gets exactly what
validation accepted. Imports neither MuJoCo nor numpy: validation imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlinf_core.config.options import read_options
from rlinf_core.config.ranges import bounded


@dataclass(frozen=True)
class Reacher2DOptions:
    """``init_params`` of ``reacher2d`` (all optional)."""

    #: MuJoCo steps (of 10 ms) per env step.
    frame_skip: int = bounded(2, ge=1)
    #: The fingertip within this distance (m) of the target is a success (``info["success"]``).
    success_tolerance: float = bounded(0.02, ge=0)
    #: End the episode (``terminated``) at the first success.
    terminate_on_success: bool = False
    #: ``reward -= control_cost * |action|^2``.
    control_cost: float = bounded(1e-3, ge=0)
    #: Add ``images["top"]``: a top-down uint8 view drawn from the arm's geometry (no OpenGL).
    images: bool = False
    #: Side of that view in pixels.
    image_size: int = bounded(32, ge=8)


def read_reacher_options(config: Any) -> Reacher2DOptions:
    """The options of the env section ``config`` (``env.train`` or ``env.eval``), defaults filled in.

    Raises:
        ConfigError: one line per unknown key, wrong type or value out of range, naming the full key
            (``env.eval.init_params.image``).
    """
    # `config` is the env's own section; a node of the run's config knows its path (env.train or
    # env.eval), a plain mapping (a test building the env directly) is taken as env.train
    return read_options(Reacher2DOptions, config, "init_params", where="env.train")
