"""What a run writes and shows: ``metrics.jsonl``, a rich progress display, TensorBoard and wandb
(lazily imported), and the reward-curve PNG (matplotlib, lazily)."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rlinf_core.errors import ConfigError

BACKENDS = ("console", "tensorboard", "wandb")
#: Shown on the console line of every step, in this order (when present).
CONSOLE_KEYS = (("reward/mean", "reward"), ("response/length_mean", "len"), ("actor/kl", "kl"), ("actor/entropy", "ent"),
                ("actor/clipfrac", "clip"), ("actor/grad_norm", "gnorm"), ("throughput/tokens_per_s", "tok/s"),
                ("time/step_s", "s/step"))


def check_backends(backends: Sequence[str]) -> None:
    """Fail early, with the pip line, on an unknown or uninstalled logger backend."""
    import importlib.util

    for name in backends:
        if name not in BACKENDS:
            raise ConfigError(f"runner.logger.logger_backends: unknown backend {name!r}; valid: {', '.join(BACKENDS)}")
        module = {"tensorboard": "tensorboard", "wandb": "wandb"}.get(name)
        if module and importlib.util.find_spec(module) is None:
            raise ConfigError(f"runner.logger.logger_backends lists {name!r}, which is not installed. Fix: pip install {module}")


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_curve(rows: Sequence[Mapping[str, Any]], path: str | Path, key: str = "reward/mean", title: str = "") -> Path | None:
    """A PNG of ``key`` per step (matplotlib, headless); ``None`` when there is nothing to plot."""
    points = [(r["step"], r[key]) for r in rows if key in r]
    if not points:
        return None
    try:
        import matplotlib
    except ImportError:  # the Python API without rlinf-cli (which depends on it): say so, don't fail a finished run
        warnings.warn(f"{path} not written: matplotlib is not installed. Fix: pip install matplotlib", stacklevel=2)
        return None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", linewidth=1)
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.set_title(title or key)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


class RunLogger:
    """Per-step metrics to ``metrics.jsonl`` and the chosen backends; a rich progress bar on the console."""

    def __init__(self, run_dir: Path, *, backends: Sequence[str], project: str, experiment: str, total_steps: int,
                 config: Mapping[str, Any] | None = None, start_step: int = 0, show_progress: bool = True):
        check_backends(backends)
        self.run_dir, self.total = run_dir, total_steps
        self.path = run_dir / "metrics.jsonl"
        self._keep_until(start_step)
        self._tb = self._wandb = self._progress = None
        if "tensorboard" in backends:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(run_dir / "tensorboard"))
        if "wandb" in backends:
            import wandb

            self._wandb = wandb.init(project=project, name=experiment, dir=str(run_dir), config=dict(config or {}),
                                     mode=os.environ.get("WANDB_MODE") or None, resume="allow")
        if "console" in backends and show_progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                      TextColumn("{task.description}"))
            self._task = self._progress.add_task("", total=total_steps, completed=start_step)
            self._progress.start()

    def _keep_until(self, step: int) -> None:
        """On resume, drop lines of steps after the checkpoint (a killed run may have logged them)."""
        rows = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]
        with self.path.open("w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        row = {"step": step, **{k: float(v) for k, v in metrics.items()}}
        with self.path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        if self._tb is not None:
            for k, v in metrics.items():
                self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log(dict(metrics), step=step)
        if self._progress is not None:
            text = "  ".join(f"{short} {metrics[k]:.3g}" for k, short in CONSOLE_KEYS if k in metrics)
            self._progress.update(self._task, completed=step, description=text)
            self._progress.console.print(f"step {step:>4}  {text}", highlight=False)

    def close(self, curve_title: str = "") -> Path | None:
        if self._progress is not None:
            self._progress.stop()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
        return plot_curve(read_metrics(self.path), self.run_dir / "reward_curve.png", title=curve_title)
