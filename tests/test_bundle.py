"""The bundle contract: schema, round trip, hash verification, atomic writes, path safety."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hai_edge.bundle import (
    SCHEMA_VERSION,
    Bundle,
    Manifest,
    Modality,
    ModelEntry,
    ModelFormat,
    Precision,
    TensorSpec,
    resolve_bundle,
    write_bundle,
)
from hai_edge.errors import BundleError
from hai_edge.runtime.frontends import AudioFrontendSpec, ImageFrontendSpec

from ._onnx_models import make_onnx_bundle


def _manifest(**kw) -> Manifest:
    entry = ModelEntry(
        id="onnx-fp32",
        format=ModelFormat.ONNX,
        precision=Precision.FP32,
        files=("m.onnx",),
        inputs=(TensorSpec("input", (None, 1, 64, 200)),),
        outputs=(TensorSpec("embedding", (None, 8)),),
    )
    base = dict(name="t", modality=Modality.AUDIO, preprocessing=AudioFrontendSpec(),
                embedding_dim=8, models=(entry,))
    base.update(kw)
    return Manifest(**base)


def test_manifest_round_trip_preserves_every_field(tmp_path: Path) -> None:
    m = _manifest(provenance={"teacher": {"id": "hear", "licence": "HAI-DEF"}, "data_hash": "ab"},
                  notices=("demo, not for clinical use",), heads=({"name": "cough", "kind": "logreg"},))
    b = write_bundle(tmp_path / "b", m, {"m.onnx": b"\x00model"})
    loaded = Bundle.load(tmp_path / "b")
    assert loaded.manifest == b.manifest
    assert loaded.manifest.files["m.onnx"].size == 6
    assert loaded.manifest.schema_version == SCHEMA_VERSION
    assert loaded.manifest.created and loaded.manifest.hai_edge_version
    d = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert d["preprocessing"]["kind"] == "audio" and d["preprocessing"]["features"] == "log_mel"
    assert Manifest.from_dict(d).to_dict() == d


def test_image_spec_round_trip() -> None:
    spec = ImageFrontendSpec(height=448, width=448, resize="pad", layout="NHWC")
    assert ImageFrontendSpec.from_dict(spec.to_dict()) == spec


def test_modified_file_is_refused(tmp_path: Path) -> None:
    write_bundle(tmp_path / "b", _manifest(), {"m.onnx": b"abcdef"})
    (tmp_path / "b" / "m.onnx").write_bytes(b"abcdeX")  # same size, different content
    with pytest.raises(BundleError, match=r"m\.onnx was modified \(sha256"):
        Bundle.load(tmp_path / "b")
    (tmp_path / "b" / "m.onnx").write_bytes(b"abc")
    with pytest.raises(BundleError, match="size 3 bytes"):
        Bundle.load(tmp_path / "b")
    # without verification the manifest itself still loads (e.g. for `info` on a damaged bundle)
    assert Bundle.load(tmp_path / "b", verify=False).manifest.name == "t"


def test_missing_file_is_refused(tmp_path: Path) -> None:
    write_bundle(tmp_path / "b", _manifest(), {"m.onnx": b"abcdef"})
    (tmp_path / "b" / "m.onnx").unlink()
    with pytest.raises(BundleError, match="missing from the bundle"):
        Bundle.load(tmp_path / "b")


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_unknown_schema_version_is_refused(tmp_path: Path, version) -> None:
    write_bundle(tmp_path / "b", _manifest(), {"m.onnx": b"x"})
    p = tmp_path / "b" / "manifest.json"
    d = json.loads(p.read_text())
    d["schema_version"] = version
    p.write_text(json.dumps(d))
    with pytest.raises(BundleError, match="unknown schema_version"):
        Bundle.load(tmp_path / "b")


@pytest.mark.parametrize("bad", ["../evil.onnx", "/etc/passwd", "a/../../x", "~/x", "manifest.json"])
def test_manifest_file_names_cannot_escape(tmp_path: Path, bad: str) -> None:
    write_bundle(tmp_path / "b", _manifest(), {"m.onnx": b"x"})
    p = tmp_path / "b" / "manifest.json"
    d = json.loads(p.read_text())
    d["files"][bad] = {"sha256": "0" * 64, "size": 1}
    p.write_text(json.dumps(d))
    with pytest.raises(BundleError, match="invalid file name|escapes the bundle"):
        Bundle.load(tmp_path / "b")


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("models"), "missing required field 'models'"),
        (lambda d: d.update(modality="video"), "modality is 'video'"),
        (lambda d: d["models"][0].update(format="coreml"), "format is 'coreml'"),
        (lambda d: d.update(embedding_dim=-1), "embedding_dim must be positive"),
        (lambda d: d["preprocessing"].update(kind="text"), "unknown kind 'text'"),
        (lambda d: d["preprocessing"].update(n_mels="many"), "preprocessing"),
        (lambda d: d["models"][0].update(files=["other.onnx"]), "not listed in files"),
    ],
)
def test_malformed_manifest_gives_clear_error(tmp_path: Path, mutate, message: str) -> None:
    write_bundle(tmp_path / "b", _manifest(), {"m.onnx": b"x"})
    p = tmp_path / "b" / "manifest.json"
    d = json.loads(p.read_text())
    mutate(d)
    p.write_text(json.dumps(d))
    with pytest.raises(BundleError, match=message):
        Bundle.load(tmp_path / "b")


def test_not_json_manifest(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "manifest.json").write_text("{'python': 'dict'}")
    with pytest.raises(BundleError, match="not valid JSON"):
        Bundle.load(tmp_path / "b")


def test_write_is_atomic_and_keeps_old_bundle_on_failure(tmp_path: Path) -> None:
    write_bundle(tmp_path / "b", _manifest(), {"m.onnx": b"old"})
    with pytest.raises(BundleError, match="already exists"):
        write_bundle(tmp_path / "b", _manifest(), {"m.onnx": b"new"})
    # a failing write (model file not among files) must leave the old bundle intact, no temp dirs
    with pytest.raises(BundleError):
        write_bundle(tmp_path / "b", _manifest(), {"other.bin": b"new"}, overwrite=True)
    assert (tmp_path / "b" / "m.onnx").read_bytes() == b"old"
    assert Bundle.load(tmp_path / "b").manifest.name == "t"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]
    write_bundle(tmp_path / "b", _manifest(name="t2"), {"m.onnx": b"new"}, overwrite=True)
    assert Bundle.load(tmp_path / "b").manifest.name == "t2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_resolve_bundle_errors(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no such bundle"):
        resolve_bundle(tmp_path / "nope")
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(BundleError, match="not a bundle directory"):
        resolve_bundle(tmp_path / "f.txt")
    (tmp_path / "d").mkdir()
    with pytest.raises(BundleError, match="not a bundle"):
        Bundle.load(tmp_path / "d")


def test_modality_and_preprocessing_must_agree() -> None:
    with pytest.raises(BundleError, match="modality image but audio preprocessing"):
        _manifest(modality=Modality.IMAGE)


def test_onnx_bundle_helper_builds_a_loadable_bundle(tmp_path: Path) -> None:
    b = Bundle.load(make_onnx_bundle(tmp_path / "a", "audio"))
    assert b.models("onnx", "fp32")[0].inputs[0].shape == (None, 1, 32, 100)
    assert b.models("tflite") == []
