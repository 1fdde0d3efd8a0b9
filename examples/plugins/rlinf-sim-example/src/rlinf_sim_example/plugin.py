"""The rlinf plugin of rlinf-sim-example: registers the env ``reacher2d`` and its config keys.

Imports neither MuJoCo nor numpy: the env is imported only when a run uses it, and its options
class (``options.py``, what ``rlinf config validate`` checks ``env.<split>.init_params`` against)
imports neither.
"""

from __future__ import annotations

from rlinf_core import ComponentSpec, hookimpl


@hookimpl
def rlinf_register_envs() -> list[ComponentSpec]:
    return [
        ComponentSpec("env", "reacher2d", "rlinf_sim_example.reacher:Reacher2DEnv",
                      "Two-link planar arm reaching a random target (MuJoCo): state, optional top-down images, chunks",
                      requires=("mujoco", "numpy", "gymnasium"), options="rlinf_sim_example.options:Reacher2DOptions"),
    ]
