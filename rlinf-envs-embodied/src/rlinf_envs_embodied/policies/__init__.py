"""Small policies (kind ``model``): ``mlp`` and ``cnn``, each a :class:`rlinf_core.interfaces.Policy`.

They need torch (``pip install 'rlinf-envs-embodied[policies]'``); import them by module.
"""
