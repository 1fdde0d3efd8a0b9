"""The rlinf plugin of rlinf-vla-example: registers the model ``tiny_vla`` and its config keys.

Imports no torch: the policy is imported only when a run uses it, and its options class
(``options.py``, what ``rlinf config validate`` checks ``actor.model.config`` against) imports nothing heavy.
"""

from __future__ import annotations

from rlinf_core import ComponentSpec, hookimpl


@hookimpl
def rlinf_register_models() -> list[ComponentSpec]:
    return [
        ComponentSpec("model", "tiny_vla", "rlinf_vla_example.policy:TinyVLAPolicy",
                      "Tiny VLA: char-level instruction transformer FiLM-conditioning a CNN, Gaussian action chunks, "
                      "value head", requires=("torch", "numpy", "gymnasium"),
                      options="rlinf_vla_example.options:TinyVLAOptions"),
    ]
