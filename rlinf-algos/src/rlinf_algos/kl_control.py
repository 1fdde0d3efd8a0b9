r"""KL coefficient controllers (``algorithm.kl_ctrl``): the :math:`\beta` of the in-reward KL penalty.

``fixed`` keeps :math:`\beta` constant; ``adaptive`` (Ziegler et al. 2019, arXiv:1909.08593) moves
it toward a target KL: with :math:`e = \mathrm{clip}(\mathrm{KL}/\mathrm{KL}_{target} - 1, -0.2, 0.2)`,
:math:`\beta \leftarrow \beta (1 + e \cdot n / H)` after :math:`n` samples, :math:`H` the horizon.
The flows call ``update(current_kl, n_steps)`` once per step and read ``value``. Plain floats, no
torch, so it can be built anywhere.
"""

from __future__ import annotations

from typing import Any, Protocol

KL_CTRL_TYPES = ("fixed", "adaptive")


class KLController(Protocol):
    value: float

    def update(self, current_kl: float, n_steps: int) -> None: ...


class FixedKLController:
    """:math:`\\beta` stays ``kl_coef``."""

    def __init__(self, kl_coef: float) -> None:
        self.value = float(kl_coef)

    def update(self, current_kl: float, n_steps: int) -> None:
        """No change."""


class AdaptiveKLController:
    """Proportional controller driving the measured KL toward ``target_kl`` over ``horizon`` samples."""

    def __init__(self, kl_coef: float, target_kl: float, horizon: int) -> None:
        if target_kl <= 0:
            raise ValueError(f"algorithm.kl_ctrl.target_kl must be > 0 for the adaptive controller, got {target_kl}")
        if horizon <= 0:
            raise ValueError(f"algorithm.kl_ctrl.horizon must be > 0 for the adaptive controller, got {horizon}")
        self.value = float(kl_coef)
        self.target = float(target_kl)
        self.horizon = int(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        """Scale ``value`` by ``1 + clip(current_kl / target - 1, ±0.2) * n_steps / horizon``."""
        error = min(max(float(current_kl) / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon


def kl_controller(
    type: str = "fixed", kl_coef: float = 0.0, target_kl: float = 0.1, horizon: int = 10000,  # noqa: A002
) -> FixedKLController | AdaptiveKLController:
    """Build the controller named by ``type`` (``algorithm.kl_ctrl.type``: fixed or adaptive)."""
    if type == "fixed":
        return FixedKLController(kl_coef)
    if type == "adaptive":
        return AdaptiveKLController(kl_coef, target_kl, horizon)
    raise ValueError(f"algorithm.kl_ctrl.type must be one of {', '.join(KL_CTRL_TYPES)}, got {type!r}")


def kl_controller_from_config(algorithm: Any) -> FixedKLController | AdaptiveKLController:
    """The controller of a config's ``algorithm`` section; ``kl_ctrl.kl_coef`` unset means ``algorithm.kl_beta``."""
    ctrl = algorithm.kl_ctrl
    coef = algorithm.kl_beta if ctrl.kl_coef is None else ctrl.kl_coef
    return kl_controller(ctrl.type, coef, ctrl.target_kl, ctrl.horizon)
