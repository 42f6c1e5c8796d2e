"""Safe bundle updates on a kiosk: stage, verify, switch atomically, keep the previous, roll back.

Layout under ``DATA_DIR/bundles/``::

    store/<name>-<manifest sha256[:12]>/   complete, verified bundles (never modified)
    staging/                                 half-received or unverified bundles (swept at start)
    state.json                               {"audio": {"current", "previous", "pending"}, ...}
    trusted-keys/*.pub                       publishers this kiosk accepts updates from

An update is copied or unpacked into ``staging``, loaded with the trust store (its signature
must come from a trusted key) and its golden vectors run on this kiosk's engine; only then is it
renamed into ``store`` and ``state.json`` rewritten atomically (temp file, fsync, rename) with
the old current bundle as ``previous`` and the new one marked ``pending`` a self-test. At start,
a pending bundle is self-tested again; if it fails, the kiosk rolls back to ``previous``. A kill
at any step leaves ``state.json`` pointing at a complete bundle that already passed its checks.
"""

from __future__ import annotations

import dataclasses
import enum
import io
import json
import os
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from hai_edge.bundle import MANIFEST_NAME, Bundle, sha256_file
from hai_edge.bundle.signing import TrustStore
from hai_edge.errors import BundleError, HaiEdgeError
from hai_edge.fileio import atomic_write, fsync_dir

__all__ = ["BundleSlots", "InstallResult", "Slot", "UpdateError"]

_MAX_UNPACKED_BYTES = 512 * 1024 * 1024
_MAX_MEMBERS = 10_000


class UpdateError(HaiEdgeError):
    """An update that was refused; the kiosk keeps what it had."""


class Slot(str, enum.Enum):
    AUDIO = "audio"
    IMAGE = "image"


@dataclasses.dataclass(frozen=True)
class InstallResult:
    slot: Slot
    installed: str  # store folder name of the new current bundle
    previous: str | None
    bundle: Path


def _step(name: str) -> None:
    """Test hook: ``HAI_EDGE_KIOSK_KILL_AT=<step>`` ends the process right there (kill tests)."""
    if os.environ.get("HAI_EDGE_KIOSK_KILL_AT") == name:
        os._exit(137)


def _safe_member(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise UpdateError(f"update archive: unsafe path {name!r}")
    return path


def _unpack(data: bytes, dest: Path) -> None:
    """Unpack a .zip or .tar(.gz) of one bundle folder into ``dest`` (no links, bounded size)."""
    total = 0
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            if len(infos) > _MAX_MEMBERS:
                raise UpdateError("update archive: too many files")
            for info in infos:
                rel = _safe_member(info.filename)
                total += info.file_size
                if total > _MAX_UNPACKED_BYTES:
                    raise UpdateError("update archive: larger than 512 MB unpacked")
                if info.is_dir():
                    continue
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
        return
    try:
        tf = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
    except tarfile.TarError:
        raise UpdateError("update: not a bundle archive (.zip or .tar.gz of a bundle folder)") \
            from None
    with tf:
        for member in tf.getmembers()[: _MAX_MEMBERS + 1]:
            rel = _safe_member(member.name)
            if member.isdir():
                continue
            if not member.isfile():
                raise UpdateError(f"update archive: {member.name!r} is not a plain file")
            total += member.size
            if total > _MAX_UNPACKED_BYTES:
                raise UpdateError("update archive: larger than 512 MB unpacked")
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tf.extractfile(member)
            if src is None:
                continue
            with src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)


def _bundle_root(folder: Path) -> Path:
    """The folder holding manifest.json: ``folder`` itself or its single sub-folder."""
    if (folder / MANIFEST_NAME).is_file():
        return folder
    subs = [p for p in folder.iterdir() if p.is_dir()]
    if len(subs) == 1 and (subs[0] / MANIFEST_NAME).is_file():
        return subs[0]
    raise UpdateError("update: no bundle (manifest.json) at the top of it")


class BundleSlots:
    """The kiosk's installed bundles, one current (and one previous) per modality."""

    def __init__(self, data_dir: str | os.PathLike[str],
                 self_test: Callable[[Bundle], None] | None = None) -> None:
        self.root = Path(data_dir) / "bundles"
        self.store = self.root / "store"
        self.staging = self.root / "staging"
        self.keys = self.root / "trusted-keys"
        self.state_path = self.root / "state.json"
        self.self_test = self_test or _golden_self_test
        for d in (self.store, self.staging, self.keys):
            d.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, dict[str, Any]]:
        if not self.state_path.is_file():
            return {}
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            raise HaiEdgeError(f"{self.state_path}: unreadable; remove it to fall back to the "
                               "bundles given on the command line") from None
        return data if isinstance(data, dict) else {}

    def _write_state(self, state: dict[str, Any]) -> None:
        with atomic_write(self.state_path, "w", sync_dir=True) as fh:
            json.dump(state, fh, indent=2, sort_keys=True)
            fh.write("\n")

    def current(self, slot: Slot | str) -> Path | None:
        name = self.state().get(Slot(slot).value, {}).get("current")
        return self.store / name if name else None

    def trust_store(self) -> TrustStore:
        """Publishers allowed to update this kiosk: DATA/bundles/trusted-keys plus the machine's
        configured trust store. Empty means no update is accepted."""
        machine = TrustStore.configured()
        own = TrustStore.from_paths([self.keys])
        return TrustStore({**(machine.keys if machine else {}), **own.keys})

    # ------------------------------------------------------------------ install
    def install(self, source: str | os.PathLike[str] | bytes) -> InstallResult:
        """Install a bundle from a folder, an archive file or archive bytes (an upload)."""
        trust = self.trust_store()
        if not trust.keys:
            raise UpdateError(f"no trusted publisher key on this kiosk: put the publisher's .pub "
                              f"file in {self.keys} first")
        tmp = Path(tempfile.mkdtemp(prefix="update-", dir=self.staging))
        try:
            self._receive(source, tmp)
            _step("received")
            bundle = self._check(_bundle_root(tmp), trust)
            _step("verified")
            slot = Slot(bundle.manifest.modality.value)
            digest = sha256_file(bundle.root / MANIFEST_NAME)[:12]
            name = f"{bundle.manifest.name}-{digest}"
            final = self.store / name
            if not final.exists():
                os.replace(bundle.root, final)
                fsync_dir(self.store)
            _step("stored")
            return self._switch(slot, name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _receive(self, source: str | os.PathLike[str] | bytes, tmp: Path) -> None:
        if isinstance(source, (bytes, bytearray)):
            _unpack(bytes(source), tmp)
            return
        path = Path(source)
        if path.is_dir():
            shutil.copytree(path, tmp / path.name)
        elif path.is_file():
            _unpack(path.read_bytes(), tmp)
        else:
            raise UpdateError(f"{path}: no such bundle folder or archive")

    def _check(self, root: Path, trust: TrustStore) -> Bundle:
        try:
            bundle = Bundle.load(root, trust=trust)
        except BundleError as exc:
            raise UpdateError(f"update refused: {exc}") from None
        try:
            self.self_test(bundle)
        except HaiEdgeError as exc:
            raise UpdateError(f"update refused: its self-test failed on this kiosk ({exc})") from None
        return bundle

    def _switch(self, slot: Slot, name: str) -> InstallResult:
        state = self.state()
        entry = state.get(slot.value, {})
        previous = entry.get("current")
        if previous == name:
            previous = entry.get("previous")
        state[slot.value] = {"current": name, "previous": previous, "pending": True}
        self._write_state(state)
        _step("switched")
        return InstallResult(slot, name, previous, self.store / name)

    # ------------------------------------------------------------------ start-up
    def start(self, say: Callable[[str], None] = lambda m: None) -> dict[Slot, Path]:
        """At kiosk start: sweep staging, self-test pending bundles, roll back failures; return
        the bundle to serve per modality."""
        for leftover in self.staging.iterdir():
            shutil.rmtree(leftover, ignore_errors=True)
        state = self.state()
        serving: dict[Slot, Path] = {}
        changed = False
        for slot in Slot:
            entry = state.get(slot.value)
            if not entry or not entry.get("current"):
                continue
            path = self.store / entry["current"]
            if entry.get("pending") or not path.is_dir():
                problem = self._start_check(path)
                if problem is not None:
                    back = entry.get("previous")
                    say(f"{slot.value} bundle {entry['current']} failed its self-test at start "
                        f"({problem}); rolled back to {back or 'the command-line bundle'}")
                    state[slot.value] = {"current": back, "previous": None, "pending": False,
                                         "rolled_back": entry["current"]}
                    changed = True
                    if back:
                        serving[slot] = self.store / back
                    continue
                entry["pending"] = False
                changed = True
            serving[slot] = path
        if changed:
            self._write_state(state)
        return serving

    def _start_check(self, path: Path) -> str | None:
        try:
            bundle = Bundle.load(path, trust=self.trust_store())
            self.self_test(bundle)
        except HaiEdgeError as exc:
            return str(exc)
        return None

    def rollback(self, slot: Slot | str) -> InstallResult:
        """Make the previous bundle current again (an admin's choice)."""
        slot = Slot(slot)
        state = self.state()
        entry = state.get(slot.value) or {}
        if not entry.get("previous"):
            raise UpdateError(f"no previous {slot.value} bundle to roll back to")
        state[slot.value] = {"current": entry["previous"], "previous": entry.get("current"),
                             "pending": False}
        self._write_state(state)
        return InstallResult(slot, entry["previous"], entry.get("current"),
                             self.store / entry["previous"])


def _golden_self_test(bundle: Bundle) -> None:
    """The bundle's golden vectors on the engines installed here; a failed check refuses it."""
    from hai_edge.runtime.verify import verify_bundle

    report = verify_bundle(bundle)
    if not report.passed:
        failed = [m for m in report.models if m.status != "passed" and m.status != "skipped"]
        first = failed[0] if failed else None
        detail = (f"{first.model} on {first.engine}: min cosine {first.min_cosine}" if first
                  else "no engine here ran it, or its front end differs")
        raise HaiEdgeError(f"golden vectors do not match ({detail})")
