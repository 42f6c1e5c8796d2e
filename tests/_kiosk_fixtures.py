"""Shared helpers for the kiosk tests: tiny media, tiny bundles with heads, signed-in clients."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

PASSWORD = "pin-123456"


def jpeg_bytes(w: int = 160, h: int = 120, seed: int = 0, quality: int = 90) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = np.zeros((h, w, 3), np.uint8)
    base[..., 0] = 180 + rng.integers(0, 40, (h, w))  # skin-ish, textured
    base[..., 1] = 120 + rng.integers(0, 30, (h, w))
    base[..., 2] = 100 + rng.integers(0, 30, (h, w))
    buf = io.BytesIO()
    Image.fromarray(base).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def cough_like(seconds: float = 3.0, rate: int = 16000, seed: int = 0,
               tail_silence_s: float = 0.0) -> np.ndarray:
    """Quiet noise with two loud decaying noise bursts (what the energy detector calls coughs)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    x = 0.003 * rng.standard_normal(n)
    for start in (0.6, 1.7):
        i, k = int(start * rate), int(0.3 * rate)
        if i + k <= n:
            env = np.exp(-np.arange(k) / (0.07 * rate))
            x[i:i + k] += 0.5 * env * rng.standard_normal(k)
    x = np.clip(x, -0.95, 0.95)
    if tail_silence_s:
        x = np.concatenate([x, np.zeros(int(tail_silence_s * rate))])
    return x.astype(np.float32)


def wav_bytes(samples: np.ndarray | None = None, rate: int = 16000) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, cough_like(rate=rate) if samples is None else samples, rate, format="WAV",
             subtype="PCM_16")
    return buf.getvalue()


def tiny_bundles(dest: Path) -> Path:
    """``dest/cough`` (audio) + ``dest/photo`` (image): tiny ONNX bundles, one head each."""
    from hai_edge.bundle import Bundle
    from hai_edge.heads.bundle_heads import add_head_to_bundle
    from hai_edge.runtime.heads import Head

    from ._onnx_models import make_onnx_bundle

    dest.mkdir(parents=True, exist_ok=True)
    for sub, modality, seed in (("cough", "audio", 1), ("photo", "image", 2)):
        raw = make_onnx_bundle(dest / f".raw-{sub}", modality, dim=16, seed=seed)
        rng = np.random.default_rng(seed)
        head = Head(name=f"{sub}-demo", weights=rng.standard_normal(16), bias=0.0,
                    mean=np.zeros(16), scale=np.ones(16), threshold=0.5,
                    labels=("negative", "positive"), notice="test head, not for clinical use")
        add_head_to_bundle(Bundle.load(raw), head, str(dest / sub))
        import shutil

        shutil.rmtree(raw)
    return dest


def make_client(tmp_path: Path, analyzer: Any = None, client_host: str = "127.0.0.1",
                **config: Any) -> Any:
    from starlette.testclient import TestClient

    from hai_edge.apps.kiosk import KioskConfig, MockAnalyzer, create_app

    cfg = KioskConfig(data_dir=tmp_path / "data", **config)
    app = create_app(cfg, analyzer or MockAnalyzer())
    base = "https://testserver" if cfg.https else "http://testserver"
    return TestClient(app, client=(client_host, 40000), base_url=base)


def add_user(client: Any, name: str = "admin", role: str = "admin",
             password: str = PASSWORD) -> None:
    from hai_edge.apps.kiosk.auth import KdfParams, hash_password

    client.app.state.store.add_user(name, hash_password(password, KdfParams(n=2**12)), role)


def csrf(client: Any) -> dict[str, str]:
    if not client.cookies.get("kiosk_csrf"):
        client.get("/api/session")
    return {"X-CSRF-Token": client.cookies.get("kiosk_csrf")}


def sign_in(client: Any, name: str = "admin", role: str = "admin",
            password: str = PASSWORD, create: bool = True) -> dict[str, str]:
    """Sign in (creating the user first); returns the CSRF header for later POSTs."""
    if create:
        add_user(client, name, role, password)
    r = client.post("/api/login", json={"username": name, "password": password},
                    headers=csrf(client))
    assert r.status_code == 200, r.text
    return {"X-CSRF-Token": r.json()["csrf"]}


def new_encounter(client: Any, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    r = client.post("/api/encounters", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def dicom_bytes(frames: int = 1, h: int = 96, w: int = 128, patient_id: str = "PAT-0042") -> bytes:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(3)
    img = rng.integers(60, 220, (frames, h, w, 3)).astype(np.uint8)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.4"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("p.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.Modality, ds.PatientID = "XC", patient_id
    ds.Rows, ds.Columns = h, w
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = img.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
