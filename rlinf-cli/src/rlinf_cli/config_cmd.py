"""``rlinf config show``, ``rlinf config validate`` and ``rlinf config migrate``."""

from __future__ import annotations

import json
from pathlib import Path

import click
from omegaconf import OmegaConf
from rlinf_core.config import load_config, migrate_config, validate_config
from rlinf_core.config.checks import interpolation_problems
from rlinf_core.errors import ConfigError, RlinfError
from rlinf_core.plugins import get_plugins


def _load(path: str, overrides: tuple[str, ...], notes: list[str]):
    plugins = get_plugins()
    cfg = load_config(path, overrides, plugins=plugins, notes=notes)
    return cfg, plugins


@click.group("config")
def config() -> None:
    """Show, validate or migrate (from RLinf) an experiment config (YAML + key=value overrides)."""


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


@config.command("migrate")
@click.argument("path", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write the rlinf YAML here (default: standard output, with the report on standard error).")
@click.option("--json", "as_json", is_flag=True, help="Print the report (and the migrated config) as JSON.")
def migrate(path: str, overrides: tuple[str, ...], output: str | None, as_json: bool) -> None:
    """Turn an RLinf config (Hydra defaults composed) into one rlinf YAML, reporting every key:
    kept, mapped (old -> new), dropped (why) or not supported yet (which feature).

    OVERRIDES use RLinf's key names and Hydra's syntax (config groups included), as RLinf's run
    scripts pass them: they are applied before migration."""
    try:
        result = migrate_config(path, overrides)
    except RlinfError as exc:
        raise click.ClickException(str(exc)) from exc
    text = result.to_yaml()
    if output is not None:
        Path(output).write_text(text, encoding="utf-8")
    if as_json:
        click.echo(json.dumps({**result.to_dict(), "output": output}, indent=2, default=str))
        return
    if output is None:
        click.echo(text, nl=False)
    report = [f"{path}: {result.summary()}", *(f"  {line}" for line in result.report_lines())]
    if output is not None:
        report.append(f"wrote {output}; check it with: rlinf config validate {output}")
    for line in report:
        click.echo(line, err=output is None)
