"""The ``rlinf`` command: ``plugins list/show/check``, ``components``, plus subcommands from plugins.

Built-in subcommands work even when every plugin is broken, and always win over a plugin's
command of the same name (which stays reachable as ``rlinf plugin:name``). Plugins add subcommands
through the ``rlinf_register_commands`` hook (rlinf-cli adds ``config``, ``run``, ...); they are
imported only when listed or run.

Errors are printed as one line (``Error: ...``) and exit 1; ``rlinf --traceback ...`` or
``RLINF_TRACEBACK=1`` shows the full Python traceback instead.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from rlinf_core import __version__
from rlinf_core.components import KINDS
from rlinf_core.errors import ComponentConflictError, RlinfError, suggestion_text
from rlinf_core.plugins import CONFLICT, DISABLED, FAILED, LOADED, PluginSet, get_plugins

_STATUS_STYLE = {LOADED: "green", FAILED: "red", CONFLICT: "yellow", DISABLED: "dim"}
ENV_TRACEBACK = "RLINF_TRACEBACK"


def _console(stderr: bool = False) -> Any:
    from rich.console import Console  # imported on use: keeps `rlinf --version` fast

    return Console(stderr=stderr, soft_wrap=False, width=None if sys.stdout.isatty() else 160)


def _warnings(plugins: PluginSet) -> list[str]:
    """Discovery's warnings, plus plugin commands hidden by a built-in command of the same name."""
    registry = plugins.registries["command"]
    shadowed = [
        f"command {s.name!r} of plugin {s.plugin!r} has the name of the built-in `rlinf {s.name}`, which wins; "
        f"run it as `rlinf {s.plugin}:{s.name}`"
        for s in registry.specs() if registry.name_of(s) in main.commands
    ]
    return [*plugins.warnings, *shadowed]


def _plugins() -> PluginSet:
    plugins = get_plugins(strict=False)
    for warning in _warnings(plugins):
        click.echo(f"warning: {warning}", err=True)
    return plugins


def _strict_exit(plugins: PluginSet) -> None:
    try:
        plugins.raise_if_strict()
    except RlinfError as exc:
        raise click.ClickException(str(exc)) from exc


#: What click raises for an unknown subcommand (``NoSuchCommand`` since click 8.2).
_NO_SUCH_COMMAND = getattr(click.exceptions, "NoSuchCommand", click.UsageError)


class _CommandClash(click.UsageError):
    """A bare command name that several plugins register (kept as is by ``resolve_command``)."""


class _RlinfGroup(click.Group):
    """Adds plugins' ``command`` components to the built-in subcommands; prints errors as one line."""

    show_traceback = False

    def _plugin_commands(self) -> dict[str, Any]:
        """Plugin commands by the name that runs them (``plugin:name`` where a built-in or a clash takes the bare one)."""
        try:
            registry = get_plugins(strict=False).registries["command"]
        except Exception:  # discovery itself must never break the built-in commands
            return {}
        commands = {}
        for spec in registry.specs():
            name = registry.name_of(spec)
            commands[f"{spec.plugin}:{spec.name}" if name in self.commands else name] = spec
        return commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self._plugin_commands()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        try:
            registry = get_plugins(strict=False).registries["command"]
            spec = registry.get_spec(cmd_name)
        except ComponentConflictError as exc:
            raise _CommandClash(str(exc)) from None
        except Exception:  # unknown (resolve_command explains), or discovery broke
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
            raise click.ClickException(
                f"command {cmd_name!r} from {spec.origin}: target {spec.target!r} is not a click command "
                f"(check it with `rlinf plugins check {spec.plugin}`)"
            )
        return command

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except (_CommandClash, click.NoSuchOption):
            raise
        except _NO_SUCH_COMMAND:
            name = args[0] if args else ""
            hint = suggestion_text(name, self.list_commands(ctx))
            notes = ""
            try:
                notes = get_plugins(strict=False).registries["command"].notes(name)
            except Exception:
                pass
            raise click.UsageError(
                f"No such command {name!r}.{hint} Commands: {', '.join(self.list_commands(ctx))}.{notes}"
            ) from None

    def main(self, args: Sequence[str] | None = None, *posargs: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        """Run the command; an error that escapes a subcommand is printed as one line (exit 1)."""
        type(self).show_traceback = os.environ.get(ENV_TRACEBACK, "") in ("1", "true", "yes")
        try:
            return super().main(args, *posargs, standalone_mode=standalone_mode, **kwargs)
        except Exception as exc:
            if not standalone_mode or type(self).show_traceback:
                raise
            if isinstance(exc, RlinfError):
                message = str(exc)
            else:
                message = (f"{type(exc).__name__}: {exc} (unexpected; for the full trace run `rlinf --traceback ...` "
                           f"or set {ENV_TRACEBACK}=1)")
            click.echo(f"Error: {message}", err=True)
            sys.exit(1)


@click.group(cls=_RlinfGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", "-V", prog_name="rlinf")
@click.option("--traceback", "show_traceback", is_flag=True,
              help=f"On an error, show the full Python traceback (or set {ENV_TRACEBACK}=1).")
def main(show_traceback: bool) -> None:
    """rlinf: reinforcement-learning infrastructure for post-training foundation models."""
    if show_traceback:
        _RlinfGroup.show_traceback = True


@main.group("plugins")
def plugins_cmd() -> None:
    """Installed plugins (entry-point group rlinf.plugins)."""


@plugins_cmd.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def plugins_list(as_json: bool) -> None:
    """Every plugin with its distribution, version, status and components."""
    plugins = _plugins()
    if as_json:
        data = {"plugins": [r.to_dict() for r in plugins.records], "warnings": _warnings(plugins)}
        click.echo(json.dumps(data, indent=2))
    else:
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=f"rlinf {__version__} plugins")
        for col in ("plugin", "distribution", "version", "status", "components / error"):
            table.add_column(col, overflow="fold")
        for rec in plugins.records:
            detail = ", ".join(f"{c.kind}:{c.name}" for c in rec.components) or "-"
            if rec.error:
                detail = rec.error
            detail = "\n".join([detail, *(f"clash: {c}" for c in rec.clashes)])
            style = _STATUS_STYLE.get(rec.status, "")
            table.add_row(rec.name, rec.distribution or "?", rec.version or "?", f"[{style}]{rec.status}[/]", escape(detail))
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
    for clash in rec.clashes:
        click.echo(f"clash:        {clash}")
    click.echo("components:")
    for c in rec.components:
        aliases = f" (aliases: {', '.join(c.aliases)})" if c.aliases else ""
        click.echo(f"  {c.kind:<16} {c.name}{aliases} -> {c.target}  {c.description}")
    if not rec.components:
        click.echo("  -")
    if rec.traceback:
        click.echo("traceback:\n" + rec.traceback)


@plugins_cmd.command("check")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def plugins_check(name: str | None, as_json: bool) -> None:
    """Import every component's target and check it against its kind's interface.

    Reports each component (ok / failed with the reason) and each plugin that did not load;
    exits 1 on any failure. NAME limits the check to one plugin.
    """
    plugins = _plugins()
    try:
        records = [plugins.record(name)] if name else plugins.records
    except RlinfError as exc:
        raise click.ClickException(str(exc)) from exc
    rows: list[dict[str, Any]] = []
    for rec in records:
        if rec.status == DISABLED:
            rows.append({"plugin": rec.name, "kind": None, "name": None, "status": "skipped" if not name else "failed",
                         "problems": [f"plugin {rec.name!r} is {rec.error}; it was not checked"]})
            continue
        if rec.status != LOADED:
            rows.append({"plugin": rec.name, "kind": None, "name": None, "status": "failed",
                         "problems": [f"plugin {rec.name!r} ({rec.distribution} {rec.version}) is {rec.status}: {rec.error}"]})
            continue
        for spec in rec.components:
            problems = spec.check()
            rows.append({"plugin": rec.name, "kind": spec.kind, "name": spec.name, "status": "failed" if problems else "ok",
                         "problems": problems})
    failed = [r for r in rows if r["status"] == "failed"]
    if as_json:
        click.echo(json.dumps({"results": rows, "ok": not failed}, indent=2))
    else:
        for r in rows:
            what = f"{r['kind']} {r['plugin']}:{r['name']}" if r["kind"] else f"plugin {r['plugin']}"
            detail = "; ".join(r["problems"])
            click.echo(f"{r['status']:<8} {what}" + (f": {detail}" if detail else ""))
        checked = sum(1 for r in rows if r["kind"])
        click.echo(f"{checked} component(s) checked, {len(failed)} failure(s)")
    if failed:
        sys.exit(1)


@main.command("components")
@click.argument("kind", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def components_cmd(kind: str | None, as_json: bool) -> None:
    """Registered components, of every kind or of KIND (plugin:name where a bare name clashes)."""
    plugins = _plugins()
    if kind is not None and kind not in KINDS:
        raise click.BadParameter(
            f"unknown kind {kind!r}.{suggestion_text(kind, KINDS)} Valid kinds: {', '.join(KINDS)}", param_hint="KIND"
        )
    kinds = [kind] if kind else list(KINDS)
    rows = [(plugins.registries[k].name_of(s), s) for k in kinds for s in plugins.registries[k].specs()]
    rows.sort(key=lambda row: (list(KINDS).index(row[1].kind), row[0]))
    if as_json:
        click.echo(json.dumps([{**s.to_dict(), "use_as": use} for use, s in rows], indent=2))
    else:
        from rich.table import Table

        table = Table(title=f"rlinf components{f' ({kind})' if kind else ''}")
        for col in ("kind", "name", "aliases", "plugin", "description"):
            table.add_column(col, overflow="fold")
        for use, s in rows:
            table.add_row(s.kind, use, ", ".join(s.aliases), s.plugin or "", s.description)
        _console().print(table if rows else f"No {kind or ''} components are registered.".replace("  ", " "))
    _strict_exit(plugins)


if __name__ == "__main__":
    main()
