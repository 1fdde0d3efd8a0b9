"""Plugin discovery over the entry-point group ``rlinf.plugins``.

Discovery loads one entry point at a time and records, per plugin, its distribution, version,
status and error, so that one broken plugin never hides the others (pluggy's
``load_setuptools_entrypoints`` stops at the first failure). Statuses:

- ``loaded``: imported, hooks validated, components registered;
- ``failed``: import failed, a hook has a wrong signature or an unknown name, or a registration
  hook raised or returned something other than component specs; none of its components is used;
- ``disabled``: excluded by ``RLINF_DISABLE_PLUGINS`` or left out of ``RLINF_LOAD_PLUGINS``
  (its module is never imported);
- ``conflict``: loaded, but it registers a component name that another plugin registers too (or
  its entry-point name is taken); the conflicting names are refused, the rest are usable.

Environment variables (comma-separated plugin or distribution names):
``RLINF_LOAD_PLUGINS`` (allowlist), ``RLINF_DISABLE_PLUGINS`` (blocklist),
``RLINF_STRICT_PLUGINS=1`` (any failure or conflict is fatal: :meth:`PluginSet.raise_if_strict`).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pluggy

from rlinf_core import hookspecs
from rlinf_core.components import ComponentSpec
from rlinf_core.errors import PluginError, suggestion_text
from rlinf_core.registry import Registries

if TYPE_CHECKING:
    import importlib.metadata

ENTRY_POINT_GROUP = "rlinf.plugins"
LOADED, FAILED, DISABLED, CONFLICT = "loaded", "failed", "disabled", "conflict"
ENV_LOAD, ENV_DISABLE, ENV_STRICT = "RLINF_LOAD_PLUGINS", "RLINF_DISABLE_PLUGINS", "RLINF_STRICT_PLUGINS"


@dataclass
class PluginRecord:
    """What discovery learned about one plugin (one entry point)."""

    name: str
    distribution: str | None
    version: str | None
    module: str
    status: str = LOADED
    error: str | None = None
    traceback: str | None = None
    hooks: list[str] = field(default_factory=list)
    components: list[ComponentSpec] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON view used by ``rlinf plugins list --json``."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "status": self.status,
            "error": self.error,
            "hooks": list(self.hooks),
            "components": [c.to_dict() for c in self.components],
        }


class _PluginManager(pluggy.PluginManager):
    """Treats every ``rlinf_*`` function of a plugin module as a hook implementation.

    As pytest does for ``pytest_*``: forgetting ``@hookimpl`` still works, and a misspelt hook name
    is caught as an unknown hook instead of being ignored.
    """

    def parse_hookimpl_opts(self, plugin: object, name: str) -> Any:
        opts = super().parse_hookimpl_opts(plugin, name)
        if opts is None and name.startswith("rlinf_") and inspect.isfunction(getattr(plugin, name, None)):
            return {}
        return opts


def new_plugin_manager() -> pluggy.PluginManager:
    """An empty plugin manager that knows every rlinf hook specification."""
    pm = _PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def _names(value: str | None) -> set[str]:
    return {n for n in re.split(r"[,\s]+", value or "") if n}


@dataclass
class PluginSet:
    """The outcome of discovery: the plugin manager, a record per plugin, and frozen registries."""

    manager: pluggy.PluginManager
    records: list[PluginRecord]
    registries: Registries
    warnings: list[str] = field(default_factory=list)

    @property
    def hook(self) -> Any:
        """The hook relay (``plugins.hook.rlinf_configure(config=...)``)."""
        return self.manager.hook

    def record(self, name: str) -> PluginRecord:
        """The record of plugin ``name`` (entry-point or distribution name)."""
        for rec in self.records:
            if name in (rec.name, rec.distribution):
                return rec
        known = [r.name for r in self.records]
        raise PluginError(
            f"no plugin named {name!r}.{suggestion_text(name, known)} Installed plugins: {', '.join(known) or 'none'}"
        )

    def failures(self) -> list[PluginRecord]:
        """Plugins whose status is ``failed`` or ``conflict``."""
        return [r for r in self.records if r.status in (FAILED, CONFLICT)]

    def raise_if_strict(self, environ: Mapping[str, str] | None = None) -> None:
        """Raise :class:`PluginError` when ``RLINF_STRICT_PLUGINS=1`` and any plugin failed or conflicts."""
        env = os.environ if environ is None else environ
        if env.get(ENV_STRICT, "") not in ("1", "true", "yes") or not self.failures():
            return
        lines = [f"{r.name} ({r.distribution} {r.version}): {r.status}: {r.error}" for r in self.failures()]
        raise PluginError(f"{ENV_STRICT}=1 and {len(lines)} plugin(s) did not load cleanly:\n  " + "\n  ".join(lines))

    def call_each(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call one hook on every plugin that implements it; returns ``(plugin, result)`` pairs.

        An exception is re-raised as :class:`PluginError` naming the plugin and the hook.
        """
        results = []
        for impl in reversed(getattr(self.manager.hook, hook_name).get_hookimpls()):
            try:
                results.append((impl.plugin_name, impl.function(*(kwargs[a] for a in impl.argnames))))
            except Exception as exc:
                raise PluginError(f"plugin {impl.plugin_name!r} raised in {hook_name}: {type(exc).__name__}: {exc}") from exc
        return results

    def fingerprint(self) -> str:
        """A short hash of every plugin's name, distribution, version, status and components.

        Workers compare theirs with the driver's to catch a process that sees other plugins.
        """
        data = [
            [r.name, r.distribution, r.version, r.status, sorted(f"{c.kind}:{c.name}" for c in r.components)]
            for r in sorted(self.records, key=lambda r: r.name)
        ]
        return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:16]


def _load_one(pm: pluggy.PluginManager, ep: importlib.metadata.EntryPoint, rec: PluginRecord) -> None:
    """Import one plugin, register its hooks and collect its components; fills ``rec``."""
    try:
        module = ep.load()
    except Exception as exc:  # a broken plugin must not stop discovery
        rec.status, rec.error, rec.traceback = FAILED, f"{type(exc).__name__}: {exc}", traceback.format_exc()
        return
    try:
        pm.register(module, name=rec.name)
    except Exception as exc:  # pluggy.PluginValidationError: wrong hook signature, etc.
        rec.status, rec.error = FAILED, f"{type(exc).__name__}: {exc}".replace("\n", " ")
        return
    callers = pm.get_hookcallers(module) or []
    rec.hooks = sorted(c.name for c in callers)
    unknown = [c.name for c in callers if c.spec is None]
    if unknown:
        pm.unregister(module)
        hints = "".join(suggestion_text(u, hookspecs.hook_names()) for u in unknown)
        rec.status, rec.error = FAILED, f"implements unknown hook(s) {', '.join(unknown)}.{hints}"
        return
    components: list[ComponentSpec] = []
    try:
        for caller in callers:
            allowed = hookspecs.REGISTRATION_HOOKS.get(caller.name)
            if allowed is None:
                continue
            impl = next(i for i in caller.get_hookimpls() if i.plugin is module)
            for spec in impl.function() or ():
                if not isinstance(spec, ComponentSpec):
                    raise TypeError(f"{caller.name} returned {spec!r}; it must return ComponentSpec objects")
                if spec.kind not in allowed:
                    raise TypeError(
                        f"{caller.name} returned a {spec.kind!r} component ({spec.name!r}); it may return: {', '.join(allowed)}"
                    )
                components.append(spec.with_origin(rec.name, rec.distribution))
    except Exception as exc:
        pm.unregister(module)
        rec.status, rec.error, rec.traceback = FAILED, f"{type(exc).__name__}: {exc}", traceback.format_exc()
        return
    rec.components = components


def discover(
    entry_points: Iterable[importlib.metadata.EntryPoint] | None = None, environ: Mapping[str, str] | None = None
) -> PluginSet:
    """Load every plugin of the group ``rlinf.plugins`` (or the given entry points) and build registries.

    Never raises for a plugin's fault: failures are recorded (see the module docstring).
    """
    import importlib.metadata

    env = os.environ if environ is None else environ
    if entry_points is None:
        entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    eps = sorted(entry_points, key=lambda ep: ((ep.dist.name if ep.dist else ""), ep.name))
    allow, block = _names(env.get(ENV_LOAD)), _names(env.get(ENV_DISABLE))
    pm = new_plugin_manager()
    records: list[PluginRecord] = []
    seen: dict[str, PluginRecord] = {}
    for ep in eps:
        dist = ep.dist.name if ep.dist else None
        version = ep.dist.version if ep.dist else None
        rec = PluginRecord(name=ep.name, distribution=dist, version=version, module=ep.value)
        records.append(rec)
        ids = {ep.name, dist}
        if ep.name in seen:
            other = seen[ep.name]
            rec.status = CONFLICT
            rec.error = f"plugin name {ep.name!r} is already used by distribution {other.distribution}; this one is not loaded"
            other.status, other.error = CONFLICT, f"plugin name {ep.name!r} is also declared by distribution {dist}"
            continue
        seen[ep.name] = rec
        if ids & block:
            rec.status, rec.error = DISABLED, f"disabled by {ENV_DISABLE}"
        elif allow and not ids & allow:
            rec.status, rec.error = DISABLED, f"not in {ENV_LOAD}"
        else:
            _load_one(pm, ep, rec)

    warnings = []
    all_ids = {r.name for r in records} | {r.distribution for r in records if r.distribution}
    for var, names in ((ENV_LOAD, allow), (ENV_DISABLE, block)):
        for name in sorted(names - all_ids):
            warnings.append(f"{var} names {name!r}, which is no installed plugin.{suggestion_text(name, all_ids)}")

    specs = [c for r in records if r.status in (LOADED, CONFLICT) for c in r.components]
    failed = [r for r in records if r.status == FAILED]
    registries, conflicts = Registries.build(specs, failed)
    for conflict in conflicts:
        for spec in conflict.specs:
            for rec in records:
                if rec.name == spec.plugin:
                    rec.status = CONFLICT
                    msg = conflict.message()
                    if msg not in (rec.error or ""):
                        rec.error = f"{rec.error}; {msg}" if rec.error else msg
    return PluginSet(pm, records, registries, warnings)


_current: PluginSet | None = None


def get_plugins(strict: bool | None = None) -> PluginSet:
    """The process-wide :class:`PluginSet`, discovered on first use.

    With ``strict`` (default: ``RLINF_STRICT_PLUGINS``), a failed or conflicting plugin raises.
    """
    global _current
    if _current is None:
        _current = discover()
    if strict is None or strict:
        env = dict(os.environ)
        if strict:
            env[ENV_STRICT] = "1"
        _current.raise_if_strict(env)
    return _current


def reset_plugins() -> None:
    """Forget the discovered plugins (tests, or after installing a package at run time)."""
    global _current
    _current = None
