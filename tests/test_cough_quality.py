"""Cough recording quality checks (runtime.cough_quality) and the cough pipeline's input surface
(analyze_path / analyze_bytes, as the derm pipeline's)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from hai_edge.errors import InputError
from hai_edge.runtime.cough import CoughPipeline
from hai_edge.runtime.cough_quality import RecordingCheckName, assess_recording
from hai_edge.runtime.quality import Flag

from ._kiosk_fixtures import cough_like
from .test_cough import bundles, cough_wav  # noqa: F401 - fixtures

REASONS = {
    "clipping": "the recording is clipped: hold the microphone further from the mouth",
    "level": "the recording is very quiet: check the microphone",
    "duration": "the recording is shorter than one 2 s analysis window",
    "cough_events": "no cough was detected: ask for a strong, deliberate cough",
}


def test_cough_quality_flags_clipping_and_silence() -> None:
    """Moved from test_kiosk_api (the checks were the kiosk's; they are the runtime's now)."""
    loud = np.clip(3 * cough_like(), -1, 1)
    report = assess_recording(loud, 16000, 2, 2.0).to_dict()
    flags = {ch["name"]: ch["flag"] for ch in report["checks"]}
    assert flags == {"clipping": "warn", "level": "pass", "duration": "pass",
                     "cough_events": "pass"}
    quiet = assess_recording(np.zeros(8000, np.float32), 16000, 0, 2.0).to_dict()
    assert quiet["passed"] is False
    assert {ch["name"] for ch in quiet["checks"] if ch["flag"] == "warn"} == {
        "level", "duration", "cough_events"}


def test_report_numbers_and_messages_are_the_kiosks() -> None:
    """Exactly the dict the kiosk stored before the move: names, rounding, thresholds, texts."""
    silent = assess_recording(np.zeros(8000, np.float32), 16000, 0, 2.0).to_dict()
    assert silent == {"passed": False, "checks": [
        {"name": "clipping", "score": 0.0, "threshold": 0.001, "flag": "pass", "reason": ""},
        {"name": "level", "score": -120.0, "threshold": -50.0, "flag": "warn",
         "reason": REASONS["level"]},
        {"name": "duration", "score": 0.5, "threshold": 2.0, "flag": "warn",
         "reason": REASONS["duration"]},
        {"name": "cough_events", "score": 0.0, "threshold": 1, "flag": "warn",
         "reason": REASONS["cough_events"]},
    ]}
    x = np.full(32000, 0.1, np.float32)
    x[:64] = 1.0  # 0.2 % clipped
    report = assess_recording(x, 16000, 3, 2.0)
    d = report.to_dict()
    assert [c["flag"] for c in d["checks"]] == ["warn", "pass", "pass", "pass"]
    assert d["checks"][0]["score"] == 0.002 and d["checks"][0]["reason"] == REASONS["clipping"]
    rms = np.sqrt(np.mean(np.square(x, dtype=np.float64)))
    assert d["checks"][1]["score"] == round(20 * np.log10(rms), 6)
    assert d["checks"][3]["score"] == 3.0
    assert report.check(RecordingCheckName.CLIPPING).flag is Flag.WARN
    assert report.check("level").passed and report.warnings == (report.checks[0],)
    with pytest.raises(ValueError, match="blur"):
        report.check("blur")


def test_analyze_bytes_equals_analyze_path_and_carries_quality(bundles, cough_wav) -> None:
    with CoughPipeline(bundles["heads"]) as pipe:
        a = pipe.analyze_path(cough_wav)
        b = pipe.analyze_bytes(cough_wav.read_bytes(), "upload.wav")
        assert pipe.analyze_file == pipe.analyze_path  # the former name still works
    da, db = a.to_dict(quality=True), b.to_dict(quality=True)
    assert db["input"] == "upload.wav" and "decode" in db["timing_ms"]
    for d in (da, db):
        d.pop("input"), d.pop("timing_ms")
    assert da == db
    assert a.quality is not None and a.quality.passed, da["quality"]
    assert a.quality.check("cough_events").score == len(a.events) == 4
    assert "quality" not in a.to_dict()  # the CLI's JSON is unchanged


def test_quality_is_measured_on_the_recording_as_given(bundles) -> None:
    """Level, clipping and length describe the upload at its own rate, before resampling."""
    import soundfile as sf

    x = np.clip(3 * cough_like(seconds=3.0, rate=44100), -1, 1)
    buf = io.BytesIO()
    sf.write(buf, np.stack([x, x], axis=1), 44100, format="WAV", subtype="FLOAT")
    with CoughPipeline(bundles["heads"]) as pipe:
        res = pipe.analyze_bytes(buf.getvalue(), "stereo.wav")
        with pytest.raises(InputError, match="upload.wav"):
            pipe.analyze_bytes(b"RIFF....WAVEnot really", "upload.wav")
    expected = assess_recording(x, 44100, len(res.events), pipe.spec.window_s).to_dict()
    assert res.to_dict(quality=True)["quality"] == expected
    assert res.quality.check("clipping").flag is Flag.WARN
    assert res.quality.check("duration").score == pytest.approx(3.0)
