"""Microphone capture: MicCapture against a fake sounddevice module (fast, deterministic), and
one end-to-end run through a real-time PulseAudio virtual microphone (skipped without it)."""

from __future__ import annotations

import ctypes.util
import glob
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from hai_edge.cli import main
from hai_edge.errors import HaiEdgeError, MissingDependencyError
from hai_edge.runtime import mic as mic_mod
from hai_edge.runtime.frontends import resample
from hai_edge.runtime.mic import (
    DeviceLostError,
    MicCapture,
    MicError,
    StreamResampler,
    import_sounddevice,
    list_input_devices,
)

from ._onnx_models import make_onnx_bundle
from .test_events import synth_coughs

SR = 16000
REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------ fake sounddevice
class _Flags:
    def __init__(self, overflow: bool) -> None:
        self.input_overflow = overflow

    def __bool__(self) -> bool:
        return self.input_overflow


class _FakeStream:
    """Delivers the fake module's signal block by block from a thread, like PortAudio."""

    def __init__(self, sd: FakeSD, *, device, samplerate, channels, dtype, blocksize, callback,
                 finished_callback) -> None:
        self.sd, self.rate, self.channels, self.block = sd, int(samplerate), channels, blocksize
        self.callback, self.finished_callback = callback, finished_callback
        self.active = False
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._finished = False

    def start(self) -> None:
        self.active = True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sd, pos, n = self.sd, 0, 0
        sig = sd.signal
        while not self._halt.is_set():
            if sd.lose_after_s is not None and pos >= sd.lose_after_s * self.rate:
                if sd.lose_mode == "finished":  # PortAudio ends the stream: device gone
                    self.active = False
                    self._finish()
                return  # "stall": stays active, delivers nothing
            chunk = sig[pos : pos + self.block]
            if chunk.size < self.block:
                chunk = np.concatenate([chunk, np.zeros(self.block - chunk.size, np.float32)])
            data = np.repeat(chunk[:, None], self.channels, axis=1)
            overflow = bool(sd.overflow_every) and n % sd.overflow_every == 0
            self.callback(data, self.block, None, _Flags(overflow))
            pos += self.block
            n += 1
            time.sleep(sd.pace)

    def _finish(self) -> None:
        if not self._finished:
            self._finished = True
            self.finished_callback()

    def stop(self) -> None:
        self._halt.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self.active = False
        self._finish()  # PortAudio calls it after a stop too

    def close(self) -> None:
        self.stop()


class FakeSD:
    """Just enough of the sounddevice API for MicCapture."""

    class PortAudioError(Exception):
        pass

    def __init__(self, signal: np.ndarray | None = None, *, devices: list[dict] | None = None,
                 rates: tuple[int, ...] = (16000,), channels_ok: tuple[int, ...] = (1, 2),
                 lose_after_s: float | None = None, lose_mode: str = "finished",
                 overflow_every: int = 0, pace: float = 0.0003, default: int = 0) -> None:
        self.signal = np.zeros(0, np.float32) if signal is None else signal.astype(np.float32)
        self.devices = devices if devices is not None else [
            {"name": "Fake Mic", "index": 0, "hostapi": 0, "max_input_channels": 2,
             "default_samplerate": float(rates[-1])}]
        self.rates, self.channels_ok = rates, channels_ok
        self.lose_after_s, self.lose_mode = lose_after_s, lose_mode
        self.overflow_every, self.pace = overflow_every, pace
        self.default = SimpleNamespace(device=[default, default])
        self.streams: list[_FakeStream] = []

    def query_devices(self) -> list[dict]:
        return self.devices

    def query_hostapis(self, index: int) -> dict:
        return {"name": "FakeAPI"}

    def check_input_settings(self, device=None, samplerate=None, channels=None, dtype=None) -> None:
        if int(samplerate) not in self.rates or channels not in self.channels_ok:
            raise self.PortAudioError(f"Invalid sample rate or channels ({samplerate}, {channels})")

    def InputStream(self, **kw) -> _FakeStream:  # noqa: N802 (sounddevice's name)
        stream = _FakeStream(self, **kw)
        self.streams.append(stream)
        return stream


def _noise(seconds: float, rate: int = SR, seed: int = 0) -> np.ndarray:
    x = 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate))
    return x.astype(np.float32)


# --------------------------------------------------------------------------------- capture
def test_record_returns_exactly_the_device_audio_and_counts_overflows() -> None:
    sig = _noise(3.0)
    sd = FakeSD(sig, overflow_every=10)
    cap = MicCapture(SR, sd=sd, meter=False)
    got = cap.record(2.0)
    np.testing.assert_array_equal(got, sig[: 2 * SR])
    assert cap.overflows >= 10  # one flagged block in ten, >= 100 blocks delivered
    info = cap.info()
    assert info["overflows"] == cap.overflows and info["device"] == "Fake Mic"
    assert info["device_rate"] == SR and info["captured_s"] == 2.0
    assert info["saved_to"] is None and info["started_unix_s"] <= time.time()
    assert not sd.streams[0].active


def test_unsupported_rate_falls_back_to_the_device_rate_and_resamples() -> None:
    sig48 = _noise(2.0, 48000, seed=1)
    cap = MicCapture(SR, sd=FakeSD(sig48, rates=(48000,)), meter=False)
    got = cap.record(1.0)
    assert cap.device_rate == 48000 and got.size == SR
    np.testing.assert_allclose(got[:15000], resample(sig48, 48000, SR)[:15000], atol=1e-5)


def test_stereo_only_device_is_downmixed() -> None:
    sig = _noise(1.5)
    cap = MicCapture(SR, sd=FakeSD(sig, channels_ok=(2,)), meter=False)
    np.testing.assert_allclose(cap.record(1.0), sig[:SR], atol=1e-7)
    assert cap.channels == 2


@pytest.mark.parametrize("orig,target", [(44100, 16000), (48000, 16000), (8000, 16000),
                                         (22050, 16000), (16000, 22050)])
def test_stream_resampler_equals_resampling_the_whole_signal(orig: int, target: int) -> None:
    rng = np.random.default_rng(orig)
    x = rng.standard_normal(orig).astype(np.float32)
    r = StreamResampler(orig, target)
    parts, i = [], 0
    while i < x.size:
        n = int(rng.integers(1, 3000))
        parts.append(r.push(x[i : i + n]))
        i += n
    parts.append(r.flush())
    out = np.concatenate(parts)
    ref = resample(x, orig, target)
    assert out.size == ref.size
    np.testing.assert_allclose(out, ref, atol=2e-6)


def test_device_lost_keeps_and_saves_what_was_captured(tmp_path: Path) -> None:
    import soundfile as sf

    sig = _noise(3.0, seed=2)
    sd = FakeSD(sig, lose_after_s=0.5)
    cap = MicCapture(SR, sd=sd, save_path=tmp_path / "rec.flac", meter=False)
    with pytest.raises(DeviceLostError) as info:
        cap.record(2.0)
    exc = info.value
    assert isinstance(exc, HaiEdgeError) and exc.exit_code == 2
    assert "stopped unexpectedly" in str(exc) and "kept 0.50 s" in str(exc)
    assert str(tmp_path / "rec.flac") in str(exc)
    np.testing.assert_array_equal(exc.samples, sig[: SR // 2])
    saved, rate = sf.read(tmp_path / "rec.flac", dtype="float32")
    assert rate == SR and saved.size == SR // 2
    np.testing.assert_allclose(saved, sig[: SR // 2], atol=1.0 / 32768 + 1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.flac"]  # no temp files left


def test_a_stream_that_stalls_is_reported_as_lost() -> None:
    sd = FakeSD(_noise(3.0), lose_after_s=0.3, lose_mode="stall")
    cap = MicCapture(SR, sd=sd, meter=False, stall_timeout_s=0.3)
    with pytest.raises(DeviceLostError, match="no audio from the device for 0.3 s"):
        cap.record(2.0)


def test_nothing_is_saved_unless_asked_and_saving_is_atomic(tmp_path, monkeypatch) -> None:
    import soundfile as sf

    monkeypatch.chdir(tmp_path)
    MicCapture(SR, sd=FakeSD(_noise(1.0)), meter=False).record(0.5)
    assert list(tmp_path.iterdir()) == []

    def broken_write(fh, data, *a, **k) -> None:
        fh.write(b"fLaC partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(sf, "write", broken_write)
    cap = MicCapture(SR, sd=FakeSD(_noise(1.0)), save_path=tmp_path / "r.flac", meter=False)
    with pytest.raises(RuntimeError, match="disk full"):
        cap.record(0.5)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temp file
    with pytest.raises(MicError, match="FLAC"):
        MicCapture(SR, save_path=tmp_path / "r.wav")


def test_ctrl_c_ends_a_recording_and_keeps_the_audio(monkeypatch) -> None:
    sig = _noise(3.0)
    sd = FakeSD(sig, pace=0.002)
    cap = MicCapture(SR, sd=sd, meter=False)
    real = cap.read_available
    calls = {"n": 0}

    def interrupting(timeout=0.1):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(timeout)

    monkeypatch.setattr(cap, "read_available", interrupting)
    got = cap.record(10.0)
    assert cap.interrupted and 0 < got.size < 10 * SR
    np.testing.assert_array_equal(got, sig[: got.size])
    assert not sd.streams[0].active


def _devices() -> list[dict]:
    return [
        {"name": "HDMI Out", "index": 0, "hostapi": 0, "max_input_channels": 0,
         "default_samplerate": 48000.0},
        {"name": "USB Mic", "index": 1, "hostapi": 0, "max_input_channels": 1,
         "default_samplerate": 48000.0},
        {"name": "Built-in Microphone", "index": 2, "hostapi": 0, "max_input_channels": 2,
         "default_samplerate": 44100.0},
    ]


def test_device_selection_by_index_name_and_default() -> None:
    def pick(device, default=-1):
        sd = FakeSD(_noise(1.0), devices=_devices(), rates=(16000, 44100, 48000), default=default)
        cap = MicCapture(SR, device, sd=sd, meter=False)
        cap.start()
        cap.stop()
        return cap.device.index

    assert pick("usb") == 1 and pick("2") == 2 and pick(2) == 2
    assert pick("built-in microphone") == 2
    assert pick(None) == 1  # no default input: the first input device
    assert pick(None, default=2) == 2
    with pytest.raises(MicError, match="several input devices"):
        pick("mic")
    with pytest.raises(MicError, match=r"no input device matches 'nope'.*'USB Mic'"):
        pick("nope")
    with pytest.raises(MicError, match="0 is not an input device"):
        pick(0)
    assert [d.index for d in list_input_devices(FakeSD(devices=_devices()))] == [1, 2]


def test_no_input_device_is_a_one_line_error(monkeypatch, capsys, tmp_path) -> None:
    sd = FakeSD(devices=[{"name": "HDMI Out", "index": 0, "max_input_channels": 0}])
    with pytest.raises(MicError, match="no audio input device found"):
        MicCapture(SR, sd=sd).start()
    monkeypatch.setattr(mic_mod, "import_sounddevice", lambda: sd)
    bundle = make_onnx_bundle(tmp_path / "b", "audio")
    assert main(["cough", "--mic", "-b", str(bundle), "--seconds", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no audio input device found" in err
    capsys.readouterr()
    assert main(["cough", "--list-devices"]) == 0  # listing none is an answer, not an error
    listed = capsys.readouterr()
    assert listed.out == "" and "no audio input devices" in listed.err
    monkeypatch.setattr(mic_mod, "import_sounddevice", lambda: FakeSD(devices=_devices()))
    assert main(["cough", "--list-devices"]) == 0
    assert "1: USB Mic (FakeAPI, 1 in, 48000 Hz)" in capsys.readouterr().out


def test_missing_sounddevice_or_portaudio_says_what_to_install(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    with pytest.raises(MissingDependencyError, match=r"hai-edge\[mic\]"):
        import_sounddevice()
    # sounddevice present but libportaudio missing: its import raises OSError
    (tmp_path / "sounddevice.py").write_text("raise OSError('PortAudio library not found')\n")
    monkeypatch.delitem(sys.modules, "sounddevice")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MicError, match="PortAudio library not found: apt-get install libport"):
        import_sounddevice()


def test_level_meter_only_on_a_terminal_unless_forced() -> None:
    out = io.StringIO()
    MicCapture(SR, sd=FakeSD(_noise(1.0), pace=0.003), meter_stream=out).record(0.5)
    assert out.getvalue() == ""  # StringIO is not a TTY
    MicCapture(SR, sd=FakeSD(_noise(1.0), pace=0.003), meter=True, meter_stream=out).record(0.5)
    text = out.getvalue()
    assert "dBFS" in text and "overflows 0" in text and text.endswith("\n")


# ----------------------------------------------------------------------------------- live
@pytest.fixture(scope="module")
def head_bundle(tmp_path_factory) -> Path:
    from hai_edge.bundle import Bundle
    from hai_edge.heads.bundle_heads import add_head_to_bundle
    from hai_edge.runtime.heads import Head

    root = tmp_path_factory.mktemp("micb")
    plain = make_onnx_bundle(root / "plain", "audio", dim=16)
    rng = np.random.default_rng(2)
    head = Head(name="covid", weights=rng.standard_normal(16), bias=0.0, mean=np.zeros(16),
                scale=np.ones(16), threshold=0.5)
    add_head_to_bundle(Bundle.load(plain), head, str(root / "b"))
    return root / "b"


def test_live_result_equals_offline_analysis_of_the_capture(head_bundle) -> None:
    from hai_edge.runtime.cough import CoughPipeline

    times = [0.5, 1.7, 3.4, 5.6]
    sig = synth_coughs(times, 8.0, noise_db=-50, seed=5)
    windows_live = []
    with CoughPipeline(head_bundle) as pipe:
        cap = MicCapture(SR, sd=FakeSD(sig, pace=0.001), meter=False)
        live = pipe.run_live(cap, 6.0, on_window=windows_live.append)
        offline = pipe.analyze(cap.captured(), SR, "offline")
    assert live.input == "mic:Fake Mic" and live.duration_s == 6.0
    assert live.events == offline.events and len(live.events) == 4
    assert [(w.start_s, w.events) for w in live.windows] == [
        (w.start_s, w.events) for w in offline.windows]
    for a, b in zip(live.windows, offline.windows):
        assert a.scores["covid"] == pytest.approx(b.scores["covid"], abs=1e-6)
    assert len(windows_live) == len(live.windows)  # each window was reported as it completed
    assert live.timing_ms["latency_event_max"] <= 500.0
    assert live.capture["captured_s"] == 6.0 and live.capture["overflows"] == 0
    assert live.to_dict()["capture"]["device"] == "Fake Mic"


def test_cli_mic_device_lost_prints_the_partial_result_then_fails(head_bundle, tmp_path,
                                                                   monkeypatch, capsys) -> None:
    import soundfile as sf

    sig = synth_coughs([0.6, 1.8], 5.0, noise_db=-50, seed=6)
    monkeypatch.setattr(mic_mod, "import_sounddevice",
                        lambda: FakeSD(sig, lose_after_s=3.0, pace=0.001))
    rc = main(["cough", "--mic", "--seconds", "5", "--json", "-b", str(head_bundle),
               "--save", str(tmp_path / "rec.flac")])
    out, err = capsys.readouterr()
    assert rc == 2
    rec = json.loads(out)
    assert [round(e["start_s"], 1) for e in rec["events"]] == [0.6, 1.8]
    assert rec["capture"]["saved_to"] == str(tmp_path / "rec.flac")
    assert rec["duration_s"] == 3.0 and rec["scores"]["covid"]["count"] == 2
    assert "stopped unexpectedly" in err and "kept 3.00 s" in err
    assert sf.info(str(tmp_path / "rec.flac")).frames == 3 * SR


def test_cli_mic_json_and_save(head_bundle, tmp_path, monkeypatch, capsys) -> None:
    sig = synth_coughs([0.7], 2.0, noise_db=-50, seed=7)
    monkeypatch.setattr(mic_mod, "import_sounddevice", lambda: FakeSD(sig, pace=0.001))
    assert main(["cough", "--mic", "--seconds", "2", "--json", "-b", str(head_bundle)]) == 0
    out, err = capsys.readouterr()
    rec = json.loads(out)
    assert rec["input"] == "mic:Fake Mic" and len(rec["events"]) == 1
    assert rec["capture"]["saved_to"] is None and "recording 2 s from 'Fake Mic'" in err
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ real-time end to end
def _missing_virtual_mic_stack() -> list[str]:
    missing = [t for t in ("pulseaudio", "pactl", "pacat") if shutil.which(t) is None]
    if not glob.glob("/usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so") and not glob.glob(
            "/usr/lib/alsa-lib/libasound_module_pcm_pulse.so"):
        missing.append("libasound2-plugins")
    if ctypes.util.find_library("portaudio") is None:
        missing.append("libportaudio2")
    if importlib.util.find_spec("sounddevice") is None:
        missing.append("sounddevice")
    if not (REPO / ".ci" / "virtual_mic.sh").is_file():
        missing.append(".ci/virtual_mic.sh")
    return missing


@pytest.fixture(scope="module")
def virtual_mic(tmp_path_factory):
    missing = _missing_virtual_mic_stack()
    if missing:
        pytest.skip("real-time virtual mic needs " + ", ".join(missing) +
                    " (apt-get install libportaudio2 pulseaudio pulseaudio-utils "
                    "libasound2-plugins)")
    vdir = tmp_path_factory.mktemp("vmic")
    env = {**os.environ, "VMIC_DIR": str(vdir)}
    script = str(REPO / ".ci" / "virtual_mic.sh")
    proc = subprocess.run([script, "start"], env=env, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        subprocess.run([script, "stop"], env=env, timeout=30)
        pytest.fail(f"virtual mic did not start: {proc.stderr.strip()}")
    for line in proc.stdout.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    try:
        yield env
    finally:
        subprocess.run([script, "stop"], env=env, timeout=30)


def test_end_to_end_cough_detected_from_a_real_time_virtual_mic(virtual_mic, head_bundle,
                                                                tmp_path) -> None:
    """Play a synthetic cough file into the PulseAudio null sink with pacat while
    `hai-edge cough --mic` records its monitor: each cough must be found within 0.25 s of
    (playback start + its offset in the file).

    The playback start is measured in the recording itself: the file begins with -70 dBFS
    noise (far below the detector's level gate) and the monitor is digital silence until pacat
    plays, so the first non-zero sample of the saved FLAC is when playback started. Separately,
    the launch-to-audible delay (pacat start-up + PulseAudio latency, against the capture's
    estimate of its first sample's wall time) is checked to be small and non-negative."""
    import soundfile as sf

    offsets = [1.0, 2.3]
    x = synth_coughs(offsets, 3.2, noise_db=-70, seed=11)
    raw = tmp_path / "play.raw"
    raw.write_bytes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    flac = tmp_path / "rec.flac"
    cmd = [sys.executable, "-m", "hai_edge.cli", "cough", "--mic", "--device", "pulse",
           "--seconds", "5", "--json", "--save", str(flac), "-b", str(head_bundle)]
    rec_proc = subprocess.Popen(cmd, env=virtual_mic, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        line = rec_proc.stderr.readline()  # printed once the stream runs
        assert "recording" in line, line + rec_proc.stderr.read()
        time.sleep(0.5)
        t_launch = time.time()
        subprocess.run(["pacat", "--playback", "--device=hai_vmic", "--format=s16le",
                        "--rate=16000", "--channels=1", "--latency-msec=100", str(raw)],
                       env=virtual_mic, check=True, timeout=30)
        out, err = rec_proc.communicate(timeout=60)
    finally:
        if rec_proc.poll() is None:
            rec_proc.kill()
    assert rec_proc.returncode == 0, err
    rec = json.loads(out)
    y, rate = sf.read(flac, dtype="float32")
    assert rate == SR and abs(y.size / SR - 5.0) < 0.01
    nonzero = np.flatnonzero(np.abs(y) > 0)
    assert nonzero.size, "nothing was captured from the virtual mic"
    play_start = nonzero[0] / SR
    launch_in_rec = t_launch - rec["capture"]["started_unix_s"]
    starts = [e["start_s"] for e in rec["events"]]
    errors = [float(min(abs(s - (play_start + c)) for s in starts)) if starts else np.inf
              for c in offsets]
    print(f"\nvirtual mic: playback started at {play_start:.3f} s of the recording, "
          f"{play_start - launch_in_rec:+.3f} s after pacat was launched; events at "
          f"{[round(s, 3) for s in starts]}; timing errors {[round(e, 3) for e in errors]} s; "
          f"overflows {rec['capture']['overflows']}")
    assert max(errors) <= 0.25 and len(starts) == len(offsets)
    assert -0.05 <= play_start - launch_in_rec <= 1.5
