"""Kiosk bundle updates: staged, signature- and golden-checked, switched atomically, rolled back;
a kill at every step leaves a working bundle."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

pytest.importorskip("cryptography")

from hai_edge.apps.kiosk.updates import BundleSlots, Slot, UpdateError  # noqa: E402
from hai_edge.bundle import Bundle, builtin_bundles, signing  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("received", "verified", "stored", "switched")


pytestmark = pytest.mark.usefixtures("no_trust_store")


@pytest.fixture()
def publisher(tmp_path: Path) -> dict[str, Path]:
    priv, pub, _ = signing.generate_key(tmp_path / "keys" / "publisher.key")
    stranger, _, _ = signing.generate_key(tmp_path / "keys" / "stranger.key")
    return {"priv": priv, "pub": pub, "stranger": stranger}


def _signed_copy(dest: Path, key: Path, *, break_golden: bool = False) -> Path:
    """cough-demo, copied and signed by ``key`` (optionally with golden outputs that can't match)."""
    src = builtin_bundles()["cough-demo"]
    shutil.copytree(src, dest)
    (dest / signing.SIGNATURE_NAME).unlink()
    if break_golden:
        from hai_edge.bundle import write_bundle

        b = Bundle.load(dest, trust=None)
        doc = json.loads((dest / "golden.json").read_text())
        for model in doc["models"].values():
            model["tolerance"] = {"max_abs": 0.0, "min_cosine": 1.0000001}  # nothing can meet it
        files = {n: (dest / n) for n in b.manifest.files if n != "golden.json"}
        files["golden.json"] = json.dumps(doc).encode()
        write_bundle(dest, b.manifest, files, overwrite=True)
    signing.sign_bundle(dest, key)
    return dest


def _second_version(dest: Path, key: Path) -> Path:
    """Another release of the same bundle: one more notice, so another manifest and store entry."""
    src = _signed_copy(dest, key)
    data = json.loads((src / "manifest.json").read_text())
    data["notices"] = [*data["notices"], "update 2"]
    (src / "manifest.json").write_text(json.dumps(data, indent=2))
    (src / signing.SIGNATURE_NAME).unlink()
    signing.sign_bundle(src, key)
    return src


@pytest.fixture()
def slots(tmp_path: Path, publisher) -> BundleSlots:
    s = BundleSlots(tmp_path / "kiosk")
    shutil.copy(publisher["pub"], s.keys / "publisher.pub")
    return s


def test_install_from_folder_and_archive_keeps_the_previous(slots, publisher, tmp_path) -> None:
    first = slots.install(_signed_copy(tmp_path / "a", publisher["priv"]))
    assert first.slot is Slot.AUDIO and first.previous is None
    assert slots.current("audio") == first.bundle and Bundle.load(first.bundle, trust=None)
    # the same bundle again, as a .tar.gz upload
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(tmp_path / "a", arcname="cough-demo")
    again = slots.install(buf.getvalue())
    assert again.installed == first.installed  # same manifest: same store entry
    assert slots.start() == {Slot.AUDIO: first.bundle}
    assert slots.state()["audio"]["pending"] is False


def test_update_signed_by_unknown_key_is_refused(slots, publisher, tmp_path) -> None:
    with pytest.raises(UpdateError, match="not in this machine's trust store"):
        slots.install(_signed_copy(tmp_path / "s", publisher["stranger"]))
    shutil.copytree(builtin_bundles()["cough-demo"], tmp_path / "unsigned")
    (tmp_path / "unsigned" / signing.SIGNATURE_NAME).unlink()
    with pytest.raises(UpdateError, match="not signed"):
        slots.install(tmp_path / "unsigned")
    assert slots.current("audio") is None and not list(slots.store.iterdir())


def test_no_update_without_a_trusted_publisher(tmp_path: Path, publisher) -> None:
    bare = BundleSlots(tmp_path / "bare")
    with pytest.raises(UpdateError, match="no trusted publisher key"):
        bare.install(_signed_copy(tmp_path / "a", publisher["priv"]))


def test_update_failing_its_self_test_is_refused(slots, publisher, tmp_path) -> None:
    with pytest.raises(UpdateError, match="self-test failed"):
        slots.install(_signed_copy(tmp_path / "bad", publisher["priv"], break_golden=True))
    assert slots.current("audio") is None


def test_rollback_at_start_when_the_new_bundle_fails_its_self_test(slots, publisher,
                                                                   tmp_path) -> None:
    good = slots.install(_signed_copy(tmp_path / "a", publisher["priv"]))
    slots.start()
    new_src = _second_version(tmp_path / "b", publisher["priv"])
    new = slots.install(new_src)
    assert new.previous == good.installed and slots.state()["audio"]["pending"] is True
    model = next(p for p in new.bundle.iterdir() if p.suffix == ".onnx")
    model.write_bytes(model.read_bytes()[:-8] + b"\0" * 8)  # the disk corrupts it before restart
    said: list[str] = []
    serving = slots.start(said.append)
    assert serving == {Slot.AUDIO: good.bundle}
    assert "rolled back" in said[0] and slots.state()["audio"]["rolled_back"] == new.installed


@pytest.mark.parametrize("step", STEPS)
def test_a_kill_at_any_step_leaves_a_working_bundle(slots, publisher, tmp_path, step) -> None:
    good = slots.install(_signed_copy(tmp_path / "a", publisher["priv"]))
    slots.start()
    new_src = _second_version(tmp_path / "b", publisher["priv"])
    code = ("import sys; from hai_edge.apps.kiosk.updates import BundleSlots; "
            "BundleSlots(sys.argv[1]).install(sys.argv[2])")
    env = {**os.environ, "HAI_EDGE_KIOSK_KILL_AT": step, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "kiosk"), str(new_src)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 137, proc.stderr[-2000:]
    serving = BundleSlots(tmp_path / "kiosk").start()
    bundle = Bundle.load(serving[Slot.AUDIO], trust=slots.trust_store())
    expected = "update 2" if step == "switched" else None
    assert (expected in bundle.manifest.notices) if expected else serving[Slot.AUDIO] == good.bundle
    assert not list(slots.staging.iterdir())  # the half-received copy was swept


def test_admin_rollback(slots, publisher, tmp_path) -> None:
    with pytest.raises(UpdateError, match="no previous"):
        slots.rollback("audio")
    first = slots.install(_signed_copy(tmp_path / "a", publisher["priv"]))
    src = _second_version(tmp_path / "b", publisher["priv"])
    second = slots.install(src)
    back = slots.rollback("audio")
    assert back.installed == first.installed and slots.current("audio") == first.bundle
    assert slots.state()["audio"]["previous"] == second.installed


def test_unsafe_archives_are_refused(slots) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 4
        tf.addfile(info, io.BytesIO(b"evil"))
    with pytest.raises(UpdateError, match="unsafe path"):
        slots.install(buf.getvalue())
    with pytest.raises(UpdateError, match="not a bundle archive"):
        slots.install(b"not an archive at all")


def _tar_gz(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(folder, arcname=folder.name)
    return buf.getvalue()


def test_admin_api_installs_trusted_updates_only_and_rolls_back(tmp_path: Path, publisher) -> None:
    pytest.importorskip("fastapi")
    from tests._kiosk_fixtures import make_client, sign_in

    client = make_client(tmp_path)
    slots = BundleSlots(tmp_path / "data")
    shutil.copy(publisher["pub"], slots.keys / "publisher.pub")
    operator = sign_in(client, "nurse", role="operator")
    upload = {"file": ("cough-demo.tar.gz", _tar_gz(_signed_copy(tmp_path / "a", publisher["priv"])))}
    assert client.post("/api/admin/bundles", files=upload, headers=operator).status_code == 403
    client.post("/api/logout", headers=operator)
    admin = sign_in(client)
    assert client.post("/api/admin/bundles", files=upload).status_code == 403  # no CSRF token
    stranger = {"file": ("x.tar.gz", _tar_gz(_signed_copy(tmp_path / "s", publisher["stranger"])))}
    r = client.post("/api/admin/bundles", files=stranger, headers=admin)
    assert r.status_code == 400 and "not in this machine's trust store" in r.json()["error"]
    assert client.app.state.jobs  # the app is still serving
    r = client.post("/api/admin/bundles", files=upload, headers=admin)
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["modality"] == "audio" and first["previous"] is None
    second = {"file": ("v2.tar.gz", _tar_gz(_second_version(tmp_path / "b", publisher["priv"])))}
    r = client.post("/api/admin/bundles", files=second, headers=admin)
    assert r.json()["previous"] == first["installed"]
    listing = client.get("/api/admin/bundles").json()
    assert listing["installed"]["audio"]["current"] == r.json()["installed"]
    r = client.post("/api/admin/bundles/audio/rollback", headers=admin)
    assert r.status_code == 200 and r.json()["installed"] == first["installed"]
    # the (mock) analyzer switched each time: install, install, rollback
    assert [m for m, _ in client.app.state.jobs.analyzer.replaced] == ["audio"] * 3


def test_switching_never_interrupts_a_request_in_flight(monkeypatch) -> None:
    import threading
    import time

    import numpy as np

    from hai_edge.apps.kiosk.analysis import PipelineAnalyzer

    class SlowPipeline:
        def __init__(self, name: str) -> None:
            self.name, self.closed, self.started = name, False, threading.Event()
            self.bundle = type("B", (), {"manifest": type("M", (), {"embedding_dim": 2})()})()

        def analyze_bytes(self, data: bytes, name: str, **options: object) -> object:
            self.started.set()
            time.sleep(0.3)
            assert not self.closed, "closed while a request was using it"
            window = type("W", (), {"embedding": np.ones(2, np.float32)})()
            return type("R", (), {"windows": [window],
                                  "to_dict": lambda s, **k: {"bundle": self.name}})()

        def close(self) -> None:
            self.closed = True

    monkeypatch.setattr(PipelineAnalyzer, "_open", lambda self, m, b: SlowPipeline(str(b)))
    analyzer = PipelineAnalyzer("v1", None)
    old = analyzer.cough
    out: list = []
    worker = threading.Thread(target=lambda: out.append(analyzer.analyze_cough(b"x", "a.wav")))
    worker.start()
    old.started.wait(5)
    analyzer.replace_bundle("audio", "v2")  # while v1 is busy
    worker.join(5)
    assert out[0].result["bundle"] == "v1" and not old.closed  # finished on the old pipeline
    assert analyzer.analyze_cough(b"x", "b.wav").result["bundle"] == "v2"
    analyzer.close()
    assert old.closed and analyzer.cough.closed
