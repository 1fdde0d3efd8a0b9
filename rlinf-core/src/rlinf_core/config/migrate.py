"""Migrate an RLinf config (Hydra ``defaults`` and all) to one rlinf YAML, with a report on every key.

:func:`migrate_config` composes the file (``compose.py``), then sorts every leaf key by the rules in
``compat.py``: **kept** (the same key here), **mapped** (old -> new key), **dropped** (with the reason
it has no meaning here) or **not supported yet** (with the feature it needs). The ``defaults``
entries are reported as **composed** and the ``hydra`` section as dropped. Nothing is left out of
the report. ``${...}`` references follow their keys: a reference to a mapped key is rewritten, and a
dropped key that a kept value refers to (RLinf's ``runner.output_dir``) moves under ``extra``.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from rlinf_core.config.compat import (
    DROPPED,
    FALLBACK_RULES,
    KEPT,
    MAPPED,
    RULES,
    UNKNOWN_REASON,
    UNSUPPORTED,
    Rule,
    _off,
    get_path,
)
from rlinf_core.config.compose import compose_file, has_defaults
from rlinf_core.config.schema import RlinfConfig
from rlinf_core.errors import ConfigError

COMPOSED, ADDED = "composed", "added"
#: Report order of the statuses.
STATUSES = (COMPOSED, MAPPED, ADDED, DROPPED, UNSUPPORTED, KEPT)
_HYDRA_REASON = "Hydra's own settings (run directory, logging, search path); migrate has composed the defaults"
_REF = re.compile(r"\$\{(\.*[A-Za-z_][\w\-]*(?:\.[\w\-]+)*)\}")


@dataclass(frozen=True)
class KeyReport:
    """What migration did with one RLinf key (a dotted leaf path, or a ``defaults`` entry)."""

    key: str
    status: str
    value: Any = None
    new_key: str | None = None
    reason: str = ""

    def describe(self) -> str:
        """One line: ``status  key [-> new] = value: reason``."""
        text = f"{self.status:<17} {self.key}"
        if self.new_key and self.new_key != self.key:
            text += f" -> {self.new_key}"
        if self.status != COMPOSED:
            text += f" = {_short(self.value)}"
        return text + (f": {self.reason}" if self.reason else "")


@dataclass
class Migration:
    """The migrated config (plain nested dicts) and the report on every key of the source."""

    source: str
    config: dict[str, Any]
    keys: list[KeyReport] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for k in self.keys if k.status == s) for s in STATUSES}

    def summary(self) -> str:
        c = self.counts()
        return (f"{c[KEPT]} kept, {c[MAPPED]} mapped, {c[ADDED]} added, {c[DROPPED]} dropped, "
                f"{c[UNSUPPORTED]} not supported yet"
                + (f" (composed from {c[COMPOSED]} defaults entries)" if c[COMPOSED] else ""))

    def by_status(self, status: str) -> list[KeyReport]:
        return [k for k in self.keys if k.status == status]

    def report_lines(self) -> list[str]:
        """Every key, one line each, grouped by status (kept last)."""
        return [k.describe() for s in STATUSES for k in self.by_status(s)]

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "counts": self.counts(),
                "keys": [dataclasses.asdict(k) for k in self.keys], "config": self.config}

    def to_yaml(self) -> str:
        """The rlinf YAML, headed by comments listing what was mapped, dropped or is not supported yet."""
        head = [f"# Migrated from the RLinf config {self.source} by `rlinf config migrate`.",
                f"# {self.summary()}; the full report: rlinf config migrate --json."]
        for status in (MAPPED, DROPPED, UNSUPPORTED):
            entries = self.by_status(status)
            if entries:
                head.append(f"# {status}:")
                head += [f"#   {k.describe()[18:]}" for k in entries]
        return "\n".join(head) + "\n" + OmegaConf.to_yaml(OmegaConf.create(self.config))


def _short(value: Any, limit: int = 60) -> str:
    structured = isinstance(value, (dict, list)) and value
    text = " ".join((OmegaConf.to_yaml(value).strip() if structured else repr(value)).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _leaves(data: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, f"{path}.")
        else:
            yield path, value


def in_schema(path: str, schema: type = RlinfConfig) -> bool:
    """Whether the dotted ``path`` is a key of rlinf's schema (anything under a free-form section is)."""
    node: Any = schema
    for part in path.split("."):
        if not dataclasses.is_dataclass(node):
            origin = typing.get_origin(node)
            return origin is dict or node is dict  # a free-form section: any key below it
        hints = typing.get_type_hints(node)
        if part not in {f.name for f in dataclasses.fields(node)}:
            return False
        node = hints[part]
    return True


def _classify(path: str, value: Any, config: dict[str, Any]) -> KeyReport:
    rule: Rule | None = None
    match = None
    for candidate in RULES:
        match = candidate.matches(path, value, config)
        if match:
            rule = candidate
            break
    if rule is None:
        if in_schema(path):
            return KeyReport(path, KEPT, value, path)
        for candidate in FALLBACK_RULES:
            match = candidate.matches(path, value, config)
            if match:
                rule = candidate
                break
    if rule is None or match is None:
        return KeyReport(path, UNSUPPORTED, value, None, UNKNOWN_REASON)
    if rule.status == MAPPED:
        assert rule.target is not None
        return KeyReport(path, MAPPED, rule.convert(value) if rule.convert else value, match.expand(rule.target),
                         rule.reason)
    if rule.status == UNSUPPORTED and rule.off_ok and _off(value):
        return KeyReport(path, DROPPED, value, None, f"{value!r} leaves it off (not supported yet: {rule.reason})")
    return KeyReport(path, rule.status, value, None, rule.reason)


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


_MISSING = object()


def _absolute(ref: str, owner: str) -> str:
    """The absolute path of ``${ref}`` written at key ``owner`` (OmegaConf's relative ``${..x}`` rules)."""
    dots = len(ref) - len(ref.lstrip("."))
    if not dots:
        return ref
    parts = owner.split(".")[:-1]  # the container of the owner
    parts = parts[: len(parts) - (dots - 1)] if dots > 1 else parts
    return ".".join([*parts, ref[dots:]])


def _fix_references(config: dict[str, Any], source: dict[str, Any], keys: list[KeyReport]) -> list[KeyReport]:
    """Rewrite ``${...}`` references to moved keys; move dropped keys that kept values refer to under ``extra``."""
    index = {k.key: i for i, k in enumerate(keys) if k.status != COMPOSED}
    where = {k.key: k.new_key for k in keys if k.status in (KEPT, MAPPED)}
    queue = [(k.new_key, k.key) for k in keys if k.status in (KEPT, MAPPED) and isinstance(k.value, str)]
    while queue:
        new_owner, old_owner = queue.pop()
        assert new_owner is not None
        text = get_path(config, new_owner)
        if not isinstance(text, str) or "${" not in text:
            continue

        def swap(m: re.Match[str], new_owner: str = new_owner, old_owner: str = old_owner) -> str:
            target = _absolute(m.group(1), old_owner)
            if target in where:
                new_target = where[target]
            elif in_schema(target):  # dropped, but rlinf has the key: its default answers the reference
                new_target = target
            elif target in index and get_path(source, target, _MISSING) is not _MISSING:
                old = keys[index[target]]
                new_target = f"extra.{target}"
                keys[index[target]] = KeyReport(old.key, MAPPED, old.value, new_target,
                                                f"kept for the ${{...}} in {new_owner}; {old.reason}".rstrip("; "))
                where[target] = new_target
                _set(config, new_target, old.value)
                if isinstance(old.value, str):
                    queue.append((new_target, target))
            else:  # a section, or a key the source does not have: left for validation to judge
                return m.group(0)
            if new_target == target and new_owner == old_owner:
                return m.group(0)
            return "${" + str(new_target) + "}"

        _set(config, new_owner, _REF.sub(swap, text))
    return keys


def _read_raw(path: Path) -> dict[str, Any]:
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of sections")
    return raw  # type: ignore[return-value]


_ORDER = [f.name for f in dataclasses.fields(RlinfConfig)]


def _apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``key=value`` overrides (RLinf's names; a leading ``+``/``++`` is accepted) on a plain config."""
    if not overrides:
        return data
    dotlist = []
    for item in overrides:
        key, sep, value = item.lstrip("+").partition("=")
        if not sep or not key or "/" in key:
            why = "a config group (a/b=...) needs a 'defaults' list in the file" if "/" in key else "expected key=value"
            raise ConfigError(f"override {item!r}: {why}")
        dotlist.append(f"{key}={value}")
    merged = OmegaConf.merge(OmegaConf.create(data), OmegaConf.from_dotlist(dotlist))
    return OmegaConf.to_container(merged, resolve=False)  # type: ignore[return-value]


def migrate_config(source: str | Path | Mapping[str, Any], overrides: Sequence[str] = ()) -> Migration:
    """Migrate an RLinf config file (or an already composed mapping) to rlinf's keys.

    ``overrides`` use RLinf's key names, as its run scripts pass them (Hydra syntax, config groups
    included, when the file has a ``defaults`` list); they are applied before migration.

    Raises:
        ConfigError: the file is missing or not YAML, its ``defaults`` do not compose, or an
            override is malformed.
    """
    keys: list[KeyReport] = []
    if isinstance(source, Mapping):
        name, data = "<mapping>", _apply_overrides(dict(source), overrides)
        raw: dict[str, Any] = dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        name, raw = str(path), _read_raw(path)
        data = compose_file(path, overrides) if has_defaults(raw) else _apply_overrides(dict(raw), overrides)
    for entry in raw.get("defaults") or []:
        entry = ", ".join(f"{k}: {v}" for k, v in entry.items()) if isinstance(entry, dict) else str(entry)
        keys.append(KeyReport(entry, COMPOSED, reason="its keys are listed under their own paths"))
    if isinstance(raw.get("hydra"), Mapping):
        keys += [KeyReport(f"hydra.{k}", DROPPED, v, None, _HYDRA_REASON) for k, v in _leaves(raw["hydra"])]
    data.pop("defaults", None)
    data.pop("hydra", None)
    reports = [_classify(path, value, data) for path, value in _leaves(data)]
    config: dict[str, Any] = {}
    for rep in reports:
        if rep.status == KEPT:
            _set(config, rep.key, rep.value)
    for i, rep in enumerate(reports):
        if rep.status != MAPPED:
            continue
        assert rep.new_key is not None
        existing = get_path(config, rep.new_key, _MISSING)
        if existing is _MISSING:
            _set(config, rep.new_key, rep.value)
        else:
            why = "the same value" if existing == rep.value else f"{existing!r}; rlinf uses that one"
            reports[i] = KeyReport(rep.key, DROPPED, rep.value, None, f"{rep.new_key} is set too ({why})")
    keys += reports
    keys = _fix_references(config, data, keys)
    keys += _derived(config)
    ordered = {k: config[k] for k in _ORDER if k in config}
    return Migration(name, ordered, keys)


def _derived(config: dict[str, Any]) -> list[KeyReport]:
    """Keys RLinf computes at start-up that rlinf reads from the file (reported as ``added``)."""
    micro = get_path(config, "actor.micro_batch_size")
    sizes = [get_path(config, k) for k in ("data.rollout_batch_size", "algorithm.group_size", "algorithm.n_minibatches")]
    if get_path(config, "actor.global_batch_size") is not None or not all(isinstance(v, int) for v in [micro, *sizes]):
        return []
    rows, group, n_mb = sizes
    total = rows * group // n_mb
    if total % micro:
        return []
    _set(config, "actor.global_batch_size", total)
    return [KeyReport("actor.global_batch_size", ADDED, total, "actor.global_batch_size",
                      "RLinf derives it: data.rollout_batch_size x algorithm.group_size / algorithm.n_minibatches")]


def rlinf_only_keys(data: Mapping[str, Any]) -> list[str]:
    """Keys of ``data`` that are RLinf's and not rlinf's (those a migration rule knows), plus ``hydra``."""
    found = ["hydra"] if "hydra" in data else []
    for path, value in _leaves({k: v for k, v in data.items() if k not in ("defaults", "hydra")}):
        rep = _classify(path, value, dict(data))
        if rep.status != KEPT and rep.reason != UNKNOWN_REASON and not in_schema(path):
            found.append(path)
    return found
