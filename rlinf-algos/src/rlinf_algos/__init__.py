"""Algorithms for rlinf: advantage estimators, policy and value losses, KL estimators and loss
aggregation, as pure functions of torch tensors, registered by name.
"""

__version__ = "0.1.0"
