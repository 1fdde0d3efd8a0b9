"""Typed registries of components, one per kind, frozen after discovery.

Names: every component answers to its qualified name ``plugin:name`` (and ``plugin:alias``), which
always resolves. A bare name or alias resolves when one plugin registers it. When several do (a
*clash*), that bare name alone fails, naming every qualified name and the config key to set;
nothing else is lost, and the plugins stay loaded. For ``command`` components a first-party
plugin keeps the bare name (``rlinf config`` stays rlinf-cli's), and the others stay reachable
by their qualified names.

Unknown names get the registered choices, the closest match, the ``pip install`` line for
well-known names of first-party packages, and a note on failed or disabled plugins.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rlinf_core.components import KINDS, ComponentSpec
from rlinf_core.components import is_installed as _is_installed  # a module global: tests patch it
from rlinf_core.errors import ComponentConflictError, UnknownComponentError, suggestion_text

# Well-known component names and the first-party distribution (and extra) that provides them.
_FIRST_PARTY: dict[str, tuple[str, str | None, dict[str, tuple[str, ...]]]] = {
    # distribution: (distribution, extra, {kind: names})
    "algos": (
        "rlinf-algos",
        None,
        {
            "advantage": ("gae", "grpo", "rloo", "reinforce_plus_plus", "reinforce_plus_plus_baseline", "reinpp"),
            "policy_loss": ("ppo", "actor", "actor_critic", "gspo"),
            "kl": ("k1", "k2", "k3", "kl", "low_var_kl", "mse", "abs"),
            "loss_agg": ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"),
        },
    ),
    "fsdp": (
        "rlinf-backends-fsdp",
        None,
        {
            "training_backend": ("fsdp",),
            "rollout_engine": ("huggingface", "hf"),
            "model": ("qwen2", "qwen2.5"),
        },
    ),
    "vllm": ("rlinf-backends-fsdp", "vllm", {"rollout_engine": ("vllm",)}),
    "sglang": ("rlinf-backends-fsdp", "sglang", {"rollout_engine": ("sglang",)}),
    "megatron": ("rlinf-backends-megatron", None, {"training_backend": ("megatron",)}),
    "embodied": (
        "rlinf-envs-embodied",
        None,
        {
            "env": ("gym", "gymnasium"),
            "model": ("openvla", "openvla_oft", "openpi", "pi0", "mlp_policy"),
        },
    ),
    "maniskill": ("rlinf-envs-embodied", "maniskill", {"env": ("maniskill",)}),
    "libero": ("rlinf-envs-embodied", "libero", {"env": ("libero",)}),
    "metaworld": ("rlinf-envs-embodied", "metaworld", {"env": ("metaworld",)}),
    "core": (
        "rlinf-core",
        None,
        {
            "placement": ("collocated", "disaggregated", "hybrid", "auto"),
            "flow": ("reasoning", "embodied"),
        },
    ),
    "cli": ("rlinf-cli", None, {"command": ("run", "eval", "config", "bench", "new-plugin")}),
}

#: (kind, name) -> (distribution, extra) for well-known names of first-party packages.
KNOWN_PROVIDERS: dict[tuple[str, str], tuple[str, str | None]] = {
    (kind, name): (dist, extra) for dist, extra, kinds in _FIRST_PARTY.values() for kind, names in kinds.items() for name in names
}

#: The distributions of this repository. Their plugin names and command names win a clash.
FIRST_PARTY_DISTRIBUTIONS: frozenset[str] = frozenset(dist for dist, _, _ in _FIRST_PARTY.values())


def normalize_distribution(name: str | None) -> str:
    """A distribution name as PyPI compares them (``rlinf_core`` == ``rlinf-core``)."""
    return re.sub(r"[-_.]+", "-", name or "").lower()


def is_first_party(distribution: str | None) -> bool:
    """Whether ``distribution`` is one of rlinf's own distributions."""
    return normalize_distribution(distribution) in FIRST_PARTY_DISTRIBUTIONS


def config_keys(kind: str) -> list[str]:
    """The config keys whose value names a component of ``kind`` (``advantage`` -> ``algorithm.adv_type``)."""
    try:
        from rlinf_core.config.schema import COMPONENT_KEYS  # lazy: only error messages need it
    except Exception:  # the config package must never break a lookup's message
        return []
    return [key for key, k in COMPONENT_KEYS.items() if k == kind]


def provider_hint(kind: str, name: str, disabled_plugins: Sequence[Any] = ()) -> str:
    """What to install, enable (or check) to get a well-known ``kind``/``name``; ``""`` if unknown."""
    known = KNOWN_PROVIDERS.get((kind, name))
    if known is None:
        return ""
    dist, extra = known
    spec = f"{dist}[{extra}]" if extra else dist
    for rec in disabled_plugins:
        if normalize_distribution(rec.distribution) == dist:
            return f" {kind} {name!r} is provided by plugin {rec.name!r} ({dist}), which is {rec.error}."
    if not _is_installed(dist):
        return f" {kind} {name!r} is provided by {dist}, which is not installed. Fix: pip install '{spec}'"
    if extra:
        return (
            f" {kind} {name!r} is provided by {dist} with its '{extra}' extra. "
            f"Fix: pip install '{spec}' (or check `rlinf plugins list` for a failed plugin)"
        )
    return (
        f" {kind} {name!r} is a well-known name of {dist}, which is installed but does not register it: "
        "check `rlinf plugins list` for a failed or disabled plugin, or upgrade it"
    )


def qualified_names(spec: ComponentSpec) -> list[str]:
    """``plugin:name`` and ``plugin:alias`` of a spec (none if its plugin is unknown)."""
    return [f"{spec.plugin}:{n}" for n in (spec.name, *spec.aliases)] if spec.plugin else []


@dataclass(frozen=True)
class Clash:
    """One bare name (or alias) registered by several plugins for the same kind.

    The bare name fails with :meth:`message` unless there is a ``winner`` (a first-party
    ``command``); every component stays reachable by its qualified name.
    """

    kind: str
    name: str
    specs: tuple[ComponentSpec, ...]
    winner: ComponentSpec | None = None

    def qualified(self) -> list[str]:
        """The qualified name of each claimant, for this bare name."""
        return [f"{s.plugin}:{self.name}" for s in self.specs]

    @property
    def plugins(self) -> list[str]:
        return [s.plugin or "?" for s in self.specs]

    def _how(self, choice: str) -> str:
        if self.kind == "command":
            return f"run `rlinf {choice}`"
        keys = config_keys(self.kind)
        return f"set e.g. `{keys[0]}: {choice}`" if keys else f"use {choice!r}"

    def _to_disable(self) -> str:
        third_party = [s.plugin for s in self.specs if s.plugin and not is_first_party(s.distribution)]
        return (third_party or self.plugins)[-1]

    def message(self) -> str:
        """The error for a lookup of the ambiguous bare name."""
        who = " and ".join(s.origin for s in self.specs)
        names = " or ".join(repr(q) for q in self.qualified())
        return (
            f"{self.kind} {self.name!r} is registered by {who}, so the bare name is ambiguous. "
            f"Name one: {names} ({self._how(self.qualified()[0])}), "
            f"or disable a plugin with RLINF_DISABLE_PLUGINS={self._to_disable()}"
        )

    def warning(self) -> str:
        """One line for ``rlinf plugins list`` and each plugin's record."""
        plugins = " and ".join(repr(p) for p in self.plugins)
        if self.winner is not None:
            others = ", ".join(q for s, q in zip(self.specs, self.qualified(), strict=True) if s is not self.winner)
            return (f"{self.kind} {self.name!r} is registered by plugins {plugins}: {self.name!r} is "
                    f"{self.winner.plugin!r}'s (first-party); use {others} for the other")
        return (f"{self.kind} {self.name!r} is registered by plugins {plugins}: the bare name is ambiguous; "
                f"use {' or '.join(self.qualified())}")


class Registry(Mapping[str, ComponentSpec]):
    """The components of one kind, by name.

    Keys (iteration, ``len``) are the names to use: the bare name of each component, or its
    qualified ``plugin:name`` where the bare name clashes. Lookups also accept aliases and every
    qualified form.
    """

    def __init__(
        self,
        kind: str,
        specs: Iterable[ComponentSpec] = (),
        failed_plugins: Sequence[Any] = (),
        disabled_plugins: Sequence[Any] = (),
    ):
        if kind not in KINDS:
            raise ValueError(f"unknown component kind {kind!r}; valid kinds: {', '.join(KINDS)}")
        self.kind = kind
        self._all: list[ComponentSpec] = list(specs)
        self._claims: dict[str, list[ComponentSpec]] = {}
        self._qualified: dict[str, ComponentSpec] = {}
        for spec in self._all:
            for key in (spec.name, *spec.aliases):
                claimants = self._claims.setdefault(key, [])
                if all(c is not spec for c in claimants):  # identity: specs compare by fields
                    claimants.append(spec)
            for key in qualified_names(spec):
                self._qualified.setdefault(key, spec)
        self.clashes: dict[str, Clash] = {}
        for key, claimants in self._claims.items():
            if len(claimants) > 1:
                first = [s for s in claimants if is_first_party(s.distribution)]
                winner = first[0] if kind == "command" and len(first) == 1 else None
                ordered = tuple(sorted(claimants, key=lambda s: (s.plugin or "", s.distribution or "")))
                self.clashes[key] = Clash(kind, key, ordered, winner)
        self._failed_plugins = list(failed_plugins)
        self._disabled_plugins = list(disabled_plugins)

    # Mapping interface: one usable name per component (aliases and qualified names resolve too).
    def __getitem__(self, name: str) -> ComponentSpec:
        return self.get_spec(name)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.name_of(s) for s in self._all))

    def __len__(self) -> int:
        return len(self._all)

    def __contains__(self, name: object) -> bool:
        """Whether ``name`` is registered (an ambiguous bare name is: looking it up raises the clash)."""
        return name in self._claims or name in self._qualified

    def _resolve(self, name: str) -> ComponentSpec | None:
        claimants = self._claims.get(name)
        if not claimants:
            return None
        if len(claimants) == 1:
            return claimants[0]
        return self.clashes[name].winner

    def name_of(self, spec: ComponentSpec) -> str:
        """The shortest name that resolves to ``spec``: its bare name, or ``plugin:name`` on a clash."""
        return spec.name if self._resolve(spec.name) is spec or not spec.plugin else f"{spec.plugin}:{spec.name}"

    def specs(self) -> list[ComponentSpec]:
        """Every registered component, clashing ones included."""
        return list(self._all)

    def get_spec(self, name: str) -> ComponentSpec:
        """The spec registered under ``name``: a bare name, an alias, or ``plugin:name``.

        Raises:
            ComponentConflictError: several plugins registered the bare ``name``; the message lists
                the qualified names to use instead.
            UnknownComponentError: nothing did; the message lists the choices.
        """
        if ":" in name:
            spec = self._qualified.get(name)
            if spec is not None:
                return spec
            raise UnknownComponentError(self._unknown_qualified(name))
        spec = self._resolve(name)
        if spec is not None:
            return spec
        if name in self.clashes:
            raise ComponentConflictError(self.clashes[name].message())
        raise UnknownComponentError(self.unknown_message(name))

    def load(self, name: str) -> Any:
        """Import and return the object registered under ``name`` (see :meth:`ComponentSpec.load`)."""
        return self.get_spec(name).load()

    def choices(self) -> list[str]:
        """Names that resolve: unique bare names and aliases, and qualified names where a bare one clashes."""
        names = {key for key in self._claims if self._resolve(key) is not None}
        for clash in self.clashes.values():
            names.update(q for s, q in zip(clash.specs, clash.qualified(), strict=True) if s is not clash.winner)
        return sorted(names)

    def canonical(self, name: str) -> str:
        """The component name an alias (or qualified name) stands for."""
        return self.get_spec(name).name

    def notes(self, name: str) -> str:
        """Why ``name`` may be missing: a first-party package to install, failed or disabled plugins."""
        msg = provider_hint(self.kind, name, self._disabled_plugins)
        for rec in self._failed_plugins:
            msg += f" Note: plugin {rec.name!r} ({rec.distribution}) failed to load and may provide it: {rec.error}"
        if self._disabled_plugins and not msg.strip().startswith(f"{self.kind} {name!r} is provided by plugin"):
            listed = ", ".join(f"{r.name} ({r.distribution})" for r in self._disabled_plugins)
            msg += (f" Note: disabled plugins are not imported and may provide it: {listed} "
                    "(see RLINF_DISABLE_PLUGINS / RLINF_LOAD_PLUGINS; `rlinf plugins list`)")
        return msg

    def unknown_message(self, name: str) -> str:
        """The message for an unknown ``name``: choices, did-you-mean, install hint, failed/disabled plugins."""
        choices = self.choices()
        msg = f"unknown {self.kind} {name!r}."
        msg += suggestion_text(name, choices)
        msg += f" Registered: {', '.join(choices)}." if choices else f" No {self.kind} is registered."
        return msg + self.notes(name)

    def _unknown_qualified(self, name: str) -> str:
        plugin, _, bare = name.rpartition(":")
        providers = sorted({s.plugin for s in self._all if s.plugin})
        msg = f"unknown {self.kind} {name!r}:"
        if plugin in providers:
            own = sorted(n for s in self._all if s.plugin == plugin for n in (s.name, *s.aliases))
            msg += f" plugin {plugin!r} registers no {self.kind} {bare!r} (it registers: {', '.join(own)})."
            msg += suggestion_text(bare, own)
        else:
            msg += f" no plugin named {plugin!r} registers a {self.kind}."
            msg += suggestion_text(plugin, providers)
            msg += f" Plugins that do: {', '.join(providers)}." if providers else ""
        others = [f"{s.plugin}:{bare}" for s in self._claims.get(bare, ()) if s.plugin != plugin]
        if others:
            return msg + f" {bare!r} is registered as {' and '.join(others)}."
        return msg + self.notes(bare)


class Registries(Mapping[str, Registry]):
    """One frozen :class:`Registry` per component kind."""

    def __init__(self, registries: Mapping[str, Registry]):
        self._registries = dict(registries)

    @classmethod
    def build(
        cls, specs: Iterable[ComponentSpec], failed_plugins: Sequence[Any] = (), disabled_plugins: Sequence[Any] = (),
    ) -> tuple[Registries, list[Clash]]:
        """Sort specs into registries; returns them with every :class:`Clash` of a bare name."""
        by_kind: dict[str, list[ComponentSpec]] = {k: [] for k in KINDS}
        for spec in specs:
            by_kind[spec.kind].append(spec)
        registries = {kind: Registry(kind, s, failed_plugins, disabled_plugins) for kind, s in by_kind.items()}
        return cls(registries), [c for r in registries.values() for c in r.clashes.values()]

    def __getitem__(self, kind: str) -> Registry:
        try:
            return self._registries[kind]
        except KeyError:
            raise KeyError(
                f"unknown component kind {kind!r}.{suggestion_text(kind, KINDS)} Valid kinds: {', '.join(KINDS)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._registries)

    def __len__(self) -> int:
        return len(self._registries)

    def get_spec(self, kind: str, name: str) -> ComponentSpec:
        """The spec of ``kind`` registered as ``name`` (see :meth:`Registry.get_spec`)."""
        return self[kind].get_spec(name)

    def load(self, kind: str, name: str) -> Any:
        """Import and return the component ``kind``/``name``."""
        return self[kind].load(name)
