"""Kiosk settings: one frozen dataclass built by the CLI (or tests), never read from globals."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from pathlib import Path

__all__ = ["KioskConfig", "default_data_dir", "is_loopback"]


def default_data_dir() -> Path:
    """``$HAI_EDGE_KIOSK_DATA``, else ``$XDG_DATA_HOME/hai-edge/kiosk`` (~/.local/share/...)."""
    env = os.environ.get("HAI_EDGE_KIOSK_DATA")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                           "share")
    return Path(base) / "hai-edge" / "kiosk"


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclasses.dataclass(frozen=True)
class KioskConfig:
    """Everything the app needs. Sizes in bytes, times in seconds."""

    data_dir: Path = dataclasses.field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = 8080
    export_root: Path | None = None  # default: data_dir / "exports"
    retention_days: float | None = None  # None: keep media forever
    max_photo_bytes: int = 30 * 1024 * 1024
    max_audio_bytes: int = 20 * 1024 * 1024
    queue_depth: int = 16  # per kind; a full queue answers 503 + Retry-After
    workers: int = 1  # worker threads for coughs (and photos, unless photo_workers is set)
    photo_workers: int | None = 2
    max_failures: int = 5
    lockout_s: float = 300.0
    session_idle_s: float = 3600.0
    session_max_s: float = 12 * 3600.0
    https: bool = False
    mic_enabled: bool = True
    mic_device: str | None = None
    max_mic_seconds: float = 30.0
    allowed_hosts: tuple[str, ...] | None = None  # Host header check (DNS rebinding); None: off

    @property
    def exports(self) -> Path:
        return Path(self.export_root) if self.export_root else Path(self.data_dir) / "exports"

    @property
    def max_body_bytes(self) -> int:
        return max(self.max_photo_bytes, self.max_audio_bytes) + 64 * 1024
