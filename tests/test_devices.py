"""Device profiles (data files, validated) and the benchmark harness."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hai_edge.bundle import ModelFormat, Precision
from hai_edge.devices import DeviceProfile, load_profile, load_profiles
from hai_edge.devices.profiles import QUANT_PRESETS, ProfileError

REQUIRED = {"x86-avx2-kiosk", "x86-avx512-vnni", "rpi-arm64", "android-arm64-mid", "browser-wasm"}


def _valid() -> dict:
    return json.loads(json.dumps(load_profiles()["rpi-arm64"].to_dict()))


def test_shipped_profiles_load_and_cover_the_targets() -> None:
    profiles = load_profiles()
    assert REQUIRED <= set(profiles)
    for p in profiles.values():
        assert p.threads >= 1 and p.memory_budget_mb > 0 and p.quant_preset in QUANT_PRESETS
        assert p.budget_for("audio") > 0 and p.budget_for("image") > 0
        assert p.preferred[0].precision is Precision.INT8
        assert DeviceProfile.from_dict(p.to_dict()) == p  # round trip
    assert load_profiles()["browser-wasm"].formats()[0] == "onnx"
    assert load_profiles()["rpi-arm64"].preferred[0].format is ModelFormat.TFLITE


@pytest.mark.parametrize("change, message", [
    ({"preferred": [{"format": "onnx", "engine": "openvino", "precision": "int8"}]},
     "does not run onnx"),
    ({"preferred": [{"format": "onnx", "engine": "coreml"}]}, "engine 'coreml'"),
    ({"quant_preset": "x86_s4"}, "quant_preset"),
    ({"threads": 0}, "threads"),
    ({"latency_budget_ms": {"audio_window": 10}}, "latency_budget_ms"),
    ({"memory_budget_mb": -1}, "memory_budget_mb"),
    ({"surprise": 1}, "unknown field"),
])
def test_invalid_profiles_are_refused(change: dict, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        DeviceProfile.from_dict({**_valid(), **change}, "p.json")
    missing = _valid()
    del missing["isa"]
    with pytest.raises(ProfileError, match="missing field 'isa'"):
        DeviceProfile.from_dict(missing)


def test_profile_lookup(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="did you mean rpi-arm64"):
        load_profile("rpi-arm6")
    f = tmp_path / "mine.json"
    f.write_text(json.dumps({**_valid(), "id": "mine"}))
    assert load_profile(str(f)).id == "mine"
    (tmp_path / "other.json").write_text(json.dumps(_valid()))
    with pytest.raises(ProfileError, match="does not match the file name"):
        load_profiles(tmp_path)


def test_devices_command(capsys: pytest.CaptureFixture[str]) -> None:
    from hai_edge.cli import main

    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert all(i in out for i in REQUIRED)
    assert main(["devices", "--json"]) == 0
    assert {p["id"] for p in json.loads(capsys.readouterr().out)} >= REQUIRED


@pytest.fixture(scope="module")
def wave_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ._quant_fixtures import get_wave_bundle

    return get_wave_bundle(tmp_path_factory)


def test_benchmark_measures_in_fresh_processes(wave_bundle: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from hai_edge.bundle import Bundle
    from hai_edge.cli import main
    from hai_edge.devices.bench import render_table, run_benchmark

    bundle = Bundle.load(wave_bundle)
    prof = load_profile("rpi-arm64")
    res = run_benchmark(bundle, prof, runs=3, warmup=1, threads=2,
                        models=["tflite-int8", "onnx-fp32"])
    assert [r.model for r in res] == ["onnx-fp32", "tflite-int8"]
    for r in res:
        assert r.threads == (1, 2) and all(t > 0 for t in r.p50_ms + r.p95_ms)
        # the fresh worker's own peak, not this (torch-laden) process's size
        assert 10 < r.peak_rss_mb < 400
        assert r.budget_ms == 200 and r.projected_p95_ms == pytest.approx(min(r.p95_ms) * 4.0)
        assert r.status in ("PASS", "FAIL") and r.size_mb > 0
    assert res[1].preferred_rank == 0 and res[1].fidelity.startswith("cos ")
    table = render_table(bundle, res, prof)
    assert "Peak RSS MB" in table and "tflite-int8" in table and "Proj p95 ms" in table
    tight = DeviceProfile.from_dict({**prof.to_dict(), "memory_budget_mb": 1})
    assert run_benchmark(bundle, tight, runs=1, warmup=0, models=["onnx-int8"])[0].status == "FAIL"
    assert main(["benchmark", str(wave_bundle), "--runs", "2", "--warmup", "0", "--models",
                 "onnx-int8", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["results"][0]["model"] == "onnx-int8" and doc["profile"] is None
    assert main(["benchmark", str(wave_bundle), "--models", "nope"]) == 2
