"""VLA policies (kind ``model``): ``openvla``, ``openvla_oft`` and ``pi0``, each a
:class:`rlinf_core.interfaces.Policy` with log-probs for RL. They need ``rlinf-envs-embodied[vla]``
(transformers, peft); import them by module. Their ``actor.model.config`` keys are in :mod:`.options`
(torch-free: ``rlinf config validate`` imports it).
"""
