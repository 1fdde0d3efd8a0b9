"""Env components (kind ``env``): each implements :class:`rlinf_core.interfaces.VectorEnv`.

Imported by module (``rlinf_envs_embodied.envs.gymnasium_env`` ...), so that a simulator's package is
imported only when its env is used.
"""
