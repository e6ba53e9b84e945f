"""rich progress bars per stage and the metrics table printed after a run."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from .runner import STAGES, Reporter


class RichReporter(Reporter):
    """One progress bar per stage, created up front so the whole pipeline is visible."""

    def __init__(self, console: Console | None = None):
        self.progress = Progress(
            TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, transient=False,
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> "RichReporter":
        self.progress.start()
        for stage in STAGES:
            self.tasks[stage] = self.progress.add_task(stage, total=None, start=False)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def start(self, stage: str) -> None:
        self.progress.start_task(self.tasks[stage])

    def update(self, stage: str, completed: float, total: float | None) -> None:
        self.progress.update(self.tasks[stage], completed=completed, total=total)

    def finish(self, stage: str, seconds: float) -> None:
        task = self.tasks[stage]
        total = self.progress.tasks[task].total or 1
        self.progress.update(task, completed=total, total=total)
        self.progress.stop_task(task)


def metrics_table(result: dict[str, Any]) -> Table:
    cfg = result["config"]
    title = (f"{cfg['dataset']['name']} / {cfg['generator']['name']} / {cfg['policy']['name']} / "
             f"{cfg['detector']['name']}  seed {result['seed']}  on {result['device']}")
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in result["metrics"].items():
        table.add_row(k, "null" if v is None else f"{v:.4f}")
    d = result["data"]
    table.add_row("train / generated / test images", f"{d['n_train']} / {d['n_generated']} / {d['n_test']}")
    table.add_row("total time (s)", f"{result['timings']['total']:.1f}")
    return table
