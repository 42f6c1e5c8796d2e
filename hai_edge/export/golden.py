"""Golden vectors written into every bundle (``golden.json``; read by ``hai-edge verify``, the
kiosk and the JavaScript apps to self-test their front end and engine on load).

Items: for audio, item 0 is a short synthetic raw waveform (int16 PCM) with its front-end features
(= the model input), the rest are held-out model inputs; for images, items are small synthetic raw
photos (uint8 RGB) with a sample of their front-end features (a 224 px input is too large to
store whole). Every model's outputs on those inputs, measured through the run-side engine at
export time, are stored with tolerances. The file is kept below ``MAX_BYTES`` by dropping items.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from hai_edge.bundle import ModelEntry, Precision
from hai_edge.runtime.frontends import AudioFrontendSpec, ImageFrontendSpec, prepare_audio, prepare_image
from hai_edge.runtime.verify import GOLDEN_NAME, encode_array

__all__ = ["GOLDEN_NAME", "MAX_BYTES", "GoldenItems", "build_golden", "golden_items",
           "synthetic_model_inputs", "synthetic_photo", "synthetic_waveform", "tolerance_for"]

MAX_BYTES = 300_000
_MAX_INPUT_FLOATS = 20_000  # larger inputs are stored as feature samples + raw media only
_N_FEATURE_SAMPLES = 256
FRONTEND_TOLERANCE = 1e-3


def synthetic_waveform(seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """A seeded cough-like clip: noise bursts plus hum and background noise, float in [-1, 1]."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    x = rng.normal(0.0, 0.003, n) + 0.01 * np.sin(2 * np.pi * rng.uniform(80, 300) * t)
    for _ in range(int(rng.integers(1, 4))):
        start, dur = rng.uniform(0, 0.7 * seconds), rng.uniform(0.05, 0.25)
        env = np.exp(-0.5 * ((t - start - dur / 2) / (dur / 4)) ** 2)
        burst = np.convolve(rng.normal(0, 1, n), np.ones(int(rng.integers(2, 16))), "same")
        x += rng.uniform(0.05, 0.3) * env * burst / 4
    return np.clip(x, -1.0, 1.0)


def synthetic_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A seeded smooth uint8 RGB "photo": colour gradients, a blob and mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    img = np.zeros((height, width, 3))
    for c in range(3):
        img[..., c] = rng.uniform(60, 200) + rng.uniform(-60, 60) * yy + rng.uniform(-60, 60) * xx
    cy, cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.25)
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    img += blob[..., None] * rng.uniform(-80, 80, size=3)
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def synthetic_model_inputs(spec: AudioFrontendSpec | ImageFrontendSpec, n: int, seed: int
                           ) -> np.ndarray:
    """``n`` model inputs from seeded synthetic media through the real front end: a stand-in for
    calibration / held-out data when none is given (figures are then only indicative)."""
    out = []
    for i in range(n):
        if isinstance(spec, AudioFrontendSpec):
            wav = synthetic_waveform(spec.window_s, spec.sample_rate, seed * 100_003 + i)
            out.append(_window_features(wav, spec))
        else:
            rng = np.random.default_rng(seed * 100_003 + i)
            h, w = int(rng.integers(spec.min_side + 8, 400)), int(rng.integers(spec.min_side + 8, 400))
            out.append(prepare_image(synthetic_photo(h, w, seed * 100_003 + i), spec, source="synthetic"))
    return np.stack(out).astype(np.float32)


def _window_features(wav: np.ndarray, spec: AudioFrontendSpec) -> np.ndarray:
    from hai_edge.runtime.frontends import window_features

    x = np.zeros(spec.window_samples)
    x[: min(len(wav), len(x))] = wav[: len(x)]
    return window_features(x[None], spec)[0]


class GoldenItems:
    """Golden items: model inputs ``x`` [n, ...] and their JSON records (without outputs)."""

    def __init__(self, x: np.ndarray, records: list[dict[str, Any]]) -> None:
        self.x = x
        self.records = records

    def take(self, n: int) -> GoldenItems:
        return GoldenItems(self.x[:n], self.records[:n])


def golden_items(spec: AudioFrontendSpec | ImageFrontendSpec, heldout: np.ndarray | None,
                 n: int = 3, seed: int = 0) -> GoldenItems:
    """Up to ``n`` items built from synthetic raw media (through the numpy front end) and, for
    audio, held-out model inputs."""
    xs: list[np.ndarray] = []
    recs: list[dict[str, Any]] = []
    if isinstance(spec, AudioFrontendSpec):
        seconds = min(1.0, spec.window_s)
        pcm = np.round(synthetic_waveform(seconds, spec.sample_rate, seed) * 32767).astype(np.int16)
        _, feats = prepare_audio(pcm, spec.sample_rate, spec, "golden")
        xs.append(feats[0])
        recs.append({"id": "raw-audio-0",
                     "raw": {"kind": "audio", "sample_rate": spec.sample_rate, "window": 0,
                             "pcm16": encode_array(pcm, "int16")}})
        pool = heldout if heldout is not None else np.zeros((0, *feats.shape[1:]), np.float32)
        for i in range(min(n - 1, len(pool))):
            xs.append(pool[i])
            recs.append({"id": f"heldout-{i}"})
    else:
        for i in range(n):
            rgb = synthetic_photo(48, 64, seed + i)
            xs.append(prepare_image(rgb, spec, source="golden"))
            recs.append({"id": f"raw-photo-{i}", "raw": {"kind": "image", "rgb": encode_array(rgb, "uint8")}})
    x = np.stack(xs).astype(np.float32)
    rng = np.random.default_rng(seed + 99)
    for xi, rec in zip(x, recs):
        if xi.size <= _MAX_INPUT_FLOATS or "raw" not in rec:
            rec["input"] = encode_array(xi)
        else:
            idx = np.sort(rng.choice(xi.size, size=min(_N_FEATURE_SAMPLES, xi.size), replace=False))
            rec["feature_samples"] = {"indices": encode_array(idx.astype(np.float32)),
                                      "values": encode_array(xi.ravel()[idx])}
            rec["feature_stats"] = {"mean": float(xi.mean()), "std": float(xi.std())}
    return GoldenItems(x, recs)


def tolerance_for(entry: ModelEntry, expected: np.ndarray, reference: np.ndarray | None = None
                  ) -> dict[str, float]:
    """FP32: engines agree to ~1e-6 relative. INT8: kernels differ across CPUs (VNNI, AVX2, ARM),
    so the check allows twice the model's own INT8-vs-FP32 error on these items (an offset-free
    measure: embeddings with a large mean would make a relative-to-max tolerance meaningless)."""
    scale = float(np.max(np.abs(expected))) if expected.size else 1.0
    if entry.precision is Precision.FP32:
        return {"max_abs": max(1e-4, 1e-3 * scale), "min_cosine": 0.9999}
    if reference is None:
        return {"max_abs": max(1e-3, 0.1 * scale), "min_cosine": 0.99}
    from hai_edge.evaluation.metrics import cosine_rows

    err = float(np.max(np.abs(expected - reference)))
    cos = float(np.min(cosine_rows(expected, reference)))
    return {"max_abs": max(1e-3, 2.0 * err),
            "min_cosine": round(min(0.999, max(0.9, 1.0 - 2.0 * (1.0 - cos))), 6)}


def build_golden(
    spec: AudioFrontendSpec | ImageFrontendSpec,
    items: GoldenItems,
    entries: Sequence[ModelEntry],
    run: Callable[[ModelEntry, np.ndarray], np.ndarray],
    reference: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[bytes, dict[str, Any]]:
    """(golden.json bytes, manifest["golden"]). ``run(entry, x)`` gives a model's outputs through
    its run-side engine; ``reference(x)`` the torch FP32 outputs (stored for information)."""
    outputs = {e.id: np.asarray(run(e, items.x), dtype=np.float32) for e in entries}
    ref = np.asarray(reference(items.x), dtype=np.float32) if reference is not None else None
    for n in range(len(items.x), 0, -1):
        doc = _document(spec, items.take(n), entries, {k: v[:n] for k, v in outputs.items()},
                        None if ref is None else ref[:n])
        data = json.dumps(doc, separators=(",", ":")).encode()
        if len(data) <= MAX_BYTES or n == 1:
            break
    manifest = {"file": GOLDEN_NAME, "n_items": n, "models": sorted(outputs),
                "bytes": len(data), "frontend_tolerance": FRONTEND_TOLERANCE}
    return data, manifest


def _document(spec: Any, items: GoldenItems, entries: Sequence[ModelEntry],
              outputs: Mapping[str, np.ndarray], ref: np.ndarray | None) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "encoding": "arrays are {dtype, shape, b64}: little-endian raw bytes, base64",
        "modality": "audio" if isinstance(spec, AudioFrontendSpec) else "image",
        "input_shape": list(spec.input_shape()),
        "frontend_tolerance": {"max_abs": FRONTEND_TOLERANCE},
        "items": items.records,
        **({"reference": {"model": "torch-fp32", "outputs": encode_array(ref)}}
           if ref is not None else {}),
        "models": {
            e.id: {"outputs": encode_array(outputs[e.id]),
                   "tolerance": tolerance_for(e, outputs[e.id], ref)}
            for e in entries
        },
    }
