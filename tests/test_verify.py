"""`hai-edge verify`: golden vectors through every model on every installed engine; a changed
expectation or front end is reported as a failure (exit 2); the run side imports no build side."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hai_edge.bundle import Bundle, write_bundle
from hai_edge.errors import BundleError
from hai_edge.runtime.verify import decode_array, encode_array, verify_bundle


@pytest.fixture(scope="module")
def wave_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ._quant_fixtures import get_wave_bundle

    return get_wave_bundle(tmp_path_factory)


def _rewrite_golden(src: Path, dest: Path, edit) -> Path:  # noqa: ANN001
    """A copy of the bundle whose golden.json was edited (and re-hashed, so it loads)."""
    b = Bundle.load(src)
    doc = json.loads((src / "golden.json").read_text())
    edit(doc)
    files = {n: src / n for n in b.manifest.files if n != "golden.json"}
    files["golden.json"] = json.dumps(doc).encode()
    return write_bundle(dest, b.manifest, files).root


def test_array_codec_round_trips() -> None:
    for dtype, a in (("float32", np.linspace(-1, 1, 7, dtype=np.float32).reshape(7, 1)),
                     ("int16", np.arange(-3, 3, dtype=np.int16)), ("uint8", np.arange(5, dtype=np.uint8))):
        enc = encode_array(a, dtype)
        assert json.loads(json.dumps(enc)) == enc
        np.testing.assert_array_equal(decode_array(enc), a)
    with pytest.raises(BundleError):
        decode_array({"dtype": "float32", "shape": [3], "b64": base64.b64encode(b"12").decode()})


def test_verify_passes_on_every_engine(wave_bundle: Path) -> None:
    report = verify_bundle(Bundle.load(wave_bundle))
    assert report.passed and report.n_items == 3
    assert {(m.model, m.engine) for m in report.models} == {
        ("onnx-fp32", "onnxruntime"), ("onnx-int8", "onnxruntime"), ("openvino-fp32", "openvino"),
        ("openvino-int8", "openvino"), ("tflite-fp32", "tflite"), ("tflite-int8", "tflite")}
    assert all(m.status == "passed" and m.max_abs_diff <= m.tol_max_abs for m in report.models)
    assert report.frontend and report.frontend[0]["passed"]
    only = verify_bundle(Bundle.load(wave_bundle), backend="ov")
    assert {m.engine for m in only.models} == {"openvino"}


def test_verify_reports_a_wrong_expectation(wave_bundle: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from hai_edge.cli import main

    def perturb(doc: dict) -> None:
        out = decode_array(doc["models"]["tflite-int8"]["outputs"])
        doc["models"]["tflite-int8"]["outputs"] = encode_array(-out)

    bad = _rewrite_golden(wave_bundle, tmp_path / "bad", perturb)
    report = verify_bundle(Bundle.load(bad))
    status = {m.model: m.status for m in report.models}
    assert status["tflite-int8"] == "failed" and status["onnx-int8"] == "passed"
    assert main(["verify", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hai-edge: error: golden vectors failed: tflite-int8")
    assert main(["verify", str(wave_bundle), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["passed"] is True


def test_verify_front_end_self_test_catches_changed_features(wave_bundle: Path,
                                                             tmp_path: Path) -> None:
    def shift(doc: dict) -> None:
        x = decode_array(doc["items"][0]["input"])
        doc["items"][0]["input"] = encode_array(x + 0.01)

    report = verify_bundle(Bundle.load(_rewrite_golden(wave_bundle, tmp_path / "fe", shift)))
    assert not report.frontend[0]["passed"] and not report.passed


def test_bundle_without_golden_is_an_error(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from hai_edge.cli import main

    from ._onnx_models import make_onnx_bundle

    bundle = make_onnx_bundle(tmp_path / "b", "audio")
    assert main(["verify", str(bundle)]) == 2
    assert "no golden vectors" in capsys.readouterr().err


def test_verify_and_benchmark_import_no_build_side(wave_bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "w"
    shutil.copytree(wave_bundle, copy)
    code = (
        "import json, sys\n"
        "from hai_edge.cli import main\n"
        "rc = main(['verify', sys.argv[1]])\n"
        "rc2 = main(['benchmark', sys.argv[1], '--runs', '2', '--warmup', '0', '--models', 'onnx-int8'])\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'nncf', "
        "'tensorflow', 'litert_torch', 'jax', 'ai_edge_quantizer', 'transformers'))\n"
        "print(json.dumps({'rc': rc, 'rc2': rc2, 'bad': bad}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(copy)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res == {"rc": 0, "rc2": 0, "bad": []}
