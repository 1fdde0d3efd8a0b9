"""``FlowPluginTests``: a ``flow`` component (``runner.task_type``), the :class:`~rlinf_core.interfaces.Flow` contract.

Builds the flow as ``rlinf run`` does, ``cls(config, plugins=, run_dir=)`` with ``config`` validated
by :func:`rlinf_core.config.validate_config`, then checks that ``train()`` and ``evaluate()`` return
dicts of finite floats and that the run directory is used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from rlinf_core.testing.conformance.base import PluginTests


class FlowPluginTests(PluginTests):
    """Subclass as ``class TestMyFlow(FlowPluginTests)``; set ``component`` and ``config`` (a short run's config).

    ``config`` is the whole experiment config (a dict); ``runner.task_type`` is set to ``component``.
    """

    kind = "flow"
    config: ClassVar[Mapping[str, Any]] = {}

    def make_flow(self, run_dir: Path) -> Any:
        from rlinf_core.config import load_config, validate_config
        from rlinf_core.plugins import get_plugins

        raw = {**dict(self.config)}
        runner = dict(raw.get("runner") or {})
        if self.component:
            runner["task_type"] = self.component
        raw["runner"] = runner
        plugins = get_plugins(strict=False)
        config = load_config(raw, plugins=plugins)
        validate_config(config, plugins)
        return self.load_target()(config, plugins=plugins, run_dir=run_dir)

    def test_train_and_evaluate_return_finite_metrics(self, tmp_path: Path) -> None:
        flow = self.make_flow(tmp_path / "run")
        for name, metrics in (("train()", flow.train()), ("evaluate()", flow.evaluate())):
            assert isinstance(metrics, Mapping) and metrics, f"{name} must return a non-empty dict of metrics"
            bad = {k: v for k, v in metrics.items() if not isinstance(v, (int, float)) or not math.isfinite(v)}
            assert not bad, f"{name} returned non-finite or non-float metrics: {bad}"
