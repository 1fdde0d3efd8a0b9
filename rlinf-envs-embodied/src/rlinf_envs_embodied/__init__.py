"""Embodied environments and small policies for rlinf.

Envs (kind ``env``): ``gymnasium`` (any gymnasium id), ``metaworld`` (extra ``[metaworld]``),
``maniskill`` (extra ``[maniskill]``). Policies (kind ``model``): ``mlp`` and ``cnn`` (torch is a
base dependency). Registered by :mod:`rlinf_envs_embodied.plugin`; nothing heavy is imported here.
"""

__version__ = "0.1.0"
