"""The kit's import costs: ``import rlinf_core`` never imports pytest; ``rlinf_core.testing`` and its classes
import no torch (the checks import it when they run); ``demo_flow`` needs no pytest."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import rlinf_core
assert "pytest" not in sys.modules, "import rlinf_core imported pytest"
import rlinf_core.testing
assert "pytest" not in sys.modules, "import rlinf_core.testing imported pytest (its names are lazy)"
from rlinf_core.testing import (AlgorithmPluginTests, EnvPluginTests, FlowPluginTests, PlacementPluginTests,
                                PolicyPluginTests, RewardPluginTests, RolloutEnginePluginTests, TrainingBackendPluginTests)
heavy = sorted(m for m in ("torch", "numpy", "gymnasium", "transformers") if m in sys.modules)
assert not heavy, f"the conformance classes imported {heavy}"
print("OK")
"""


def test_imports_stay_light():
    proc = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "OK", proc.stderr


def test_demo_flow_does_not_need_pytest():
    code = "import sys; import rlinf_core.testing.demo_flow; print('pytest' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "False", proc.stderr
