"""The run side on emulated aarch64 (Raspberry Pi 5 = Cortex-A76, Pi 4 = Cortex-A72) matches x86.

Runs ``scripts/aarch64_check.py`` (issue #19): a Debian arm64 userland under qemu user mode in a
temporary directory, every built-in bundle verified on every engine, a fixed set of audio files
and photos embedded on both sides. CI installs qemu-user-static and debootstrap (``.ci/run``).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

from hai_edge.devices import load_profiles

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "aarch64_check.py"


def _reachable(url: str) -> bool:
    u = urlparse(url)
    try:
        with socket.create_connection((u.hostname or "", u.port or (443 if u.scheme == "https"
                                                                    else 80)), timeout=5):
            return True
    except OSError:
        return False


def _skip_reason() -> str | None:
    if platform.machine() != "x86_64":
        return f"emulates aarch64 on an x86_64 host only (this is {platform.machine()})"
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root (debootstrap)"
    missing = [t for t in ("qemu-aarch64-static", "debootstrap", "dpkg-deb") if not shutil.which(t)]
    if missing:
        return (f"needs {', '.join(missing)}: apt-get install --no-install-recommends "
                f"qemu-user-static debootstrap (.ci/run does)")
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from aarch64_check import debian_mirror
    finally:
        sys.path.pop(0)
    for url in ("https://pypi.org/simple/", debian_mirror()):
        if not _reachable(url):
            return f"needs network access to {url}"
    return None


@pytest.mark.slow
def test_every_bundle_and_engine_verifies_on_emulated_aarch64(tmp_path: Path) -> None:
    why = _skip_reason()
    if why:
        pytest.skip(why)
    out = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--workdir", str(tmp_path / "work"),
                           "--json", str(out)], capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert not (tmp_path / "work").exists()  # nothing kept
    assert set(res["cpus"]) == {"cortex-a76", "cortex-a72"}
    assert {"onnxruntime", "tflite"} <= set(res["engines"])
    bundles = {r["bundle"] for r in res["rows"]}
    assert bundles == {p.name for p in (ROOT / "hai_edge" / "bundles").iterdir()
                       if (p / "manifest.json").is_file()}
    assert res["guest_versions"]["machine"] == "aarch64"
    for engine in ("onnxruntime", "tflite"):
        assert res["engine_verdicts"][engine][0], res["engine_verdicts"][engine]
        for r in (r for r in res["rows"] if r["engine"] == engine):
            assert r["verify"] == "passed" and r["embed_min_cos"] >= 0.999, r
    # the profiles' data says what this check proves: an engine recorded as verified on an
    # emulated Arm CPU passed there; an engine that did not pass is excluded by every ARM profile
    for p in load_profiles().values():
        if "aarch64" not in p.isa:
            continue
        for engine in res["engines"]:
            rows = [r for r in res["rows"] if r["engine"] == engine]
            cpus = {v.cpu for v in p.verified_on.get(engine, ())}
            assert all(r["verify"] == "passed" for r in rows if r["cpu"] in cpus), (p.id, engine)
            if not all(r["verify"] == "passed" for r in rows):
                assert engine in p.excluded_engines, (p.id, engine)
