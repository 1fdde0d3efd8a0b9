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
    ]
