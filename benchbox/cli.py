"""``benchbox`` command line: ``run`` one cell, ``list`` plugins.

Plugin selectors (``--dataset mnist``) are read first; the chosen plugins' ``Config`` dataclasses
then become typed, documented options through tyro (``--dataset.train-limit 50``).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import traceback
from typing import Any, Literal, Sequence

from rich.console import Console
from rich.table import Table

from . import registry
from .config import AugmentConfig, CellSpec, RunOptions
from .data_cli import cmd_data
from .errors import BenchboxError, ConfigError

DEFAULTS = {"dataset": "mnist", "generator": "ae", "policy": "ppo", "detector": "transformer"}
_GROUP = {"dataset": "datasets", "generator": "generators", "policy": "policies", "detector": "detectors"}

err_console = Console(stderr=True)

USAGE = """usage: benchbox COMMAND [options]

commands:
  run     run one benchmark cell (dataset -> generator -> policy -> detector -> metrics)
  list    list installed plugins:  benchbox list [GROUP] [--check]
  grid    run every cell of a grid spec (resumable, stage cache):  benchbox grid SPEC.toml
  leaderboard  tables from grid results:  benchbox leaderboard RESULTS.jsonl [--out DIR]

options:
  --debug     show full tracebacks on errors
  --version   print the version

'benchbox run --help' lists the options of the chosen plugins."""


def split_selectors(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Pull ``--dataset NAME`` / ``--dataset=NAME`` (and the other three) out of argv."""
    chosen = dict(DEFAULTS)
    rest: list[str] = []
    it = iter(range(len(argv)))
    args = list(argv)
    for i in it:
        a = args[i]
        key, eq, value = a[2:].partition("=") if a.startswith("--") else ("", "", "")
        if key in DEFAULTS:
            if not eq:
                if i + 1 >= len(args) or args[i + 1].startswith("-"):
                    raise ConfigError(f"--{key} needs a plugin name (benchbox list {_GROUP[key]})")
                value = args[i + 1]
                next(it)
            chosen[key] = value
        else:
            rest.append(a)
    return chosen, rest


def build_args_class(classes: dict[str, type]) -> type:
    fields: list[tuple[str, Any, Any]] = [
        (key, cls.Config, dataclasses.field(default_factory=cls.Config)) for key, cls in classes.items()
    ]
    fields += [
        ("augment", AugmentConfig, dataclasses.field(default_factory=AugmentConfig)),
        ("seed", int, dataclasses.field(default=0)),
        ("device", Literal["auto", "cpu", "cuda"], dataclasses.field(default="auto")),
        ("out", str, dataclasses.field(default="runs")),
        ("threads", int, dataclasses.field(default=0)),
    ]
    return dataclasses.make_dataclass("RunArgs", fields)


def parse_run(argv: Sequence[str]) -> CellSpec:
    import tyro

    chosen, rest = split_selectors(argv)
    classes = {key: registry.load(_GROUP[key], name) for key, name in chosen.items()}
    names = {key: ", ".join(registry.names(_GROUP[key])) for key in chosen}
    description = (
        "Run one benchmark cell.\n\nPlugins (choose with --dataset/--generator/--policy/--detector NAME; "
        "options below are those of the chosen plugins):\n"
        + "\n".join(f"  --{k} {chosen[k]:<12} [{names[k]}]" for k in chosen)
    )
    args = tyro.cli(build_args_class(classes), args=rest, prog="benchbox run", description=description)
    return CellSpec(
        **chosen,
        dataset_config=args.dataset,
        generator_config=args.generator,
        policy_config=args.policy,
        detector_config=args.detector,
        augment=args.augment,
        run=RunOptions(seed=args.seed, device=args.device, out=args.out, threads=args.threads),
    )


def cmd_run(argv: Sequence[str]) -> int:
    from .progress import RichReporter, metrics_table
    from .runner import run_cell

    spec = parse_run(argv)
    console = Console()
    with RichReporter(err_console) as reporter:
        result = run_cell(spec, reporter)
    console.print(metrics_table(result))
    console.print(f"[green]wrote[/] {result['path']}/ (result.json, samples.png, curves.png)", soft_wrap=True)
    return 0


def cmd_list(argv: Sequence[str]) -> int:
    check = "--check" in argv
    rest = [a for a in argv if a != "--check"]
    if any(a in ("-h", "--help") for a in rest):
        print("usage: benchbox list [GROUP] [--check]\n\nGROUP: datasets, generators, policies, detectors.\n"
              "--check imports every plugin and marks the ones that fail as broken.")
        return 0
    if len(rest) > 1:
        raise ConfigError(f"benchbox list takes at most one GROUP, got: {' '.join(rest)}")
    plugins = registry.list_plugins(rest[0] if rest else None, check=check)
    table = Table(title="benchbox plugins" + (" (imported and checked)" if check else ""))
    for col in ("name", "group", "distribution", "description"):
        table.add_column(col, overflow="fold")
    for p in plugins:
        desc = f"[red]broken:[/] {p.error}" if p.broken else p.description
        table.add_row(p.name, p.group, f"{p.distribution} {p.version}", desc)
    Console(width=max(120, Console().width)).print(table)
    return 1 if any(p.broken for p in plugins) and check else 0


def cmd_grid(argv: Sequence[str]) -> int:
    from .grid import cmd_grid as run

    return run(argv)


def cmd_leaderboard(argv: Sequence[str]) -> int:
    from .leaderboard import cmd_leaderboard as run

    return run(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("BENCHBOX_DEBUG") == "1"
    argv = [a for a in argv if a != "--debug"]
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] == "--version":
        from importlib.metadata import version

        print(f"benchbox {version('benchbox')}")
        return 0
    commands = {"run": cmd_run, "list": cmd_list, "data": cmd_data, "grid": cmd_grid, "leaderboard": cmd_leaderboard}
    command = commands.get(argv[0])
    try:
        if command is None:
            import difflib

            close = difflib.get_close_matches(argv[0], list(commands), n=1)
            raise ConfigError(f"unknown command {argv[0]!r}" + (f"; did you mean {close[0]!r}?" if close else "; try: run, list"))
        return command(argv[1:])
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/]: no result written")
        return 130
    except BenchboxError as exc:
        if debug:
            traceback.print_exc()
        err_console.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2
    except Exception as exc:  # anything unexpected: still one line unless --debug
        if debug:
            traceback.print_exc()
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        err_console.print(f"[red]error:[/] {type(exc).__name__}: {msg} (rerun with --debug for the traceback)",
                          highlight=False, soft_wrap=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
