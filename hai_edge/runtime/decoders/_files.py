"""Input-file checks and error texts shared by every decoder (audio, photo, DICOM).

Every problem is an :class:`~hai_edge.errors.InputError` naming the input as the caller gave it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from hai_edge.errors import InputError

__all__ = ["check_input_file", "check_limits", "megapixels", "open_input_file", "short_reason",
           "source_name"]


def source_name(path: object, source: str | None) -> str:
    """The name errors report: ``source`` when given, else the path as given."""
    if source is not None:
        return str(source)
    return os.fspath(path) if isinstance(path, (str, os.PathLike)) else str(path)


def check_input_file(path: str | os.PathLike, src: str) -> int:
    """Raise :class:`InputError` unless ``path`` is a readable, non-empty regular file.

    Returns the file size in bytes.
    """
    try:
        p = Path(path)
    except TypeError:
        raise InputError(src, f"expected a file path, got {type(path).__name__}") from None
    try:
        st = p.stat()
    except FileNotFoundError:
        raise InputError(src, "file not found") from None
    except PermissionError:
        raise InputError(src, "cannot read file (permission denied)") from None
    except (OSError, ValueError) as exc:
        raise InputError(src, f"cannot read file ({short_reason(exc)})") from None
    if p.is_dir():
        raise InputError(src, "is a directory, not a file")
    if not p.is_file():
        raise InputError(src, "is not a regular file")
    if st.st_size == 0:
        raise InputError(src, "empty file (0 bytes)")
    if not os.access(p, os.R_OK):
        raise InputError(src, "cannot read file (permission denied)")
    return int(st.st_size)


def open_input_file(path: str | os.PathLike, src: str) -> BinaryIO:
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller closes it
    except PermissionError:
        raise InputError(src, "cannot read file (permission denied)") from None
    except OSError as exc:
        raise InputError(src, f"cannot read file ({short_reason(exc)})") from None


def short_reason(exc: BaseException, limit: int = 100) -> str:
    """One short line describing ``exc`` (first line of its message, else its class name)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = text.rstrip(".")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def megapixels(n: int) -> str:
    mp = n / 1e6
    return f"{mp:.1f} MP" if mp >= 0.1 else f"{mp:.2g} MP"


def check_limits(
    src: str, width: int, height: int, max_pixels: int, min_side: int, *, what: str = "image"
) -> None:
    if width <= 0 or height <= 0:
        raise InputError(src, f"{what} has no pixels ({width}x{height})")
    n = int(width) * int(height)
    if n > max_pixels:
        raise InputError(
            src,
            f"{what} is {width}x{height} pixels ({megapixels(n)}); "
            f"the limit is {megapixels(max_pixels)}",
        )
    if min(width, height) < min_side:
        raise InputError(
            src,
            f"{what} is {width}x{height} pixels; the shorter side must be at least {min_side}",
        )
