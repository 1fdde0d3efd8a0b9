"""``rlinf new-plugin KIND NAME``: write a ready-to-install plugin package for a new component.

The package has a ``pyproject.toml`` with the ``rlinf.plugins`` entry point and a ``rlinf-core``
version range, the hook implementation, a minimal working component, tests on the conformance
kit (``rlinf_core.testing``) and a README. It installs and passes its own tests as generated:
``rlinf new-plugin env my_sim && pip install './my_sim[test]' && pytest my_sim``.

Templates are package data (``rlinf_cli/templates``), filled with :class:`string.Template`.
"""

from __future__ import annotations

import keyword
import re
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

import click
from rlinf_core.errors import ConfigError, suggestion_text


@dataclass(frozen=True)
class KindTemplate:
    """What ``new-plugin`` writes for one kind."""

    #: Template folders under ``templates/``, written in order (``common`` first).
    folders: tuple[str, ...]
    #: Runtime dependencies besides rlinf-core.
    dependencies: tuple[str, ...]
    #: The registration hook the plugin implements.
    hook: str
    #: How to use the component (README), with ``$name`` filled in.
    usage: str


KINDS: dict[str, KindTemplate] = {
    "env": KindTemplate(("common", "env"), ("numpy>=1.24", "gymnasium>=1.0"), "rlinf_register_envs",
                        "In an experiment config: `env.train.simulator_type: $name` (keys: `max_episode_steps`, "
                        "`init_params.goal_tolerance`, `init_params.images`, `init_params.image_size`)."),
    "model": KindTemplate(("common", "model"), ("torch>=2.4", "numpy>=1.24", "gymnasium>=1.0"), "rlinf_register_models",
                          "In an experiment config: `actor.model.model_type: $name` (key: `actor.model.hidden_dim`)."),
    "algorithm": KindTemplate(("common", "algorithm"), ("torch>=2.4",), "rlinf_register_algorithms",
                              "In an experiment config: `algorithm.adv_type: $name`."),
    "rollout_engine": KindTemplate(("common", "lm", "rollout_engine"), ("torch>=2.4",), "rlinf_register_rollout_engines",
                                   "In an experiment config: `rollout.rollout_backend: $name` "
                                   "(keys: `actor.model.config.vocab_size`, `actor.model.config.eos_token_id`)."),
    "training_backend": KindTemplate(("common", "lm", "training_backend"), ("torch>=2.4",),
                                     "rlinf_register_training_backends",
                                     "In an experiment config: `actor.training_backend: $name` "
                                     "(keys: `actor.micro_batch_size`, `actor.optim.*`, `actor.model.config.vocab_size`)."),
    "reward": KindTemplate(("common", "reward"), (), "rlinf_register_rewards",
                           "In an experiment config: `reward.reward_type: $name`."),
    "placement": KindTemplate(("common", "placement"), (), "rlinf_register_placement_strategies",
                              "In an experiment config: `cluster.placement: $name`."),
    "flow": KindTemplate(("common", "flow"), (), "rlinf_register_flows",
                         "In an experiment config: `runner.task_type: $name`, then `rlinf run CONFIG`."),
}
#: Other words accepted for a kind.
ALIASES = {"policy": "model", "advantage": "algorithm", "engine": "rollout_engine", "backend": "training_backend"}

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def core_requirement() -> str:
    """``rlinf-core>=X.Y,<X.Y+1`` for the installed rlinf-core (its minor series)."""
    from rlinf_core import __version__

    major, minor = (int(p) for p in __version__.split(".")[:2])
    return f"rlinf-core>={major}.{minor},<{major}.{minor + 1}"


def resolve_kind(kind: str) -> str:
    """The template kind for ``kind`` (aliases accepted), or a ConfigError with did-you-mean."""
    key = kind.strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in KINDS:
        choices = [*KINDS, *ALIASES]
        raise ConfigError(f"unknown plugin kind {kind!r}.{suggestion_text(kind, choices)} "
                          f"Valid: {', '.join(KINDS)} (also: {', '.join(f'{a}={k}' for a, k in ALIASES.items())})")
    return key


def check_name(name: str) -> None:
    """``name`` must be a lowercase Python identifier that does not shadow an importable module."""
    import importlib.util

    if not _NAME_RE.match(name) or keyword.iskeyword(name):
        fixed = re.sub(r"[^a-z0-9_]", "_", name.lower()).strip("_")
        if fixed and not fixed[0].isalpha():
            fixed = f"my_{fixed}"
        hint = f" e.g. {fixed!r}" if fixed and _NAME_RE.match(fixed) and not keyword.iskeyword(fixed) else ""
        raise ConfigError(f"NAME {name!r} is not usable: it becomes the component, plugin and Python package name, so "
                          f"use lowercase letters, digits and '_', starting with a letter, not a Python keyword;{hint}")
    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        found = None
    if found is not None:
        where = found.origin or "a namespace package"
        raise ConfigError(f"NAME {name!r} is already an importable module ({where}); the new package would shadow it. "
                          f"Choose another name, e.g. '{name}_plugin' or 'my_{name}'")


def _title(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_") if part) or "Plugin"


def render(kind: str, name: str, dest: Path) -> list[Path]:
    """Write the package for ``kind`` / ``name`` into ``dest`` (which must not exist); returns the files."""
    kind = resolve_kind(kind)
    check_name(name)
    if dest.exists():
        raise ConfigError(f"{str(dest)!r} already exists; new-plugin never overwrites. Remove it or choose "
                          "another NAME / --output-dir")
    spec = KINDS[kind]
    deps = [core_requirement(), *spec.dependencies]
    values = {
        "name": name, "package": name, "distribution": name.replace("_", "-"), "title": _title(name), "kind": kind,
        "core_requirement": core_requirement(), "dependencies": ", ".join(f'"{d}"' for d in deps), "hook": spec.hook,
    }
    values["usage"] = Template(spec.usage).substitute(values)
    root = resources.files("rlinf_cli") / "templates"
    written: list[Path] = []
    dest.mkdir(parents=True)
    try:
        for folder in spec.folders:
            for source, rel in _walk(root / folder, ()):
                target = dest.joinpath(*(part.replace("__pkg__", name) for part in rel))
                target = target.with_name(target.name.removesuffix(".tmpl"))
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(Template(source.read_text(encoding="utf-8")).substitute(values), encoding="utf-8")
                written.append(target)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)  # no half-written package left behind
        raise
    return written


def _walk(node, rel: tuple[str, ...]):
    """``(traversable, relative parts)`` of every ``.tmpl`` file under ``node``, sorted."""
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.is_dir():
            yield from _walk(child, (*rel, child.name))
        elif child.name.endswith(".tmpl"):
            yield child, (*rel, child.name)


@click.command("new-plugin")
@click.argument("kind")
@click.argument("name")
@click.option("--output-dir", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
              help="Where to create the package folder NAME.")
def new_plugin(kind: str, name: str, output_dir: Path) -> None:
    """Create a plugin package NAME for a new component of KIND.

    KIND: env, model (policy), algorithm, rollout_engine, training_backend, reward, placement or flow.
    NAME: a lowercase Python identifier; it names the package, the plugin and the component.
    """
    try:
        files = render(kind, name, output_dir / name)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    kind = resolve_kind(kind)
    dest = output_dir / name
    click.echo(f"Created {dest}/ ({len(files)} files): a {kind} plugin '{name}' for {core_requirement()}.")
    click.echo("Next:")
    click.echo(f"  pip install -e '{dest}[test]'   # then `rlinf plugins list` shows '{name}'")
    click.echo(f"  pytest {dest}                   # the conformance kit on your component")
