"""FP32 export to ONNX / OpenVINO / TFLite: parity gate, cross-engine agreement, manifest contract.

The expensive part (six exports) runs once per session in the ``tiny_bundles`` fixture; the tests
here re-open those bundles through the run-side backends on fresh inputs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
# Found, not imported: importing onnxruntime/openvino outside their telemetry guards writes into
# HOME (see hai_edge/export/formats/openvino.py and export.steps.run_quiet).
_MISSING = [m for m in ("onnx", "onnxscript", "onnxruntime", "openvino", "litert_torch",
                        "ai_edge_litert") if importlib.util.find_spec(m) is None]
if _MISSING:
    pytest.skip(f"the export extra is not installed ({', '.join(_MISSING)})",
                allow_module_level=True)

from hai_edge.bundle import Bundle, ModelEntry, ModelFormat  # noqa: E402
from hai_edge.errors import BundleError, GateError, MissingDependencyError  # noqa: E402
from hai_edge.export.formats import FORMATS, ExportFormat, export_fp32  # noqa: E402
from hai_edge.export.fp32_bundle import build_fp32_bundle, run_entry, synthetic_inputs  # noqa: E402
from hai_edge.export.parity import check_parity, cosine_rows, gate  # noqa: E402
from hai_edge.runtime.backends import open_model  # noqa: E402
from hai_edge.bundle.frontend import AudioFrontendSpec  # noqa: E402

from ._tiny_models import (  # noqa: E402
    AUDIO_SHAPE,
    EMBED_DIM,
    IMAGE_SHAPE,
    TinyAudioNet,
    TinyImageNet,
)

# Literal on purpose: a format added to FORMATS without a case here fails
# test_every_format_is_tested.
EXPORT_FORMATS = ["onnx", "openvino", "tflite"]
MODALITIES = {"audio": (TinyAudioNet, AUDIO_SHAPE), "image": (TinyImageNet, IMAGE_SHAPE)}
ATOL = 1e-4
BACKEND_OF = {"onnx": "onnxruntime", "openvino": "openvino", "tflite": "tflite"}


def _torch_ref(modality: str, x: np.ndarray, seed: int = 0) -> np.ndarray:
    cls, _ = MODALITIES[modality]
    with torch.no_grad():
        return cls(seed=seed)(torch.from_numpy(x)).numpy()


def _run_bundle(path: Path, fmt: str, x: np.ndarray) -> np.ndarray:
    bundle = Bundle.load(path)
    engine, entry = open_model(bundle, model_id=f"{fmt}-fp32")
    try:
        return engine.run({entry.inputs[0].name: x})[entry.outputs[0].name]
    finally:
        engine.close()


def test_every_format_is_tested() -> None:
    assert EXPORT_FORMATS == sorted(FORMATS)


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
@pytest.mark.parametrize("modality", sorted(MODALITIES))
def test_export_passes_parity(tiny_bundles: dict[str, Path], modality: str, fmt: str) -> None:
    bundle = Bundle.load(tiny_bundles[modality])
    entry = bundle.model(f"{fmt}-fp32")
    recorded = entry.fidelity["parity"]
    assert recorded["passed"] and recorded["max_abs_diff"] <= ATOL, recorded
    # fresh inputs, through the run-side engine, against torch
    x = synthetic_inputs(MODALITIES[modality][1], n=6, seed=123)
    report = check_parity(_torch_ref(modality, x), _run_bundle(tiny_bundles[modality], fmt, x),
                          fmt=fmt, atol=ATOL)
    assert report.passed, report.summary()
    assert report.n == 6 and report.min_cosine >= 0.9999, report.summary()


@pytest.mark.parametrize("modality", sorted(MODALITIES))
def test_engines_agree_with_each_other(tiny_bundles: dict[str, Path], modality: str) -> None:
    x = synthetic_inputs(MODALITIES[modality][1], n=5, seed=7)
    outs = {fmt: _run_bundle(tiny_bundles[modality], fmt, x) for fmt in EXPORT_FORMATS}
    for i, a in enumerate(EXPORT_FORMATS):
        for b in EXPORT_FORMATS[i + 1:]:
            cos = cosine_rows(outs[a], outs[b])
            diff = float(np.max(np.abs(outs[a] - outs[b])))
            assert cos.min() >= 0.9999 and diff <= 2 * ATOL, (
                f"{modality}: {a} vs {b}: min cosine {cos.min():.6f}, max |diff| {diff:.3g}"
            )
    fid = Bundle.load(tiny_bundles[modality]).manifest.fidelity
    assert fid["fp32_cross_engine_min_cosine"] >= 0.9999, fid


def test_gate_rejects_perturbed_weight(tiny_bundles: dict[str, Path], tmp_path: Path) -> None:
    """One conv weight tensor nudged by 5% in the ONNX file: the gate must catch it."""
    import onnx
    from onnx import numpy_helper

    bundle = Bundle.load(tiny_bundles["audio"])
    entry = bundle.model("onnx-fp32")
    proto = onnx.load(str(bundle.path_of(entry.main_file)))
    weights = [t for t in proto.graph.initializer if len(t.dims) == 4]
    assert weights, "expected conv weights in the exported graph"
    w = numpy_helper.to_array(weights[0])
    noise = np.random.default_rng(0).standard_normal(w.shape).astype(w.dtype)
    nudged = w + 0.05 * np.abs(w).mean() * noise
    weights[0].CopyFrom(numpy_helper.from_array(nudged, weights[0].name))
    bad = tmp_path / "bad.onnx"
    onnx.save(proto, str(bad))

    x = synthetic_inputs(AUDIO_SHAPE, n=8, seed=3)
    report = check_parity(_torch_ref("audio", x), run_entry(bad, entry, x), fmt="onnx", atol=ATOL)
    assert not report.passed
    with pytest.raises(GateError) as exc:
        gate(report)
    figures = exc.value.figures
    assert figures["max_abs_diff"] > ATOL and figures["atol"] == ATOL and not figures["passed"]
    assert f"{report.max_abs_diff:.3g}" in str(exc.value) and "atol" in str(exc.value)


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_gate_rejects_another_models_weights(tiny_bundles: dict[str, Path], fmt: str) -> None:
    """The seed-0 artifact judged against a seed-1 net of the same architecture fails."""
    x = synthetic_inputs(IMAGE_SHAPE, n=8, seed=4)
    other = _torch_ref("image", x, seed=1)
    report = check_parity(other, _run_bundle(tiny_bundles["image"], fmt, x), fmt=fmt, atol=ATOL)
    with pytest.raises(GateError) as exc:
        gate(report)
    assert exc.value.figures["min_cosine"] < 0.9999, exc.value.figures
    assert exc.value.figures["format"] == fmt


class _NoisyNet(torch.nn.Module):
    """Exports fine but differs from torch at run time (a random op): the build must fail closed."""

    def __init__(self) -> None:
        super().__init__()
        self.net = TinyAudioNet()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        return y + 0.01 * torch.randn_like(y)


def test_build_fails_closed_and_writes_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "noisy"
    spec = AudioFrontendSpec(n_mels=32, window_s=1.0, hop_s=1.0)
    with pytest.raises(GateError) as exc:
        build_fp32_bundle(_NoisyNet(), spec, dest, name="noisy", formats=("onnx",))
    assert exc.value.figures["max_abs_diff"] > ATOL
    assert list(tmp_path.iterdir()) == []


def test_manifest_has_real_tensor_names(tiny_bundles: dict[str, Path]) -> None:
    from ai_edge_litert.interpreter import Interpreter

    from hai_edge.export.formats import env_override
    from hai_edge.export.formats.openvino import no_telemetry

    with env_override({"ORT_DISABLE_TELEMETRY": "1"}), no_telemetry():
        import onnxruntime as ort
        import openvino as ov

    for modality, path in tiny_bundles.items():
        bundle = Bundle.load(path)  # verifies every file's size and sha256
        m = bundle.manifest
        assert m.embedding_dim == EMBED_DIM
        assert sorted(e.id for e in m.models) == sorted(f"{f}-fp32" for f in EXPORT_FORMATS)
        on_disk = sorted(p.name for p in path.iterdir() if p.name != "manifest.json")
        assert on_disk == sorted(m.files), "bundle holds files the manifest does not list"
        shape = MODALITIES[modality][1]
        for entry in m.models:
            main = str(bundle.path_of(entry.main_file))
            if entry.format is ModelFormat.ONNX:
                sess = ort.InferenceSession(main, providers=["CPUExecutionProvider"])
                names = ([i.name for i in sess.get_inputs()], [o.name for o in sess.get_outputs()])
                assert names == (["input"], ["embedding"])
                assert entry.inputs[0].shape == (None, *shape)
            elif entry.format is ModelFormat.OPENVINO:
                model = ov.Core().read_model(main)
                names = ([p.get_any_name() for p in model.inputs],
                         [p.get_any_name() for p in model.outputs])
                assert names == (["input"], ["embedding"])
                assert entry.files == ("model_fp32.xml", "model_fp32.bin")
                assert entry.inputs[0].shape == (None, *shape)
            else:
                interp = Interpreter(model_path=main)
                names = ([d["name"] for d in interp.get_input_details()],
                         [d["name"] for d in interp.get_output_details()])
                assert entry.inputs[0].shape == (1, *shape)
            assert ([t.name for t in entry.inputs], [t.name for t in entry.outputs]) == names
            assert entry.outputs[0].shape[-1] == EMBED_DIM
            assert entry.inputs[0].layout == ("NCHW" if modality == "image" else None)


def test_manifest_provenance(tiny_bundles: dict[str, Path]) -> None:
    prov = Bundle.load(tiny_bundles["image"]).manifest.provenance
    for dist in ("torch", "onnx", "onnxruntime", "openvino", "litert-torch"):
        assert prov["tool_versions"].get(dist), prov["tool_versions"]
    params = sum(p.numel() for p in TinyImageNet().parameters())
    assert prov["student"] == {"arch": "TinyImageNet", "params": params}
    json.dumps(prov)  # plain JSON


def test_tampered_file_is_refused(tiny_bundles: dict[str, Path], tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_bundles["audio"], tmp_path / "copy"))
    blob = bytearray((copy / "model_fp32.bin").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (copy / "model_fp32.bin").write_bytes(bytes(blob))
    with pytest.raises(BundleError, match="modified"):
        Bundle.load(copy)


def test_embedder_uses_manifest_names(tiny_bundles: dict[str, Path]) -> None:
    """The run-side Embedder feeds entry.inputs[0].name: it must work on every engine."""
    from hai_edge.runtime import Embedder

    x = synthetic_inputs(AUDIO_SHAPE, n=3, seed=11)
    ref = _torch_ref("audio", x)
    for fmt in EXPORT_FORMATS:
        with Embedder(tiny_bundles["audio"], backend=BACKEND_OF[fmt], precision="fp32") as emb:
            report = check_parity(ref, emb.embed_inputs(x), fmt=fmt, atol=ATOL)
        assert report.passed, report.summary()


def test_tiny_models_are_input_dependent() -> None:
    for modality, (cls, shape) in MODALITIES.items():
        y = _torch_ref(modality, synthetic_inputs(shape, n=8, seed=5))
        off = ~np.eye(len(y), dtype=bool)
        plain = (y / np.linalg.norm(y, axis=1, keepdims=True))
        c = y - y.mean(0)
        centred = c / np.linalg.norm(c, axis=1, keepdims=True)
        pc, cc = (plain @ plain.T)[off], (centred @ centred.T)[off]
        assert pc.max() < 0.995 and cc.max() < 0.995, f"{modality}: {pc.max():.4f} {cc.max():.4f}"
        assert abs(pc.mean()) < 0.5 and abs(cc.mean()) < 0.5, f"{modality}: {pc.mean():.3f}"
        assert not np.allclose(y, _torch_ref(modality, synthetic_inputs(shape, 8, 5), seed=1))
        assert cls().training is False


# ---- parity maths and the format table, no export needed -----------------------------------


def test_check_parity_figures() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((4, 8)).astype(np.float32)
    ok = check_parity(a, a + 1e-6, fmt=ModelFormat.ONNX, atol=1e-4)
    assert ok.passed and ok.format == "onnx" and ok.n == 4 and ok.max_abs_diff < 2e-6
    assert ok.to_dict()["cosine_floor"] == 0.9999
    gate(ok)  # no exception
    flipped = a.copy()
    flipped[0] *= -1
    bad = check_parity(a, flipped, fmt="tflite", atol=10.0)  # within atol, wrong direction
    assert not bad.passed and bad.min_cosine < -0.99
    nan = a.copy()
    nan[1, 2] = np.nan
    assert not check_parity(a, nan, fmt="onnx", atol=1.0).passed
    with pytest.raises(GateError, match="shape"):
        check_parity(a, a[:3], fmt="onnx", atol=1.0)
    z = np.zeros((2, 3))
    assert cosine_rows(z, z).tolist() == [1.0, 1.0]
    assert cosine_rows(z, np.ones((2, 3))).tolist() == [0.0, 0.0]


def test_missing_dependency_names_the_extra(tmp_path: Path) -> None:
    row = ExportFormat(name="x", format=ModelFormat.ONNX, title="X", suffixes=(".x",),
                       extra="export", requires=("hai_edge_no_such_module_xyz",),
                       exporter=".onnx:e")
    with pytest.raises(MissingDependencyError, match=r"hai-edge\[export\]"):
        row.load_exporter()
    with pytest.raises(ValueError, match="unknown export format"):
        export_fp32(TinyAudioNet(), torch.zeros(1, *AUDIO_SHAPE), "coreml", tmp_path)
    assert all(isinstance(FORMATS[k].format, ModelFormat) and FORMATS[k].name == k for k in FORMATS)


def test_provisional_entry_roundtrips(tiny_bundles: dict[str, Path]) -> None:
    for entry in Bundle.load(tiny_bundles["image"]).manifest.models:
        assert ModelEntry.from_dict(json.loads(json.dumps(entry.to_dict())), "e") == entry


def test_build_writes_nothing_into_home(tmp_path: Path) -> None:
    """Fresh interpreter, empty HOME, CI unset: building an ONNX + OpenVINO bundle must leave HOME
    empty (OpenVINO telemetry writes ~/intel/*, onnxruntime's ~/.cache/Microsoft/... by default)
    and leave OpenVINO's telemetry consent off."""
    home = tmp_path / "home"
    home.mkdir()
    code = (
        "from hai_edge.export.fp32_bundle import build_fp32_bundle\n"
        "from hai_edge.export.formats.openvino import telemetry_consent\n"
        "from hai_edge.bundle.frontend import AudioFrontendSpec\n"
        "from tests._tiny_models import TinyAudioNet\n"
        "spec = AudioFrontendSpec(n_mels=32, window_s=1.0, hop_s=1.0)\n"
        f"build_fp32_bundle(TinyAudioNet(), spec, {str(tmp_path / 'b')!r}, name='b', "
        "formats=('onnx', 'openvino'))\n"
        "print('consent', telemetry_consent())\n"
    )
    env = {k: v for k, v in os.environ.items()
           if k not in ("CI", "TF_BUILD", "JENKINS_URL", "ORT_DISABLE_TELEMETRY")}
    env["HOME"] = str(home)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "consent False" in proc.stdout, proc.stdout
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == [], "wrote into HOME"
    assert Bundle.load(tmp_path / "b").manifest.name == "b"


def test_format_table_and_parity_import_without_torch() -> None:
    """Listing formats and checking parity must not import torch or any converter."""
    code = (
        "import sys, hai_edge.export as e\n"
        "rows = e.FORMATS; e.check_parity; e.ParityReport\n"
        "assert sorted(rows) == ['onnx', 'openvino', 'tflite']\n"
        "heavy = ('torch', 'onnx', 'openvino', 'litert_torch', 'onnxruntime', 'ai_edge_litert')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]", proc.stdout


def test_public_names_load_from_their_one_home() -> None:
    """hai_edge.export's lazy names, and the helpers export.formats re-exports from the bottom."""
    import hai_edge.export as e
    from hai_edge import tools
    from hai_edge.export import bundle_builder, formats, source, steps

    assert sorted(e.__all__) == sorted(e._LAZY)
    assert all(getattr(e, n) is not None for n in e.__all__)
    assert e.build_bundle is bundle_builder.build_bundle and e.ExportSource is source.ExportSource
    assert e.synthetic_inputs is steps.synthetic_inputs
    assert formats.quiet is tools.quiet and formats.env_override is tools.env_override
    with pytest.raises(AttributeError):
        e.no_such_name  # noqa: B018
