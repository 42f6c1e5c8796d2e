"""The full export flow (FP32 + INT8 bundle): manifest provenance and figures, HAI-DEF NOTICE,
golden vectors, degraded overrides, and `hai-edge export` from a run directory and from a
checkpoint (a deliberately broken quantization exits 2 with the measured figures)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from hai_edge.bundle import Bundle
from hai_edge.errors import GateError, HaiEdgeError

from ._quant_fixtures import require_export_extra

require_export_extra()

from hai_edge.export.bundle_builder import (  # noqa: E402
    HAI_DEF_NOTICE,
    HAI_DEF_TERMS_URL,
    BuildOptions,
    build_bundle,
)
from hai_edge.quantize.gates import GateThresholds  # noqa: E402
from hai_edge.runtime.frontends import AudioFrontendSpec  # noqa: E402

TINY_SPEC = AudioFrontendSpec(n_mels=32, window_s=1.0, hop_s=1.0)


@pytest.fixture(scope="module")
def wave_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ._quant_fixtures import get_wave_bundle

    return get_wave_bundle(tmp_path_factory)


def test_manifest_records_every_model_gate_and_provenance(wave_bundle: Path) -> None:
    b = Bundle.load(wave_bundle)
    m = b.manifest
    assert sorted(e.id for e in m.models) == sorted(
        f"{f}-{p}" for f in ("onnx", "openvino", "tflite") for p in ("fp32", "int8"))
    prov = m.provenance
    for key in ("calibration_hash", "calibration", "heldout", "quantization", "tool_versions",
                "student", "export_seconds"):
        assert key in prov, key
    assert prov["calibration"]["n"] == 32 and prov["heldout"]["n"] == 16
    assert prov["calibration"]["sha256"] != prov["heldout"]["sha256"]
    for dist in ("onnxruntime", "openvino", "nncf", "ai-edge-quantizer", "litert-torch", "torch"):
        assert prov["tool_versions"].get(dist), dist
    assert prov["quantization"]["frontend_scope"] == "frontend"
    fid = m.fidelity
    assert fid["int8_gate"]["passed"] and set(fid["int8_gate"]["formats"]) == {
        "onnx", "openvino", "tflite"}
    assert "disjoint from calibration" in fid["int8_gate"]["inputs"]
    cross = fid["int8_cross_format"]
    assert cross["passed"] and cross["min_pair_mean_cosine"] >= 0.98 and len(cross["pairs"]) == 3
    assert fid["degraded"] is False and fid["overrides"] == []
    heads = fid["heads"]["onnx-int8"][0]
    assert heads["head"] == "cough-vs-rest" and 0.0 <= heads["decision_agreement"] <= 1.0
    assert m.heads[0]["name"] == "cough-vs-rest"
    for e in m.models:
        if e.precision.value == "int8":
            tried = e.fidelity["recipes_tried"]
            # OpenVINO first tries compiling the ONNX INT8 model (one quantization, issue #18)
            first = "shared_onnx" if e.format.value == "openvino" else "default"
            assert tried and tried[-1]["passed"] and tried[0]["recipe"] == first
        else:
            assert e.fidelity["parity"]["passed"] and e.fidelity["parity"]["max_abs_diff"] <= 1e-4


def test_hai_def_teacher_gets_notice_and_licence_fields(wave_bundle: Path) -> None:
    b = Bundle.load(wave_bundle)
    m = b.manifest
    assert m.provenance["teacher"] == {"id": "google/hear", "licence": "HAI-DEF"}
    assert m.provenance["licence_terms"] == HAI_DEF_TERMS_URL
    assert HAI_DEF_NOTICE in m.notices
    assert any("Model Derivative distilled from google/hear" in n for n in m.notices)
    assert not any("demo" in n for n in m.notices)  # only reference teachers' students say demo
    assert "NOTICE" in m.files
    text = (wave_bundle / "NOTICE").read_text()
    assert ("HAI-DEF is provided under and subject to the Health AI Developer Foundations Terms "
            "of Use found at https://developers.google.com/health-ai-developer-foundations/terms"
            ) in text
    assert "Model Derivative" in text and "distilled from outputs of the HAI-DEF model google/hear" \
        in text and "modified" in text
    for e in m.models:
        for f in e.files:
            assert f"  - {f}" in text


def test_golden_vectors_are_small_and_complete(wave_bundle: Path) -> None:
    from hai_edge.runtime.verify import decode_array, load_golden

    b = Bundle.load(wave_bundle)
    g = b.manifest.golden
    assert g["file"] == "golden.json" and g["bytes"] < 300_000
    assert (wave_bundle / "golden.json").stat().st_size < 300_000
    doc = load_golden(b)
    assert set(doc["models"]) == {e.id for e in b.manifest.models}
    raw = doc["items"][0]["raw"]
    assert raw["kind"] == "audio" and decode_array(raw["pcm16"]).dtype == np.int16
    assert all("input" in it for it in doc["items"])
    for mid, rec in doc["models"].items():
        out = decode_array(rec["outputs"])
        assert out.shape == (g["n_items"], 32), mid
        assert rec["tolerance"]["min_cosine"] >= 0.99


def test_held_out_overlapping_calibration_is_refused(tmp_path: Path) -> None:
    from ._tiny_models import TinyAudioNet

    x = np.random.default_rng(0).standard_normal((8, 1, 32, 100)).astype(np.float32)
    with pytest.raises(HaiEdgeError, match="overlap"):
        build_bundle(TinyAudioNet(), TINY_SPEC, tmp_path / "b", name="b", calibration=x,
                     heldout=x[:4])
    assert not (tmp_path / "b").exists()


def test_failed_gate_writes_nothing_and_degraded_override_is_recorded(tmp_path: Path) -> None:
    from ._tiny_models import TinyAudioNet

    opts = BuildOptions(formats=("onnx",), precision="int8", n_calibration=16, n_heldout=8,
                        thresholds=GateThresholds(min_mean_cosine=0.999999))
    with pytest.raises(GateError) as info:
        build_bundle(TinyAudioNet(), TINY_SPEC, tmp_path / "strict", name="s", options=opts,
                     teacher={"id": "reference:audio", "licence": "CC-BY-4.0"})
    assert "onnx INT8 fidelity gate failed" in str(info.value).splitlines()[0]
    assert not (tmp_path / "strict").exists()
    opts = BuildOptions(formats=("onnx",), precision="int8", n_calibration=16, n_heldout=8,
                        thresholds=GateThresholds(min_mean_cosine=0.999999), allow_degraded=True)
    b = build_bundle(TinyAudioNet(), TINY_SPEC, tmp_path / "lax", name="l", options=opts,
                     teacher={"id": "reference:audio", "licence": "CC-BY-4.0"})
    m = b.manifest
    assert [e.id for e in m.models] == ["onnx-int8"]
    over = m.fidelity["overrides"]
    assert m.fidelity["degraded"] and over[0]["override"] == "allow_degraded"
    assert over[0]["model"] == "onnx-int8" and over[0]["threshold"] == 0.999999
    assert m.models[0].fidelity["gate"]["degraded_override"] is True
    assert any(n.startswith("DEGRADED") for n in m.notices)
    assert m.notices[0] == "demo, not for clinical use"  # from a reference teacher, automatically
    assert "NOTICE" not in m.files and "licence_terms" not in m.provenance  # not HAI-DEF
    assert m.provenance["calibration"]["source"].startswith("synthetic")


# ------------------------------------------------------------------------------------ CLI
def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from hai_edge.cli import main

    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_export_broken_frontend_exits_2_with_figures(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from ._quant_models import WAVE_SPEC, TinyWaveNet

    ckpt = tmp_path / "wave.pt"
    torch.save({"model": TinyWaveNet(), "spec": WAVE_SPEC.to_dict(), "name": "wave"}, ckpt)
    rc, _, err = _cli(["export", str(ckpt), "-o", str(tmp_path / "nope"), "--formats", "onnx"],
                      capsys)
    assert rc == 2 and "--trust-checkpoint" in err and len(err.strip().splitlines()) == 1
    rc, _, err = _cli(["export", str(ckpt), "-o", str(tmp_path / "broken"), "--formats", "onnx",
                       "--precision", "int8", "--trust-checkpoint", "--quantize-frontend", "-q"],
                      capsys)
    assert rc == 2
    lines = err.strip().splitlines()
    assert lines[0].startswith("hai-edge: DEBUG --quantize-frontend")
    assert lines[1].startswith("hai-edge: error: onnx INT8 fidelity gate failed on 32 held-out "
                               "inputs: best mean cosine 0.")
    assert "default" in err and "percentile" in err and "keep_sensitive" in err
    assert not (tmp_path / "broken").exists()


def _fake_distill(monkeypatch: pytest.MonkeyPatch, run_dir: Path) -> None:
    """A stand-in for hai_edge.distill.run (written concurrently): load_run + student_inputs."""
    from hai_edge.corpus import CorpusItem
    from hai_edge.export.golden import synthetic_model_inputs
    from hai_edge.teachers._base import TeacherInfo

    from ._tiny_models import TinyAudioNet

    def student_inputs(spec, items):  # noqa: ANN001, ANN202
        return np.concatenate([synthetic_model_inputs(spec, 2, seed=int(it.item_id)) for it in items])

    def load_run(path):  # noqa: ANN001, ANN202
        items = [CorpusItem(item_id=str(i), path=Path(path) / f"{i}.wav") for i in range(12)]
        model = TinyAudioNet()
        held = items[9:]
        import torch

        with torch.no_grad():
            t = model(torch.from_numpy(student_inputs(TINY_SPEC, held))).numpy()
        return types.SimpleNamespace(
            model=model, spec=TINY_SPEC, meta={"name": "run-demo", "data_hash": "abc123"},
            teacher_info=TeacherInfo(id="google/hear", modality="audio", embedding_dim=32,
                                     licence="HAI-DEF terms of use"),
            train_items=items[:9], heldout_items=held), student_inputs(TINY_SPEC, held), t

    def heldout_with_targets(path):  # noqa: ANN001, ANN202
        _, x, t = load_run(path)
        return x, t + 0.05 * np.random.default_rng(0).standard_normal(t.shape)

    fake = types.ModuleType("hai_edge.distill.run")
    fake.load_run = lambda path: load_run(path)[0]
    fake.student_inputs, fake.heldout_with_targets = student_inputs, heldout_with_targets
    monkeypatch.setitem(sys.modules, "hai_edge.distill.run", fake)
    (run_dir / "run.json").write_text(json.dumps({"name": "run-demo"}))


def test_cli_export_run_dir_then_verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _fake_distill(monkeypatch, run_dir)
    out_dir = tmp_path / "bundle"
    rc, out, err = _cli(["export", str(run_dir), "-o", str(out_dir), "--formats", "onnx",
                         "--device", "browser-wasm"], capsys)
    assert rc == 0, err
    assert "onnx-int8" in out and "INT8 vs FP32 mean cos" in out
    m = Bundle.load(out_dir).manifest
    assert m.name == "run-demo" and [e.id for e in m.models] == ["onnx-fp32", "onnx-int8"]
    assert m.provenance["data_hash"] == "abc123" and m.provenance["device_profile"] == "browser-wasm"
    assert m.provenance["teacher"]["licence"].startswith("HAI-DEF") and "NOTICE" in m.files
    assert m.provenance["calibration"]["n"] == 18 and m.provenance["heldout"]["n"] == 6
    assert m.models[1].options["activation_type"] == "uint8"
    teacher = m.fidelity["teacher"]
    assert 0.9 < teacher["torch_fp32_mean_cosine"] <= 1.0
    assert abs(teacher["int8_cosine_drop"]["onnx-int8"]) < 0.05
    assert "--device browser-wasm" in m.provenance["command"]
    rc, out, err = _cli(["verify", str(out_dir)], capsys)
    assert rc == 0, err
    assert "onnx-int8" in out and "passed" in out
