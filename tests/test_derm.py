"""Derm pipeline (`hai_edge.runtime.derm`) and `hai-edge derm`: every input is built here."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from hai_edge.bundle import Bundle
from hai_edge.heads.bundle_heads import add_head_to_bundle
from hai_edge.errors import BundleError, HaiEdgeError, InputError
from hai_edge.runtime.derm import DermPipeline, DermResult, QualityCheck, QualityReport
from hai_edge.runtime.heads import Calibration, CalibrationKind, Head

from ._decoder_helpers import make_dicom
from ._onnx_models import make_onnx_bundle

Image = pytest.importorskip("PIL.Image")

DIM = 16
PHI = {"PatientName": "Doe^Jane", "PatientID": "PID-987654321", "PatientBirthDate": "19700101"}
PHI_STRINGS = (*PHI.values(), "Doe", "Jane", "987654321", "1970")
KEY = b"0123456789abcdef-secret-key"
RESULT_KEYS = ["input", "frame", "width", "height", "quality", "embedding", "scores",
               "withheld", "scored_anyway", "ood", "pseudonym", "timing_ms", "notices",
               "bundle", "backend", "model"]
CHECK_NAMES = ["blur", "exposure_over", "exposure_under", "too_small", "aspect_ratio",
               "not_skin"]


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A tiny 32 px ONNX image bundle with one Platt-calibrated head."""
    root = tmp_path_factory.mktemp("derm")
    plain = make_onnx_bundle(root / "plain", "image", DIM)
    rng = np.random.default_rng(1)
    head = Head("lesion", rng.standard_normal(DIM), 0.1, np.zeros(DIM), np.ones(DIM),
                threshold=0.4, calibration=Calibration(CalibrationKind.PLATT, a=1.3, b=-0.2),
                labels=("benign", "suspicious"), notice="research use only")
    add_head_to_bundle(Bundle.load(plain), head, str(root / "with-head"))
    return root / "with-head"


@pytest.fixture(scope="module")
def pipe(bundle):
    with DermPipeline(str(bundle), pseudonym_key=KEY) as p:
        yield p


def skin_photo(h: int = 360, w: int = 480, seed: int = 0) -> np.ndarray:
    """Smooth skin tone, soft texture and a darker lesion: JPEG-friendly and sharp enough."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([200 + 12 * np.sin(xx / 23), 150 + 10 * np.sin(yy / 19),
                     125 + 8 * np.cos((xx + yy) / 31)], -1)
    r2 = ((xx - 0.55 * w) ** 2 + (yy - 0.45 * h) ** 2) / (0.18 * h) ** 2
    base *= (1 - 0.45 * np.exp(-r2 * 2))[..., None]
    base += rng.normal(0, 2.0, (h // 4, w // 4, 3)).repeat(4, 0).repeat(4, 1)
    return np.clip(base, 0, 255).astype(np.uint8)


def _jpeg(path: Path, arr: np.ndarray, orientation: int | None = None, quality: int = 95
          ) -> Path:
    img = Image.fromarray(arr)
    kw = {"quality": quality}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kw["exif"] = exif.tobytes()
    img.save(path, "JPEG", **kw)
    return path


def _stored_for(upright: np.ndarray, orientation: int) -> np.ndarray:
    """What a camera stores so that applying ``orientation`` shows ``upright``."""
    return {3: upright[::-1, ::-1], 6: np.rot90(upright, 1), 8: np.rot90(upright, -1)
            }[orientation].copy()


def _dicom(path: Path, pixels: np.ndarray, *, phi: bool = True, **kw) -> Path:
    return make_dicom(path, pixels, phi=PHI if phi else None, **kw)


def _dicom_jpeg(path: Path, arr: np.ndarray) -> Path:
    from pydicom.encaps import encapsulate

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=95)
    return _dicom(path, arr, ts="1.2.840.10008.1.2.4.50", pi="YBR_FULL_422",
                  pixel_data=encapsulate([buf.getvalue()]))


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def _bomb_png(path: Path, w: int = 20000, h: int = 20000) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hai_edge.cli", "derm", *args],
                          capture_output=True, text=True, timeout=120)


# ------------------------------------------------------------------------ the contract
def test_result_schema_is_exactly_the_contract(pipe, tmp_path) -> None:
    (r,) = pipe.analyze_file(_jpeg(tmp_path / "a.jpg", skin_photo()))
    assert isinstance(r, DermResult) and isinstance(r.quality, QualityReport)
    assert all(isinstance(c, QualityCheck) for c in r.quality.checks)
    d = r.to_dict()
    assert list(d) == RESULT_KEYS
    assert list(r.to_dict(embedding=False)) == [k for k in RESULT_KEYS if k != "embedding"]
    assert d["input"] == str(tmp_path / "a.jpg") and d["frame"] is None
    assert (d["width"], d["height"]) == (480, 360)
    assert list(d["quality"]) == ["passed", "checks"]
    assert [c["name"] for c in d["quality"]["checks"]] == CHECK_NAMES
    for c in d["quality"]["checks"]:
        assert list(c) == ["name", "score", "threshold", "warns_when", "flag", "reason"]
        bad_side = c["score"] < c["threshold"] if c["warns_when"] == "below" \
            else c["score"] > c["threshold"]
        assert (c["flag"] == "warn") == bad_side, c  # the direction says which side warns
        assert c["flag"] in ("pass", "warn") and (c["reason"] == "") == (c["flag"] == "pass")
    assert d["quality"]["passed"] is True  # a sharp, well-exposed skin-like photo
    assert len(d["embedding"]) == DIM and all(isinstance(v, float) for v in d["embedding"])
    assert list(d["scores"]) == ["lesion"]
    s = d["scores"]["lesion"]
    assert list(s) == ["probability", "threshold", "band", "verdict", "positive", "borderline",
                       "label"]
    assert s["label"] == ("suspicious" if s["positive"] else "benign")
    assert s["threshold"] == 0.4 and s["positive"] == (s["probability"] >= 0.4)
    assert s["band"] == 0.0 and s["borderline"] is False  # no band: the plain threshold
    assert s["verdict"] == ("positive" if s["positive"] else "negative")
    assert list(d["timing_ms"]) == ["decode", "quality", "preprocess", "inference", "heads",
                                    "total"]
    assert d["pseudonym"] is None  # not a DICOM file
    assert d["notices"] == ["test bundle, not for clinical use", "research use only"]
    assert (d["bundle"], d["backend"], d["model"]) == ("tiny-image", "onnxruntime", "onnx-fp32")
    json.dumps(d)


def test_head_probability_is_the_calibrated_head_on_the_embedding(pipe, bundle, tmp_path
                                                                   ) -> None:
    from hai_edge.runtime.heads import load_heads

    (r,) = pipe.analyze_file(_jpeg(tmp_path / "a.jpg", skin_photo(seed=4)))
    (head,) = load_heads(Bundle.load(bundle))
    z = float(((r.embedding - head.mean) / head.scale) @ head.weights + head.bias)
    expected = 1 / (1 + np.exp(-(1.3 * z - 0.2)))
    assert r.scores["lesion"].probability == pytest.approx(expected, rel=1e-9)


def test_analyze_bytes_equals_analyze_file(pipe, tmp_path) -> None:
    path = _jpeg(tmp_path / "up.jpg", skin_photo(), orientation=6)
    (a,) = pipe.analyze_file(path)
    (b,) = pipe.analyze_bytes(path.read_bytes(), "upload.jpg")
    assert b.input == "upload.jpg" and (b.width, b.height) == (a.width, a.height) == (360, 480)
    np.testing.assert_array_equal(a.embedding, b.embedding)
    assert a.quality.to_dict() == b.quality.to_dict()


def test_same_embedding_as_hai_edge_embed(pipe, bundle, tmp_path) -> None:
    """One preprocessing path: the derm embedding is Embedder.embed_image_file's (reduced-scale
    JPEG decode included)."""
    from hai_edge.runtime import Embedder

    path = _jpeg(tmp_path / "big.jpg", skin_photo(720, 960), orientation=8)
    (r,) = pipe.analyze_file(path)
    with Embedder(str(bundle)) as emb:
        (e,) = emb.embed_image_file(path)
    np.testing.assert_array_equal(r.embedding, e.vector)
    assert (r.width, r.height) == (720, 960)  # stored 960 x 720, orientation 8: upright portrait


def test_heads_can_be_chosen_or_left_out(bundle, tmp_path) -> None:
    path = _jpeg(tmp_path / "a.jpg", skin_photo())
    with DermPipeline(str(bundle), heads=[]) as p:
        (r,) = p.analyze_file(path)
        assert r.scores == {} and r.notices == ("test bundle, not for clinical use",)
    with pytest.raises(BundleError, match="no head 'nope'"):
        DermPipeline(str(bundle), heads=["nope"])


def test_injected_engine_and_default_bundle_message(bundle, monkeypatch, tmp_path) -> None:
    from hai_edge.runtime.backends import MockBackend

    mock = MockBackend(lambda x: {"embedding": np.ones((len(x["input"]), DIM), np.float32)})
    with DermPipeline(str(bundle), engine=mock) as p:
        (r,) = p.analyze_bytes(_jpeg(tmp_path / "a.jpg", skin_photo()).read_bytes(), "a.jpg")
        assert r.backend == "mock" and mock.calls == 1
        np.testing.assert_array_equal(r.embedding, np.ones(DIM))
    monkeypatch.setattr("hai_edge.bundle.builtin_bundles", lambda: {})
    with pytest.raises(BundleError) as info:
        DermPipeline()
    assert "derm-demo" in str(info.value) and "\n" not in str(info.value)


def test_reference_teacher_bundle_gets_the_demo_notice(tmp_path) -> None:
    import dataclasses

    from hai_edge.bundle import write_bundle

    src = Bundle.load(make_onnx_bundle(tmp_path / "b", "image", DIM))
    m = dataclasses.replace(src.manifest, notices=(), files={}, created="",
                            provenance={"teacher": {"id": "reference:image"}})
    files = {n: src.root / n for n in src.manifest.files}
    write_bundle(tmp_path / "ref", m, files)
    with DermPipeline(str(tmp_path / "ref")) as p:
        assert any("not for clinical use" in n and "reference:image" in n for n in p.notices)


def test_pseudonym_key_is_checked_and_never_shown(bundle) -> None:
    with pytest.raises(HaiEdgeError, match="at least 16 bytes"):
        DermPipeline(str(bundle), pseudonym_key=b"short")
    with DermPipeline(str(bundle), pseudonym_key=KEY) as p:
        assert KEY.decode() not in repr(p) and "pseudonyms=on" in repr(p)


# ------------------------------------------------------------------- same embeddings
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_rotated_photo_gives_the_upright_embedding(pipe, tmp_path, orientation) -> None:
    upright = skin_photo()
    (a,) = pipe.analyze_file(_jpeg(tmp_path / "upright.jpg", upright))
    (b,) = pipe.analyze_file(_jpeg(tmp_path / "rotated.jpg", _stored_for(upright, orientation),
                                   orientation=orientation))
    assert (b.width, b.height) == (a.width, a.height)
    assert _cos(a.embedding, b.embedding) >= 0.999


def test_dicom_vl_photographic_gives_the_photo_embedding(pipe, tmp_path) -> None:
    arr = skin_photo()
    photo = _jpeg(tmp_path / "photo.jpg", arr)
    with Image.open(photo) as im:
        decoded = np.array(im.convert("RGB"))  # the photo's own pixels, fully decoded
    (p,) = pipe.analyze_file(photo)
    (raw,) = pipe.analyze_file(_dicom(tmp_path / "raw.dcm", decoded))
    (jpg,) = pipe.analyze_file(_dicom_jpeg(tmp_path / "jpeg.dcm", decoded))
    Image.fromarray(decoded).save(tmp_path / "same.png")
    (png,) = pipe.analyze_file(tmp_path / "same.png")
    # 480 x 360 is far larger than the 32 px model: every format is reduced by 4 at decode
    # (DCT scale for the JPEG, box average otherwise), and the stored size is still reported
    assert (raw.width, raw.height) == (jpg.width, jpg.height) == (png.width, png.height) \
        == (p.width, p.height) == (480, 360)
    assert raw.quality.check("too_small").score == 360
    np.testing.assert_array_equal(png.embedding, raw.embedding)  # same pixels, same path
    assert _cos(p.embedding, raw.embedding) >= 0.9999
    assert _cos(p.embedding, jpg.embedding) >= 0.995
    assert raw.pseudonym == jpg.pseudonym == hmac.new(
        KEY, PHI["PatientID"].encode(), hashlib.sha256).hexdigest()[:32]


def test_multi_frame_dicom_gives_one_result_per_frame(pipe, tmp_path) -> None:
    frames = np.stack([skin_photo(64, 80, seed=s) for s in range(3)])
    results = pipe.analyze_file(_dicom(tmp_path / "mf.dcm", frames, frames=3))
    assert [r.frame for r in results] == [0, 1, 2]
    assert not np.allclose(results[0].embedding, results[1].embedding)
    assert len({r.pseudonym for r in results}) == 1


def test_dicom_without_patient_id_has_no_pseudonym_and_says_so(pipe, tmp_path) -> None:
    (r,) = pipe.analyze_file(_dicom(tmp_path / "anon.dcm", skin_photo(64, 80), phi=False))
    assert r.pseudonym is None and any("no pseudonym" in n for n in r.notices)


def test_heic_needs_the_extra(pipe, tmp_path, monkeypatch) -> None:
    pytest.importorskip("PIL")
    # as on an install without hai-edge[heic], whether or not this environment has pillow-heif
    monkeypatch.setitem(sys.modules, "pillow_heif", None)
    path = tmp_path / "IMG_0001.HEIC"
    path.write_bytes(b"\0\0\0\x18ftypheic" + bytes(64))
    with pytest.raises(InputError, match=r"pip install 'hai-edge\[heic\]'") as info:
        pipe.analyze_file(path)
    assert str(info.value).startswith(str(path))
    renamed = tmp_path / "IMG_0001.jpg"  # recognised by content too
    renamed.write_bytes(path.read_bytes())
    with pytest.raises(InputError, match=r"hai-edge\[heic\]"):
        pipe.analyze_file(renamed)
    with pytest.raises(InputError, match=r"hai-edge\[heic\]"):
        pipe.analyze_bytes(path.read_bytes(), "upload")


# ----------------------------------------------------------------------------- privacy
def _phi_free(*texts: str) -> None:
    for text in texts:
        for value in PHI_STRINGS:
            assert value not in text, (value, text)
        assert KEY.decode() not in text


def test_no_phi_in_results_errors_or_logs(pipe, tmp_path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    arr = skin_photo(64, 80)
    good = pipe.analyze_file(_dicom(tmp_path / "good.dcm", arr))
    texts = [json.dumps(r.to_dict()) for r in good] + [repr(r) for r in good]
    full = _dicom(tmp_path / "full.dcm", arr).read_bytes()
    (tmp_path / "cut.dcm").write_bytes(full[: len(full) - 500])
    bad = [_dicom(tmp_path / "short.dcm", arr, pixel_data=b"\1" * 100), tmp_path / "cut.dcm"]
    for path in bad:
        with pytest.raises(InputError) as info:
            pipe.analyze_file(path)
        texts += [str(info.value), repr(info.value)]
        with pytest.raises(InputError) as info:
            pipe.analyze_bytes(path.read_bytes(), path.name)
        texts.append(str(info.value))
    texts.append(caplog.text)
    _phi_free(*texts)


def test_cli_no_phi_anywhere_with_a_pseudonym(bundle, tmp_path) -> None:
    arr = skin_photo(64, 80)
    good = _dicom(tmp_path / "good.dcm", arr)
    full = good.read_bytes()
    (tmp_path / "cut.dcm").write_bytes(full[: len(full) - 500])
    _dicom(tmp_path / "wrong_length.dcm", arr, pixel_data=b"\1" * 100)
    key_file = tmp_path / "key.txt"
    key_file.write_bytes(KEY + b"\n")
    out = tmp_path / "out.jsonl"
    proc = _cli(str(tmp_path), "--bundle", str(bundle), "--json", "--pseudonym-key-file",
                str(key_file), "-o", str(out))
    assert proc.returncode == 2, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [Path(r["input"]).name for r in rows] == ["good.dcm"]
    assert rows[0]["pseudonym"] == hmac.new(KEY, PHI["PatientID"].encode(),
                                            hashlib.sha256).hexdigest()[:32]
    assert out.read_text().splitlines() == proc.stdout.splitlines()
    assert "cut.dcm" in proc.stderr and "wrong_length.dcm" in proc.stderr
    human = _cli(str(good), "--bundle", str(bundle), "--pseudonym-key-file", str(key_file))
    assert human.returncode == 0 and rows[0]["pseudonym"] in human.stdout
    _phi_free(proc.stdout, proc.stderr, out.read_text(), human.stdout, human.stderr)


def test_cli_key_file_errors_do_not_show_the_key(bundle, tmp_path) -> None:
    key_file = tmp_path / "k"
    key_file.write_bytes(b"tooshort\n")
    photo = _jpeg(tmp_path / "a.jpg", skin_photo(64, 80))
    proc = _cli(str(photo), "--bundle", str(bundle), "--pseudonym-key-file", str(key_file))
    assert proc.returncode == 2 and "at least 16 bytes" in proc.stderr
    assert "tooshort" not in proc.stderr + proc.stdout
    proc = _cli(str(photo), "--bundle", str(bundle), "--pseudonym-key-file",
                str(tmp_path / "missing"))
    assert proc.returncode == 2 and "key file not found" in proc.stderr


# -------------------------------------------------------------------- bad inputs (CLI)
def _bad(kind: str, d: Path) -> tuple[Path, str]:
    if kind == "truncated-jpeg":
        p = _jpeg(d / "cut.jpg", skin_photo())
        p.write_bytes(p.read_bytes()[:3000])
        return p, "corrupt or truncated"
    if kind == "bomb":
        return _bomb_png(d / "bomb.png"), "20000x20000"
    if kind == "dicom-wrong-length":
        return (_dicom(d / "len.dcm", skin_photo(64, 80), pixel_data=b"\1" * 1000),
                "length does not match")
    if kind == "not-an-image":
        (d / "notes.png").write_text("hello\n" * 50)
        return d / "notes.png", "not a readable image"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["truncated-jpeg", "bomb", "dicom-wrong-length",
                                  "not-an-image"])
def test_cli_bad_input_is_one_line_and_exit_2(kind, bundle, tmp_path) -> None:
    path, problem = _bad(kind, tmp_path)
    proc = _cli(str(path), "--bundle", str(bundle))
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert path.name in lines[0] and problem in lines[0], lines[0]
    _phi_free(proc.stdout, proc.stderr)


def test_cli_directory_continues_past_a_bad_file(bundle, tmp_path) -> None:
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    _jpeg(d / "a.jpg", skin_photo(seed=1))
    Image.fromarray(skin_photo(seed=2)).save(d / "sub" / "b.png")
    _dicom(d / "c_no_suffix", skin_photo(64, 80))  # a PACS export without a suffix
    bad, _ = _bad("truncated-jpeg", d)
    (d / "._a.jpg").write_bytes(b"AppleDouble junk")
    (d / "readme.txt").write_text("not a photo")
    proc = _cli(str(d), "--bundle", str(bundle), "--json", "--no-embedding")
    assert proc.returncode == 2
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert sorted(Path(r["input"]).name for r in rows) == ["a.jpg", "b.png", "c_no_suffix"]
    assert all("embedding" not in r for r in rows)
    err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(err) == 2 and bad.name in err[0] and "1 of 4 inputs failed" in err[1], err


def test_cli_human_output_one_line_per_photo(bundle, tmp_path) -> None:
    good = _jpeg(tmp_path / "good.jpg", skin_photo())
    blue = _jpeg(tmp_path / "blue.jpg", np.full((300, 300, 3), (30, 80, 200), np.uint8))
    proc = _cli(str(good), str(blue), "--bundle", str(bundle))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    photo_lines = [ln for ln in lines if not ln.startswith("notice: ")]
    assert len(photo_lines) == 2
    assert "quality ok" in photo_lines[0] and "lesion" in photo_lines[0]
    assert "quality WARN" in photo_lines[1] and "not_skin" in photo_lines[1]
    assert "notice: test bundle, not for clinical use" in lines


def test_cli_bundle_may_come_first(bundle, tmp_path) -> None:
    photo = _jpeg(tmp_path / "a.jpg", skin_photo(64, 80))
    proc = _cli(str(bundle), str(photo), "--json", "--no-embedding", "--heads", "")
    assert proc.returncode == 0, proc.stderr
    (row,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert row["bundle"] == "tiny-image" and row["scores"] == {}


def test_cli_output_file_must_be_jsonl(bundle, tmp_path) -> None:
    photo = _jpeg(tmp_path / "a.jpg", skin_photo(64, 80))
    proc = _cli(str(photo), "--bundle", str(bundle), "-o", str(tmp_path / "x.csv"))
    assert proc.returncode == 2 and ".jsonl" in proc.stderr
    assert not (tmp_path / "x.csv").exists()


def test_heic_photo_with_pillow_heif(pipe, tmp_path) -> None:
    """Only where the heic extra is installed (CI installs .[all])."""
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    arr = skin_photo()
    heic = tmp_path / "IMG_0002.heic"
    try:
        Image.fromarray(arr).save(heic, format="HEIF", quality=95)
    except (KeyError, OSError, ValueError) as exc:  # a libheif build without an encoder
        pytest.skip(f"this pillow-heif cannot encode HEIF here ({exc})")
    png = tmp_path / "same.png"
    Image.fromarray(arr).save(png)
    (a,) = pipe.analyze_file(heic)
    (b,) = pipe.analyze_file(png)
    assert (a.width, a.height) == (480, 360)
    assert _cos(a.embedding, b.embedding) >= 0.99


def test_derm_run_path_imports_no_build_side(bundle, tmp_path) -> None:
    forbidden = ("torch", "onnx", "nncf", "tensorflow", "litert_torch", "jax", "transformers")
    probe = ("import json, sys\n"
             "from hai_edge.cli import main\n"
             "rc = main(sys.argv[1:])\n"
             f"mods = sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r})\n"
             "print(json.dumps({'rc': rc, 'forbidden': mods}))\n")
    photo = _jpeg(tmp_path / "a.jpg", skin_photo(64, 80))
    dcm = _dicom(tmp_path / "b.dcm", skin_photo(64, 80))
    proc = subprocess.run([sys.executable, "-c", probe, "derm", str(photo), str(dcm),
                           "--bundle", str(bundle), "--pseudonym-key-file", str(
                               _key_file(tmp_path))], capture_output=True, text=True,
                          timeout=120)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"rc": 0, "forbidden": []}, proc.stderr


def _key_file(d: Path) -> Path:
    (d / "key").write_bytes(KEY)
    return d / "key"
