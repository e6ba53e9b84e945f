"""Plugin discovery through entry points (``importlib.metadata``), loaded lazily.

Four groups -- ``benchbox.datasets``, ``benchbox.generators``, ``benchbox.policies``,
``benchbox.detectors``. benchbox's own plugins are declared in its ``pyproject.toml`` through the
same groups, so a third-party distribution registers exactly the same way::

    [project.entry-points."benchbox.detectors"]
    my-detector = "my_package.detector:MyDetector"

Listing never imports plugin code: descriptions are read from the class docstring or
``description`` attribute by parsing the module's source. A plugin is imported only when it is
created (or when ``check=True``); one that fails to import is reported as broken and every other
plugin keeps working.
"""

from __future__ import annotations

import ast
import difflib
import fnmatch
import importlib
import importlib.metadata as md
import importlib.util
from dataclasses import dataclass
from typing import Any

from .errors import PluginLoadError, UnknownPluginError
from .options import Option, build_config, walk

KINDS: dict[str, str] = {"dataset": "datasets", "generator": "generators", "policy": "policies", "detector": "detectors"}
"""The four plugin groups -- the one place that names them, in data-flow order. A *kind* (key) is
how a cell, the CLI and a grid's ``[options.KIND]`` name one plugin (``--policy ppo``,
``--policy.sigma``); its *group* (value) is the entry-point group ``benchbox.GROUP``, a grid axis
and ``benchbox list GROUP``."""
GROUPS = tuple(KINDS.values())
KIND_OF = {group: kind for kind, group in KINDS.items()}
_loaded: dict[tuple[str, str], type] = {}


@dataclass(frozen=True)
class PluginInfo:
    name: str
    group: str  # short group: "datasets", ...
    value: str  # "module:attr"
    distribution: str  # providing distribution, e.g. "benchbox"
    version: str
    description: str = ""
    error: str | None = None  # set when the plugin is broken

    @property
    def module(self) -> str:
        return self.value.partition(":")[0]

    @property
    def attr(self) -> str:
        return self.value.partition(":")[2]

    @property
    def broken(self) -> bool:
        return self.error is not None


def normalize_group(group: str) -> str:
    g = group.removeprefix("benchbox.")
    if g in KINDS:
        return KINDS[g]
    if g in GROUPS:
        return g
    close = difflib.get_close_matches(g, [*GROUPS, *KINDS], n=1, cutoff=0.6)
    hint = f"; did you mean {KINDS.get(close[0], close[0])}?" if close else ""
    raise UnknownPluginError(f"unknown plugin group {group!r}; expected one of: {', '.join(GROUPS)}{hint}")


def _entry_points(group: str) -> list[tuple[md.EntryPoint, str, str]]:
    """(entry point, distribution name, version) for one group, first occurrence of a name wins."""
    seen: dict[str, tuple[md.EntryPoint, str, str]] = {}
    for dist in md.distributions():
        try:
            eps = dist.entry_points
        except Exception:  # a malformed dist-info must not break discovery
            continue
        for ep in eps:
            if ep.group == f"benchbox.{group}" and ep.name not in seen:
                seen[ep.name] = (ep, dist.metadata["Name"] or "?", dist.version or "?")
    return sorted(seen.values(), key=lambda t: t[0].name)


def _static_description(module: str, attr: str) -> tuple[str, str | None]:
    """Read the one-line description without importing the module. Returns (description, error)."""
    try:
        spec = importlib.util.find_spec(module)
    except Exception as exc:  # parent package raised on import
        return "", f"{type(exc).__name__}: {exc}"
    if spec is None:
        return "", f"ModuleNotFoundError: no module named {module!r}"
    if not spec.origin or not spec.origin.endswith(".py"):
        return "", None  # compiled or namespace module: nothing to parse, not an error
    try:
        with open(spec.origin, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), filename=spec.origin)
    except SyntaxError as exc:
        return "", f"SyntaxError: {exc.msg} ({spec.origin}, line {exc.lineno})"
    except OSError as exc:
        return "", f"{type(exc).__name__}: {exc}"
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == attr:
            return _class_description(node), None
    if attr.split(".")[0] in _top_level_names(tree):
        return "", None  # defined some other way (alias, import, factory): described once loaded
    for node in ast.walk(tree):  # defined under an `if` / `try`: whether it exists is known only on import
        if isinstance(node, ast.ClassDef) and node.name == attr:
            return _class_description(node), None
    return "", f"AttributeError: module {module!r} defines no {attr!r}"


def _class_description(node: ast.ClassDef) -> str:
    """An explicit ``description = "..."`` in the class body, else the docstring's first line."""
    for stmt in node.body:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
        value = getattr(stmt, "value", None)
        if any(isinstance(t, ast.Name) and t.id == "description" for t in targets):
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                return _first_line(value.value)
    return _first_line(ast.get_docstring(node) or "")


def _top_level_names(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            found.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found.update(t.id for t in targets if isinstance(t, ast.Name))
    return found


def list_plugins(group: str | None = None, pattern: str = "*", check: bool = False) -> list[PluginInfo]:
    """Registered plugins (all groups, or one), optionally filtered by a glob ``pattern``.

    With ``check=True`` each plugin is imported, and any that raises is reported as broken.
    """
    groups = GROUPS if group is None else (normalize_group(group),)
    out: list[PluginInfo] = []
    for g in groups:
        for ep, dist, version in _entry_points(g):
            if not fnmatch.fnmatch(ep.name, pattern):
                continue
            module, _, attr = ep.value.partition(":")
            desc, error = _static_description(module, attr)
            if check:  # importing is the truth: a class defined under an `if` or after a raise is no static matter
                try:
                    cls = load(g, ep.name)
                    desc = desc or _first_line(getattr(cls, "description", "") or cls.__doc__ or "")
                    error = None
                except PluginLoadError as exc:
                    error = str(exc)
            out.append(PluginInfo(ep.name, g, ep.value, dist, version, desc, error))
    return out


def _first_line(text: str) -> str:
    text = text.strip()
    return text.splitlines()[0] if text else ""


def names(group: str) -> list[str]:
    return [ep.name for ep, _, _ in _entry_points(normalize_group(group))]


def info(group: str, name: str) -> PluginInfo:
    g = normalize_group(group)
    for ep, dist, version in _entry_points(g):
        if ep.name == name:
            return PluginInfo(ep.name, g, ep.value, dist, version)
    raise unknown(g, name)


def unknown(group: str, name: str) -> UnknownPluginError:
    valid = names(group)
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
    hint = f"did you mean: {', '.join(close)}?" if close else f"valid names: {', '.join(valid) or '(none installed)'}"
    return UnknownPluginError(f"unknown {KIND_OF[group]} {name!r} in group benchbox.{group}; {hint}")


def load(group: str, name: str) -> type:
    """Import and return the plugin class registered as ``name`` in ``group``."""
    g = normalize_group(group)
    key = (g, name)
    if key in _loaded:
        return _loaded[key]
    pi = info(g, name)
    try:
        obj = importlib.import_module(pi.module)
        for part in pi.attr.split("."):
            obj = getattr(obj, part)
    except Exception as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise PluginLoadError(
            f"{KIND_OF[g]} plugin {name!r} ({pi.value}, from {pi.distribution}) is broken: "
            f"{type(exc).__name__}: {msg}"
        ) from exc
    if not isinstance(obj, type) or not hasattr(obj, "Config"):
        raise PluginLoadError(
            f"{KIND_OF[g]} plugin {name!r} ({pi.value}) is not a plugin class with a Config dataclass"
        )
    _loaded[key] = obj
    return obj


def create(group: str, name: str, config: Any | None = None, **options: Any) -> Any:
    """``create("detectors", "transformer", epochs=3)`` -- timm's ``create_model`` for plugins."""
    cls = load(group, name)
    if config is None:
        config = build_config(cls.Config, options, where=f"{KIND_OF[normalize_group(group)]} {name!r}")
    elif options:
        raise TypeError("pass either a config object or keyword options, not both")
    return cls(config)


def create_dataset(name: str, **options: Any) -> Any:
    return create("datasets", name, **options)


def create_generator(name: str, **options: Any) -> Any:
    return create("generators", name, **options)


def create_policy(name: str, **options: Any) -> Any:
    return create("policies", name, **options)


def create_detector(name: str, **options: Any) -> Any:
    return create("detectors", name, **options)


def config_options(cls: type, kind: str) -> list[Option]:
    """The CLI options of a plugin class (``kind``: dataset, generator, policy, detector): flags
    ``--KIND.OPTION``, types, defaults and field docs, from :func:`benchbox.options.walk`."""
    return walk(cls.Config, f"--{kind}.")


def plugin_packages() -> tuple[str, ...]:
    """Top-level packages of every registered plugin, from the entry points (nothing imported)."""
    return tuple(sorted({ep.value.partition(":")[0].split(".")[0] for g in GROUPS for ep, _, _ in _entry_points(g)}))


def clear_cache() -> None:
    """Forget loaded classes (tests that install plugins at run time call this)."""
    _loaded.clear()
    importlib.invalidate_caches()
