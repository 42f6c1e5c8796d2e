"""Write the committed seed corpus (small valid files of each kind): run once, commit the output.

    python tests/fuzz/make_seeds.py
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent / "corpus"
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def _audio() -> dict[str, bytes]:
    import soundfile as sf

    t = np.arange(6400) / 8000.0  # 0.8 s: above the front end's 0.5 s minimum
    x = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = {}
    for name, fmt, subtype in (("tone.wav", "WAV", "PCM_16"), ("tone.flac", "FLAC", "PCM_16"),
                               ("tone24.wav", "WAV", "PCM_24"), ("tone.ogg", "OGG", "VORBIS")):
        buf = io.BytesIO()
        sf.write(buf, x, 8000, format=fmt, subtype=subtype)
        out[name] = buf.getvalue()
    return out


def _images() -> dict[str, bytes]:
    from PIL import Image

    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8))
    out = {}
    for name, fmt in (("p.png", "PNG"), ("p.jpg", "JPEG"), ("p.webp", "WEBP"), ("p.gif", "GIF"),
                      ("p.bmp", "BMP")):
        buf = io.BytesIO()
        img.save(buf, fmt)
        out[name] = buf.getvalue()
    return out


def _dicoms() -> dict[str, bytes]:
    from tests._decoder_helpers import make_dicom

    rng = np.random.default_rng(1)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, kwargs in (("rgb.dcm", {"pi": "RGB"}),
                             ("mono.dcm", {"pi": "MONOCHROME2"})):
            shape = (36, 36, 3) if kwargs["pi"] == "RGB" else (36, 36)
            path = make_dicom(Path(tmp) / name, rng.integers(0, 255, shape, dtype=np.uint8), **kwargs)
            out[name] = path.read_bytes()
    return out


def _manifests() -> dict[str, bytes]:
    from tests._onnx_models import make_onnx_bundle

    with tempfile.TemporaryDirectory() as tmp:
        out = {}
        for modality in ("audio", "image"):
            bundle = make_onnx_bundle(Path(tmp) / modality, modality, dim=4)
            data = json.loads((bundle / "manifest.json").read_text())
            out[f"{modality}.json"] = json.dumps(data, separators=(",", ":")).encode()
        return out


def main() -> None:
    for target, files in (("audio", _audio()), ("image", _images()), ("dicom", _dicoms()),
                          ("manifest", _manifests())):
        folder = ROOT / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)
        print(target, {k: len(v) for k, v in files.items()})


if __name__ == "__main__":
    main()
