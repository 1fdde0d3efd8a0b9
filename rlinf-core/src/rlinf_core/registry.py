"""Typed registries of components, one per kind, frozen after discovery.

Lookups resolve aliases, refuse names that two plugins registered (naming both), and answer
unknown names with the registered choices, the closest match, and the ``pip install`` line for
well-known names of first-party packages that are not installed.
"""

from __future__ import annotations

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


def provider_hint(kind: str, name: str) -> str:
    """What to install (or check) to get a well-known ``kind``/``name``; ``""`` if unknown."""
    known = KNOWN_PROVIDERS.get((kind, name))
    if known is None:
        return ""
    dist, extra = known
    spec = f"{dist}[{extra}]" if extra else dist
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


@dataclass(frozen=True)
class Conflict:
    """One name claimed by several components of the same kind; none of them is registered."""

    kind: str
    name: str
    specs: tuple[ComponentSpec, ...]

    def message(self) -> str:
        who = " and ".join(s.origin for s in self.specs)
        plugins = sorted({s.plugin for s in self.specs if s.plugin})
        return (
            f"{self.kind} {self.name!r} is registered by {who}; neither is used. "
            f"Uninstall one, or disable one with RLINF_DISABLE_PLUGINS={plugins[-1] if plugins else 'NAME'}"
        )


class Registry(Mapping[str, ComponentSpec]):
    """The components of one kind, by name (aliases resolve to their component)."""

    def __init__(
        self,
        kind: str,
        specs: Iterable[ComponentSpec] = (),
        conflicts: Iterable[Conflict] = (),
        failed_plugins: Sequence[Any] = (),
    ):
        if kind not in KINDS:
            raise ValueError(f"unknown component kind {kind!r}; valid kinds: {', '.join(KINDS)}")
        self.kind = kind
        self._specs: dict[str, ComponentSpec] = {}
        self._aliases: dict[str, str] = {}
        for spec in specs:
            self._specs[spec.name] = spec
            for alias in spec.aliases:
                self._aliases[alias] = spec.name
        self._conflicts = {c.name: c for c in conflicts}
        self._failed_plugins = list(failed_plugins)

    # Mapping interface: canonical names only (aliases resolve through __getitem__).
    def __getitem__(self, name: str) -> ComponentSpec:
        return self.get_spec(name)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._specs))

    def __len__(self) -> int:
        return len(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs or name in self._aliases

    def get_spec(self, name: str) -> ComponentSpec:
        """The spec registered under ``name`` or an alias of it.

        Raises:
            ComponentConflictError: two plugins registered ``name``.
            UnknownComponentError: nothing did; the message lists the choices.
        """
        if name in self._conflicts:
            raise ComponentConflictError(self._conflicts[name].message())
        canonical = self._aliases.get(name, name)
        if canonical in self._specs:
            return self._specs[canonical]
        raise UnknownComponentError(self.unknown_message(name))

    def load(self, name: str) -> Any:
        """Import and return the object registered under ``name`` (see :meth:`ComponentSpec.load`)."""
        return self.get_spec(name).load()

    def choices(self) -> list[str]:
        """Registered names and aliases, sorted."""
        return sorted({*self._specs, *self._aliases})

    def canonical(self, name: str) -> str:
        """The component name an alias stands for (the name itself if it is not an alias)."""
        return self.get_spec(name).name

    def unknown_message(self, name: str) -> str:
        """The message for an unknown ``name``: choices, did-you-mean, install hint, failed plugins."""
        choices = self.choices()
        msg = f"unknown {self.kind} {name!r}."
        msg += suggestion_text(name, choices)
        msg += f" Registered: {', '.join(choices)}." if choices else f" No {self.kind} is registered."
        msg += provider_hint(self.kind, name)
        for rec in self._failed_plugins:
            msg += f" Note: plugin {rec.name!r} ({rec.distribution}) failed to load and may provide it: {rec.error}"
        return msg


class Registries(Mapping[str, Registry]):
    """One frozen :class:`Registry` per component kind."""

    def __init__(self, registries: Mapping[str, Registry]):
        self._registries = dict(registries)

    @classmethod
    def build(cls, specs: Iterable[ComponentSpec], failed_plugins: Sequence[Any] = ()) -> tuple[Registries, list[Conflict]]:
        """Sort specs into registries; a name (or alias) claimed twice becomes a :class:`Conflict`."""
        by_kind: dict[str, list[ComponentSpec]] = {k: [] for k in KINDS}
        for spec in specs:
            by_kind[spec.kind].append(spec)
        registries: dict[str, Registry] = {}
        conflicts: list[Conflict] = []
        for kind, kind_specs in by_kind.items():
            claims: dict[str, list[ComponentSpec]] = {}
            for spec in kind_specs:
                for key in (spec.name, *spec.aliases):
                    claims.setdefault(key, []).append(spec)
            kind_conflicts = [Conflict(kind, key, tuple(c)) for key, c in claims.items() if len(c) > 1]
            # The other names of a conflicting component are refused too: no half of it silently wins.
            taken = {c.name for c in kind_conflicts}
            for c in list(kind_conflicts):
                for spec in c.specs:
                    for key in (spec.name, *spec.aliases):
                        if key not in taken:
                            taken.add(key)
                            kind_conflicts.append(Conflict(kind, key, c.specs))
            losers = {id(s) for c in kind_conflicts for s in c.specs}
            registries[kind] = Registry(kind, [s for s in kind_specs if id(s) not in losers], kind_conflicts, failed_plugins)
            conflicts += kind_conflicts
        return cls(registries), conflicts

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
