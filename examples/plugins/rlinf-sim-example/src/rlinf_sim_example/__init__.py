"""rlinf-sim-example: an rlinf simulator plugin, the env ``reacher2d`` (a two-link planar arm on MuJoCo)."""

__version__ = "0.1.0"
