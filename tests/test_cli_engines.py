"""The same bundle exported in all three formats gives the same embeddings through
`hai-edge embed --backend onnxruntime|openvino|tflite` (FP32: cosine >= 0.9999)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hai_edge.cli import main

ENGINES = ("onnxruntime", "openvino", "tflite")


def _media(tmp_path: Path) -> dict[str, list[Path]]:
    import soundfile as sf
    from PIL import Image

    rng = np.random.default_rng(7)
    wavs = []
    for i, sr in enumerate((16000, 44100)):
        x = 0.02 * rng.standard_normal(int(3.3 * sr))
        for start in (0.4 + i * 0.3, 1.9):
            j, n = int(start * sr), int(0.25 * sr)
            x[j : j + n] += 0.5 * rng.standard_normal(n) * np.exp(-np.arange(n) / (0.05 * sr))
        wavs.append(tmp_path / f"c{i}.wav")
        sf.write(wavs[-1], x.astype(np.float32), sr)
    photos = []
    for i in range(3):
        yy, xx = np.mgrid[0:240, 0:320]
        img = np.stack([(xx * (i + 1)) % 255, (yy * 2 + 40 * i) % 255,
                        rng.integers(0, 255, yy.shape)], -1).astype(np.uint8)
        photos.append(tmp_path / f"p{i}.png")
        Image.fromarray(img).save(photos[-1])
    return {"audio": wavs, "image": photos}


@pytest.mark.parametrize("modality", ["audio", "image"])
def test_three_engines_agree_through_the_cli(modality: str, tiny_bundles, tmp_path: Path, capsys) -> None:
    files = [str(p) for p in _media(tmp_path)[modality]]
    vectors: dict[str, np.ndarray] = {}
    for engine in ENGINES:
        assert main(["embed", str(tiny_bundles[modality]), *files, "--backend", engine, "--json"]) == 0
        recs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert {r["backend"] for r in recs} == {engine}
        if modality == "audio":
            vectors[engine] = np.array([w["embedding"] for r in recs for w in r["windows"]])
        else:
            vectors[engine] = np.array([r["embedding"] for r in recs])
    ref = vectors["onnxruntime"]
    assert len(ref) >= 3
    centred_ref = ref - ref.mean(0)
    for engine in ENGINES[1:]:
        v = vectors[engine]
        assert v.shape == ref.shape
        cos = np.sum(v * ref, 1) / (np.linalg.norm(v, axis=1) * np.linalg.norm(ref, axis=1))
        assert cos.min() >= 0.9999, (engine, cos)
        # input-specific part agrees too (a constant embedding would pass the plain cosine)
        c = v - ref.mean(0)
        ccos = np.sum(c * centred_ref, 1) / (np.linalg.norm(c, axis=1) * np.linalg.norm(centred_ref, axis=1))
        assert ccos.min() >= 0.999, (engine, ccos)
