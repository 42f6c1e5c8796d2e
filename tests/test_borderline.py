"""Heads' borderline band (issue #18): no verdict within ``threshold ± borderline``, in the head
file and manifest entry, the cough and derm pipelines, their JSON and text, golden verdict
checks, the kiosk export and the apps' shared plain-language wording."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from hai_edge.bundle import Bundle, HeadEntry
from hai_edge.errors import BundleError
from hai_edge.cli import main
from hai_edge.heads.bundle_heads import add_head_to_bundle
from hai_edge.runtime.heads import (Calibration, CalibrationKind, Head, Verdict, load_head_file,
                                    load_heads, verdict_for)

from ._onnx_models import make_onnx_bundle
from .test_events import synth_coughs

SR = 16000
DIM = 16
UI_SHARED = Path(__file__).resolve().parents[1] / "hai_edge" / "apps" / "ui_shared"


def _head(name: str = "covid", threshold: float = 0.5, borderline: float = 0.0,
          seed: int = 5) -> Head:
    rng = np.random.default_rng(seed)
    return Head(name=name, weights=rng.standard_normal(DIM), bias=0.1, mean=np.zeros(DIM),
                scale=np.ones(DIM), threshold=threshold,
                calibration=Calibration(CalibrationKind.PLATT, a=0.8, b=0.1),
                labels=("negative", "positive"), borderline=borderline)


# ------------------------------------------------------------------------ verdict_for, Head
@pytest.mark.parametrize("score,band,want", [
    (0.70, 0.0, Verdict.POSITIVE), (0.6999, 0.0, Verdict.NEGATIVE),  # band 0: score >= threshold
    (0.71, 0.01, Verdict.POSITIVE), (0.7099, 0.01, Verdict.BORDERLINE),
    (0.70, 0.01, Verdict.BORDERLINE), (0.69, 0.01, Verdict.BORDERLINE),  # the lower edge is in
    (0.6899, 0.01, Verdict.NEGATIVE), (0.0, 0.01, Verdict.NEGATIVE), (1.0, 0.2, Verdict.POSITIVE),
])
def test_verdict_for_edges(score: float, band: float, want: Verdict) -> None:
    assert verdict_for(score, 0.7, band) is want
    assert _head(threshold=0.7, borderline=band).verdict(score) is want


def test_head_file_and_manifest_entry_carry_the_band(tmp_path: Path) -> None:
    head = _head(borderline=0.03)
    d = head.to_dict()
    assert d["borderline"] == 0.03
    head.save(tmp_path / "h.json")
    assert load_head_file(tmp_path / "h.json").borderline == 0.03
    entry = head.manifest_entry("heads/covid.json")
    assert entry["borderline"] == 0.03
    parsed = HeadEntry.from_dict(entry)
    assert parsed.borderline == 0.03 and parsed.to_dict() == entry
    assert parsed.file_summary()["borderline"] == 0.03
    # no band: nothing written, readers default to 0 (old files and manifests unchanged)
    plain = _head()
    assert "borderline" not in plain.to_dict()
    assert "borderline" not in plain.manifest_entry("heads/covid.json")
    assert HeadEntry.from_dict(plain.manifest_entry("heads/covid.json")).borderline is None


@pytest.mark.parametrize("value", [-0.01, 0.5, 0.7, float("nan"), "0.1", True])
def test_bad_bands_are_refused_in_file_and_manifest(value, tmp_path: Path) -> None:
    d = _head().to_dict()
    d["borderline"] = value
    (tmp_path / "h.json").write_text(json.dumps(d))
    with pytest.raises(BundleError, match="borderline"):
        load_head_file(tmp_path / "h.json")
    entry = _head().manifest_entry("heads/covid.json")
    entry["borderline"] = value
    with pytest.raises(BundleError, match="borderline"):
        HeadEntry.from_dict(entry)


@pytest.fixture(scope="module")
def audio_plain(tmp_path_factory) -> Path:
    return make_onnx_bundle(tmp_path_factory.mktemp("plain") / "b", "audio", dim=DIM)


def _with_head(plain: Path, head: Head, dest: Path) -> Path:
    add_head_to_bundle(Bundle.load(plain), head, str(dest))
    return dest


def test_file_and_manifest_must_agree_on_the_band(audio_plain, tmp_path: Path) -> None:
    b = _with_head(audio_plain, _head(borderline=0.02), tmp_path / "b")
    [loaded] = load_heads(Bundle.load(b))
    assert loaded.borderline == 0.02
    manifest = json.loads((b / "manifest.json").read_text())
    for edit in (lambda h: h.update(borderline=0.05), lambda h: h.pop("borderline")):
        m = json.loads(json.dumps(manifest))
        edit(m["heads"][0])
        (b / "manifest.json").write_text(json.dumps(m))
        with pytest.raises(BundleError, match="borderline differs"):
            load_heads(Bundle.load(b))
    # a manifest that adds a band its file does not have is refused as well; an explicit 0 is
    # the same as none
    b2 = _with_head(audio_plain, _head(), tmp_path / "b2")
    m = json.loads((b2 / "manifest.json").read_text())
    for value, ok in ((0.04, False), (0.0, True)):
        m["heads"][0]["borderline"] = value
        (b2 / "manifest.json").write_text(json.dumps(m))
        if ok:
            assert load_heads(Bundle.load(b2))[0].borderline == 0.0
        else:
            with pytest.raises(BundleError, match="borderline differs"):
                load_heads(Bundle.load(b2))


# --------------------------------------------------------------------------- cough pipeline
@pytest.fixture(scope="module")
def cough_wav(tmp_path_factory) -> Path:
    import soundfile as sf

    path = tmp_path_factory.mktemp("wav") / "coughs.wav"
    sf.write(path, synth_coughs([0.6, 2.4, 5.0], 6.5, noise_db=-50, seed=3), SR, subtype="FLOAT")
    return path


@pytest.fixture(scope="module")
def cough_mean(audio_plain, cough_wav, tmp_path_factory) -> float:
    from hai_edge.runtime.cough import CoughPipeline

    b = _with_head(audio_plain, _head(), tmp_path_factory.mktemp("probe") / "b")
    with CoughPipeline(str(b)) as pipe:
        return pipe.analyze_path(cough_wav).scores["covid"].mean


def test_cough_scores_inside_the_band_get_no_verdict(audio_plain, cough_wav, cough_mean,
                                                     tmp_path: Path, capsys) -> None:
    from hai_edge.runtime.cough import CoughPipeline

    thr = cough_mean - 0.005  # just below the score: positive without a band
    cases = {"old": (0.0, Verdict.POSITIVE), "band": (0.01, Verdict.BORDERLINE)}
    for key, (band, want) in cases.items():
        b = _with_head(audio_plain, _head(threshold=thr, borderline=band), tmp_path / key)
        with CoughPipeline(str(b)) as pipe:
            s = pipe.analyze_path(cough_wav).scores["covid"]
        assert s.verdict is want and s.band == band
        assert s.positive is (want is Verdict.POSITIVE) and s.borderline is (band > 0)
        assert s.label == ("positive" if band == 0 else "borderline")
        d = s.to_dict()
        assert d["verdict"] == want.value and d["band"] == band
        assert d["positive"] is (band == 0) and d["borderline"] is (band > 0)
    # the JSON line and the text line of `hai-edge cough`
    b = str(tmp_path / "band")
    assert main(["cough", "--bundle", b, str(cough_wav), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)["scores"]["covid"]
    assert list(s) == ["mean", "max", "count", "threshold", "band", "verdict", "positive",
                       "borderline", "label"]
    assert (s["verdict"], s["positive"], s["borderline"], s["label"], s["band"]) == \
        ("borderline", False, True, "borderline", 0.01)
    assert main(["cough", "--bundle", b, str(cough_wav)]) == 0
    out = capsys.readouterr().out
    assert f"-> borderline (too close to the threshold {thr:.3f} to call: within +/-0.010" in out
    # clear of the band on either side: a definite verdict with the head's label
    b = _with_head(audio_plain, _head(threshold=cough_mean + 0.03, borderline=0.01),
                   tmp_path / "neg")
    assert main(["cough", "--bundle", str(b), str(cough_wav)]) == 0
    assert "-> negative" in capsys.readouterr().out


# ---------------------------------------------------------------------------- derm pipeline
def test_derm_scores_inside_the_band_get_no_verdict(tmp_path: Path, capsys) -> None:
    pytest.importorskip("PIL.Image")
    from hai_edge.runtime.derm import DermPipeline

    from .test_derm import _jpeg, skin_photo

    plain = make_onnx_bundle(tmp_path / "plain", "image", DIM)
    photo = _jpeg(tmp_path / "a.jpg", skin_photo())
    head = dataclasses.replace(_head(name="lesion"), labels=("benign", "suspicious"))
    b0 = _with_head(plain, head, tmp_path / "b0")
    with DermPipeline(str(b0)) as pipe:
        p = pipe.analyze_path(photo)[0].scores["lesion"].probability
    thr = min(max(p + 0.004, 0.0), 1.0)  # just above the score: negative without a band
    for key, band, want, label in (("old", 0.0, Verdict.NEGATIVE, "benign"),
                                   ("band", 0.01, Verdict.BORDERLINE, "borderline")):
        b = _with_head(plain, dataclasses.replace(head, threshold=thr, borderline=band),
                       tmp_path / key)
        with DermPipeline(str(b)) as pipe:
            s = pipe.analyze_path(photo)[0].scores["lesion"]
        assert s.verdict is want and s.label == label and s.positive is False
        assert s.to_dict() == {"probability": round(p, 6), "threshold": round(thr, 6),
                               "band": band, "verdict": want.value, "positive": False,
                               "borderline": band > 0, "label": label}
    assert main(["derm", "--bundle", str(tmp_path / "band"), str(photo)]) == 0
    assert f"(threshold {thr:.3f}) -> borderline (too close to the threshold" in \
        capsys.readouterr().out


# ------------------------------------------------------------------------ golden verdicts
def test_golden_verdict_flips_are_between_definite_verdicts() -> None:
    from hai_edge.runtime.heads import verdict_flips
    from hai_edge.runtime.verify import _head_diff

    a, b = [0.8, 0.8, 0.72, 0.5, 0.2], [0.2, 0.72, 0.2, 0.9, 0.69]
    assert verdict_flips(a, b, 0.7, 0.05).tolist() == [True, False, False, True, False]
    assert verdict_flips(a, b, 0.7).tolist() == [True, False, True, True, False]

    def head(band: float) -> Head:  # p = z on [0, 1]: the embedding is the score
        return Head("h", np.ones(1), 0.0, np.zeros(1), np.ones(1), threshold=0.5,
                    calibration=Calibration(CalibrationKind.ISOTONIC, x=(0.0, 1.0),
                                            y=(0.0, 1.0)), borderline=band)

    def note(band: float, exp: list[float], got: list[float]) -> str:
        sec = {"scores": {"m": exp}, "tolerance": 0.02}
        return _head_diff([(head(band), sec)], "m", np.asarray(got))[2]

    assert "1 verdict(s) changed" in note(0.0, [0.6, 0.3], [0.49, 0.3])
    assert "verdict" not in note(0.05, [0.6, 0.3], [0.53, 0.3])  # into the band: no flip
    assert "score moved" in note(0.05, [0.6, 0.3], [0.53, 0.3])  # ... but it moved too far
    assert "1 verdict(s) changed" in note(0.05, [0.6, 0.3], [0.44, 0.3])  # across the band
    assert "verdict" not in note(0.05, [0.53], [0.47])  # borderline either way
    assert "2 verdict(s) changed" in note(0.0, [0.53, 0.2], [0.47, 0.6])  # the old rule at 0


# ----------------------------------------------------------------------------- kiosk export
def test_kiosk_export_rows_carry_band_and_verdict() -> None:
    from hai_edge.apps.kiosk.export import CSV_COLUMNS, _score_rows

    assert CSV_COLUMNS.index("band") < CSV_COLUMNS.index("verdict") < CSV_COLUMNS.index("label")
    new = {"kind": "cough", "scores": {"covid": {
        "mean": 0.695, "max": 0.8, "count": 2, "threshold": 0.7, "band": 0.01,
        "verdict": "borderline", "positive": False, "borderline": True, "label": "borderline"}}}
    old = {"kind": "photo", "frames": [{"scores": {"lesion": {  # stored before the band
        "probability": 0.9, "threshold": 0.5, "positive": True, "label": "suspicious"}}}]}
    assert _score_rows(new) == [("covid", 0.695, 0.7, 0.01, "borderline", False, "borderline")]
    assert _score_rows(old) == [("lesion", 0.9, 0.5, 0.0, "positive", True, "suspicious")]
    [row] = _score_rows({"kind": "cough", "scores": {"covid": None},
                         "withheld": {"covid": "no cough detected"}})
    assert row[0] == "covid" and math.isnan(row[1]) and row[4:] == ("", False,
                                                                   "not scored: no cough detected")


# -------------------------------------------------------------- the apps' plain words (node)
_PLAIN = r"""
import { readFileSync } from 'node:fs';
const [dir] = process.argv.slice(2);
const cat = JSON.parse(readFileSync(dir + '/messages.json', 'utf8'));
globalThis.navigator = { languages: ['en'] };
globalThis.document = { documentElement: {}, querySelectorAll: () => [] };
globalThis.fetch = async () => ({ json: async () => cat });
const P = await import(new URL('file://' + dir + '/plain.js'));
await P.loadMessages('messages.json');
const result = JSON.parse(readFileSync(0, 'utf8'));
const out = {};
for (const kind of ['cough', 'photo']) out[kind] = P.findings(result, (s) => s.mean, kind);
process.stdout.write(JSON.stringify(out));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_apps_say_too_close_to_call_in_plain_words(tmp_path: Path) -> None:
    from hai_edge.apps.messages import message

    driver = tmp_path / "plain.mjs"
    driver.write_text(_PLAIN)
    result = {"scores": {
        "covid": {"mean": 0.695, "threshold": 0.7, "band": 0.01, "verdict": "borderline",
                  "positive": False, "borderline": True, "label": "borderline"},
        "tb": {"mean": 0.9, "threshold": 0.5, "band": 0.01, "verdict": "positive",
               "positive": True, "borderline": False, "label": "positive"},
        "old": {"mean": 0.1, "threshold": 0.5, "positive": False, "label": "negative"}},
        "withheld": {}}
    proc = subprocess.run([shutil.which("node"), str(driver), str(UI_SHARED)],
                          input=json.dumps(result), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout)
    covid, tb, old = got["cough"]
    assert covid == {"text": "covid: too close to call", "cls": "borderline",
                     "sure": message("result.borderline.why"),
                     "next": message("result.borderline.next.cough")}
    assert "devices can disagree" in covid["sure"]
    assert "Record again, or rely on clinical judgement" in covid["next"]
    assert "Retake the photo, or rely on clinical judgement" in got["photo"][0]["next"]
    assert tb["cls"] == "pos" and tb["text"] == "tb: positive" and "next" not in tb
    assert old["cls"] == "neg" and old["text"] == "old: negative"  # stored before the band
