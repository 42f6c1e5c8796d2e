"""Fixture bundles and audio for the PWA tests and benchmarks/pwa_speed.py (needs onnx).

A small conv encoder on the HeAR-like log-mel (64 x 200) with centred 32-d embeddings, statically
INT8-quantized (ORT QDQ) on synthetic front-end outputs, golden vectors through onnxruntime, a
Platt-calibrated screening head and, optionally, an ``energy_head`` detector (CONTRACTS.md 2).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.bundle import (Bundle, Manifest, Modality, ModelEntry, ModelFormat, Precision,
                             TensorSpec, write_bundle)
from hai_edge.runtime.frontends import AudioFrontendSpec
from hai_edge.runtime.heads import Calibration, CalibrationKind, Head

__all__ = ["SPEC", "cached_bundle", "cough_wav", "make_pwa_bundle", "with_golden_offset",
           "with_head_band", "write_wav"]

SPEC = AudioFrontendSpec(clip_normalization="peak", feature_mean=-6.0, feature_std=4.0)
DIM = 32
NOTICE = "demo, not for clinical use"


def _conv_model(seed: int) -> tuple[bytes, Any]:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    chans = [1, 16, 32, 48]
    inits, nodes, prev = [], [], "input"
    for i in range(3):
        cin, cout = chans[i], chans[i + 1]
        w = (rng.standard_normal((cout, cin, 3, 3)) * math.sqrt(2.0 / (9 * cin))).astype(np.float32)
        b = (0.05 * rng.standard_normal(cout)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes += [helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], strides=[2, 2],
                                   pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        prev = f"r{i}"
    nodes.append(helper.make_node("Flatten", [prev], ["pooled"], axis=1))
    graph = helper.make_graph(
        nodes, "pwa_conv",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *SPEC.input_shape()])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["N", None])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, rng


def _fp32_model(seed: int, calib: np.ndarray) -> bytes:
    """Conv stack -> flattened maps -> centred random projection (location-sensitive, so
    different windows get clearly different embeddings)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    model, rng = _conv_model(seed)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    pooled = sess.run(None, {"input": calib})[0]
    mu = pooled.mean(axis=0)
    w = (rng.standard_normal((pooled.shape[1], DIM)) / np.sqrt(pooled.shape[1])
         / (pooled.std() + 1e-6)).astype(np.float32)
    b = (-(mu @ w)).astype(np.float32)
    g = model.graph
    g.initializer.extend([numpy_helper.from_array(w, "wp"), numpy_helper.from_array(b, "bp")])
    g.node.extend([helper.make_node("MatMul", ["pooled", "wp"], ["proj"]),
                   helper.make_node("Add", ["proj", "bp"], ["embedding"])])
    del g.output[:]
    g.output.append(helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", DIM]))
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _quantize(fp32: bytes, calib: np.ndarray, tmp: Path) -> bytes:
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"input": calib[i:i + 1]} for i in range(len(calib))])

        def get_next(self) -> dict | None:
            return next(self.it, None)

    src, dst = tmp / "fp32.onnx", tmp / "int8.onnx"
    src.write_bytes(fp32)
    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return dst.read_bytes()


def _run(model: bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"input": x[i:i + 1]})[0] for i in range(len(x))])


def _head(name: str, seed: int, labels: tuple[str, str], threshold: float,
          mean: np.ndarray, scale: np.ndarray, notice: str = "") -> Head:
    rng = np.random.default_rng(seed)
    return Head(name=name, weights=rng.standard_normal(DIM) / np.sqrt(DIM) * 2.0, bias=0.1,
                mean=mean, scale=scale, threshold=threshold,
                calibration=Calibration(CalibrationKind.PLATT, a=1.3, b=-0.1), labels=labels,
                training={"n": 0, "note": "random test head"}, notice=notice)


def make_pwa_bundle(dest: Path, *, detector: str = "energy", detector_threshold: float = 0.5,
                    seed: int = 0, work: Path | None = None) -> Path:
    """Write a bundle with FP32 + INT8 ONNX models, golden vectors, a ``covid`` head and a
    detector entry (``energy`` or ``energy_head``) to ``dest``."""
    from hai_edge.export.golden import build_golden, golden_items, synthetic_model_inputs

    work = work or dest.parent
    calib = synthetic_model_inputs(SPEC, 24, seed=seed + 7)
    fp32 = _fp32_model(seed, calib)
    int8 = _quantize(fp32, calib, work)
    shape = (None, *SPEC.input_shape())
    io = ((TensorSpec("input", shape),), (TensorSpec("embedding", (None, DIM)),))
    entries = {
        "onnx-fp32": ModelEntry("onnx-fp32", ModelFormat.ONNX, Precision.FP32,
                                ("model_fp32.onnx",), *io),
        "onnx-int8": ModelEntry("onnx-int8", ModelFormat.ONNX, Precision.INT8,
                                ("model_int8.onnx",), *io),
    }
    models = {"onnx-fp32": fp32, "onnx-int8": int8}
    heldout = synthetic_model_inputs(SPEC, 2, seed=seed + 11)
    items = golden_items(SPEC, heldout, n=3, seed=seed)
    golden_bytes, golden_meta = build_golden(SPEC, items, list(entries.values()),
                                             run=lambda e, x: _run(models[e.id], x),
                                             reference=lambda x: _run(fp32, x))
    emb = _run(int8, calib)
    mean, scale = emb.mean(axis=0), emb.std(axis=0) + 1e-3
    covid = _head("covid", seed + 1, ("negative", "positive"), 0.5, mean, scale, NOTICE)
    files: dict[str, Any] = {"model_fp32.onnx": fp32, "model_int8.onnx": int8,
                             "golden.json": golden_bytes,
                             "heads/covid.json": covid.to_json().encode()}
    heads: list[dict[str, Any]] = [covid.manifest_entry("heads/covid.json")]
    if detector == "energy":
        heads.append({"name": "cough-events", "role": "detector", "kind": "energy", "params": {}})
    elif detector == "energy_head":
        det = _head("cough-detector", seed + 2, ("other", "cough"), detector_threshold, mean,
                    scale)
        files["heads/cough-detector.json"] = det.to_json().encode()
        heads.append({"name": "cough-detector", "role": "detector", "kind": "energy_head",
                      "params": {}, "file": "heads/cough-detector.json",
                      "threshold": detector_threshold, "align": "end", "after_s": 0.25})
    manifest = Manifest(
        name=f"pwa-test-{detector}", modality=Modality.AUDIO, preprocessing=SPEC,
        embedding_dim=DIM, models=tuple(entries.values()), heads=tuple(heads),
        provenance={"teacher": {"id": "none", "licence": "none"}, "student": {"arch": "conv3"}},
        notices=(NOTICE,), golden=golden_meta)
    write_bundle(dest, manifest, files)
    return dest


def cached_bundle(tmp_path_factory: Any, detector: str, detector_threshold: float = 0.5) -> Path:
    """``make_pwa_bundle`` once per test session and arguments (the PWA test modules share them;
    treat the result as read-only)."""
    root = Path(tmp_path_factory.getbasetemp()) / "pwa-bundles"
    dest = root / f"{detector}-{detector_threshold:.6f}"
    if not dest.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        make_pwa_bundle(dest, detector=detector, detector_threshold=detector_threshold, work=root)
    return dest


def with_golden_offset(src: Path, dest: Path, offset: float = 0.5) -> Path:
    """A copy of ``src`` whose golden INT8 outputs are shifted by ``offset``: consistent hashes,
    but the model disagrees with its golden vectors (the app must refuse to score)."""
    import base64

    b = Bundle.load(src)
    doc = json.loads((b.root / "golden.json").read_text())
    enc = doc["models"]["onnx-int8"]["outputs"]
    arr = np.frombuffer(base64.b64decode(enc["b64"]), dtype="<f4") + np.float32(offset)
    enc["b64"] = base64.b64encode(arr.astype("<f4").tobytes()).decode()
    files = {n: b.path_of(n) for n in b.manifest.files if n != "golden.json"}
    files["golden.json"] = json.dumps(doc).encode()
    write_bundle(dest, b.manifest, files)
    return dest


def with_head_band(src: Path, dest: Path, threshold: float, borderline: float,
                   head: str = "covid") -> Path:
    """A copy of ``src`` whose scoring head ``head`` has another threshold and borderline band
    (file and manifest entry rewritten together, re-hashed)."""
    import dataclasses

    from hai_edge.runtime.heads import load_head_file

    b = Bundle.load(src)
    rel = f"heads/{head}.json"
    new = dataclasses.replace(load_head_file(b.path_of(rel)), threshold=threshold,
                              borderline=borderline)
    heads = tuple(new.manifest_entry(rel) if h.get("name") == head and h.get("role") is None
                  else h for h in b.manifest.heads)
    files = {n: b.path_of(n) for n in b.manifest.files if n != rel}
    files[rel] = new.to_json().encode()
    write_bundle(dest, dataclasses.replace(b.manifest, heads=heads), files)
    return dest


def cough_wav(sr: int = 44100, seconds: float = 11.0, coughs: tuple[float, ...] = (
        1.0, 1.4, 3.3, 5.7, 8.2), tail_s: float = 1.0, seed: int = 5) -> np.ndarray:
    """int16 mono: -60 dBFS noise, broadband cough-like bursts, then digital silence (the fake
    capture device repeats its last 10 ms forever otherwise)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    x = 0.001 * rng.standard_normal(n)
    for k, t0 in enumerate(coughs):
        m = int(0.35 * sr)
        i = int(t0 * sr)
        t = np.arange(m) / sr
        env = np.exp(-t / (0.05 + 0.02 * (k % 3))) * np.minimum(1.0, t / 0.005)
        burst = np.convolve(rng.standard_normal(m), np.ones(3 + 2 * k) / (3 + 2 * k), "same")
        x[i:i + m] += (0.25 + 0.1 * (k % 2)) * env * burst / burst.std()
    x = np.concatenate([x, np.zeros(int(tail_s * sr))])
    return np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)


def write_wav(path: Path, pcm: np.ndarray, sr: int) -> Path:
    import soundfile as sf

    sf.write(str(path), pcm, sr, subtype="PCM_16" if pcm.dtype == np.int16 else "FLOAT")
    return path
