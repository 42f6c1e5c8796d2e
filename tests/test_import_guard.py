"""The run side never imports the build side: proven in a fresh interpreter.

Two probes, each in a subprocess: the ``embed`` command end to end, and an import of every
module of the run side (``bundle``, ``runtime``, ``devices``, ``apps``) and of the CLI (whose
modules must stay light: heavy imports only inside command functions). The second walks the
packages with :mod:`pkgutil`, so a new module is covered without touching this file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ._onnx_models import make_onnx_bundle

FORBIDDEN = ("torch", "onnx", "nncf", "tensorflow", "litert_torch", "ai_edge_torch", "jax",
             "transformers")
ROOT = Path(__file__).resolve().parents[1]
WALKED = ("hai_edge.bundle", "hai_edge.runtime", "hai_edge.devices", "hai_edge.apps",
          "hai_edge.cli")

_WALK = r"""
import importlib, json, pkgutil, sys
forbidden, roots = set(%r), sys.argv[1:]
imported, skipped, culprits = [], {}, {}
for root in roots:
    pkg = importlib.import_module(root)
    names = [root] + sorted(m.name for m in pkgutil.walk_packages(pkg.__path__, root + "."))
    for name in names:
        if name.rsplit(".", 1)[-1] == "__main__":
            continue  # importing it runs the CLI
        before = set(sys.modules)
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:  # an optional extra that is not installed
            if (exc.name or "").split(".")[0] == root.split(".")[0]:
                raise
            skipped[name] = exc.name
            continue
        imported.append(name)
        new = {m.split(".")[0] for m in set(sys.modules) - before} & forbidden
        if new:
            culprits[name] = sorted(new)
mods = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
print(json.dumps({"imported": imported, "skipped": skipped, "forbidden": mods,
                  "culprits": culprits}))
""" % (FORBIDDEN,)


def _walk(*roots: str, path: Path | None = None) -> dict:
    import os

    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(path), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", _WALK, *roots], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _modules_on_disk(package: str) -> set[str]:
    base = ROOT.joinpath(*package.split("."))
    out = set()
    for f in base.rglob("*.py"):
        parts = list(f.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1] != "__main__" and all((ROOT.joinpath(*parts[:i]) / "__init__.py").is_file()
                                           for i in range(1, len(parts))):
            out.add(".".join(parts))
    return out


def test_every_run_side_and_cli_module_imports_no_build_side() -> None:
    result = _walk(*WALKED)
    assert result["forbidden"] == [], (
        f"run side imported build-side packages "
        f"{sorted({m.split('.')[0] for m in result['forbidden']})}, first by: {result['culprits']}")
    import importlib.util

    for module, dep in result["skipped"].items():  # only for extras really missing here
        assert importlib.util.find_spec(dep.split(".")[0]) is None, (module, dep)
    on_disk = set().union(*(_modules_on_disk(p) for p in WALKED))
    assert set(result["imported"]) | set(result["skipped"]) == on_disk
    assert {"hai_edge.cli.cough", "hai_edge.apps.kiosk.app", "hai_edge.runtime.cough",
            "hai_edge.devices.bench", "hai_edge.bundle.frontend"} <= set(result["imported"])


def test_module_walk_detects_a_forbidden_import_in_a_new_module(tmp_path: Path) -> None:
    """The walker finds modules by itself and names the one that pulled a forbidden package."""
    pytest.importorskip("onnx")
    pkg = tmp_path / "fakeside" / "deep"
    pkg.mkdir(parents=True)
    (tmp_path / "fakeside" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "light.py").write_text("import json\n")
    (pkg / "heavy.py").write_text("import onnx\n")
    result = _walk("fakeside", path=tmp_path)
    assert result["imported"] == ["fakeside", "fakeside.deep", "fakeside.deep.heavy",
                                  "fakeside.deep.light"]
    assert result["culprits"] == {"fakeside.deep.heavy": ["onnx"]}
    assert "onnx" in result["forbidden"]

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
