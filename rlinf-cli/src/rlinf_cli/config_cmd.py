"""``rlinf config show`` and ``rlinf config validate``."""

from __future__ import annotations

import click
from omegaconf import OmegaConf
from rlinf_core.config import load_config, validate_config
from rlinf_core.config.checks import interpolation_problems
from rlinf_core.errors import ConfigError, RlinfError
from rlinf_core.plugins import get_plugins


def _load(path: str, overrides: tuple[str, ...], notes: list[str]):
    plugins = get_plugins()
    cfg = load_config(path, overrides, plugins=plugins, notes=notes)
    return cfg, plugins


@click.group("config")
def config() -> None:
    """Show or validate an experiment config (YAML + key=value overrides)."""


@config.command("show")
@click.argument("path", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--resolve/--no-resolve", default=True, help="Resolve ${...} interpolations.")
def show(path: str, overrides: tuple[str, ...], resolve: bool) -> None:
    """Print the full config, defaults filled in, after overrides."""
    notes: list[str] = []
    try:
        cfg, _ = _load(path, overrides, notes)
        problems = interpolation_problems(cfg) if resolve else []
        if problems:
            raise ConfigError([*problems[:-1], f"{problems[-1]} (--no-resolve prints the config as written)"])
        text = OmegaConf.to_yaml(cfg, resolve=resolve)
    except RlinfError as exc:
        raise click.ClickException(str(exc)) from exc
    for note in notes:
        click.echo(f"# note: {note}")
    click.echo(text, nl=False)


@config.command("validate")
@click.argument("path", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
def validate(path: str, overrides: tuple[str, ...]) -> None:
    """Check keys, types, value ranges, interpolations, placement and component names (installed plugins)."""
    notes: list[str] = []
    try:
        cfg, plugins = _load(path, overrides, notes)
        validate_config(cfg, plugins, notes)
    except RlinfError as exc:
        raise click.ClickException(str(exc)) from exc
    for note in notes:
        click.echo(f"note: {note}")
    click.echo(f"{path}: valid")
