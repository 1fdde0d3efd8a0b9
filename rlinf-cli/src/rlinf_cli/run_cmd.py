"""``rlinf run CONFIG [key=value ...] [--resume]`` and ``rlinf eval CONFIG [--checkpoint DIR]``.

Both load and validate the config (keys, types, component names, missing extras) before any
worker starts, then build the flow named by ``runner.task_type`` with the run directory
``runner.logger.log_path / runner.logger.experiment_name``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click
from rlinf_core.config import load_config, validate_config
from rlinf_core.errors import ConfigError, RlinfError
from rlinf_core.plugins import get_plugins


def _flow(path: str, overrides: tuple[str, ...]) -> Any:
    plugins = get_plugins()
    notes: list[str] = []
    cfg = load_config(path, overrides, plugins=plugins, notes=notes)
    for note in notes:
        click.echo(f"note: {note}", err=True)
    if cfg.runner.task_type is None:
        raise ConfigError("runner.task_type is not set: name the flow to run, e.g. runner.task_type=reasoning "
                          f"(registered: {', '.join(plugins.registries['flow'].choices()) or 'none'})")
    validate_config(cfg, plugins)
    flow_cls = plugins.registries.load("flow", cfg.runner.task_type)
    run_dir = Path(cfg.runner.logger.log_path) / cfg.runner.logger.experiment_name
    return flow_cls(cfg, plugins=plugins, run_dir=run_dir), run_dir


def _setup_logging() -> None:
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(show_path=False)], force=True)


@click.command("run")
@click.argument("config", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--resume", is_flag=True, help="Continue from the last complete checkpoint of the run directory.")
def run(config: str, overrides: tuple[str, ...], resume: bool) -> None:
    """Train: the flow of runner.task_type on CONFIG (YAML) with key=value overrides."""
    try:
        flow, run_dir = _flow(config, overrides)
        _setup_logging()
        metrics = flow.train(resume=resume)
    except RlinfError as exc:
        raise click.ClickException(str(exc)) from exc
    shown = {k: round(v, 4) for k, v in metrics.items()
             if k.startswith(("reward/", "val/")) or k in ("env/success_rate", "env/episode_return")}
    click.echo(f"done: {run_dir} {json.dumps(shown)}")


@click.command("eval")
@click.argument("config", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1)
@click.option("--checkpoint", type=click.Path(file_okay=False), default=None,
              help="A checkpoint directory (default: the run directory's latest complete one).")
def evaluate(config: str, overrides: tuple[str, ...], checkpoint: str | None) -> None:
    """As JSON: pass@1 / pass@k (runner.eval_pass_k) on data.val_data_paths (reasoning), or the success
    rate and return of deterministic episodes on env.eval (embodied)."""
    try:
        flow, _ = _flow(config, overrides)
        _setup_logging()
        result = flow.evaluate(checkpoint=checkpoint)
    except RlinfError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(result))
