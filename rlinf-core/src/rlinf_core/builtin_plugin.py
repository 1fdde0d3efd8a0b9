"""rlinf-core's own plugin: what the core implements, registered like any third party's."""

from rlinf_core.components import ComponentSpec
from rlinf_core.hookspecs import hookimpl

_P = "rlinf_core.runtime.placement"


@hookimpl
def rlinf_register_placement_strategies() -> list[ComponentSpec]:
    return [
        ComponentSpec("placement", "collocated", f"{_P}:collocated", "Every worker group on the same devices, taking turns"),
        ComponentSpec("placement", "disaggregated", f"{_P}:disaggregated", "Worker groups on separate devices, pipelined"),
        ComponentSpec("placement", "hybrid", f"{_P}:hybrid", "Some groups share devices, others are split"),
        ComponentSpec("placement", "auto", f"{_P}:auto",
                      "Chosen by the runtime: profiles the env and policy stages, picks mode, split and pipeline_stage_num"),
    ]


@hookimpl
def rlinf_register_rewards() -> list[ComponentSpec]:
    return [
        ComponentSpec("reward", "math", "rlinf_core.rewards.math:math_reward",
                      "Final / \\boxed{} answer, checked for equivalence by math-verify",
                      requires=("math-verify",), extra="math"),
        ComponentSpec("reward", "exact_match", "rlinf_core.rewards.exact_match:exact_match",
                      "1 when the response equals the answer (whitespace-stripped)"),
    ]


@hookimpl
def rlinf_register_flows() -> list[ComponentSpec]:
    return [
        ComponentSpec("flow", "reasoning", "rlinf_core.flows.reasoning:ReasoningFlow",
                      "LLM RL on prompts with verifiable answers: rollout -> reward -> advantage -> update -> weight sync"),
        ComponentSpec("flow", "embodied", "rlinf_core.flows.embodied:EmbodiedFlow",
                      "PPO (GAE) / embodied GRPO on vector envs: env <-> policy pipeline -> advantage -> update -> weight sync",
                      requires=("torch", "rlinf-algos")),
    ]
