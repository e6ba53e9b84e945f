"""Which code made a result: a fingerprint in every stage-cache key and every result row.

A cell's code is benchbox's version plus, per plugin (dataset, generator, policy, detector):

* first-party plugins (distribution ``benchbox``) and third-party plugins installed *editable*
  (``pip install -e``; their source can change without a version bump): the distribution name and
  version and ``source``, a sha256 over the source files of the plugin's module and of every module
  of the same top-level package it imports, directly or not (found by reading the ``import``
  statements, so the hash does not depend on what else the process imported);
* other third-party plugins: distribution name and version (an installed release is fixed).

``code_hash`` hashes exactly that, so changing one line of ``policies/random.py`` changes the hash
of every cell whose policy is ``random`` and of no other cell; reverting the line restores it.
The git commit of the checkout (``+dirty`` when tracked files under ``benchbox/`` or ``plugins/``
differ from it; ``None`` when not run from a checkout) is recorded beside it for provenance but
is not part of the hash: a commit that touches only docs or tests must not invalidate every
cached stage and result row. The core (``benchbox/``) is represented by its version: a change to
the core that changes results needs a version bump (the commit in each row tells which rows
predate such a change).

Stage keys (:func:`benchbox.cache.stage_keys`) take the part of the code each stage ran: the
generator stage the dataset and generator plugins, the policy stage the policy plugin, the augment
stage only the core (through the chained keys, every stage also depends on its inputs' code).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata as md
import importlib.util
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from . import registry
from .config import CellSpec, config_hash

FIRST_PARTY = "benchbox"


@functools.lru_cache(maxsize=4096)
def _file_facts(path: str, mtime_ns: int, size: int) -> tuple[str, tuple[tuple[str, int, tuple[str, ...]], ...]]:
    """(sha256 of the file, its import statements as (module, level, names)); cached per file version."""
    data = Path(path).read_bytes()
    imports: list[tuple[str, int, tuple[str, ...]]] = []
    try:
        tree = ast.parse(data, filename=path)
    except SyntaxError:
        tree = ast.Module(body=[], type_ignores=[])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports += [(a.name, 0, ()) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            imports.append((node.module or "", node.level, tuple(a.name for a in node.names)))
    return hashlib.sha256(data).hexdigest(), tuple(imports)


def _facts(path: str) -> tuple[str, tuple[tuple[str, int, tuple[str, ...]], ...]]:
    st = os.stat(path)
    return _file_facts(path, st.st_mtime_ns, st.st_size)


def _origin(module: str) -> tuple[str | None, bool]:
    """(source file of ``module`` or None, whether it is a package)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None, False
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None, False
    return spec.origin, spec.submodule_search_locations is not None


def source_files(module: str) -> dict[str, str]:
    """``{module name: sha256}`` of ``module``, its parent packages and every module of its top-level
    package that it imports, directly or through other such modules."""
    top = module.split(".")[0]
    seen: dict[str, str] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen or not (name == top or name.startswith(top + ".")):
            continue
        path, is_pkg = _origin(name)
        if path is None:
            continue
        digest, imports = _facts(path)
        seen[name] = digest
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run on import
        package = name if is_pkg else ".".join(parts[:-1])
        for mod, level, names in imports:
            if level:
                base = package.split(".")
                base = base[: len(base) - (level - 1)] if level > 1 else base
                mod = ".".join([*base, mod] if mod else base)
            todo.append(mod)
            todo += [f"{mod}.{n}" for n in names if n != "*"]  # ``from pkg import submodule``
    return dict(sorted(seen.items()))


@functools.lru_cache(maxsize=256)
def _editable(distribution: str) -> bool:
    try:
        text = md.distribution(distribution).read_text("direct_url.json")
    except md.PackageNotFoundError:
        return False
    try:
        return bool(json.loads(text or "{}").get("dir_info", {}).get("editable"))
    except ValueError:
        return False


def plugin_code(group: str, name: str) -> dict[str, Any]:
    """``{"distribution", "version"[, "source"]}`` of one installed plugin (see the module docstring)."""
    info = registry.info(group, name)
    out: dict[str, Any] = {"distribution": info.distribution, "version": info.version}
    if info.distribution == FIRST_PARTY or _editable(info.distribution):
        files = source_files(info.module)
        out["source"] = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]
    return out


def benchbox_version() -> str:
    try:
        return md.version("benchbox")
    except md.PackageNotFoundError:
        from . import __version__

        return __version__


def cell_code(spec: CellSpec) -> dict[str, Any]:
    """``{"benchbox": version, "plugins": {kind: plugin_code}}`` of a cell (what :func:`code_hash` hashes)."""
    return {"benchbox": benchbox_version(),
            "plugins": {kind: plugin_code(registry.KINDS[kind], choice.name) for kind, choice in spec.plugins.items()}}


def code_hash(code: dict[str, Any]) -> str:
    return config_hash({"benchbox": code["benchbox"], "plugins": code["plugins"]}, 12)


def stage_code(code: dict[str, Any]) -> dict[str, str]:
    """The code each cached stage ran, hashed (chained into :func:`benchbox.cache.stage_keys`)."""
    p = code["plugins"]
    return {"generator": config_hash({"benchbox": code["benchbox"], "dataset": p["dataset"], "generator": p["generator"]}, 16),
            "policy": config_hash({"benchbox": code["benchbox"], "policy": p["policy"]}, 16),
            "augment": config_hash({"benchbox": code["benchbox"]}, 16)}


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """HEAD of the checkout benchbox runs from, ``+dirty`` if tracked core or plugin files differ; else None."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if head.returncode:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "benchbox", "plugins"],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty else "")


def row_code(spec: CellSpec) -> dict[str, Any]:
    """What a result row records: the cell's code, its hash and the git commit."""
    code = cell_code(spec)
    return {**code, "hash": code_hash(code), "commit": git_commit()}


def staleness(rows: list[dict[str, Any]]) -> dict[int, bool | None]:
    """Per row (by position): True when made by other code than is installed now, False when current,
    None when it cannot be told (a plugin of the row is not installed here)."""
    cache: dict[str, str | None] = {}
    out: dict[int, bool | None] = {}
    for i, row in enumerate(rows):
        cfg = row.get("config") or {}
        try:
            names = tuple((kind, cfg[kind]["name"]) for kind in registry.KINDS)
        except (KeyError, TypeError):
            out[i] = None
            continue
        key = repr(names)
        if key not in cache:
            try:
                code = {"benchbox": benchbox_version(),
                        "plugins": {kind: plugin_code(registry.KINDS[kind], name) for kind, name in names}}
                cache[key] = code_hash(code)
            except Exception:  # a plugin not installed here (or broken): cannot tell
                cache[key] = None
        now = cache[key]
        made = (row.get("code") or {}).get("hash")
        out[i] = None if now is None else made != now
    return out
