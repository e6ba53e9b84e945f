"""``benchbox`` command line: ``run`` one cell, ``list`` plugins, ``grid``, ``leaderboard``, ``data``.

Plugin selectors (``--dataset mnist``) are read first; the chosen plugins' ``Config`` dataclasses
then become typed, documented options through tyro (``--dataset.train-limit 50``).

Every user-facing error is one line on stderr (exit code 2): a wrong option type, an unknown
option or a missing value names the option and what it expects instead of tyro's or argparse's
boxed usage; ``--debug`` adds the parser's full message and the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import io
import os
import re
import sys
import traceback
import typing
from typing import Any, Literal, Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import options, registry
from .config import DEFAULT_PLUGINS, AugmentConfig, CellSpec, PluginChoice, RunOptions
from .data_cli import cmd_data
from .errors import BenchboxError, ConfigError

err_console = Console(stderr=True)
DEBUG = False  # set by main() from --debug / BENCHBOX_DEBUG=1

USAGE = """usage: benchbox COMMAND [options]

commands:
  run     run one benchmark cell (dataset -> generator -> policy -> detector -> metrics)
  list    list installed plugins:  benchbox list [GROUP] [--check] [--verbose]
  grid    run every cell of a grid spec (resumable, stage cache):  benchbox grid SPEC.toml
  leaderboard  tables from grid results:  benchbox leaderboard RESULTS.jsonl [--out DIR]

options:
  --debug     show full tracebacks on errors
  --version   print the version

'benchbox run --help' lists the options of the chosen plugins."""


def split_selectors(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Pull ``--dataset NAME`` / ``--dataset=NAME`` (and the other three kinds) out of argv."""
    chosen = dict(DEFAULT_PLUGINS)
    rest: list[str] = []
    it = iter(range(len(argv)))
    args = list(argv)
    for i in it:
        a = args[i]
        key, eq, value = a[2:].partition("=") if a.startswith("--") else ("", "", "")
        if key in registry.KINDS:
            if not eq:
                if i + 1 >= len(args) or args[i + 1].startswith("-"):
                    raise ConfigError(f"--{key} needs a plugin name (benchbox list {registry.KINDS[key]})")
                value = args[i + 1]
                next(it)
            chosen[key] = value
        else:
            rest.append(a)
    return chosen, rest


def build_args_class(classes: dict[str, type]) -> type:
    """The dataclass tyro parses: ``--KIND.*`` (each chosen plugin's Config), ``--augment.*`` and
    the :class:`RunOptions` fields as top-level flags (``--seed``, ``--device``, ``--out``, ``--threads``)."""
    fields: list[tuple[str, Any, Any]] = [
        (key, cls.Config, dataclasses.field(default_factory=cls.Config)) for key, cls in classes.items()
    ]
    fields.append(("augment", AugmentConfig, dataclasses.field(default_factory=AugmentConfig)))
    fields += [(o.name, o.annotation, dataclasses.field(default=o.default)) for o in options.walk(RunOptions)]
    return dataclasses.make_dataclass("RunArgs", fields)


def parse_run(argv: Sequence[str]) -> CellSpec:
    import tyro

    chosen, rest = split_selectors(argv)
    classes = {key: registry.load(registry.KINDS[key], name) for key, name in chosen.items()}
    names = {key: ", ".join(registry.names(registry.KINDS[key])) for key in chosen}
    description = (
        "Run one benchmark cell.\n\nPlugins (choose with --dataset/--generator/--policy/--detector NAME; "
        "options below are those of the chosen plugins):\n"
        + "\n".join(f"  --{k} {chosen[k]:<12} [{names[k]}]" for k in chosen)
        + "\n\nProgress: bars on a terminal, plain lines (start, ~every 10 % or 30 s, end) when stdout is "
        "redirected; --quiet prints neither."
    )
    args_cls = build_args_class(classes)
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            args = tyro.cli(args_cls, args=rest, prog="benchbox run", description=description)
    except SystemExit as exc:
        if exc.code in (0, None):  # --help
            sys.stderr.write(captured.getvalue())
            raise
        if DEBUG:
            sys.stderr.write(captured.getvalue())
        raise ConfigError(diagnose_args(rest, args_cls, chosen) or _flatten_box(captured.getvalue())
                          or "invalid options (see benchbox run --help)") from None
    sys.stderr.write(captured.getvalue())  # anything tyro said on success (warnings) still shows
    for key in [*chosen, "augment"]:  # per-field bounds (options.Check), named by their flag
        options.check_config(getattr(args, key), f"--{key}.")
    return CellSpec(
        {key: PluginChoice(name, getattr(args, key)) for key, name in chosen.items()},
        augment=args.augment,
        run=RunOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(RunOptions)}),
    )


# --------------------------------------------------------------------------------------------
# One-line messages for options tyro rejected
# --------------------------------------------------------------------------------------------

_SWITCH_OFF = object()  # marks the --KIND.no-FLAG half of a bool switch


def option_types(cls: type) -> dict[str, Any]:
    """Every CLI flag of the run's args dataclass as tyro spells it, mapped to its type."""
    out: dict[str, Any] = {}
    for o in options.walk(cls):
        out[o.flag] = o.annotation
        if o.negation:
            out[o.negation] = _SWITCH_OFF
    return out


def _accepts(tp: Any, value: str) -> bool:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is type(None):
        return value == "None"
    if origin is Literal:
        return value in {str(a) for a in args}
    if origin is typing.Union or type(tp).__name__ == "UnionType":
        return any(_accepts(a, value) for a in args)
    if tp in (int, float):
        try:
            tp(value)
        except ValueError:
            return False
        return True
    return True  # str, paths and anything tyro knows better


def _values_needed(tp: Any) -> tuple[int | None, list[Any]]:
    """(number of values or None for one-or-more, the type of each value)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (tuple, list):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(args), list(args)
        return None, [args[0] if args else str]
    return 1, [tp]


def diagnose_args(argv: Sequence[str], args_cls: type, chosen: dict[str, str]) -> str | None:
    """The first problem in ``argv`` as one line naming the option and what it expects, or None."""
    table = option_types(args_cls)
    args = list(argv)
    i = 0
    while i < len(args):
        tok = args[i]
        if tok in ("-h", "--help"):
            return None
        if not tok.startswith("--"):
            return (f"unexpected argument {tok!r}: options are --KIND.OPTION VALUE, e.g. --detector.epochs 5 "
                    "(benchbox run --help lists them)")
        flag, eq, inline = tok.partition("=")
        flag = flag.replace("_", "-")  # tyro accepts either spelling
        if flag not in table:
            return _unknown_option(flag, table, chosen)
        tp = table[flag]
        if tp is bool or tp is _SWITCH_OFF:
            on = flag if tp is bool else flag.replace(".no-", ".", 1).replace("--no-", "--", 1)
            off = on.rsplit(".", 1)[0] + ".no-" + on.rsplit(".", 1)[1] if "." in on else "--no-" + on[2:]
            nxt = inline if eq else (args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("--") else None)
            if nxt is not None:
                return f"{flag} is a switch and takes no value (got {nxt!r}): use {on} for true, {off} for false"
            i += 1
            continue
        count, types = _values_needed(tp)
        values = [inline] if eq else []
        j = i + 1
        if not eq:
            while j < len(args) and not args[j].startswith("--") and (count is None or len(values) < count):
                values.append(args[j])
                j += 1
        if not values:
            return f"{flag} needs a value: {options.describe(tp)}"
        if count is not None and count > 1 and len(values) != count:
            return f"{flag} expects {options.describe(tp)}, got {len(values)}: {' '.join(values)}"
        for k, value in enumerate(values):
            each = types[k] if count is not None and count > 1 else types[0]
            if not _accepts(each, value):
                return f"{flag} expects {options.describe(tp)}, got {value!r}"
        i = j
    return None


def _unknown_option(flag: str, table: dict[str, Any], chosen: dict[str, str]) -> str:
    kind = flag[2:].split(".")[0]
    candidates = [f for f in table if table[f] is not _SWITCH_OFF]
    same_kind = [f for f in candidates if f.startswith(f"--{kind}.")]
    if same_kind:  # compare option names without the shared --KIND. prefix
        names = {f.split(".", 1)[1]: f for f in same_kind}
        close = [names[c] for c in difflib.get_close_matches(flag.split(".", 1)[-1], list(names), n=1, cutoff=0.6)]
    else:
        close = difflib.get_close_matches(flag, candidates, n=1, cutoff=0.6)
    where = f"{kind} {chosen[kind]!r} has no option {flag}" if kind in chosen and "." in flag else f"unknown option {flag}"
    hint = f"; did you mean {close[0]}?" if close else ""
    see = f"benchbox run --{kind} {chosen[kind]} --help" if kind in chosen and "." in flag else "benchbox run --help"
    return f"{where}{hint} ({see} lists the options)"


def _flatten_box(text: str) -> str:
    """The first section of tyro's boxed error as one line (fallback when diagnose_args finds nothing)."""
    lines = []
    for line in text.splitlines():
        inner = line.strip().strip("│╭╮╰╯").strip()
        if not inner or set(inner) <= set("─╭╮╰╯ "):
            if lines:
                break
            continue
        if inner.startswith("─") and lines:
            break
        lines.append(inner)
    return " ".join(" ".join(lines).split())


def _argparse_error(parser: argparse.ArgumentParser, message: str) -> typing.NoReturn:
    if DEBUG:
        parser.print_usage(sys.stderr)
    raise ConfigError(f"{parser.prog}: {_argparse_message(parser, message)}")


def one_line_argparse(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Make an argparse parser raise one-line ConfigErrors (usage only under --debug)."""
    parser.error = lambda message: _argparse_error(parser, message)  # type: ignore[method-assign]
    return parser


@contextlib.contextmanager
def one_line_argparse_errors() -> typing.Iterator[None]:
    """While a subcommand builds its own argparse parser, its errors become one-line ConfigErrors."""
    original = argparse.ArgumentParser.error
    argparse.ArgumentParser.error = _argparse_error  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        argparse.ArgumentParser.error = original  # type: ignore[method-assign]


def _argparse_message(parser: argparse.ArgumentParser, message: str) -> str:
    m = re.match(r"unrecognized arguments: (.*)", message)
    if m:
        first = m.group(1).split()[0]
        flags = [s for s in parser._option_string_actions if s.startswith("--")]
        close = difflib.get_close_matches(first.partition("=")[0], flags, n=1, cutoff=0.7)
        kind = "option" if first.startswith("-") else "argument"
        return f"unknown {kind} {first}" + (f"; did you mean {close[0]}?" if close else "") + f" (see {parser.prog} --help)"
    m = re.match(r"argument ([^:]+): invalid (int|float) value: (.*)", message)
    if m:
        return f"{m.group(1)} expects {'an integer' if m.group(2) == 'int' else 'a number'}, got {m.group(3)}"
    m = re.match(r"argument ([^:]+): (.*)", message)
    if m:
        return f"{m.group(1).split('/')[0]}: {m.group(2)}"
    return message


LOG_FLAGS = {"--log": "log", "--log-uri": "log_uri", "--log-experiment": "log_experiment"}


def split_log_options(argv: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """Pull ``--log KIND`` (repeatable, or comma-separated), ``--log-uri URI`` and ``--log-experiment NAME``
    out of ``benchbox run``'s argv: where the finished cell is exported (:mod:`benchbox.tracking`),
    not a cell option, so they change no config hash."""
    found: dict[str, Any] = {"log": []}
    rest: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        flag, eq, value = args[i].partition("=")
        if flag not in LOG_FLAGS:
            rest.append(args[i])
            i += 1
            continue
        if not eq:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                what = "mlflow or tensorboard" if flag == "--log" else "a value"
                raise ConfigError(f"{flag} needs {what}")
            value = args[i + 1]
            i += 1
        i += 1
        if flag == "--log":
            found["log"].append(value)
        else:
            found[LOG_FLAGS[flag]] = value
    return found, rest


def cmd_run(argv: Sequence[str]) -> int:
    log, argv = split_log_options(argv)  # --log mlflow|tensorboard [--log-uri URI] [--log-experiment NAME]
    if log["log"]:
        from .api import _log_kinds

        _log_kinds(log["log"], log.get("log_uri"))  # a missing extra or an unreachable server: before the run
    from .progress import metrics_table, run_reporter
    from .api import run_spec

    quiet = "--quiet" in argv  # not a cell option: it changes no result, so it stays out of the spec and its hash
    spec = parse_run([a for a in argv if a != "--quiet"])
    console = Console()
    with run_reporter(quiet, err_console) as reporter:
        result = run_spec(spec, reporter=reporter, **log).row  # the run, then the tracking export
    console.print(metrics_table(result))
    console.print(f"[green]wrote[/] {result['path']}/ (result.json, samples.png, curves.png)", soft_wrap=True)
    for kind in log["log"]:
        from .tracking import describe_target

        console.print(f"[green]logged[/] to {describe_target(kind, log.get('log_uri'), log.get('log_experiment'))}",
                      soft_wrap=True, highlight=False)
    return 0


LIST_USAGE = """usage: benchbox list [GROUP] [--check] [--verbose]

GROUP: datasets, generators, policies, detectors (default: all four).
--check    import every plugin and mark the ones that fail as broken (exit code 1 if any)
--verbose  import the plugins and show each one's options: flag, type, default, description"""


def cmd_list(argv: Sequence[str]) -> int:
    known = {"--check": "check", "--verbose": "verbose", "-v": "verbose"}
    if any(a in ("-h", "--help") for a in argv):
        print(LIST_USAGE)
        return 0
    flags = {known[a] for a in argv if a in known}
    for a in argv:
        if a.startswith("-") and a not in known:
            close = difflib.get_close_matches(a, ["--check", "--verbose"], n=1, cutoff=0.7)
            raise ConfigError(f"benchbox list: unknown option {a}" + (f"; did you mean {close[0]}?" if close else "")
                              + " (options: --check, --verbose)")
    rest = [a for a in argv if a not in known]
    if len(rest) > 1:
        raise ConfigError(f"benchbox list takes at most one GROUP, got: {' '.join(rest)}")
    check = "check" in flags
    if "verbose" in flags:
        return _list_verbose(rest[0] if rest else None, check)
    plugins = registry.list_plugins(rest[0] if rest else None, check=check)
    table = Table(title="benchbox plugins" + (" (imported and checked)" if check else ""))
    for col in ("name", "group", "distribution", "description"):
        table.add_column(col, overflow="fold")
    for p in plugins:
        desc = f"[red]broken:[/] {p.error}" if p.broken else p.description
        table.add_row(p.name, p.group, f"{p.distribution} {p.version}", desc)
    Console(width=max(120, Console().width)).print(table)
    return 1 if any(p.broken for p in plugins) and check else 0


def _list_verbose(group: str | None, check: bool) -> int:
    plugins = registry.list_plugins(group, check=True)
    console = Console(width=max(120, Console().width))
    for p in plugins:
        kind = registry.KIND_OF[p.group]
        head = f"[bold]{p.name}[/] [dim]({kind}, {p.distribution} {p.version})[/]"
        if p.broken:
            console.print(f"{head}  [red]broken:[/] {escape(p.error or '')}", highlight=False, soft_wrap=True)
            continue
        options = registry.config_options(registry.load(p.group, p.name), kind)
        console.print(f"{head}  {escape(p.description)}", highlight=False, soft_wrap=True)
        if not options:
            console.print("    (no options)", style="dim")
            continue
        table = Table(box=None, show_header=False, padding=(0, 2, 0, 0))
        for col, style in (("option", "cyan"), ("type", "green"), ("default", "yellow"), ("description", None)):
            table.add_column(col, style=style, overflow="fold")
        for o in options:
            doc = o.doc + (f" (off: {o.negation})" if o.negation else "")
            table.add_row("    " + o.flag, escape(o.type_name), escape(o.default_text), escape(doc.strip()))
        console.print(table)
    return 1 if check and any(p.broken for p in plugins) else 0


def cmd_grid(argv: Sequence[str]) -> int:
    from . import grid

    one_line_argparse(grid.parser()).parse_args(list(argv))  # errors: one line before the grid starts
    return grid.cmd_grid(argv)


def cmd_leaderboard(argv: Sequence[str]) -> int:
    from .leaderboard import cmd_leaderboard as run

    with one_line_argparse_errors():
        return run(argv)


def main(argv: Sequence[str] | None = None) -> int:
    global DEBUG
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG = "--debug" in argv or os.environ.get("BENCHBOX_DEBUG") == "1"
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
            close = difflib.get_close_matches(argv[0], list(commands), n=1)
            raise ConfigError(f"unknown command {argv[0]!r}" + (f"; did you mean {close[0]!r}?" if close else "; try: run, list"))
        return command(argv[1:])
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/]: no result written")
        return 130
    except BenchboxError as exc:
        if debug:
            traceback.print_exc()
        msg = escape(" ".join(str(exc).split()))  # one line, whatever the message held; no rich markup
        err_console.print(f"[red]error:[/] {msg}", highlight=False, soft_wrap=True)
        return 2
    except Exception as exc:  # anything unexpected: still one line unless --debug
        if debug:
            traceback.print_exc()
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        err_console.print(f"[red]error:[/] {type(exc).__name__}: {escape(msg)} (rerun with --debug for the traceback)",
                          highlight=False, soft_wrap=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
