"""Field checks shared by the manifest parsers: every failure is one line naming the field.

Private to the bundle package; the parsers in ``_manifest``, ``_heads`` and ``_records`` use them so
that a bad manifest always reads ``manifest: <where>.<field> ...`` whichever part it is in.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any, TypeVar

from hai_edge.errors import BundleError

__all__ = ["MANIFEST_NAME", "extra_keys", "fail", "finite", "in_order", "opt", "req",
           "safe_relpath", "to_enum"]

MANIFEST_NAME = "manifest.json"

E = TypeVar("E", bound=enum.Enum)


def fail(msg: str) -> BundleError:
    return BundleError(msg)


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def _type_ok(value: Any, types: type | tuple[type, ...]) -> bool:
    # bool is an int in Python; a JSON true is never a count or a figure
    return isinstance(value, types) and not (isinstance(value, bool)
                                             and bool not in _as_tuple(types))


def req(data: Mapping[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    """``data[key]``, which must be present and of ``types``."""
    if key not in data:
        raise fail(f"manifest: {where} is missing required field '{key}'")
    value = data[key]
    if not _type_ok(value, types):
        raise fail(f"manifest: {where}.{key} has the wrong type ({type(value).__name__})")
    return value


def opt(data: Mapping[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    """``data[key]``, or None when absent or null; other values must be of ``types``."""
    if data.get(key) is None:
        return None
    value = data[key]
    if not _type_ok(value, types):
        raise fail(f"manifest: {where}.{key} has the wrong type ({type(value).__name__})")
    return value


def finite(data: Mapping[str, Any], key: str, where: str, lo: float | None = None,
           hi: float | None = None) -> float | None:
    """An optional finite number, within [lo, hi] where given."""
    value = opt(data, key, (int, float), where)
    if value is None:
        return None
    if not math.isfinite(value) or (lo is not None and value < lo) \
            or (hi is not None and value > hi):
        rng = f" within [{lo}, {hi}]" if lo is not None and hi is not None else ""
        raise fail(f"manifest: {where}.{key} must be a finite number{rng} (got {value!r})")
    return value


def extra_keys(d: Mapping[str, Any], known: tuple[str, ...]) -> dict[str, Any]:
    """The keys a typed view does not model, kept for the round trip: unknown keys, and known
    ones written as null (the typed field reads None, which is not written back)."""
    return {k: v for k, v in d.items() if k not in known or v is None}


def in_order(d: dict[str, Any], order: tuple[str, ...]) -> dict[str, Any]:
    """``d`` with the keys of ``order`` (the order they were read in) first, so that a parsed
    object is written back key for key as it was read; new keys follow."""
    if not order:
        return d
    return {**{k: d[k] for k in order if k in d}, **d}


def to_enum(cls: type[E], value: Any, where: str) -> E:
    try:
        return cls(value)
    except ValueError:
        allowed = "|".join(str(m.value) for m in cls)
        raise fail(f"manifest: {where} is {value!r}; expected one of {allowed}") from None


def safe_relpath(name: Any, where: str) -> str:
    """Bundle file names are relative POSIX paths that stay inside the bundle directory."""
    if not isinstance(name, str) or not name or "\\" in name or "\x00" in name:
        raise fail(f"manifest: {where} has an invalid file name {name!r}")
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or name.startswith("~") or p.name == MANIFEST_NAME:
        raise fail(f"manifest: {where} file name {name!r} escapes the bundle directory")
    return str(p)
