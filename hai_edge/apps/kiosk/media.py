"""Media files of the kiosk, content-addressed by SHA-256 and written durably before any row
references them (the store's durability rules)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

from hai_edge.apps.kiosk.records import StoreError
from hai_edge.fileio import atomic_write

__all__ = ["MediaStore"]


class MediaStore:
    """Content-addressed files: ``root/ab/<sha256>``; written atomically, never overwritten."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise StoreError("invalid media hash")
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        """Store ``data`` durably (temp + fsync + rename + folder fsync); returns its sha256."""
        digest = hashlib.sha256(data).hexdigest()
        dest = self.path(digest)
        if dest.is_file() and dest.stat().st_size == len(data):
            return digest
        with atomic_write(dest, sync_dir=True) as fh:  # acknowledged only once durable
            fh.write(data)
        return digest

    def read(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def delete(self, sha256: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(sha256).unlink()

    def files(self) -> Iterator[Path]:
        for sub in self.root.iterdir():
            if sub.is_dir():
                yield from sub.iterdir()
