"""Small policies (kind ``model``): ``mlp`` and ``cnn``, each a :class:`rlinf_core.interfaces.Policy`.

They need torch (a base dependency of rlinf-envs-embodied); import them by module.
"""
