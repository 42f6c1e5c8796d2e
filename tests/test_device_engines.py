"""Device profiles record where each engine was verified and refuse the engines they exclude
(issue #19: OpenVINO fails the built-in bundles' golden vectors on aarch64)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hai_edge.devices import DeviceProfile, load_profile, load_profiles
from hai_edge.devices.profiles import EngineExcludedError, ProfileError, VerifiedOn

EMULATED_ARM = (VerifiedOn("aarch64", "cortex-a76", True), VerifiedOn("aarch64", "cortex-a72", True))


def _rpi() -> dict[str, Any]:
    return json.loads(json.dumps(load_profile("rpi-arm64").to_dict()))


def test_arm_profiles_exclude_openvino_and_record_the_arm_verification() -> None:
    arm = [p for p in load_profiles().values() if "aarch64" in p.isa]
    assert {p.id for p in arm} >= {"rpi-arm64", "android-arm64-mid"}
    for p in arm:
        assert "openvino" in p.excluded_engines
        assert "openvino" not in {c.engine for c in p.preferred}
        # every engine the profile prefers passed `hai-edge verify` on Pi 5 and Pi 4 CPUs
        for engine in {c.engine for c in p.preferred}:
            assert p.verified_on[engine] == EMULATED_ARM, (p.id, engine)
    for p in load_profiles().values():
        assert p.verified_on and all(p.verified_on.values()), p.id
        if "x86_64" in p.isa:
            assert all(VerifiedOn("x86_64") in v for v in p.verified_on.values())
            assert not p.excluded_engines
        assert DeviceProfile.from_dict(p.to_dict()) == p  # round trip with the new fields


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


def test_forcing_an_excluded_engine_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    from hai_edge.cli import main

    with pytest.raises(EngineExcludedError, match="rpi-arm64 excludes openvino"):
        load_profile("rpi-arm64").require_engine("openvino")
    assert main(["verify", "cough-demo", "--device", "rpi-arm64", "-e", "openvino"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "rpi-arm64 excludes openvino" in err
    # an engine the profile allows still runs
    assert main(["verify", "cough-demo", "--device", "rpi-arm64", "-e", "onnxruntime"]) == 0


def test_verify_on_an_arm_profile_never_opens_the_excluded_engine(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
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
    assert main(["verify", "derm-demo", "--device", "android-arm64-mid", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {m["engine"]: m for m in report["models"]}
    assert rows["openvino"]["status"] == "skipped"
    assert "android-arm64-mid excludes openvino" in rows["openvino"]["note"]
    assert rows["onnxruntime"]["status"] == "passed"


def test_benchmark_skips_or_refuses_excluded_engines(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from hai_edge.bundle import Bundle
    from hai_edge.cli import main
    from hai_edge.devices import bench

    def fake(bundle: Any, entry: Any, threads: int, *_: Any) -> dict[str, Any]:
        assert entry.format.value != "openvino", "an excluded engine was benchmarked"
        return {"p50_ms": 1.0, "p95_ms": 2.0, "load_ms": 3.0, "maxrss_kb": 50_000}

    monkeypatch.setattr(bench, "_measure", fake)
    bundle = Bundle.load("cough-demo")
    prof = load_profile("rpi-arm64")
    res = {r.model: r for r in bench.run_benchmark(bundle, prof, runs=1, warmup=0)}
    assert res["openvino-int8"].status == "EXCLUDED"
    assert res["onnx-int8"].status in ("PASS", "FAIL")
    table = bench.render_table(bundle, list(res.values()), prof)
    assert sum("excludes openvino" in line for line in table.splitlines()) == 1
    with pytest.raises(EngineExcludedError):
        bench.run_benchmark(bundle, prof, runs=1, warmup=0, models=["openvino-int8"])
    assert main(["benchmark", "cough-demo", "--device", "rpi-arm64", "--models",
                 "openvino-int8"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_devices_command_shows_where_engines_were_verified(
        capsys: pytest.CaptureFixture[str]) -> None:
    from hai_edge.cli import main

    assert main(["devices"]) == 0
    out = capsys.readouterr().out.splitlines()
    i = next(n for n, line in enumerate(out) if line.startswith("rpi-arm64 "))
    assert out[i + 2].split() == ["verified:", "onnxruntime,", "tflite", "on", "aarch64",
                                  "(cortex-a76,", "emulated),", "aarch64", "(cortex-a72,",
                                  "emulated);", "excluded:", "openvino"]
    assert main(["devices", "--json"]) == 0
    doc = {p["id"]: p for p in json.loads(capsys.readouterr().out)}
    assert doc["rpi-arm64"]["verified_on"]["tflite"][1] == {
        "arch": "aarch64", "cpu": "cortex-a72", "emulated": True}
