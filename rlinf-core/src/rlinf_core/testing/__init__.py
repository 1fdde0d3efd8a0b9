"""Helpers for testing rlinf and plugins built on it.

``demo_flow``: a small env / rollout / actor flow with real compute (needs torch), used by the
runtime tests and ``benchmarks/pipeline.py``.
"""
