"""Hydra ``defaults`` composition, with hydra-core's public compose API.

A config file whose top level has a ``defaults`` list is composed the way ``@hydra.main`` would
with ``--config-path <the file's folder> --config-name <the file>`` (how RLinf's run scripts start
every example): config groups resolve relative to the file's folder and to ``hydra.searchpath``
(``${oc.env:...}`` allowed), with packages (``group/option@pkg``), ``override`` entries,
``_self_`` and relative groups (``../hybrid_engines/fsdp``). The ``hydra`` section configures Hydra
itself and is not part of the result.

hydra-core is the ``[hydra]`` extra of rlinf-core, imported only when a file has a ``defaults``
list: hydra-core 1.3 caps omegaconf below 2.4, which a plain install should not have to accept.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rlinf_core.errors import ConfigError

#: The install line printed when hydra-core is missing.
HYDRA_FIX = "pip install 'rlinf-core[hydra]'"
#: Hydra's composition rules: 1.3 (``_self_`` last when absent, as RLinf's ``version_base="1.1"`` also does).
VERSION_BASE = "1.3"


def has_defaults(data: Mapping[str, Any]) -> bool:
    """Whether a config's top level has a Hydra ``defaults`` list."""
    return isinstance(data, Mapping) and isinstance(data.get("defaults"), list)


def _import_hydra() -> Any:
    try:
        import hydra
    except ImportError as exc:
        raise ImportError(HYDRA_FIX) from exc
    return hydra


def _one_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    return lines[0].removesuffix(" Config search path:") if lines else type(exc).__name__


def compose_file(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The config ``path`` composes to through its ``defaults`` list, as a plain dict (``${...}`` kept).

    ``overrides`` are Hydra command-line overrides (``actor.model.model_path=/x``,
    ``env/train=libero_10``, ``+new.key=1``), as RLinf's run scripts pass them.

    Raises:
        ConfigError: hydra-core missing (with the pip line), a group or option not found (with the
            folders searched), an unset environment variable in ``hydra.searchpath``, or any other
            composition error, in one line naming the file.
    """
    path = Path(path).resolve()
    name = repr(str(path))
    try:
        _import_hydra()
    except ImportError as exc:
        raise ConfigError(f"config file {name} has a Hydra 'defaults' list; composing it needs hydra-core. "
                          f"Fix: {HYDRA_FIX}") from exc
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    was_initialized = GlobalHydra.instance().is_initialized()
    if was_initialized:  # e.g. inside a @hydra.main application: compose in our own context, then restore
        saved = GlobalHydra.instance().hydra
        GlobalHydra.instance().clear()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Hydra's deprecation chatter; errors still raise
            with initialize_config_dir(config_dir=str(path.parent), version_base=VERSION_BASE, job_name="rlinf"):
                cfg = compose(config_name=path.name, overrides=list(overrides))
    except Exception as exc:
        raise ConfigError(f"config file {name}: {_composition_error(exc)}") from exc
    finally:
        GlobalHydra.instance().clear()
        if was_initialized:
            GlobalHydra.instance().initialize(saved)
    data = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(data, dict)
    return data  # type: ignore[return-value]


def _composition_error(exc: BaseException) -> str:
    chain: list[BaseException] = []
    node: BaseException | None = exc
    while node is not None and len(chain) < 8:  # Hydra wraps the cause, sometimes with an empty message
        chain.append(node)
        node = node.__cause__ or node.__context__
    exc = next((e for e in chain if str(e).strip() and str(e).strip() != type(e).__name__), exc)
    text = _one_line(exc)
    env = re.search(r"Environment variable '([^']+)' not found", " ".join(str(e) for e in chain))
    if env:
        return (f"hydra.searchpath uses ${{oc.env:{env.group(1)}}}, which is not set: set {env.group(1)} "
                f"(RLinf's run scripts export it) or remove that searchpath entry")
    if "Could not find" in text or "Could not load" in text:
        return f"Hydra composition failed: {text} (groups are looked up beside the file and in hydra.searchpath)"
    return f"Hydra composition failed: {type(exc).__name__}: {text}"
