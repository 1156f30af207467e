"""One loader for every YAML config: typed dataclasses built from nested mappings.

Every config in the package (the training recipe, the pipeline, sampling) is
a tree of dataclasses. :func:`from_dict` builds one from a mapping read from
YAML, checking each value against its field's annotation; an unknown key is
a :class:`~openmm_distill.errors.ConfigError` that names it, suggests the
closest allowed key and lists them all, because a typo that silently falls
back to a default is found only after the run. :func:`apply_overrides` applies
``--set a.b=value`` strings, the same syntax for every command.

Two quirks of YAML 1.1 are handled here once: ``1e-3`` (no dot) is read as a
string, so a string where a float is expected is converted; and an override's
value is parsed as a YAML scalar (``1e-3`` a float, ``[1, 6]`` a list,
``null`` None, ``false`` a bool).

Validation of ranges and choices stays with each config (``validate``
functions, ``__post_init__``); this module knows only types.
"""
from __future__ import annotations

import dataclasses
import difflib
import numbers
import typing
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Tuple, Union

import yaml

from openmm_distill.errors import ConfigError


def suggest(key: str, allowed: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest allowed key, or an empty string."""
    close = difflib.get_close_matches(str(key), [str(a) for a in allowed], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_key_error(key: str, allowed: Sequence[str], where: str = "") -> ConfigError:
    """The error for a key that is not among ``allowed``, naming it and listing the allowed ones."""
    place = f" in {where}" if where else ""
    return ConfigError(f"unknown key {key!r}{place}{suggest(key, allowed)}; allowed keys: {', '.join(allowed)}")


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _number(value: Any) -> Any:
    """A string such as ``"1e-3"`` (YAML 1.1 leaves it a string) as a float; anything else unchanged."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check ``value`` against a field annotation and convert it where the meaning is clear.

    Integers become floats where a float is expected, numeric strings
    (``"1e-3"``) become floats, lists become tuples for tuple fields, and
    mappings become dataclasses for dataclass fields.

    Raises
    ------
    ConfigError
        Naming ``where``, the value and the expected type.
    """
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Union:
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[-1] if len(errors) == 1 else
                          f"{where} = {value!r} has the wrong type (expected {_type_name(annotation)})")
    if dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value, where)
    if origin in (list, List):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} = {value!r} must be a list ({_type_name(annotation)})")
        return [coerce(v, args[0], f"{where}[{k}]") for k, v in enumerate(value)] if args else list(value)
    if origin in (tuple, Tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} = {value!r} must be a list ({_type_name(annotation)})")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0], f"{where}[{k}]") for k, v in enumerate(value))
        if args and len(value) != len(args):
            raise ConfigError(f"{where} = {list(value)!r} must have {len(args)} entries")
        return tuple(coerce(v, a, f"{where}[{k}]") for k, (v, a) in enumerate(zip(value, args))) if args \
            else tuple(value)
    if origin in (dict, Dict):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} = {value!r} must be a mapping")
        return dict(value)
    if annotation is Any:
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} = {value!r} must be true or false")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ConfigError(f"{where} = {value!r} must be an integer")
        return int(value)
    if annotation is float:
        value = _number(value)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ConfigError(f"{where} = {value!r} must be a number")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} = {value!r} must be a string")
        return value
    raise ConfigError(f"{where}: unsupported annotation {annotation!r}")  # pragma: no cover


def field_names(cls: type, *, exclude: Sequence[str] = ()) -> List[str]:
    """The keys a config dataclass accepts, in declaration order."""
    return [f.name for f in dataclasses.fields(cls) if f.init and f.name not in exclude]


def _place(where: str, what: str) -> str:
    return f"section {where!r}" if where else f"the {what}"


def from_dict(cls: type, values: Any, where: str = "", *, what: str = "config", exclude: Sequence[str] = (),
              **extra: Any):
    """Build the dataclass ``cls`` from a mapping, recursively, checking keys and types.

    Parameters
    ----------
    cls : dataclass type
    values : mapping or None
        ``None`` gives the defaults.
    where : str
        Dotted name of this section in messages (``"optim"``); empty for the top level.
    what : str
        What the whole config is, for messages about its top level (``"training config"``).
    exclude : sequence of str
        Fields that are not config keys (set by the caller through ``extra``).
    **extra
        Field values passed as they are (not read from ``values``).

    Raises
    ------
    ConfigError
        Unknown key (named, with a suggestion and the allowed keys), wrong type,
        or a value rejected by the dataclass itself.
    """
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"{_place(where, what)} must be a mapping of keys to values, got {values!r}")
    hints = typing.get_type_hints(cls)
    allowed = field_names(cls, exclude=exclude)
    kwargs = dict(extra)
    for key, value in values.items():
        if key not in allowed:
            raise unknown_key_error(str(key), allowed, _place(where, what))
        kwargs[key] = coerce(value, hints[key], f"{where}.{key}" if where else str(key))
    try:
        return cls(**kwargs)
    except TypeError as exc:  # pragma: no cover - a field without default left out
        raise ConfigError(f"{where or cls.__name__}: {exc}") from None


def to_dict(cfg: Any) -> Dict[str, Any]:
    """A plain nested dict of a config dataclass (tuples as lists: YAML/JSON serialisable)."""
    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(cfg))


def parse_value(raw: str) -> Any:
    """An override's value read as a YAML scalar: ``1e-3`` a float, ``[1,6]`` a list, ``null`` None."""
    if not raw.strip():
        return ""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse the value {raw!r}: {exc}") from None
    # YAML 1.1 reads "1e-3" (no dot) as a string; take it as the number the user meant.
    if isinstance(value, str) and any(c in value.lower() for c in ".e"):
        value = _number(value)
    return value


def parse_override(text: str) -> Tuple[List[str], Any]:
    """Split ``"a.b=value"`` into ``(["a", "b"], value)``; the value is parsed by :func:`parse_value`."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value (e.g. optim.lr=1e-3)")
    dotted, raw = text.split("=", 1)
    parts = dotted.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override {text!r}: the key {dotted.strip()!r} has an empty part")
    try:
        return parts, parse_value(raw)
    except ConfigError as exc:
        raise ConfigError(f"override {text!r}: {exc}") from None


def _mapping_field(annotation: Any) -> bool:
    """Whether a field holds a free-form mapping (its keys are not checked here)."""
    origin = typing.get_origin(annotation)
    if origin is Union:
        return any(_mapping_field(a) for a in typing.get_args(annotation) if a is not type(None))
    return origin in (dict, Dict)


def _dataclass_of(annotation: Any):
    if dataclasses.is_dataclass(annotation):
        return annotation
    if typing.get_origin(annotation) is Union:
        for arg in typing.get_args(annotation):
            if dataclasses.is_dataclass(arg):
                return arg
    return None


def apply_overrides(values: Dict[str, Any], overrides: Sequence[str], cls: type,
                    *, what: str = "config", exclude: Sequence[str] = ()) -> Dict[str, Any]:
    """Apply ``a.b=value`` strings to the nested mapping ``values`` of config ``cls`` (in place).

    The dotted key follows the dataclass fields; once it reaches a free-form
    mapping field (``training.set``, ``teacher.options``), the rest of the key
    is one entry of that mapping (``training.set.optim.lr=1e-3`` sets the entry
    ``"optim.lr"``). Unknown keys are errors naming the key and the allowed ones.

    Returns
    -------
    dict
        ``values``, for chaining.
    """
    for text in overrides or ():
        parts, value = parse_override(text)
        node, current = values, cls
        for depth, part in enumerate(parts):
            where = ".".join(parts[:depth])
            allowed = field_names(current, exclude=exclude if depth == 0 else ())
            if part not in allowed:
                raise ConfigError(f"override {text!r}: {unknown_key_error(part, allowed, _place(where, what))}")
            annotation = typing.get_type_hints(current)[part]
            last = depth == len(parts) - 1
            if last:
                node[part] = value
            elif _mapping_field(annotation):
                sub = node.get(part)
                node[part] = sub = dict(sub) if isinstance(sub, Mapping) else {}
                sub[".".join(parts[depth + 1:])] = value
                break
            elif _dataclass_of(annotation) is not None:
                sub = node.get(part)
                node[part] = sub = dict(sub) if isinstance(sub, Mapping) else {}
                node, current = sub, _dataclass_of(annotation)
            else:
                raise ConfigError(f"override {text!r}: {'.'.join(parts[:depth + 1])} is a value, not a section")
    return values


def read_yaml(path: Union[str, Path], what: str = "config") -> Dict[str, Any]:
    """Read a YAML mapping; a missing file, bad YAML or a non-mapping is a :class:`ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {str(path)!r} does not exist")
    try:
        with open(path) as handle:
            values = yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    values = values or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: a {what} must be a mapping of keys to values, got {type(values).__name__}")
    return values


def load(cls: type, path: Union[str, Path, None] = None, overrides: Sequence[str] = (), *,
         what: str = "config", exclude: Sequence[str] = (), **extra: Any):
    """Read a YAML file (or start from the defaults), apply overrides, build ``cls``.

    Parameters
    ----------
    cls : dataclass type
    path : path-like, optional
        YAML file; ``None`` starts from the defaults.
    overrides : sequence of str
        ``a.b=value`` strings (see :func:`apply_overrides`).
    what : str
        What the file is, for messages (``"training config"``).
    """
    values = read_yaml(path, what) if path is not None else {}
    apply_overrides(values, overrides, cls, what=what, exclude=exclude)
    return from_dict(cls, values, what=what, exclude=exclude, **extra)
