"""``hai-edge stress`` end to end on generated data (no ../shared): the built-in bundles, a
generated labelled CSV, a couple of shifts; the JSON has every figure with CIs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("scipy")

from hai_edge.cli import main  # noqa: E402
from tests._csv_files import write_csv  # noqa: E402


def _audio_corpus(root: Path, n: int = 10) -> Path:
    import soundfile as sf

    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        t = np.arange(int(16000 * 2.5)) / 16000
        bursts = np.exp(-((t - 0.6) ** 2) / 0.004) + np.exp(-((t - 1.6) ** 2) / 0.004)
        hiss = rng.standard_normal(len(t)) * (0.3 + 0.05 * i)
        tone = np.sin(2 * np.pi * (300 + 40 * i) * t) * (i % 2)
        x = (0.2 * bursts * hiss + 0.05 * tone + 0.003 * rng.standard_normal(len(t)))
        name = f"c{i}.wav"
        sf.write(root / name, x.astype(np.float32), 16000)
        rows.append({"path": name, "patient_id": f"p{i // 2}", "sick": str(i % 2)})
    return write_csv(root / "meta.csv", rows)


def _image_corpus(root: Path, n: int = 8) -> Path:
    from PIL import Image

    rng = np.random.default_rng(1)
    rows = []
    for i in range(n):
        yy, xx = np.mgrid[0:160, 0:160]
        lesion = ((yy - 80) ** 2 + (xx - 80) ** 2 < (20 + 3 * i) ** 2)[..., None]
        skin = np.array([200, 160, 140]) + rng.normal(0, 6, (160, 160, 3))
        img = np.where(lesion, np.array([90 + 10 * (i % 2), 50, 40]), skin)
        name = f"p{i}.png"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(root / name)
        rows.append({"path": name, "patient_id": f"q{i}", "dx": "MEL" if i % 2 else "NEV"})
    return write_csv(root / "meta.csv", rows)


def test_stress_audio_with_teacher(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    data = _audio_corpus(tmp_path)
    out = tmp_path / "stress.json"
    md = tmp_path / "stress.md"
    rc = main(["stress", "cough-demo", "--data", str(data), "--label", "sick", "--positive", "1",
               "--models", "onnx-int8", "--shifts", "telephone,noise", "--severities", "2",
               "--bootstrap", "40", "--quiet", "-o", str(out), "--markdown", str(md)])
    assert rc == 0
    rep = json.loads(out.read_text())
    assert rep["schema"] == "hai-edge/stress/1"
    assert [s["name"] for s in rep["scorers"]] == ["teacher", "onnx-int8"]
    assert rep["data"]["n"] == 10 and rep["data"]["n_positive"] == 5 and rep["data"]["groups"] == 5
    assert "scipy" in rep["versions"] and "libsndfile" in rep["versions"]
    res = rep["results"]
    assert res["reference"] == "teacher"
    head = res["heads"]["covid-demo"]
    assert [(r["shift"], r["severity"]) for r in head["shifts"]] == [("telephone", 2), ("noise", 2)]
    s = head["shifts"][0]["scorers"]["onnx-int8"]
    for key in ("auroc", "auroc_drop", "sensitivity", "score_drift", "flip_rate",
                "excess_auroc_drop", "excess_sensitivity_drop"):
        ci = s[key]
        assert ci["ci_low"] <= ci["value"] + 1e-9 or ci["value"] is None, key
    assert s["verdict"] in ("loses more", "loses less", "no difference")
    fid = {(r["shift"], r["severity"]): r["scorers"] for r in res["fidelity"]}
    clean = fid[("clean", 0)]["onnx-int8"]["centred_cosine_vs_teacher"]
    assert -1 <= clean["ci_low"] <= clean["value"] <= clean["ci_high"] <= 1
    assert "teacher" not in fid[("clean", 0)]  # no cosine of the teacher with itself
    text = md.read_text()
    assert "| telephone | 300-3400 Hz |" in text and "excess drop" in text


def test_stress_image_without_teacher_is_deterministic(tmp_path: Path) -> None:
    data = _image_corpus(tmp_path)
    args = ["stress", "derm-demo", "--data", str(data), "--label", "dx", "--positive", "MEL",
            "--models", "onnx-int8", "--teacher", "none", "--shifts", "jpeg,crop",
            "--severities", "3", "--bootstrap", "30", "--seed", "5", "--quiet"]
    outs = []
    for k in range(2):
        out = tmp_path / f"s{k}.json"
        plots = ["--plots", str(tmp_path / "plots")] if k == 0 else []
        assert main([*args, *plots, "-o", str(out)]) == 0
        outs.append(json.loads(out.read_text())["results"]["heads"])
    assert outs[0] == outs[1]
    pngs = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert pngs == ["derm-demo-crop.png", "derm-demo-jpeg.png"]
    assert (tmp_path / "plots" / pngs[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    jpeg = outs[0]["malignant"]["shifts"][0]
    assert jpeg["shift"] == "jpeg" and jpeg["n"] == 8
    assert "excess_auroc_drop" not in jpeg["scorers"]["onnx-int8"]  # nothing to compare with


def test_stress_user_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = _image_corpus(tmp_path, 4)
    assert main(["stress", "derm-demo", "--data", str(data), "--shifts", "mp3",
                 "--teacher", "none", "-o", str(tmp_path / "x.json")]) == 2
    assert "unknown image shift 'mp3'" in capsys.readouterr().err
    assert main(["stress", "derm-demo", "--data", str(tmp_path / "nope.csv"),
                 "-o", str(tmp_path / "x.json")]) == 2
    assert main(["stress", "derm-demo", "--data", str(data), "--positive", "MEL",
                 "-o", str(tmp_path / "x.json")]) == 2
    assert not (tmp_path / "x.json").exists()
