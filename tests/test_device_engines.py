"""Device profiles record where each engine was verified and refuse the engines they exclude;
OpenVINO's Arm configuration passes the golden vectors (issue #19)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hai_edge.devices import DeviceProfile, load_profile, load_profiles
from hai_edge.devices.profiles import EngineExcludedError, ProfileError, VerifiedOn

EMULATED_ARM = (VerifiedOn("aarch64", "cortex-a76", True),
                VerifiedOn("aarch64", "cortex-a72", True))


def _rpi() -> dict[str, Any]:
    return json.loads(json.dumps(load_profile("rpi-arm64").to_dict()))


WHY = "fails the golden vectors here"


@pytest.fixture()
def no_ov(tmp_path: Path) -> str:
    """An Arm profile file that excludes OpenVINO (the shipped ones no longer need to)."""
    f = tmp_path / "arm-no-ov.json"
    f.write_text(json.dumps({**_rpi(), "id": "arm-no-ov", "excluded_engines": {"openvino": WHY}}))
    return str(f)


def test_arm_profiles_record_the_emulated_arm_verification() -> None:
    arm = [p for p in load_profiles().values() if "aarch64" in p.isa]
    assert {p.id for p in arm} >= {"rpi-arm64", "android-arm64-mid"}
    for p in arm:
        # every engine passed `hai-edge verify` on Pi 5 and Pi 4 CPUs (scripts/aarch64_check.py)
        assert set(p.verified_on) == {"onnxruntime", "tflite", "openvino"}
        assert all(v == EMULATED_ARM for v in p.verified_on.values()), p.id
        assert not p.excluded_engines
    for p in load_profiles().values():
        assert p.verified_on and all(p.verified_on.values()), p.id
        if "x86_64" in p.isa:
            assert all(VerifiedOn("x86_64") in v for v in p.verified_on.values())
        assert DeviceProfile.from_dict(p.to_dict()) == p  # round trip with the new fields


def test_openvino_switches_off_its_int8_fallback_on_arm_only() -> None:
    from hai_edge.runtime.backends import openvino_config

    assert openvino_config(2, "aarch64")["LP_TRANSFORMS_MODE"] is False
    assert openvino_config(None, "arm64")["INFERENCE_PRECISION_HINT"] == "f32"
    assert "LP_TRANSFORMS_MODE" not in openvino_config(2, "x86_64")


@pytest.mark.parametrize("name", ["cough-demo", "derm-demo"])
def test_the_arm_openvino_configuration_passes_the_golden_vectors(name: str) -> None:
    """Runs the Arm configuration here (x86): proves the installed OpenVINO still accepts the
    property and that f32 quantize/dequantize stays within the bundle's golden tolerance."""
    pytest.importorskip("openvino")
    import numpy as np

    from hai_edge.bundle import Bundle
    from hai_edge.runtime.backends import openvino_config
    from hai_edge.runtime.verify import decode_array, golden_model_inputs, load_golden
    from hai_edge.tools import import_openvino

    ov = import_openvino()
    bundle = Bundle.load(name)
    entry = next(m for m in bundle.manifest.models if m.format.value == "openvino")
    doc = load_golden(bundle)
    x, _ = golden_model_inputs(bundle, doc)
    exp = doc["models"][entry.id]
    want = decode_array(exp["outputs"]).astype(np.float64)
    compiled = ov.Core().compile_model(str(bundle.path_of(entry.main_file)), "CPU",
                                       openvino_config(1, "aarch64"))
    precisions = {op.get_rt_info()["runtimePrecision"].astype(str)
                  for op in compiled.get_runtime_model().get_ordered_ops()
                  if op.get_rt_info()["layerType"].astype(str) == "Convolution"}
    assert precisions == {"f32"}  # no int8 kernels left to fall back
    got = compiled({compiled.inputs[0]: x})[compiled.outputs[0]].reshape(want.shape)
    cos = (got * want).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    assert np.abs(got - want).max() <= exp["tolerance"]["max_abs"]
    assert cos.min() >= exp["tolerance"]["min_cosine"]


@pytest.mark.parametrize("change, message", [
    ({"verified_on": {"coreml": []}}, "engine 'coreml'"),
    ({"verified_on": {"tflite": [{"cpu": "cortex-a76"}]}}, "arch, cpu, emulated"),
    ({"verified_on": {"tflite": [{"arch": "aarch64", "emulated": "yes"}]}}, "arch, cpu, emulated"),
    ({"verified_on": ["aarch64"]}, "verified_on must be an object"),
    ({"excluded_engines": {"openvino": ""}}, "one-line reason"),
    ({"excluded_engines": {"openvino": "a\nb"}}, "one-line reason"),
    ({"excluded_engines": {"tflite": "no"}}, "both preferred and excluded"),
    ({"excluded_engines": {"tvm": "no"}}, "engine 'tvm'"),
])
def test_invalid_verification_data_is_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        DeviceProfile.from_dict({**_rpi(), **change}, "p.json")


def test_fields_are_optional_for_user_profiles() -> None:
    d = _rpi()
    del d["verified_on"], d["excluded_engines"]
    p = DeviceProfile.from_dict(d)
    assert p.exclusion("openvino") is None and p.verification_summary() == "verified: -"
    p.require_engine("openvino")  # nothing excluded: no error
    q = DeviceProfile.from_dict({**d, "excluded_engines": {"openvino": WHY}})
    assert q.verification_summary() == "verified: -; excluded: openvino"


def test_forcing_an_excluded_engine_is_one_line_exit_2(
        no_ov: str, capsys: pytest.CaptureFixture[str]) -> None:
    from hai_edge.cli import main

    with pytest.raises(EngineExcludedError, match=f"arm-no-ov excludes openvino: {WHY}"):
        load_profile(no_ov).require_engine("openvino")
    assert main(["verify", "cough-demo", "--device", no_ov, "-e", "openvino"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "arm-no-ov excludes openvino" in err
    # an engine the profile allows still runs
    assert main(["verify", "cough-demo", "--device", no_ov, "-e", "onnxruntime"]) == 0


def test_verify_on_a_device_never_opens_the_excluded_engine(
        no_ov: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import dataclasses

    from hai_edge.cli import main
    from hai_edge.runtime import backends

    class NeverOpen(type(backends.BACKENDS["openvino"])):  # type: ignore[misc]
        def is_available(self) -> bool:
            return True

        def open(self, *_: object, **__: object) -> Any:
            raise AssertionError("an excluded engine was opened")

    fields = {f.name: getattr(backends.BACKENDS["openvino"], f.name)
              for f in dataclasses.fields(backends.BACKENDS["openvino"])}
    monkeypatch.setitem(backends.BACKENDS, "openvino", NeverOpen(**fields))
    assert main(["verify", "derm-demo", "--device", no_ov, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {m["engine"]: m for m in report["models"]}
    assert rows["openvino"]["status"] == "skipped"
    assert rows["openvino"]["note"] == f"device profile arm-no-ov excludes openvino: {WHY}"
    assert rows["onnxruntime"]["status"] == "passed"


def test_benchmark_skips_or_refuses_excluded_engines(
        no_ov: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from hai_edge.bundle import Bundle
    from hai_edge.cli import main
    from hai_edge.devices import bench

    def fake(bundle: Any, entry: Any, threads: int, *_: Any) -> dict[str, Any]:
        assert entry.format.value != "openvino", "an excluded engine was benchmarked"
        return {"p50_ms": 1.0, "p95_ms": 2.0, "load_ms": 3.0, "maxrss_kb": 50_000}

    monkeypatch.setattr(bench, "_measure", fake)
    bundle = Bundle.load("cough-demo")
    prof = load_profile(no_ov)
    res = {r.model: r for r in bench.run_benchmark(bundle, prof, runs=1, warmup=0)}
    assert res["openvino-int8"].status == "EXCLUDED"
    assert res["onnx-int8"].status in ("PASS", "FAIL")
    table = bench.render_table(bundle, list(res.values()), prof)
    assert sum("excludes openvino" in line for line in table.splitlines()) == 1
    with pytest.raises(EngineExcludedError):
        bench.run_benchmark(bundle, prof, runs=1, warmup=0, models=["openvino-int8"])
    assert main(["benchmark", "cough-demo", "--device", no_ov, "--models",
                 "openvino-int8"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_devices_command_shows_where_engines_were_verified(
        capsys: pytest.CaptureFixture[str]) -> None:
    from hai_edge.cli import main

    assert main(["devices"]) == 0
    out = capsys.readouterr().out.splitlines()
    i = next(n for n, line in enumerate(out) if line.startswith("rpi-arm64 "))
    assert out[i + 2].split() == ["verified:", "onnxruntime,", "tflite,", "openvino", "on",
                                  "aarch64", "(cortex-a76,", "emulated),", "aarch64",
                                  "(cortex-a72,", "emulated)"]
    assert main(["devices", "--json"]) == 0
    doc = {p["id"]: p for p in json.loads(capsys.readouterr().out)}
    assert doc["rpi-arm64"]["verified_on"]["tflite"][1] == {
        "arch": "aarch64", "cpu": "cortex-a72", "emulated": True}
