#!/usr/bin/env python3
"""Run hai-edge's run side on emulated aarch64 and compare it with this x86_64 machine (issue #19).

Why: clinic hardware is often ARM (Raspberry Pi 5 / 4); every other test runs on x86. In a temp
directory (nothing cached outside it): 1. ``debootstrap --foreign`` (first stage only) of Debian
   bookworm arm64, each .deb unpacked by ``dpkg-deb -x`` (Python 3.11, glibc 2.36: Pi OS's);
2. aarch64 wheels via ``pip download --platform``, pinned to the versions installed here (same
   engine versions on both sides), unpacked with ``pip install --target``, ``hai_edge`` beside;
3. ``qemu-aarch64-static -cpu CPU -L ROOTFS ROOTFS/usr/bin/python3.11`` (user mode, no binfmt_misc,
   no chroot) for CPU = cortex-a76 (Pi 5) and cortex-a72 (Pi 4, no dotprod), with an ARM
   ``/proc/cpuinfo`` in each rootfs (onnxruntime's cpuinfo parser segfaults on the x86 one).
On both sides and for every engine, the same driver (this file, ``--driver``) runs ``hai-edge
verify BUNDLE -e ENGINE --json`` on every built-in bundle, checks that every ARM device profile
refuses an engine it excludes (exit 2, one line), and embeds generated audio files and photos plus
two demo files; the host compares the embeddings per engine (max abs diff, cosine). Exit 0 when
onnxruntime and LiteRT verify every bundle on every emulated CPU, and OpenVINO verifies too or is
refused by every ARM profile (exit 2, one line). Needs root only to install qemu-user-static +
debootstrap if missing (``.ci/run`` does), network to PyPI and Debian, ~1 GB of disk.
Usage: python scripts/aarch64_check.py [--json OUT] [--markdown OUT] [--workdir DIR --keep]
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import contextlib
import importlib.metadata
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["CPUS", "ENGINES", "main", "make_media", "run_check"]

REPO = Path(__file__).resolve().parents[1]
ENGINES = ("onnxruntime", "tflite", "openvino")
REQUIRED_ENGINES = ("onnxruntime", "tflite")  # must verify on every emulated CPU
CPUS = ("cortex-a76", "cortex-a72")
SUITE = "bookworm"
# run-side packages (pyproject's base dependencies) + the engine extras, pinned to this machine's
PACKAGES = {"numpy": "numpy", "soundfile": "soundfile", "Pillow": "pillow", "pydicom": "pydicom",
            "pylibjpeg": "pylibjpeg", "pylibjpeg-libjpeg": "pylibjpeg-libjpeg",
            "onnxruntime": "onnxruntime", "ai-edge-litert": "tflite", "openvino": "openvino",
            "cryptography": "cryptography", "threadpoolctl": "threadpoolctl"}  # the base install
# bookworm has glibc 2.36: without the newer manylinux tags pip silently picks old wheels
PLATFORM_ARGS = ["--platform", "manylinux2014_aarch64"] + [
    a for v in (17, 24, 27, 28, 31, 34, 35, 36) for a in ("--platform", f"manylinux_2_{v}_aarch64")]
PY_ARGS = ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311", "--abi", "abi3",
           "--abi", "none", "--only-binary=:all:"]
# /proc/cpuinfo Features, variant, part, revision, MIDR_EL1 per emulated CPU (as on the boards)
CPU_IDS = {
    "cortex-a76": ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm "
                   "lrcpc dcpop asimddp", "0x4", "0xd0b", "1", "0x00000000414fd0b1"),
    "cortex-a72": ("fp asimd evtstrm crc32 cpuid", "0x0", "0xd08", "3", "0x00000000410fd083"),
}
EMBED_MIN_COSINE = 0.999  # aarch64 vs x86 embeddings of the same file, same engine
AUDIO_EXT, IMAGE_EXT = (".wav", ".mp3"), (".png", ".jpg")


# ----------------------------------------------------------------------------- driver (both sides)
def _run_cli(argv: Sequence[str]) -> tuple[int, str, str]:
    """``hai-edge ARGV`` in this process, its exit code, stdout and stderr."""
    from hai_edge.cli import main as cli_main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = cli_main(list(argv))
        except SystemExit as exc:  # argparse errors
            rc = exc.code if isinstance(exc.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


def _versions() -> dict[str, str]:
    import platform

    found = {"python": platform.python_version(), "machine": platform.machine()}
    for dist in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[dist] = importlib.metadata.version(dist)
    return found


def _exec_graph(bundle: str) -> dict[str, int]:
    """OpenVINO's runtime precision per convolution (exec graph), with the backend's config:
    shows which int8 convolutions the CPU plugin runs in f16/f32 instead."""
    from collections import Counter

    from hai_edge.bundle import Bundle
    from hai_edge.runtime.backends import openvino_config
    from hai_edge.tools import import_openvino

    ov = import_openvino()
    b = Bundle.load(bundle)
    entry = next(m for m in b.manifest.models if m.format.value == "openvino")
    compiled = ov.Core().compile_model(str(b.path_of(entry.main_file)), "CPU", openvino_config(1))
    return dict(Counter(
        f"Convolution:{op.get_rt_info()['runtimePrecision'].astype(str)}"
        for op in compiled.get_runtime_model().get_ordered_ops()
        if op.get_rt_info()["layerType"].astype(str) == "Convolution"))


def drive(engine: str, out_path: Path, media: Path, items: int | None,
          exec_graph: bool = False) -> None:
    """Verify + embed with one engine; one JSON line per result, flushed: a crash keeps what
    came before it."""
    import numpy as np

    from hai_edge.bundle import Bundle, builtin_bundles
    from hai_edge.devices.profiles import load_profiles
    from hai_edge.runtime import Embedder

    arm = [p for p in load_profiles().values() if "aarch64" in p.isa]
    files = sorted(media.iterdir())
    with open(out_path, "a", encoding="utf-8") as fh:
        def emit(rec: dict[str, Any]) -> None:
            fh.write(json.dumps(rec) + "\n")
            fh.flush()

        emit({"kind": "versions", "versions": _versions()})
        for name in builtin_bundles():
            t0 = time.perf_counter()
            rc, out, err = _run_cli(["verify", name, "-e", engine, "--json"])
            report = json.loads(out) if out.lstrip().startswith("{") else None
            emit({"kind": "verify", "bundle": name, "rc": rc, "report": report,
                  "stderr": err.strip()[-400:], "seconds": time.perf_counter() - t0})
            for prof in arm:
                if engine in prof.excluded_engines:
                    rc, _, err = _run_cli(["verify", name, "--device", prof.id, "-e", engine])
                    emit({"kind": "refusal", "bundle": name, "profile": prof.id, "rc": rc,
                          "stderr": err.strip()})
            if exec_graph and engine == "openvino":
                emit({"kind": "exec_graph", "bundle": name, "convolutions": _exec_graph(name)})
            audio = Bundle.load(name).manifest.modality.value == "audio"
            mine = [f for f in files if f.suffix in (AUDIO_EXT if audio else IMAGE_EXT)][:items]
            t0 = time.perf_counter()
            try:
                with Embedder(name, engine, threads=1) as emb:
                    for f in mine:
                        vec = (emb.embed_audio_file(f).vectors if audio else
                               np.stack([e.vector for e in emb.embed_image_file(f)]))
                        vec = np.ascontiguousarray(vec, dtype="<f4")
                        emit({"kind": "embed", "bundle": name, "file": f.name,
                              "shape": list(vec.shape),
                              "b64": base64.b64encode(vec.tobytes()).decode()})
            except Exception as exc:  # recorded, compared as a failure by the host
                emit({"kind": "embed_error", "bundle": name,
                      "error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]})
            emit({"kind": "embed_done", "bundle": name, "seconds": time.perf_counter() - t0})


# ----------------------------------------------------------------------------- host side
def make_media(out: Path) -> list[Path]:
    """Deterministic inputs: 48 kHz stereo + 16 kHz mono WAVs, PNG + JPEG photo, 2 demo files."""
    import numpy as np
    import soundfile as sf
    from PIL import Image, ImageDraw

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1234)
    sr = 48000
    t = np.arange(int(4.0 * sr)) / sr
    x = 0.15 * np.sin(2 * np.pi * (200 + 900 * t) * t) + 0.02 * np.sin(2 * np.pi * 50 * t)
    for c in (0.6, 1.9, 3.1):
        x += 0.5 * np.exp(-((t - c) / 0.08) ** 2) * rng.standard_normal(t.size)
    x += 0.003 * rng.standard_normal(t.size)
    st = np.stack([x, 0.8 * x + 0.01 * rng.standard_normal(t.size)], axis=1)
    sf.write(out / "a1_synth_48k_stereo.wav", np.clip(st, -1, 1), sr, subtype="PCM_16")
    sf.write(out / "a2_synth_16k_mono.wav", np.clip(x[::3], -1, 1), 16000, subtype="PCM_16")
    h, w = 480, 640
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([180 + 50 * np.sin(xx / 70.0), 120 + 40 * np.cos(yy / 55.0),
                    100 + 30 * np.sin((xx + yy) / 90.0)], -1) + 12 * rng.standard_normal((h, w, 3))
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(im)
    d.ellipse((250, 170, 400, 300), fill=(110, 60, 40))
    d.ellipse((290, 200, 350, 260), fill=(70, 35, 25))
    im.save(out / "i1_synth_640x480.png")
    im.save(out / "i2_synth_640x480.jpg", quality=90)
    demo = REPO / "hai_edge" / "demo_data"
    shutil.copy(demo / "coughs" / "00f16a68.mp3", out / "a3_demo_00f16a68.mp3")
    shutil.copy(demo / "lesions" / "PAT_109_868_723.jpg", out / "i3_demo_PAT_109_868_723.jpg")
    return sorted(out.iterdir())


def _sh(cmd: Sequence[str], log: Path, timeout: float = 900) -> None:
    with open(log, "ab") as fh:
        proc = subprocess.run(list(cmd), stdout=fh, stderr=subprocess.STDOUT, timeout=timeout)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{cmd[0]} failed (rc {proc.returncode}): {' | '.join(tail)}")


def debian_mirror() -> str:
    """The Debian mirror this machine's apt already uses."""
    src = Path("/etc/apt/sources.list.d/debian.sources")
    if src.is_file():
        m = re.search(r"^URIs:\s*(\S*debian)\s*$", src.read_text(), re.M)
        if m:
            return m.group(1)
    lst = Path("/etc/apt/sources.list")
    if lst.is_file():
        m = re.search(r"^deb\s+(?:\[[^]]*\]\s+)?(\S*debian)\s", lst.read_text(), re.M)
        if m:
            return m.group(1)
    return "http://deb.debian.org/debian"


def build_rootfs(work: Path, logs: Path) -> Path:
    """Debian arm64 userland with python3.11 + libsndfile, first debootstrap stage only."""
    root = work / "rootfs"
    _sh(["debootstrap", "--arch=arm64", "--foreign", "--variant=minbase",
         "--include=python3,libsndfile1", SUITE, str(root), debian_mirror()],
        logs / "debootstrap.log")
    for deb in sorted((root / "var/cache/apt/archives").glob("*.deb")):
        _sh(["dpkg-deb", "-x", str(deb), str(root)], logs / "dpkg-deb.log")
    shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
    if not (root / "usr/bin/python3.11").exists():
        raise RuntimeError("the arm64 rootfs has no usr/bin/python3.11")
    return root


def cpu_rootfs(root: Path, cpu: str) -> Path:
    """A hard-linked copy of ``root`` whose /proc/cpuinfo and MIDR_EL1 say ``cpu`` (qemu -L
    resolves absolute guest paths inside the rootfs first)."""
    dst = root.parent / f"rootfs-{cpu}"
    _sh(["cp", "-al", str(root), str(dst)], root.parent / "cp.log")
    feats, var, part, rev, midr = CPU_IDS[cpu]
    n = os.cpu_count() or 1
    (dst / "proc").mkdir(exist_ok=True)
    (dst / "proc/cpuinfo").unlink(missing_ok=True)
    (dst / "proc/cpuinfo").write_text("".join(
        f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: {feats}\nCPU implementer\t: 0x41\n"
        f"CPU architecture: 8\nCPU variant\t: {var}\nCPU part\t: {part}\nCPU revision\t: {rev}\n\n"
        for i in range(n)))
    for i in range(n):
        d = dst / f"sys/devices/system/cpu/cpu{i}/regs/identification"
        d.mkdir(parents=True, exist_ok=True)
        (d / "midr_el1").write_text(midr + "\n")
    return dst


def install_site(work: Path, logs: Path, versions: dict[str, str]) -> Path:
    """aarch64 wheels of the pinned versions (and their dependencies) + this project's hai_edge."""
    wheels, site = work / "wheels", work / "site"
    pins = [f"{dist}=={v}" for dist, v in versions.items() if dist in PACKAGES]
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-cache-dir"]
    _sh([*pip, "download", *PLATFORM_ARGS, *PY_ARGS, "-d", str(wheels), *pins],
        logs / "pip_download.log")
    _sh([*pip, "install", "--no-deps", "--no-compile", "--target", str(site), *PLATFORM_ARGS,
         *PY_ARGS, *map(str, sorted(wheels.glob("*.whl")))], logs / "pip_target.log")
    shutil.copytree(REPO / "hai_edge", site / "hai_edge",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return site


def _drive_cmd(python: Sequence[str], out: Path, engine: str, media: Path,
               items: int | None, exec_graph: bool = False) -> list[str]:
    extra = (["--items", str(items)] if items else []) + (["--exec-graph"] if exec_graph else [])
    return [*python, str(Path(__file__).resolve()), "--driver", engine, "--out", str(out),
            "--media", str(media), *extra]


def _launch(cmd: list[str], env: dict[str, str], out: Path, timeout: float) -> dict[str, Any]:
    """Run one driver; its records plus how it ended (a segfault is a result, not a crash here)."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        ended = ("ok" if proc.returncode == 0 else f"died (signal {-proc.returncode})"
                 if proc.returncode < 0 else f"exit {proc.returncode}")
        tail = proc.stderr.strip().splitlines()[-1:] if proc.returncode else []
    except subprocess.TimeoutExpired:
        ended, tail = f"timeout after {timeout:.0f}s", []
    recs = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return {"ended": ended, "stderr_tail": tail, "records": recs,
            "seconds": round(time.perf_counter() - t0, 1)}


def _vectors(recs: list[dict[str, Any]]) -> dict[tuple[str, str], Any]:
    import numpy as np

    return {(r["bundle"], r["file"]): np.frombuffer(base64.b64decode(r["b64"]), "<f4").reshape(
        r["shape"]) for r in recs if r["kind"] == "embed"}


def compare(ref: dict[str, Any], arm: dict[str, Any], bundle: str) -> dict[str, Any]:
    """One row: verify on aarch64 (golden figures) and embeddings vs x86 for one bundle."""
    import numpy as np

    row: dict[str, Any] = {"bundle": bundle, "ended": arm["ended"]}
    ver = next((r for r in arm["records"] if r["kind"] == "verify" and r["bundle"] == bundle), None)
    if ver is None:
        row["verify"] = f"not run ({arm['ended']})"
    else:
        ran = [m for m in (ver["report"] or {}).get("models", []) if m["status"] != "skipped"]
        status = "passed" if ver["rc"] == 0 else "failed"
        row["verify"] = status if ran or ver["rc"] else "skipped"
        row["verify_note"] = ver["stderr"].splitlines()[-1][:200] if ver["stderr"] else ""
        if ran:
            row["golden_max_abs"] = max(m["max_abs_diff"] or 0.0 for m in ran)
            row["golden_min_cos"] = min(m["min_cosine"] or 0.0 for m in ran)
            row["tol"] = [ran[0]["tol_max_abs"], ran[0]["tol_min_cosine"]]
    row["refusals"] = [{k: r[k] for k in ("profile", "rc", "stderr")} for r in arm["records"]
                       if r["kind"] == "refusal" and r["bundle"] == bundle]
    x, y = _vectors(ref["records"]), _vectors(arm["records"])
    keys = [k for k in x if k[0] == bundle]
    diffs, coss, missing, per_file = [], [], [], {}
    for k in keys:
        if k not in y or y[k].shape != x[k].shape or not np.all(np.isfinite(y[k])):
            missing.append(k[1])
            continue
        a, b = x[k].astype(np.float64), y[k].astype(np.float64)
        diffs.append(float(np.max(np.abs(a - b))))
        coss.append(float(np.min(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) *
                                                     np.linalg.norm(b, axis=1) + 1e-300))))
        per_file[k[1]] = {"max_abs": diffs[-1], "min_cos": coss[-1]}
    row["exec_graph"] = next((r["convolutions"] for r in arm["records"]
                              if r["kind"] == "exec_graph" and r["bundle"] == bundle), None)
    row.update(n_files=len(keys), embed_missing=missing, per_file=per_file,
               embed_max_abs=max(diffs) if diffs else None,
               embed_min_cos=min(coss) if coss else None)
    return row


def _acceptable(engine: str, rows: list[dict[str, Any]]) -> tuple[bool, str]:
    def ok(r: dict[str, Any]) -> bool:
        return (r["verify"] == "passed" and not r["embed_missing"] and r["n_files"] > 0
                and (r["embed_min_cos"] or 0.0) >= EMBED_MIN_COSINE)

    if all(ok(r) for r in rows):
        return True, "verified on every emulated CPU"
    if engine in REQUIRED_ENGINES:
        return False, "must verify on aarch64 and does not"
    refused = [f for r in rows for f in r["refusals"]]
    good = refused and all(f["rc"] == 2 and len(f["stderr"].splitlines()) == 1
                           and engine in f["stderr"].lower() for f in refused)
    return bool(good), ("refused by the ARM profiles (exit 2, one line)" if good else
                        "neither verifies nor is refused by every ARM profile")


def run_check(work: Path, cpus: Sequence[str] = CPUS, engines: Sequence[str] = ENGINES,
              a72_items: int | None = None, jobs: int = 2,
              exec_graph: bool = False) -> dict[str, Any]:
    """Build the emulated environment under ``work``, run both sides, compare."""
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    host = _versions()
    engines = [e for e in engines if e != "tflite" or "ai-edge-litert" in host]
    engines = [e for e in engines if e not in ("onnxruntime", "openvino") or e in host]
    media = work / "media"
    make_media(media)
    root = build_rootfs(work, logs)
    timings["rootfs_s"] = time.perf_counter() - t
    t = time.perf_counter()
    site = install_site(work, logs, host)
    timings["wheels_s"] = time.perf_counter() - t
    qemu = shutil.which("qemu-aarch64-static") or "qemu-aarch64-static"
    roots = {cpu: cpu_rootfs(root, cpu) for cpu in cpus}
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "OMP_"))}
    base_env.update(PYTHONDONTWRITEBYTECODE="1", ORT_DISABLE_TELEMETRY="1", OMP_NUM_THREADS="1")
    jobs_list: list[tuple[str, str, list[str], dict[str, str], Path]] = []
    for engine in engines:  # x86 reference first: it is fast
        out = work / f"x86_{engine}.jsonl"
        jobs_list.append(("x86_64", engine, _drive_cmd([sys.executable], out, engine, media, None),
                          {**base_env, "PYTHONPATH": str(REPO)}, out))
    for cpu in cpus:
        py = [qemu, "-cpu", cpu, "-L", str(roots[cpu]), str(roots[cpu] / "usr/bin/python3.11")]
        items = a72_items if cpu == "cortex-a72" else None
        for engine in sorted(engines, key=lambda e: e != "openvino"):  # slowest first
            out = work / f"{cpu}_{engine}.jsonl"
            jobs_list.append((cpu, engine, _drive_cmd(py, out, engine, media, items, exec_graph),
                              {**base_env, "PYTHONPATH": str(site)}, out))
    t = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
        futs = {(c, e): pool.submit(_launch, cmd, env, out, 1200)
                for c, e, cmd, env, out in jobs_list}
        runs = {k: f.result() for k, f in futs.items()}
    timings["runs_s"] = time.perf_counter() - t
    result: dict[str, Any] = {"cpus": list(cpus), "engines": engines, "host_versions": host,
                              "media": [p.name for p in sorted(media.iterdir())], "rows": [],
                              "engine_verdicts": {}, "timings": timings}
    for cpu in cpus:
        vers = next((r["versions"] for r in runs[(cpu, engines[0])]["records"]
                     if r["kind"] == "versions"), {}) if engines else {}
        result.setdefault("guest_versions", vers)
    bundles = sorted({r["bundle"] for k, v in runs.items() if k[0] == "x86_64"
                      for r in v["records"] if r["kind"] == "verify"})
    for engine in engines:
        rows = []
        for cpu in cpus:
            for b in bundles:
                row = {"cpu": cpu, "engine": engine, "seconds": runs[(cpu, engine)]["seconds"],
                       **compare(runs[("x86_64", engine)], runs[(cpu, engine)], b)}
                rows.append(row)
        result["rows"] += rows
        result["engine_verdicts"][engine] = _acceptable(engine, rows)
    result["x86_verify"] = {f"{e}/{r['bundle']}": r["rc"] for (c, e), v in runs.items()
                            if c == "x86_64" for r in v["records"] if r["kind"] == "verify"}
    result["passed"] = bool(engines) and all(ok for ok, _ in result["engine_verdicts"].values())
    return result


def markdown(res: dict[str, Any]) -> str:
    """The table for docs/devices.md."""
    def f(v: Any, fmt: str) -> str:
        return "n/a" if v is None else format(v, fmt)

    lines = ["| engine | CPU (emulated) | bundle | `hai-edge verify` | golden max abs / min cos "
             "| files | vs x86: max abs diff | vs x86: min cosine |",
             "|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        ver = r["verify"] + (f" ({r['verify_note']})" if r["verify"] != "passed"
                             and r.get("verify_note") else "")
        lines.append(f"| {r['engine']} | {r['cpu']} | {r['bundle']} | {ver} | "
                     f"{f(r.get('golden_max_abs'), '.3g')} / {f(r.get('golden_min_cos'), '.5f')} | "
                     f"{r['n_files'] - len(r['embed_missing'])}/{r['n_files']} | "
                     f"{f(r['embed_max_abs'], '.3g')} | {f(r['embed_min_cos'], '.6f')} |")
    return "\n".join(lines)


def _preflight() -> str | None:
    import platform

    if platform.machine() != "x86_64":
        return f"needs an x86_64 host (this is {platform.machine()})"
    missing = [t for t in ("qemu-aarch64-static", "debootstrap", "dpkg-deb") if not shutil.which(t)]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                        "qemu-user-static", "debootstrap"], env=env, check=False,
                       stdout=subprocess.DEVNULL)
        missing = [t for t in missing if not shutil.which(t)]
    if missing:
        return f"missing {', '.join(missing)} (apt-get install qemu-user-static debootstrap)"
    if os.geteuid() != 0:
        return "debootstrap needs root"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--driver", choices=ENGINES, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--media", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--items", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--exec-graph", action="store_true",
                    help="also record OpenVINO's runtime precision per convolution on aarch64")
    ap.add_argument("--cpus", default=",".join(CPUS), help="emulated CPUs (default %(default)s)")
    ap.add_argument("--engines", default=",".join(ENGINES), help="default %(default)s")
    ap.add_argument("--a72-items", type=int, default=None,
                    help="embed only the first N files of each modality on cortex-a72")
    ap.add_argument("--jobs", type=int, default=2, help="parallel engine processes (default 2)")
    ap.add_argument("--workdir", type=Path, help="build here instead of a temporary directory")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--json", type=Path, help="write the full result as JSON")
    ap.add_argument("--markdown", type=Path, help="write the result table as Markdown")
    args = ap.parse_args(argv)
    if args.driver:
        drive(args.driver, args.out, args.media, args.items, args.exec_graph)
        return 0
    why = _preflight()
    if why:
        print(f"aarch64 check: {why}", file=sys.stderr)
        return 2
    work = args.workdir or Path(tempfile.mkdtemp(prefix="hai-edge-aarch64-"))
    t0 = time.perf_counter()
    try:
        res = run_check(work, [c for c in args.cpus.split(",") if c],
                        [e for e in args.engines.split(",") if e], args.a72_items, args.jobs,
                        args.exec_graph)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    res["timings"]["total_s"] = time.perf_counter() - t0
    table = markdown(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    if args.markdown:
        args.markdown.write_text(table + "\n")
    print(table)
    for engine, (ok, why) in res["engine_verdicts"].items():
        print(f"{engine}: {'OK' if ok else 'FAIL'}: {why}")
    print("timings: " + ", ".join(f"{k} {v:.0f}s" for k, v in res["timings"].items()))
    return 0 if res["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
