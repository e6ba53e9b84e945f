"""``benchbox data``: check a dataset root, or write the textures set or the BMAD-layout demo set.

    benchbox data check NAME --root R [--category C]
    benchbox data make-textures OUT [--size 128] [--n-train 60] [--n-test-good 20] [--n-test-bad 40] [--seed 0]
    benchbox data make-demo bmad OUT [--size 256] [--n-train 200] [--n-valid 20] [--n-test 40] [--seed 0]

``check`` scans each category of a folder dataset (all of them, or ``--category``), opens every
image and mask header, and prints counts per split and label plus every problem found, one line
each. It exits 0 when the root is clean and 1 otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from .errors import BenchboxError, ConfigError, DataError

USAGE = """usage: benchbox data check NAME --root R [--category C]
       benchbox data make-textures OUT [--size 128] [--n-train 60] [--n-test-good 20] [--n-test-bad 40] [--seed 0]
       benchbox data make-demo bmad OUT [--size 256] [--n-train 200] [--n-valid 20] [--n-test 40] [--seed 0]
                                        [--category C ...]   (real medical crops, SYNTHETIC lesions; BMAD layout)"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one-line ConfigError instead of argparse's exit
        raise ConfigError(f"{self.prog}: {message}")


def cmd_data(argv: Sequence[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    sub, rest = argv[0], list(argv[1:])
    if sub == "check":
        return _check(rest)
    if sub == "make-textures":
        return _make_textures(rest)
    if sub == "make-demo":
        return _make_demo(rest)
    raise ConfigError(f"unknown data command {sub!r}; try: check, make-textures, make-demo")


def _make_textures(argv: list[str]) -> int:
    from .textures import make_textures

    p = _Parser(prog="benchbox data make-textures")
    p.add_argument("out")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--n-train", type=int, default=60)
    p.add_argument("--n-test-good", type=int, default=20)
    p.add_argument("--n-test-bad", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    out = Path(a.out).expanduser()
    try:
        counts = make_textures(out, a.size, a.n_train, a.n_test_good, a.n_test_bad, a.seed)
    except ValueError as exc:
        raise ConfigError(f"make-textures: {exc}") from None
    for name, c in counts.items():
        print(f"{out / name}: " + ", ".join(f"{k} {v}" for k, v in c.items()))
    print(f"read it with: benchbox run --dataset mvtec --dataset.root {out} --dataset.category {next(iter(counts))}")
    return 0


def _make_demo(argv: list[str]) -> int:
    from .demo_data import CATEGORIES, make_bmad_demo

    p = _Parser(prog="benchbox data make-demo")
    p.add_argument("layout", help="bmad (the only demo so far; MVTec-style data: benchbox data make-textures)")
    p.add_argument("out")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--n-train", type=int, default=200)
    p.add_argument("--n-valid", type=int, default=20, help="good and Ungood images each")
    p.add_argument("--n-test", type=int, default=40, help="good and Ungood images each")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--category", action="append", choices=CATEGORIES, help="repeat for several (default: all)")
    a = p.parse_args(argv)
    if a.layout != "bmad":
        raise ConfigError(f"make-demo: unknown demo {a.layout!r}; available: bmad "
                          "(for an MVTec-style set: benchbox data make-textures OUT)")
    out = Path(a.out).expanduser()
    categories = tuple(dict.fromkeys(a.category or CATEGORIES))
    counts = make_bmad_demo(out, a.size, a.n_train, a.n_valid, a.n_test, a.seed, categories)
    for name, c in counts.items():
        print(f"{out / name}: " + ", ".join(f"{k} {v}" for k, v in c.items()))
    print(f"the lesions are synthetic (see {out / 'README.txt'}); read it with: benchbox run --generator ae "
          f"--policy ppo --detector transformer --dataset bmad --dataset.root {out} --dataset.category {categories[0]}")
    return 0


def _header_problems(layout) -> list[str]:
    """Open every image and mask header: unreadable files and mask/image size mismatches."""
    from PIL import Image

    problems: list[str] = []
    for sample in [*layout.train, *layout.val, *layout.test]:
        sizes = {}
        for path in (sample.image, sample.mask):
            if path is None:
                continue
            try:
                with Image.open(path) as img:
                    sizes[path] = img.size
                    img.verify()
            except Exception as exc:  # noqa: BLE001 - any decoder error means a malformed file
                problems.append(f"{path}: not a readable image ({type(exc).__name__})")
        if sample.mask is not None and len(sizes) == 2 and sizes[sample.image] != sizes[sample.mask]:
            (w, h), (mw, mh) = sizes[sample.image], sizes[sample.mask]
            problems.append(f"{sample.mask}: mask is {mw}x{mh} but its image is {w}x{h} (expected the same size)")
    return problems


def _check(argv: list[str]) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from . import registry

    p = _Parser(prog="benchbox data check")
    p.add_argument("name")
    p.add_argument("--root", required=True)
    p.add_argument("--category", default="")
    a = p.parse_args(argv)
    cls = registry.load("datasets", a.name)
    if not hasattr(cls, "scan"):
        raise ConfigError(f"dataset {a.name!r} is not read from a folder; data check works for: "
                          + ", ".join(n for n in registry.names("datasets") if hasattr(registry.load("datasets", n), "scan")))
    root = Path(a.root).expanduser()
    if not root.is_dir():
        raise DataError(f"{a.name}: data root {root} is not a folder (expected {cls.expected})")
    ds = cls(cls.Config(root=str(root)))
    categories = [a.category] if a.category else ds.categories(root)
    if not categories:
        raise DataError(f"{a.name}: {root} holds no categories (expected {cls.expected})")
    table = Table(title=f"{a.name} at {root}")
    for col in ("category", "train normal", "valid normal", "valid anomalous", "test normal", "test anomalous",
                "masks", "problems"):
        table.add_column(col, justify="right" if col != "category" else "left")
    problems: list[str] = []
    for category in categories:
        try:
            layout = ds.scan(root, category)
        except BenchboxError as exc:
            problems.append(str(exc))
            table.add_row(category, *["-"] * 6, "1")
            continue
        found = layout.problems + _header_problems(layout)
        problems += found
        n = lambda items, label: str(sum(s.label == label for s in items))  # noqa: E731
        masks = sum(s.mask is not None for s in layout.test) if layout.has_masks else "none"
        table.add_row(category, str(len(layout.train)), n(layout.val, 0), n(layout.val, 1), n(layout.test, 0),
                      n(layout.test, 1), str(masks), str(len(found)))
    console = Console(width=max(120, Console().width))
    console.print(table)
    for line in problems:
        console.print(f"[red]problem:[/] {escape(line)}", highlight=False, soft_wrap=True)
    console.print("[green]ok[/]: no problems found" if not problems else f"[red]{len(problems)} problem(s)[/]")
    return 0 if not problems else 1
