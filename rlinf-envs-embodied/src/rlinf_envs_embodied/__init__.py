"""Embodied environments (gymnasium; ManiSkill3, LIBERO, MetaWorld as extras) and VLA policies for
rlinf. This release registers no components yet.
"""

__version__ = "0.1.0"
