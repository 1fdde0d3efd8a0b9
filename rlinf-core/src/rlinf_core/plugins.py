"""Plugin discovery over the entry-point group ``rlinf.plugins``.

Discovery loads one entry point at a time and records, per plugin, its distribution, version,
status and error, so that one broken plugin never hides the others (pluggy's
``load_setuptools_entrypoints`` stops at the first failure). Statuses:

- ``loaded``: imported, hooks validated, components registered;
- ``failed``: the plugin's distribution needs another rlinf-core version (its ``Requires-Dist``),
  or importing it raised (anything but ``KeyboardInterrupt``, ``SystemExit`` included), a hook has a
  wrong signature or an unknown name, or a registration hook raised, returned something other than
  component specs, or returned one name twice; none of its components is used;
- ``disabled``: excluded by ``RLINF_DISABLE_PLUGINS`` or left out of ``RLINF_LOAD_PLUGINS``
  (its module is never imported);
- ``conflict``: its plugin (entry-point) name is declared by another distribution too, so its
  qualified names ``plugin:name`` would be ambiguous; it is not loaded. A first-party plugin keeps
  its name against a third-party one; between two third-party ones neither loads. Disable one by
  its distribution name to load the other.

Component names that several plugins register are *clashes*, not failures: both plugins stay
``loaded``, the bare name fails with a message naming ``plugin:name`` for each, and the clash is
listed in each record's ``clashes`` and in :attr:`PluginSet.warnings` (see ``registry``).

Environment variables (comma-separated plugin or distribution names):
``RLINF_LOAD_PLUGINS`` (allowlist; the built-in plugin ``core`` of rlinf-core is always kept),
``RLINF_DISABLE_PLUGINS`` (blocklist; may name ``core``, with a warning),
``RLINF_STRICT_PLUGINS=1`` (any failed or conflicting plugin is fatal: :meth:`PluginSet.raise_if_strict`).
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
from rlinf_core.registry import Registries, is_first_party, normalize_distribution

if TYPE_CHECKING:
    import importlib.metadata

ENTRY_POINT_GROUP = "rlinf.plugins"
LOADED, FAILED, DISABLED, CONFLICT = "loaded", "failed", "disabled", "conflict"
ENV_LOAD, ENV_DISABLE, ENV_STRICT = "RLINF_LOAD_PLUGINS", "RLINF_DISABLE_PLUGINS", "RLINF_STRICT_PLUGINS"
#: rlinf-core's own plugin (placement strategies): kept by any allowlist, disabled only by name.
BUILTIN_PLUGIN, BUILTIN_DISTRIBUTION = "core", "rlinf-core"


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
    #: Bare component names this plugin shares with others (one line each; see ``registry.Clash``).
    clashes: list[str] = field(default_factory=list)

    @property
    def builtin(self) -> bool:
        """Whether this is rlinf-core's own plugin ``core``."""
        return self.name == BUILTIN_PLUGIN and normalize_distribution(self.distribution) == BUILTIN_DISTRIBUTION

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
            "clashes": list(self.clashes),
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
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # sys.exit() in a hook is the plugin's fault too
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


def _incompatibility(ep: importlib.metadata.EntryPoint, rec: PluginRecord) -> str | None:
    """Why this plugin's distribution cannot run on this rlinf-core (its ``Requires-Dist``), or None."""
    if ep.dist is None or rec.builtin:
        return None
    from rlinf_core import __version__

    for line in ep.dist.requires or ():
        match = _CORE_REQUIREMENT.match(line)
        if match is None or not match.group("spec").strip():
            continue
        spec, marker = match.group("spec").strip(" ()"), match.group("marker")
        if spec == f"=={__version__}":  # the first-party pin: no need to import packaging
            return None
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        try:
            if marker and not _marker_applies(marker):
                continue
            if SpecifierSet(spec).contains(__version__, prereleases=True):
                return None
        except (InvalidSpecifier, ValueError):
            return None  # metadata pip would refuse too; not ours to judge
        return (
            f"{rec.distribution} {rec.version} needs rlinf-core{spec}, but rlinf-core {__version__} is installed. "
            f"Fix: pip install a release of {rec.distribution} made for rlinf-core {__version__}, "
            f"or pip install 'rlinf-core{spec}' (first-party packages move in lockstep with it)"
        )
    return None


_CORE_REQUIREMENT = re.compile(r"^\s*rlinf[-_.]core\s*(?:\[[^\]]*\])?(?P<spec>[^;]*)(?:;(?P<marker>.*))?$", re.IGNORECASE)


def _marker_applies(marker: str) -> bool:
    from packaging.markers import Marker

    return Marker(marker).evaluate({"extra": ""})


def _fail(rec: PluginRecord, exc: BaseException, with_traceback: bool = True) -> None:
    rec.status, rec.error = FAILED, f"{type(exc).__name__}: {exc}".replace("\n", " ")
    rec.traceback = traceback.format_exc() if with_traceback else None


def _load_one(pm: pluggy.PluginManager, ep: importlib.metadata.EntryPoint, rec: PluginRecord) -> None:
    """Import one plugin, register its hooks and collect its components; fills ``rec``."""
    incompatible = _incompatibility(ep, rec)
    if incompatible:
        rec.status, rec.error = FAILED, incompatible
        return
    try:
        module = ep.load()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # SystemExit included: a broken plugin must not stop discovery
        _fail(rec, exc)
        if isinstance(exc, SystemExit):
            rec.error = f"SystemExit: the plugin called sys.exit({exc.code!r}) while importing {ep.value}"
        return
    try:
        pm.register(module, name=rec.name)
    except Exception as exc:  # pluggy.PluginValidationError: wrong hook signature, etc.
        _fail(rec, exc, with_traceback=False)
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
        _check_own_names(components)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        pm.unregister(module)
        _fail(rec, exc)
        return
    rec.components = components


def _check_own_names(components: list[ComponentSpec]) -> None:
    """A plugin may not register one name (or alias) twice for a kind: its qualified name would be ambiguous."""
    seen: dict[tuple[str, str], str] = {}
    for spec in components:
        for key in dict.fromkeys((spec.name, *spec.aliases)):
            if (spec.kind, key) in seen:
                raise ValueError(f"it registers {spec.kind} {key!r} twice (for {seen[spec.kind, key]!r} and "
                                 f"{spec.name!r}); a plugin's names and aliases must be unique per kind")
            seen[spec.kind, key] = spec.name


def _name_conflicts(candidates: list[PluginRecord]) -> None:
    """Entry-point names declared by several distributions: the first-party one keeps it, else none does."""
    by_name: dict[str, list[PluginRecord]] = {}
    for rec in candidates:
        by_name.setdefault(rec.name, []).append(rec)
    for name, recs in by_name.items():
        if len(recs) < 2:
            continue
        first = [r for r in recs if is_first_party(r.distribution)]
        keeper = first[0] if len(first) == 1 else None
        for rec in recs:
            if rec is keeper:
                continue
            if keeper is not None:
                why = f"plugin name {name!r} belongs to first-party {keeper.distribution}; {rec.distribution} is not loaded"
                fix = rec.distribution
            else:
                why = f"plugin name {name!r} is declared by distributions {', '.join(r.distribution or '?' for r in recs)}"
                why += "; none is loaded"
                fix = next(r.distribution for r in recs if r is not rec)
            rec.status = CONFLICT
            rec.error = f"{why}. Fix: uninstall one, or disable one by distribution name: {ENV_DISABLE}={fix}"
        if keeper is not None:
            others = ", ".join(r.distribution or "?" for r in recs if r is not keeper)
            keeper.clashes.append(f"plugin name {name!r} is also declared by {others}, which is not loaded")


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
    to_load: list[tuple[importlib.metadata.EntryPoint, PluginRecord]] = []
    warnings = []
    for ep in eps:
        dist = ep.dist.name if ep.dist else None
        version = ep.dist.version if ep.dist else None
        rec = PluginRecord(name=ep.name, distribution=dist, version=version, module=ep.value)
        records.append(rec)
        ids = {ep.name, dist}
        if ids & block:
            rec.status, rec.error = DISABLED, f"disabled by {ENV_DISABLE} (remove {ep.name!r} from it to enable)"
            if rec.builtin:
                warnings.append(f"{ENV_DISABLE} disables the built-in plugin 'core' (rlinf-core): "
                                "the placement strategies collocated, disaggregated and hybrid are unavailable")
        elif allow and not ids & allow and not rec.builtin:
            rec.status, rec.error = DISABLED, f"not in {ENV_LOAD} (add {ep.name!r} to it to enable)"
        else:
            to_load.append((ep, rec))
    _name_conflicts([rec for _, rec in to_load])
    for ep, rec in to_load:
        if rec.status == LOADED:
            _load_one(pm, ep, rec)

    all_ids = {r.name for r in records} | {r.distribution for r in records if r.distribution}
    for var, names in ((ENV_LOAD, allow), (ENV_DISABLE, block)):
        for name in sorted(names - all_ids):
            warnings.append(f"{var} names {name!r}, which is no installed plugin.{suggestion_text(name, all_ids)}")

    specs = [c for r in records if r.status == LOADED for c in r.components]
    failed = [r for r in records if r.status in (FAILED, CONFLICT)]
    disabled = [r for r in records if r.status == DISABLED]
    registries, clashes = Registries.build(specs, failed, disabled)
    by_name = {r.name: r for r in records if r.status == LOADED}
    for clash in clashes:
        line = clash.warning()
        warnings.append(line)
        for plugin in dict.fromkeys(clash.plugins):
            if plugin in by_name:
                by_name[plugin].clashes.append(line)
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
