"""The run side never imports the build side: proven in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from ._onnx_models import make_onnx_bundle

FORBIDDEN = ("torch", "onnx", "nncf", "tensorflow", "litert_torch", "jax", "transformers")

_PROBE = r"""
import json, sys
import hai_edge.bundle, hai_edge.runtime, hai_edge.runtime.backends, hai_edge.runtime.decoders
import hai_edge.runtime.frontends
from hai_edge.cli import main
rc = main(sys.argv[1:])
mods = sorted(m for m in sys.modules if m.split('.')[0] in %r)
print(json.dumps({"rc": rc, "forbidden": mods}))
""" % (FORBIDDEN,)


def test_runtime_and_embed_path_import_no_build_side(tmp_path: Path) -> None:
    import soundfile as sf

    bundle = make_onnx_bundle(tmp_path / "b", "audio")
    t = np.arange(16000 * 2) / 16000
    sf.write(tmp_path / "c.wav", 0.3 * np.sin(2 * np.pi * 440 * t), 16000)
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, "embed", str(bundle), str(tmp_path / "c.wav"),
         "-o", str(tmp_path / "o.npy")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["rc"] == 0
    assert result["forbidden"] == [], f"run side imported build-side modules: {result['forbidden']}"
    assert np.load(tmp_path / "o.npy").shape == (3, 16)


def test_probe_detects_a_forbidden_import() -> None:
    """The guard itself can fail: importing onnx in the probe must be reported."""
    code = _PROBE.replace("from hai_edge.cli import main", "import onnx\nfrom hai_edge.cli import main")
    proc = subprocess.run([sys.executable, "-c", code, "backends"], capture_output=True, text=True,
                          timeout=120)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "onnx" in result["forbidden"]


def test_run_side_writes_nothing_to_home_and_declines_telemetry(tmp_path: Path) -> None:
    """Opening models on onnxruntime and OpenVINO must not create files in $HOME (telemetry)."""
    import os

    import pytest

    pytest.importorskip("openvino")
    bundle = make_onnx_bundle(tmp_path / "b", "audio")
    home = tmp_path / "home"
    home.mkdir()
    code = (
        "import sys\n"
        "from hai_edge.runtime.backends import BACKENDS\n"
        "from hai_edge.bundle import Bundle\n"
        "from hai_edge.tools import openvino_telemetry_consent\n"
        "b = Bundle.load(sys.argv[1])\n"
        "e = b.models('onnx')[0]\n"
        "BACKENDS['onnxruntime'].open(b.path_of(e.main_file), e).close()\n"
        "from hai_edge.runtime.backends._openvino import OpenVinoBackend\n"
        "OpenVinoBackend(b.path_of(e.main_file)).close()\n"
        "print(openvino_telemetry_consent())\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "ORT_DISABLE_TELEMETRY")}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    proc = subprocess.run([sys.executable, "-c", code, str(bundle)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() in ("False", "None")
    assert sorted(p.relative_to(home).as_posix() for p in home.rglob("*")) == []
