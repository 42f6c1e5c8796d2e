"""Kiosk JSON API with the mock analyzer (fast), plus the real pipelines on tiny bundles."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart")

from hai_edge.apps.kiosk.analysis import Analysis, AnalysisQueue, Kind, MockAnalyzer, Overloaded
from hai_edge.apps.kiosk.store import Store, StoreError

from ._kiosk_fixtures import (
    PASSWORD,
    add_user,
    cough_like,
    csrf,
    dicom_bytes,
    jpeg_bytes,
    make_client,
    new_encounter,
    sign_in,
    tiny_bundles,
    wav_bytes,
)


def _photo(c, h, eid, data=None, name="lesion.jpg"):
    return c.post(f"/api/encounters/{eid}/photo", headers=h,
                  files={"file": (name, data if data is not None else jpeg_bytes(), "image/jpeg")})


def _cough(c, h, eid, data=None, name="cough.wav"):
    return c.post(f"/api/encounters/{eid}/cough", headers=h,
                  files={"file": (name, data if data is not None else wav_bytes(), "audio/wav")})


# ------------------------------------------------------------------------------ accounts
def test_first_run_setup_only_on_the_kiosk_itself_and_only_once(tmp_path: Path) -> None:
    with make_client(tmp_path, client_host="192.168.1.20") as lan:
        assert lan.get("/api/session").json()["setup_required"] is True
        r = lan.post("/api/setup", json={"username": "boss", "password": PASSWORD},
                     headers=csrf(lan))
        assert r.status_code == 403 and "kiosk itself" in r.json()["error"]
    with make_client(tmp_path) as c:  # same data dir, from loopback
        r = c.post("/api/setup", json={"username": "boss", "password": "123"}, headers=csrf(c))
        assert r.status_code == 400 and "at least 6" in r.json()["error"]
        r = c.post("/api/setup", json={"username": "boss", "password": PASSWORD}, headers=csrf(c))
        assert r.status_code == 201 and r.json()["user"] == {"username": "boss", "role": "admin",
                                                             "locked": False}
        s = c.get("/api/session").json()
        assert s["user"]["username"] == "boss" and s["setup_required"] is False
        r = c.post("/api/setup", json={"username": "two", "password": PASSWORD}, headers=csrf(c))
        assert r.status_code == 409


def test_login_logout_lockout_and_admin_unlock(tmp_path: Path) -> None:
    with make_client(tmp_path, max_failures=3, lockout_s=60) as c:
        add_user(c, "ops", "operator")
        h = sign_in(c, "admin")
        bad = {"username": "ops", "password": "wrong-pin"}
        for _ in range(3):
            assert c.post("/api/login", json=bad, headers=csrf(c)).status_code == 401
        r = c.post("/api/login", json={"username": "ops", "password": PASSWORD},
                   headers=csrf(c))
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 50
        assert "locked" in r.json()["error"]
        # unknown user: same message as a wrong PIN (no user enumeration)
        r = c.post("/api/login", json={"username": "nobody", "password": "x" * 8},
                   headers=csrf(c))
        assert r.status_code == 401 and r.json()["error"] == "wrong user name or PIN/password"
        h = sign_in(c, "admin", create=False)
        assert c.post("/api/users/ops/unlock", headers=h).status_code == 204
        sign_in(c, "ops", create=False)
        assert c.get("/api/session").json()["user"]["username"] == "ops"
        h = {"X-CSRF-Token": c.cookies.get("kiosk_csrf")}
        assert c.post("/api/logout", headers=h).status_code == 204
        assert c.get("/api/encounters").status_code == 401


def test_admin_adds_users_and_passwords_are_scrypt_hashed(tmp_path: Path) -> None:
    with make_client(tmp_path) as c:
        h = sign_in(c)
        r = c.post("/api/users", json={"username": "nurse.1", "password": "246810",
                                       "role": "operator"}, headers=h)
        assert r.status_code == 201
        assert c.post("/api/users", json={"username": "nurse.1", "password": "246810"},
                      headers=h).status_code == 409
        assert [u["username"] for u in c.get("/api/users").json()["users"]] == ["admin",
                                                                               "nurse.1"]
        stored = c.app.state.store.user("nurse.1").pw_hash
        assert stored.startswith("scrypt$n=32768,r=8,p=1$") and "246810" not in stored


# ---------------------------------------------------------------------------- encounters
def test_subject_ids_are_keyed_pseudonyms_and_the_ref_is_never_stored(tmp_path: Path) -> None:
    with make_client(tmp_path) as c:
        h = sign_in(c)
        a = new_encounter(c, h, subject_ref="Clinic-4711", note="rash left arm")
        b = new_encounter(c, h, subject_ref="  clinic-4711 ")
        other = new_encounter(c, h, subject_ref="Clinic-4712")
        anon = new_encounter(c, h)
        assert a["subject"] == b["subject"] and a["subject"].startswith("P-")
        assert other["subject"] != a["subject"] and anon["subject"].startswith("R-")
        found = c.get("/api/encounters", params={"q": "clinic-4711"}).json()
        assert found["total"] == 2 and {e["id"] for e in found["items"]} == {a["id"], b["id"]}
        assert c.get("/api/encounters", params={"q": "rash"}).json()["total"] == 1
        assert c.get("/api/encounters", params={"q": a["subject"]}).json()["total"] == 2
        assert c.get("/api/encounters").json()["total"] == 4
    raw = b"".join(p.read_bytes() for p in (tmp_path / "data").glob("kiosk.sqlite3*"))
    assert b"4711" not in raw and b"Clinic" not in raw


def test_request_id_makes_encounter_creation_safe_to_retry(tmp_path: Path) -> None:
    with make_client(tmp_path) as c:
        h = sign_in(c)
        first = c.post("/api/encounters", json={"request_id": "r-1"}, headers=h)
        again = c.post("/api/encounters", json={"request_id": "r-1"}, headers=h)
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json()["id"] == again.json()["id"]
        assert c.get("/api/encounters").json()["total"] == 1
        assert c.get("/api/encounters/ffff").status_code == 404


def test_photo_dicom_and_cough_are_analysed_stored_and_served(tmp_path: Path) -> None:
    with make_client(tmp_path) as c:
        h = sign_in(c)
        eid = new_encounter(c, h)["id"]
        jpg = jpeg_bytes()
        r = _photo(c, h, eid, jpg)
        assert r.status_code == 201, r.text
        cap = r.json()
        frame = cap["result"]["frames"][0]
        assert (frame["width"], frame["height"]) == (160, 120)
        assert frame["quality"]["passed"] is True and frame["scores"]["mock-head"]
        assert cap["embedding_shape"] == [1, 4] and cap["source"] == "upload"
        got = c.get(f"/api/media/{cap['media_sha256']}")
        assert got.status_code == 200 and got.content == jpg
        assert got.headers["content-type"] == "image/jpeg"
        r = _photo(c, h, eid, dicom_bytes(frames=2), "scan.dcm")
        assert r.status_code == 201, r.text
        assert [f["frame"] for f in r.json()["result"]["frames"]] == [0, 1]
        r = _cough(c, h, eid)
        assert r.status_code == 201, r.text
        q = r.json()["result"]["quality"]
        assert {ch["name"] for ch in q["checks"]} == {"clipping", "level", "duration",
                                                      "cough_events"}
        enc = c.get(f"/api/encounters/{eid}").json()
        assert enc["counts"] == {"photo": 2, "cough": 1}
        assert [x["kind"] for x in enc["captures"]] == ["photo", "photo", "cough"]


def test_kiosk_microphone_records_through_the_injected_capture(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from hai_edge.apps.kiosk import KioskConfig, create_app

    class FakeMic:
        def __init__(self, rate: int, device: str | None) -> None:
            self.rate = rate

        def record(self, seconds: float) -> np.ndarray:
            return cough_like(seconds, self.rate)

    app = create_app(KioskConfig(data_dir=tmp_path / "d"), MockAnalyzer(), mic_factory=FakeMic)
    with TestClient(app, client=("127.0.0.1", 1)) as c:
        h = sign_in(c)
        eid = new_encounter(c, h)["id"]
        r = c.post(f"/api/encounters/{eid}/cough/mic", json={"seconds": 2}, headers=h)
        assert r.status_code == 201, r.text
        assert r.json()["source"] == "kiosk-mic" and r.json()["result"]["duration_s"] == 2.0
        r = c.post(f"/api/encounters/{eid}/cough/mic", json={"seconds": 99}, headers=h)
        assert r.status_code == 400


# -------------------------------------------------------------------------------- export
def test_export_download_and_folder(tmp_path: Path) -> None:
    with make_client(tmp_path, export_root=tmp_path / "usb") as c:
        h = sign_in(c)
        ids = []
        for i in range(2):
            eid = new_encounter(c, h, note=f"n{i}")["id"]
            assert _photo(c, h, eid, jpeg_bytes(seed=i)).status_code == 201
            assert _cough(c, h, eid, wav_bytes(cough_like(seed=i))).status_code == 201
            ids.append(eid)
        new_encounter(c, h, note="not exported")
        r = c.post("/api/export", json={"encounter_ids": ids}, headers=h)
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
        assert "attachment" in r.headers["content-disposition"]
        zf = zipfile.ZipFile(io.BytesIO(r.content))
        files = {Path(n).name: zf.read(n) for n in zf.namelist()}
        assert set(files) == {"encounters.jsonl", "captures.csv", "embeddings.npy",
                              "embeddings_index.csv"}
        lines = [json.loads(x) for x in files["encounters.jsonl"].decode().splitlines()]
        assert [x["id"] for x in lines] == ids[::-1] or {x["id"] for x in lines} == set(ids)
        rows = list(csv.DictReader(io.StringIO(files["captures.csv"].decode())))
        assert len(rows) == 4 and {r_["kind"] for r_ in rows} == {"photo", "cough"}
        assert all(r_["head"] == "mock-head" for r_ in rows)
        emb = np.load(io.BytesIO(files["embeddings.npy"]))
        assert emb.shape == (4, 4) and emb.dtype == np.float32
        index = list(csv.DictReader(io.StringIO(files["embeddings_index.csv"].decode())))
        assert [int(x["row"]) for x in index] == [0, 1, 2, 3]
        r = c.post("/api/export", json={"encounter_ids": ids[:1], "destination": "folder",
                                        "folder": "week-12", "embeddings": False}, headers=h)
        assert r.status_code == 201, r.text
        out = tmp_path / "usb" / r.json()["folder"]
        assert out.parent == tmp_path / "usb" / "week-12"
        assert sorted(p.name for p in out.iterdir()) == ["captures.csv", "encounters.jsonl"]
        assert c.post("/api/export", json={"encounter_ids": ["nope"]},
                      headers=h).status_code == 404


# ------------------------------------------------------------------- queue and overload
class _Blocking(MockAnalyzer):
    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def analyze_photo(self, data: bytes, name: str) -> Analysis:
        self.gate.wait(10)
        return super().analyze_photo(data, name)


def test_full_queue_answers_503_with_retry_after_instead_of_hanging(tmp_path: Path) -> None:
    slow = _Blocking()
    with make_client(tmp_path, slow, queue_depth=1, photo_workers=1) as c:
        h = sign_in(c)
        eid = new_encounter(c, h)["id"]
        jobs = c.app.state.jobs
        busy = jobs.submit(Kind.PHOTO, jpeg_bytes(), "a.jpg")  # occupies the worker
        deadline = time.time() + 5
        while jobs.pending()["photo"] and time.time() < deadline:
            time.sleep(0.01)
        waiting = jobs.submit(Kind.PHOTO, jpeg_bytes(), "b.jpg")  # fills the queue
        t0 = time.perf_counter()
        r = _photo(c, h, eid)
        assert time.perf_counter() - t0 < 2
        assert r.status_code == 503 and int(r.headers["retry-after"]) >= 1
        assert "busy" in r.json()["error"]
        assert _cough(c, h, eid).status_code == 201  # coughs have their own lane
        slow.gate.set()
        busy.result(5), waiting.result(5)
        assert _photo(c, h, eid).status_code == 201


def test_analysis_queue_reports_errors_and_overload() -> None:
    q = AnalysisQueue(MockAnalyzer(), depth=1)
    try:
        fut = q.submit(Kind.PHOTO, b"not an image", "x.jpg")
        with pytest.raises(Exception, match="x.jpg"):
            fut.result(5)
    finally:
        q.close()
    slow = _Blocking()
    q = AnalysisQueue(slow, depth=1)
    try:
        q.submit(Kind.PHOTO, jpeg_bytes(), "a.jpg")
        time.sleep(0.1)
        q.submit(Kind.PHOTO, jpeg_bytes(), "b.jpg")
        with pytest.raises(Overloaded) as exc:
            q.submit(Kind.PHOTO, jpeg_bytes(), "c.jpg")
        assert exc.value.retry_after_s >= 1
    finally:
        slow.gate.set()
        q.close()


# ------------------------------------------------------------------- storage, retention
def test_retention_deletes_old_media_but_keeps_results(tmp_path: Path) -> None:
    with make_client(tmp_path, retention_days=7) as c:
        h = sign_in(c)
        eid = new_encounter(c, h)["id"]
        old = _photo(c, h, eid, jpeg_bytes(seed=1)).json()
        new = _photo(c, h, eid, jpeg_bytes(seed=2)).json()
        store = c.app.state.store
        with store._tx() as db:
            db.execute("UPDATE media SET last_used_unix = ? WHERE sha256 = ?",
                       (time.time() - 8 * 86400, old["media_sha256"]))
        ops = sign_in(c, "ops", "operator")
        assert c.post("/api/retention/apply", headers=ops).status_code == 403
        h = sign_in(c, "admin", create=False)
        r = c.post("/api/retention/apply", headers=h)
        assert r.json() == {"deleted_media": 1, "retention_days": 7}
        assert not store.media.path(old["media_sha256"]).exists()
        assert store.media.path(new["media_sha256"]).exists()
        assert c.get(f"/api/media/{old['media_sha256']}").status_code == 410
        enc = c.get(f"/api/encounters/{eid}").json()
        assert [x["media_deleted"] for x in enc["captures"]] == [True, False]
        assert enc["captures"][0]["result"]["frames"][0]["scores"]  # results are kept
        again = _photo(c, h, eid, jpeg_bytes(seed=1)).json()  # same photo again: file is back
        assert again["media_sha256"] == old["media_sha256"] and not again["media_deleted"]
        assert c.get(f"/api/media/{old['media_sha256']}").content == jpeg_bytes(seed=1)
        assert c.post("/api/retention/apply", headers=h).json()["deleted_media"] == 0


def test_migrations_are_versioned_and_a_newer_schema_is_refused(tmp_path: Path) -> None:
    s = Store(tmp_path)
    assert s.schema_versions() == [1, 2] and s.integrity_check() == "ok"
    assert s._q("PRAGMA journal_mode")[0][0] == "wal"
    assert s._q("PRAGMA foreign_keys")[0][0] == 1
    s.close()
    Store(tmp_path).close()  # re-opening applies nothing twice
    db = sqlite3.connect(tmp_path / "kiosk.sqlite3")
    db.execute("INSERT INTO schema_migrations VALUES (99, 'future', 0)")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer than this hai-edge"):
        Store(tmp_path)


def test_startup_sweep_removes_temp_and_unreferenced_media(tmp_path: Path) -> None:
    s = Store(tmp_path)
    kept = s.add_capture(s.create_encounter("R-1", "", None)[0].id, "photo", "upload", "a.jpg",
                         b"\xff\xd8\xffdata", "image/jpeg", {"kind": "photo", "frames": []},
                         b"", 0, 0)
    orphan = s.media.put(b"orphan bytes")
    tmp = s.media.root / "ab" / ".deadbeef.tmp"
    tmp.parent.mkdir(exist_ok=True)
    tmp.write_bytes(b"half")
    assert s.sweep() == 2
    assert s.media.path(kept.media_sha256).exists() and not s.media.path(orphan).exists()
    assert not tmp.exists()
    s.close()


# ------------------------------------------------------------------ real, tiny pipelines
def test_real_pipelines_on_tiny_bundles(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    from hai_edge.apps.kiosk.analysis import PipelineAnalyzer

    b = tiny_bundles(tmp_path / "bundles")
    analyzer = PipelineAnalyzer(b / "cough", b / "photo")
    info = analyzer.info()
    assert info["cough"]["bundle"] == "tiny-audio" and info["photo"]["bundle"] == "tiny-image"
    with make_client(tmp_path, analyzer) as c:
        h = sign_in(c)
        eid = new_encounter(c, h)["id"]
        r = _photo(c, h, eid)
        assert r.status_code == 201, r.text
        frame = r.json()["result"]["frames"][0]
        assert set(frame["scores"]) == {"photo-demo"}
        assert "test head, not for clinical use" in frame["notices"]
        assert r.json()["embedding_shape"] == [1, 16]
        r = _cough(c, h, eid)
        assert r.status_code == 201, r.text
        res = r.json()["result"]
        assert set(res["scores"]) == {"cough-demo"} and res["bundle"] == "tiny-audio"
        assert len(res["events"]) >= 1 and res["quality"]["passed"] is True
        assert r.json()["embedding_shape"][1] == 16
        r = _cough(c, h, eid, wav_bytes(np.zeros(800, np.float32)), "short.wav")
        assert r.status_code == 422 and "short.wav" in r.json()["error"]


def test_kiosk_imports_no_build_side(tmp_path: Path) -> None:
    """The app, server and real analyzer stay on the run side (no torch/onnx/...)."""
    import subprocess
    import sys

    pytest.importorskip("onnx")
    b = tiny_bundles(tmp_path / "b")
    code = (
        "import sys, json\n"
        "import hai_edge.apps.kiosk.app, hai_edge.apps.kiosk.server, hai_edge.apps.kiosk.tls\n"
        "from hai_edge.apps.kiosk.analysis import PipelineAnalyzer\n"
        "PipelineAnalyzer(sys.argv[1], sys.argv[2]).close()\n"
        "bad = ('torch', 'onnx', 'nncf', 'tensorflow', 'litert_torch', 'transformers')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in bad)))\n")
    out = subprocess.run([sys.executable, "-c", code, str(b / "cough"), str(b / "photo")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


# ------------------------------------------------------------------ abstention (issue 17)
def _tone_wav(seconds: float = 3.0, rate: int = 16000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return wav_bytes((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)


def test_cough_without_a_cough_is_not_scored_unless_asked(tmp_path: Path) -> None:
    with make_client(tmp_path) as c:
        h = sign_in(c)
        eid = new_encounter(c, h)["id"]
        r = _cough(c, h, eid, _tone_wav(), "tone.wav")
        assert r.status_code == 201, r.text
        res = r.json()["result"]
        assert res["events"] == [] and res["scores"] == {"mock-head": None}
        assert res["withheld"] == {"mock-head": "no cough detected"}
        assert res["scored_anyway"] is False
        r = c.post(f"/api/encounters/{eid}/cough?score_anyway=1", headers=h,
                   files={"file": ("tone.wav", _tone_wav(), "audio/wav")})
        res = r.json()["result"]
        assert r.status_code == 201 and res["scored_anyway"] is True
        assert res["scores"]["mock-head"]["label"] == "positive" and res["withheld"] == {}
        assert res["would_withhold"] == {"mock-head": "no cough detected"}
        r = c.post("/api/export", json={"encounter_ids": [eid]}, headers=h)
        zf = zipfile.ZipFile(io.BytesIO(r.content))
        table = next(n for n in zf.namelist() if n.endswith("captures.csv"))
        rows = list(csv.DictReader(io.StringIO(zf.read(table).decode())))
        assert {r_["label"] for r_ in rows} == {"not scored: no cough detected", "positive"}


def test_real_derm_pipeline_withholds_a_noise_photo(tmp_path: Path) -> None:
    from hai_edge.apps.kiosk.analysis import PipelineAnalyzer
    from hai_edge.bundle import builtin_bundles

    if "derm-demo" not in builtin_bundles():
        pytest.skip("no built-in derm-demo")
    from PIL import Image

    buf = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buf, "JPEG", quality=92)
    with make_client(tmp_path, PipelineAnalyzer(None, "derm-demo")) as c:
        h = sign_in(c)
        eid = new_encounter(c, h)["id"]
        r = _photo(c, h, eid, buf.getvalue(), "noise.jpg")
        assert r.status_code == 201, r.text
        frame = r.json()["result"]["frames"][0]
        assert frame["scores"] == {"malignant": None}
        assert "does not look like the photos" in frame["withheld"]["malignant"]
        r = c.post(f"/api/encounters/{eid}/photo?score_anyway=1", headers=h,
                   files={"file": ("noise.jpg", buf.getvalue(), "image/jpeg")})
        frame = r.json()["result"]["frames"][0]
        assert frame["scored_anyway"] is True and frame["scores"]["malignant"]["label"]
