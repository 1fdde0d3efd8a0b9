"""The ``rlinf`` command: ``plugins list/show``, ``components``, plus subcommands from plugins.

Built-in subcommands work even when every plugin is broken. Plugins add subcommands through the
``rlinf_register_commands`` hook (rlinf-cli adds ``config``, ``run``, ...); they are imported only
when listed or run.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from rlinf_core import __version__
from rlinf_core.components import KINDS
from rlinf_core.errors import RlinfError, suggestion_text
from rlinf_core.plugins import CONFLICT, DISABLED, FAILED, LOADED, PluginSet, get_plugins

_STATUS_STYLE = {LOADED: "green", FAILED: "red", CONFLICT: "yellow", DISABLED: "dim"}


def _console(stderr: bool = False) -> Any:
    from rich.console import Console  # imported on use: keeps `rlinf --version` fast

    return Console(stderr=stderr, soft_wrap=False, width=None if sys.stdout.isatty() else 160)


def _plugins() -> PluginSet:
    plugins = get_plugins(strict=False)
    for warning in plugins.warnings:
        click.echo(f"warning: {warning}", err=True)
    return plugins


def _strict_exit(plugins: PluginSet) -> None:
    try:
        plugins.raise_if_strict()
    except RlinfError as exc:
        raise click.ClickException(str(exc)) from exc


class _RlinfGroup(click.Group):
    """Adds the ``command`` components registered by plugins to the built-in subcommands."""

    def _plugin_commands(self) -> dict[str, Any]:
        try:
            registry = get_plugins(strict=False).registries["command"]
        except Exception:  # discovery itself must never break the built-in commands
            return {}
        return {name: registry.get_spec(name) for name in registry if name not in self.commands}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self._plugin_commands()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        spec = self._plugin_commands().get(cmd_name)
        if spec is None:
            return None
        try:
            command = spec.load()
        except RlinfError as exc:
            message = str(exc)

            @click.command(cmd_name, help=f"(failed to load) {message}", context_settings={"ignore_unknown_options": True})
            @click.argument("args", nargs=-1)
            def broken(args: tuple[str, ...]) -> None:
                raise click.ClickException(message)

            return broken
        if not isinstance(command, click.Command):
            raise click.ClickException(f"command {cmd_name!r} from {spec.origin}: target {spec.target!r} is not a click command")
        return command

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError:
            name = args[0] if args else ""
            hint = suggestion_text(name, self.list_commands(ctx))
            raise click.UsageError(f"No such command {name!r}.{hint} Commands: {', '.join(self.list_commands(ctx))}") from None


@click.group(cls=_RlinfGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="rlinf")
def main() -> None:
    """rlinf: reinforcement-learning infrastructure for post-training foundation models."""


@main.group("plugins")
def plugins_cmd() -> None:
    """Installed plugins (entry-point group rlinf.plugins)."""


@plugins_cmd.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def plugins_list(as_json: bool) -> None:
    """Every plugin with its distribution, version, status and components."""
    plugins = _plugins()
    if as_json:
        click.echo(json.dumps({"plugins": [r.to_dict() for r in plugins.records], "warnings": plugins.warnings}, indent=2))
    else:
        from rich.table import Table

        table = Table(title=f"rlinf {__version__} plugins")
        for col in ("plugin", "distribution", "version", "status", "components / error"):
            table.add_column(col, overflow="fold")
        for rec in plugins.records:
            detail = ", ".join(f"{c.kind}:{c.name}" for c in rec.components) or "-"
            if rec.error:
                detail = rec.error if rec.status != CONFLICT else f"{detail}\n{rec.error}"
            style = _STATUS_STYLE.get(rec.status, "")
            table.add_row(rec.name, rec.distribution or "?", rec.version or "?", f"[{style}]{rec.status}[/]", detail)
        console = _console()
        if plugins.records:
            console.print(table)
        else:
            console.print("No rlinf plugins are installed. Try: pip install rlinf-algos rlinf-envs-embodied rlinf-cli")
        bad = plugins.failures()
        if bad:
            console.print(f"{len(bad)} plugin(s) need attention; details: rlinf plugins show NAME")
    _strict_exit(plugins)


@plugins_cmd.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def plugins_show(name: str, as_json: bool) -> None:
    """One plugin in detail: hooks, components, error and traceback."""
    plugins = _plugins()
    try:
        rec = plugins.record(name)
    except RlinfError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps({**rec.to_dict(), "traceback": rec.traceback}, indent=2))
        return
    click.echo(f"plugin:       {rec.name}")
    click.echo(f"distribution: {rec.distribution} {rec.version}")
    click.echo(f"module:       {rec.module}")
    click.echo(f"status:       {rec.status}")
    click.echo(f"hooks:        {', '.join(rec.hooks) or '-'}")
    if rec.error:
        click.echo(f"error:        {rec.error}")
    click.echo("components:")
    for c in rec.components:
        aliases = f" (aliases: {', '.join(c.aliases)})" if c.aliases else ""
        click.echo(f"  {c.kind:<16} {c.name}{aliases} -> {c.target}  {c.description}")
    if not rec.components:
        click.echo("  -")
    if rec.traceback:
        click.echo("traceback:\n" + rec.traceback)


@main.command("components")
@click.argument("kind", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def components_cmd(kind: str | None, as_json: bool) -> None:
    """Registered components, of every kind or of KIND."""
    plugins = _plugins()
    if kind is not None and kind not in KINDS:
        raise click.BadParameter(
            f"unknown kind {kind!r}.{suggestion_text(kind, KINDS)} Valid kinds: {', '.join(KINDS)}", param_hint="KIND"
        )
    kinds = [kind] if kind else list(KINDS)
    specs = [plugins.registries[k][n] for k in kinds for n in plugins.registries[k]]
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in specs], indent=2))
        return
    from rich.table import Table

    table = Table(title=f"rlinf components{f' ({kind})' if kind else ''}")
    for col in ("kind", "name", "aliases", "plugin", "description"):
        table.add_column(col, overflow="fold")
    for s in specs:
        table.add_row(s.kind, s.name, ", ".join(s.aliases), s.plugin or "", s.description)
    _console().print(table if specs else f"No {kind or ''} components are registered.".replace("  ", " "))


if __name__ == "__main__":
    main()
