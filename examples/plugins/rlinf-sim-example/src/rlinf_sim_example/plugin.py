"""The rlinf plugin of rlinf-sim-example: registers the env ``reacher2d`` and checks its config keys.

Imports neither MuJoCo nor numpy: the env is imported only when a run uses it.
"""

from __future__ import annotations

from rlinf_core import ComponentSpec, hookimpl


@hookimpl
def rlinf_register_envs() -> list[ComponentSpec]:
    return [
        ComponentSpec("env", "reacher2d", "rlinf_sim_example.reacher:Reacher2DEnv",
                      "Two-link planar arm reaching a random target (MuJoCo): state, optional top-down images, chunks",
                      requires=("mujoco", "numpy", "gymnasium")),
    ]


@hookimpl
def rlinf_validate_config(config) -> list[str]:
    """``env.<split>.init_params`` keys of ``reacher2d``, checked before any worker starts."""
    from rlinf_sim_example.options import init_params_problems

    problems: list[str] = []
    for split in ("train", "eval"):
        section = config.env[split]
        if str(section.simulator_type or "").split(":")[-1] == "reacher2d":
            problems += init_params_problems(section.init_params, f"env.{split}.init_params")
    return problems
