"""One walk of a plugin's ``Config`` dataclass: flags, types, docs, defaults, checks and coercion.

A plugin's options are the fields of its nested ``Config`` dataclass (nested dataclasses give
dotted options: ``sub.width``). Everything in benchbox that reads them goes through here:

* :func:`walk` lists the leaf options with their flag (``--detector.sub.width``), annotation,
  default, doc (the string literal written under the field) and checks -- ``benchbox list
  --verbose`` shows them, ``benchbox run`` explains a rejected flag with them;
* :func:`build_config` builds a ``Config`` from plain values (a grid TOML table, ``--set``,
  ``benchbox.create(..., epochs=3)``), coercing each value to its field's type and running the
  field's checks, with one-line :class:`~benchbox.errors.ConfigError` messages;
* :func:`check_config` runs the checks over a ``Config`` built elsewhere (tyro, on the command line).

Per-field checks (bounds)
-------------------------
A field can carry checks, in its ``dataclasses.field`` metadata or in an ``Annotated`` type::

    from benchbox.options import at_least, between, existing_path

    epochs: int = field(default=10, metadata={"check": at_least(1)})
    ratio: Annotated[float, between(0, 1)] = 0.5
    root: str = field(default="", metadata={"check": (existing_path,)})

A :class:`Check` is a predicate and the phrase for what it expects; it runs in the same pass as
the type coercion, so a bad value fails before anything is built:
``detector 'ae' option 'epochs' expects an integer >= 1, got 0`` (``--detector.epochs expects an
integer >= 1, got 0`` on the command line). ``None`` (an optional field left unset) is never checked.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import textwrap
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

from .errors import ConfigError

MISSING = dataclasses.MISSING


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """A constraint on one option's value: ``ok(value)`` is true for acceptable values."""

    ok: Callable[[Any], bool]
    expects: str  # what an acceptable value is, e.g. "an integer >= 1"

    def __call__(self, value: Any, where: str) -> None:
        if value is not None and not self.ok(value):
            raise ConfigError(f"{where} expects {self.expects}, got {value!r}")


def at_least(low: float, what: str = "") -> Check:
    """``value >= low`` (``what`` names the value: "an integer" for ``at_least(1, "an integer")``)."""
    return Check(lambda v: v >= low, f"{what or ('an integer' if isinstance(low, int) else 'a number')} >= {low}")


def between(low: float, high: float) -> Check:
    """``low <= value <= high``, e.g. a probability: ``between(0, 1)``."""
    return Check(lambda v: low <= v <= high, f"a number in [{low}, {high}]")


def above(low: float) -> Check:
    """``value > low``, e.g. a learning rate: ``above(0)``."""
    return Check(lambda v: v > low, f"a number > {low}")


def within(low: float, high: float) -> Check:
    """``low < value < high`` (both ends excluded), e.g. a mask ratio: ``within(0, 1)``."""
    return Check(lambda v: low < v < high, f"a number in ({low}, {high})")


existing_path = Check(lambda v: Path(str(v)).expanduser().exists(), "an existing file or folder")

_STATE_DICTS: dict[tuple[str, int, int], bool] = {}  # (path, size, mtime) -> readable: read each file once


def _is_state_dict_file(value: Any) -> bool:
    """A file that ``torch.load(weights_only=True)`` reads as a dict holding tensors ("" = unset)."""
    if value == "":
        return True
    path = Path(str(value)).expanduser()
    if not path.is_file():
        return False
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _STATE_DICTS:
        import torch

        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # not a torch file, a pickle needing arbitrary classes, truncated, ...
            obj = None
        for nested in ("state_dict", "model"):  # checkpoints that keep the weights one level down
            if isinstance(obj, dict) and isinstance(obj.get(nested), dict):
                obj = obj[nested]
        _STATE_DICTS[key] = isinstance(obj, dict) and any(isinstance(v, torch.Tensor) for v in obj.values())
    return _STATE_DICTS[key]


state_dict_file = Check(_is_state_dict_file, "a PyTorch state-dict file (a dict of tensors saved with "
                                             "torch.save(model.state_dict(), PATH)), or '' for none")


def checks_of(field: dataclasses.Field, annotation: Any) -> tuple[Any, tuple[Check, ...]]:
    """(the annotation without ``Annotated``, the field's checks from its metadata and annotation)."""
    found = field.metadata.get("check", ())
    checks = tuple(found) if isinstance(found, (tuple, list)) else (found,)
    if typing.get_origin(annotation) is typing.Annotated:
        checks += tuple(m for m in annotation.__metadata__ if isinstance(m, Check))
        annotation = typing.get_args(annotation)[0]
    return annotation, checks


# --------------------------------------------------------------------------------------------
# The walk
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One leaf option of a ``Config`` dataclass."""

    name: str  # dotted field path: "epochs", "sub.width"
    flag: str  # "--detector.sub.width"
    annotation: Any  # the resolved type (Annotated stripped); the source text when it does not resolve
    default: Any  # the default value (a default_factory called), or MISSING
    doc: str = ""  # the string literal under the field, first paragraph, on one line
    checks: tuple[Check, ...] = ()

    @property
    def type_name(self) -> str:
        return type_name(self.annotation)

    @property
    def default_text(self) -> str:
        return "(required)" if self.default is MISSING else repr(self.default)

    @property
    def negation(self) -> str:
        """A bool switch's off flag (``--detector.no-verbose``); empty for other types."""
        if self.annotation is not bool:
            return ""
        head, dot, leaf = self.flag.rpartition(".")
        return f"{head}.no-{leaf}" if dot else "--no-" + self.flag.removeprefix("--")

    def value_in(self, cfg: Any) -> Any:
        for part in self.name.split("."):
            cfg = getattr(cfg, part)
        return cfg


def _fields(dc: type) -> list[tuple[dataclasses.Field, Any, tuple[Check, ...]]]:
    """(field, resolved annotation, checks) of a dataclass, in field order."""
    try:
        hints = typing.get_type_hints(dc, include_extras=True)
    except Exception:  # an annotation that does not resolve: keep it as written
        hints = {}
    return [(f, *checks_of(f, hints.get(f.name, f.type))) for f in dataclasses.fields(dc)]


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        try:
            return f.default_factory()
        except Exception:
            return "?"
    return MISSING


def walk(dc: type, prefix: str = "--") -> list[Option]:
    """The leaf options of dataclass ``dc`` (nested dataclasses flattened), flags under ``prefix``."""
    docs = field_docs(dc)
    out: list[Option] = []
    for f, tp, checks in _fields(dc):
        flag = prefix + f.name.replace("_", "-")
        if _is_dataclass_type(tp):
            out += [dataclasses.replace(o, name=f"{f.name}.{o.name}") for o in walk(tp, flag + ".")]
        else:
            out.append(Option(f.name, flag, tp, _default(f), docs.get(f.name, ""), checks))
    return out


def field_docs(dc: type) -> dict[str, str]:
    """Field name -> the string literal written right under the field, through the class's bases."""
    docs: dict[str, str] = {}
    for klass in reversed(dc.__mro__):
        if klass is object or not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError, IndentationError):
            continue  # no source (made at run time, compiled): no descriptions
        node = next((n for n in tree.body if isinstance(n, ast.ClassDef)), None)
        if node is None:
            continue
        for stmt, nxt in zip(node.body, node.body[1:]):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                text = inspect.cleandoc(nxt.value.value).split("\n\n")[0]
                docs[stmt.target.id] = " ".join(text.split())
    return docs


def _is_union(origin: Any) -> bool:
    return origin is typing.Union or str(origin) == "<class 'types.UnionType'>"


def type_name(tp: Any) -> str:
    """A short readable name of a type annotation: int, {a,b}, float | None, tuple[str, ...]."""
    if isinstance(tp, str):
        return tp
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "{" + ",".join(str(a) for a in args) + "}"
    if _is_union(origin):
        return " | ".join(type_name(a) for a in args)
    if origin is not None:
        inner = ", ".join("..." if a is Ellipsis else type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def describe(tp: Any) -> str:
    """What a value of type ``tp`` looks like on the command line: "an integer", "one of a, b", ..."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is type(None):
        return "None"
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if _is_union(origin):
        return " or ".join(describe(a) for a in args)
    if origin in (tuple, list):
        inner = args[0] if args else str
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"{len(args)} space-separated values ({', '.join(describe(a) for a in args)})"
        return f"one or more space-separated values, each {describe(inner)}"
    return {int: "an integer", float: "a number", str: "a string", bool: "a switch"}.get(tp, type_name(tp))


# --------------------------------------------------------------------------------------------
# Coercion: plain values -> a Config
# --------------------------------------------------------------------------------------------


def build_config(cls: type, options: dict[str, Any], where: str) -> Any:
    """Build a ``Config`` from keyword options, rejecting unknown names, wrong types and failed checks.

    Option names may use dashes or underscores (``train-limit`` == ``train_limit``); a nested
    dataclass field takes a dict. ``where`` starts every error message (``"detector 'ae'"``).
    """
    fields = {f.name: (tp, checks) for f, tp, checks in _fields(cls)}
    kwargs: dict[str, Any] = {}
    for raw, value in options.items():
        name = raw.replace("-", "_")
        if name not in fields:
            close = difflib.get_close_matches(name, list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; options: {', '.join(fields) or 'none'}"
            raise ConfigError(f"{where} has no option {raw!r}{hint}")
        tp, checks = fields[name]
        label = f"{where} option {raw!r}"
        kwargs[name] = coerce(value, tp, label)
        for check in checks:
            check(kwargs[name], label)
    return cls(**kwargs)


def check_config(cfg: Any, prefix: str = "--") -> None:
    """Run every option's checks over an already built ``Config``; errors name the flag."""
    for opt in walk(type(cfg), prefix):
        for check in opt.checks:
            check(opt.value_in(cfg), opt.flag)


def coerce(value: Any, tp: Any, where: str) -> Any:
    """``value`` as type ``tp`` (exact types: True is no integer, 1.0 no Literal[1]), or a ConfigError."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if _is_union(origin):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(value, a, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise ConfigError(f"{where} must be one of {', '.join(map(repr, args))}, got {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} expects a list, got {value!r}")
        inner = args[0] if args else Any
        return origin(coerce(v, inner, where) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} expects true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where} expects an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:
                raise ConfigError(f"{where} expects a number within float range, got {value!r}") from None
        raise ConfigError(f"{where} expects a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where} expects a string, got {value!r}")
    if _is_dataclass_type(tp) and isinstance(value, dict):
        return build_config(tp, value, where)
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{where}: cannot use {value!r} as {getattr(tp, '__name__', tp)}")
