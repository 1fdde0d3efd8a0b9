"""`import rlinf_core` and `rlinf plugins list` import no torch (nor other heavy libraries)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "numpy", "ray", "vllm", "megatron")


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    import json

    return {m.split(".")[0] for m in json.loads(out.strip().splitlines()[-1])}


def test_import_rlinf_core_pulls_nothing_heavy():
    loaded = _modules_after("import rlinf_core, rlinf_core.config, rlinf_core.cli")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_plugins_list_with_all_first_party_plugins_pulls_nothing_heavy():
    code = (
        "from rlinf_core.cli import main\n"
        "try:\n    main(['plugins', 'list'])\nexcept SystemExit:\n    pass\n"
        "main(['components'], standalone_mode=False)"
    )
    loaded = _modules_after(code)
    assert "rlinf_algos" in loaded  # the plugin modules were imported...
    assert not loaded & set(HEAVY), loaded & set(HEAVY)  # ...but none of their heavy targets
