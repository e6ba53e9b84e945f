"""Progress of ``benchbox run`` and ``benchbox grid``, and the metrics table printed after a run.

On a terminal: rich bars (one per stage; one for a grid). Anywhere else (a log file, a pipe, a CI
console): plain lines on stdout -- each stage's start, then about every 10 % of it or every 30 s,
whichever comes first (with images/s or steps/s where the stage reports them, time elapsed and
time left), and its end with the time it took; a grid's cells done / total with an ETA the same
way. ``--quiet`` prints neither.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import IO, Any, Callable

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

    def note(self, stage: str, message: str) -> None:
        self.progress.console.print(f"{stage}: {message}", highlight=False, soft_wrap=True)

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


# --------------------------------------------------------------------------------------------
# plain lines, for logs
# --------------------------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


class _Pace:
    """When the next line is due: each further ``step`` of the fraction done, or ``seconds`` after
    the last line, whichever comes first."""

    def __init__(self, clock: Callable[[], float], step: float, seconds: float):
        self.clock, self.step, self.seconds = clock, step, seconds
        self.started = self.last = clock()
        self.next = step

    def due(self, fraction: float | None = None) -> bool:
        now = self.clock()
        if fraction is not None and fraction >= self.next - 1e-9:
            self.next = (int(fraction / self.step + 1e-9) + 1) * self.step
        elif now - self.last < self.seconds:
            return False
        self.last = now
        return True

    def elapsed(self) -> float:
        return self.clock() - self.started


class _Printer:
    """Lines to a stream (stdout by default) under a lock, and an optional heartbeat thread that
    lets a line come out on time while a stage reports nothing (a long epoch)."""

    def __init__(self, stream: IO[str] | None, heartbeat: float | None):
        self.stream, self.heartbeat = stream, heartbeat
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def line(self, text: str) -> None:
        with self.lock:
            stream = self.stream or sys.stdout
            stream.write(text + "\n")
            stream.flush()

    def start(self, beat: Callable[[], None]) -> None:
        if self.heartbeat is None or self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(self.heartbeat):
                beat()

        self._thread = threading.Thread(target=loop, name="benchbox-progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class LineReporter(Reporter):
    """Plain progress lines per stage (see the module docstring), e.g.::

        fit generator: started
        fit generator: 4/40 (10%), 31.2 images/s, 23.1 s elapsed, about 3 min 28 s left
        fit generator: done in 3 min 51 s (31.0 images/s)

    Rates come from ``FitContext.processed`` (images a training loop went through); where a stage
    reports none, ``units`` names what its progress counts (a latent policy's: environment steps).
    Use it as a context manager for the heartbeat; ``heartbeat=None`` and a fake ``clock`` make it
    deterministic.
    """

    def __init__(self, stream: IO[str] | None = None, *, step: float = 0.1, seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic, heartbeat: float | None = 1.0,
                 units: dict[str, str] | None = None):
        self.out = _Printer(stream, heartbeat)
        self.step, self.seconds, self.clock = step, seconds, clock
        self.units = {"fit policy": "steps"} if units is None else units
        self.stage: str | None = None
        self.pace = _Pace(clock, step, seconds)
        self.done: tuple[float, float | None] = (0.0, None)
        self.counts: dict[str, float] = {}

    def __enter__(self) -> "LineReporter":
        self.out.start(self._beat)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.out.stop()

    def start(self, stage: str) -> None:
        with self.out.lock:
            self.stage, self.done, self.counts = stage, (0.0, None), {}
            self.pace = _Pace(self.clock, self.step, self.seconds)
            self.out.line(f"{stage}: started")

    def update(self, stage: str, completed: float, total: float | None) -> None:
        with self.out.lock:
            if stage != self.stage:
                return
            self.done = (completed, total)
            fraction = completed / total if total else None
            if (fraction is None or fraction < 1.0) and self.pace.due(fraction):
                self.out.line(self._status())

    def processed(self, stage: str, n: float, unit: str) -> None:
        with self.out.lock:
            if stage != self.stage:
                return
            self.counts[unit] = self.counts.get(unit, 0.0) + n
            if self.pace.due():
                self.out.line(self._status())

    def note(self, stage: str, message: str) -> None:
        self.out.line(f"{stage}: {message}")

    def finish(self, stage: str, seconds: float) -> None:
        with self.out.lock:
            rate = self._rate(seconds)
            self.out.line(f"{stage}: done in {_duration(seconds)}" + (f" ({rate})" if rate else ""))
            self.stage = None

    def _beat(self) -> None:
        with self.out.lock:
            if self.stage is not None and self.pace.due():
                self.out.line(self._status())

    def _rate(self, seconds: float) -> str:
        if seconds <= 0:
            return ""
        if self.counts:
            unit, n = next(iter(self.counts.items()))
            return f"{n / seconds:.1f} {unit}/s"
        completed, total = self.done
        unit = self.units.get(self.stage or "")
        return f"{completed / seconds:.1f} {unit}/s" if unit and total and total > 1 and completed else ""

    def _status(self) -> str:
        completed, total = self.done
        elapsed = self.pace.elapsed()
        parts = [f"{completed:g}/{total:g} ({100 * completed / total:.0f}%)"] if total else []
        rate = self._rate(elapsed)
        parts += [rate] if rate else []
        parts.append(f"{_duration(elapsed)} elapsed")
        if total and 0 < completed < total:
            parts.append(f"about {_duration(elapsed * (total - completed) / completed)} left")
        return f"{self.stage}: " + ", ".join(parts)


class GridLines:
    """A grid's progress as plain lines: cells done / total, failed, running, elapsed, ETA; about
    every 10 % of the cells or every 30 s. ``stream=None`` with ``quiet=True`` prints nothing."""

    def __init__(self, stream: IO[str] | None = None, *, quiet: bool = False, step: float = 0.1,
                 seconds: float = 30.0, clock: Callable[[], float] = time.monotonic, heartbeat: float | None = 1.0):
        self.quiet = quiet
        self.out = _Printer(stream, None if quiet else heartbeat)
        self.pace = _Pace(clock, step, seconds)
        self.step, self.seconds, self.clock = step, seconds, clock
        self.running, self.done, self.todo = 0, 0, 0
        self.outcome: Any = None

    def begin(self, out: Any) -> None:
        self.outcome, self.todo = out, out.total - out.skipped
        self.pace = _Pace(self.clock, self.step, self.seconds)
        if not self.quiet:
            self.out.line(f"grid: {self.todo} cells to run ({out.skipped} of {out.total} already in results)")
            self.out.start(self._beat)

    def started(self, spec: Any) -> None:
        with self.out.lock:
            self.running += 1

    def finished(self, row: dict[str, Any], out: Any) -> None:
        with self.out.lock:
            self.running = max(0, self.running - 1)
            self.done += 1
            if not self.quiet and (self.pace.due(self.done / max(1, self.todo)) or self.done == self.todo):
                self.out.line(self._status())

    def stop(self) -> None:
        self.out.stop()

    def _beat(self) -> None:
        with self.out.lock:
            if self.done < self.todo and self.pace.due():
                self.out.line(self._status())

    def _status(self) -> str:
        out, elapsed = self.outcome, self.pace.elapsed()
        text = (f"grid: {self.done}/{self.todo} cells done ({out.failed} failed, {self.running} running, "
                f"{out.stage_hits} stage-cache hits), {_duration(elapsed)} elapsed")
        if 0 < self.done < self.todo:
            text += f", ETA {_duration(elapsed * (self.todo - self.done) / self.done)}"
        return text


def run_reporter(quiet: bool, console: Console) -> Any:
    """The reporter ``benchbox run`` uses (a context manager): none with ``quiet``, rich bars on
    ``console`` when stdout is a terminal, else plain lines on stdout."""
    if quiet:
        return _Silent()
    if sys.stdout.isatty():
        return RichReporter(console)
    return LineReporter(sys.stdout)


class _Silent(Reporter):
    def __enter__(self) -> "_Silent":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None
