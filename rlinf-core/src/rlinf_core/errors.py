"""Exceptions raised by rlinf, and the "did you mean" helper their messages use.

Every error names what is at fault (a config key, a plugin, a distribution) and how to fix it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class RlinfError(Exception):
    """Base class of every error rlinf raises on purpose."""


class PluginError(RlinfError):
    """A plugin failed to load, or strict mode (``RLINF_STRICT_PLUGINS=1``) found a failure."""


class ComponentError(RlinfError, LookupError):
    """A component could not be found, is ambiguous, or failed to load."""


class UnknownComponentError(ComponentError, KeyError):
    """No component of that kind and name is registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ComponentConflictError(ComponentError):
    """A bare name that several plugins register for one kind; the message names each ``plugin:name`` to use."""


class ComponentLoadError(ComponentError, ImportError):
    """A registered component's target could not be imported."""


class ConfigError(RlinfError, ValueError):
    """A configuration is invalid. ``problems`` holds one message per fault found."""

    def __init__(self, problems: str | list[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__(
            self.problems[0]
            if len(self.problems) == 1
            else f"{len(self.problems)} problems in the config:\n" + "\n".join(f"  - {p}" for p in self.problems)
        )


def did_you_mean(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The closest matches to ``word`` among ``choices`` (case-insensitive), best first."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    hits = difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=0.6)
    return [lowered[h] for h in hits]


def suggestion_text(word: str, choices: Iterable[str]) -> str:
    """``" Did you mean 'x'?"`` or the empty string."""
    hits = did_you_mean(word, choices)
    if not hits:
        return ""
    return " Did you mean " + " or ".join(repr(h) for h in hits) + "?"
