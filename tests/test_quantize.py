"""INT8 quantization: config, calibration adapters, graph logic, gates, the retry ladder, and the
three real quantizers on a net with an in-graph log-mel front end (kept float; a deliberately
broken quantization that forces it into INT8 must be caught by the gate)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from hai_edge.bundle import ModelFormat
from hai_edge.errors import GateError, HaiEdgeError
from hai_edge.quantize import (
    CalibrationMethod,
    CalibrationSource,
    QuantBackend,
    QuantConfig,
    QuantizedArtifact,
    Recipe,
    find_frontend_scope,
)
from hai_edge.quantize._graph import Op, OpGraph, rank_sensitive_ops
from hai_edge.quantize.config import check_supported
from hai_edge.quantize.gates import (
    GateThresholds,
    compare,
    cross_format_agreement,
    head_agreement,
    overlapping_rows,
)

# Literal on purpose: tests/test_formats_coverage.py checks it equals sorted(FORMATS).
INT8_FORMATS = ["onnx", "openvino", "tflite"]


# ------------------------------------------------------------------------------ config
def test_config_round_trip_and_validation() -> None:
    cfg = QuantConfig(calibration="percentile", exclude=["a", "b"], sensitive_k=(1, 3))
    assert cfg.calibration is CalibrationMethod.PERCENTILE
    again = QuantConfig.from_dict(cfg.to_dict())
    assert again == cfg
    with pytest.raises(HaiEdgeError, match="calibration must be one of"):
        QuantConfig(calibration="entropy")
    with pytest.raises(HaiEdgeError, match="unknown option"):
        QuantConfig.from_dict({"bogus": 1})
    with pytest.raises(HaiEdgeError, match="sensitive_k"):
        QuantConfig(sensitive_k=(5, 2))
    with pytest.raises(HaiEdgeError, match="per-tensor"):
        check_supported("tflite", QuantConfig(per_channel=False))
    assert check_supported("onnx", QuantConfig()).name == "qdq-u8s8-per-channel"


# ------------------------------------------------------------------------- calibration
def test_calibration_source_adapters_and_hash() -> None:
    rows = [np.full((1, 4, 5), i, np.float32) for i in range(3)]
    src = CalibrationSource(rows, transform=lambda r: r * 2, description="t")
    x = src.as_array((1, 4, 5))
    assert x.shape == (3, 1, 4, 5) and float(x[2].max()) == 4.0
    reader = src.to_ort_reader("input")
    got = []
    while (item := reader.get_next()) is not None:
        got.append(item["input"])
    assert len(got) == 3 and got[0].shape == (1, 1, 4, 5)
    reader.rewind()
    assert reader.get_next() is not None
    data = src.to_aeq_data("serving_default", "args_0")
    assert len(data["serving_default"]) == 3 and data["serving_default"][1]["args_0"].shape == (1, 1, 4, 5)
    same = CalibrationSource.from_array(x)
    assert same.sha256() == src.sha256()
    assert CalibrationSource.from_array(x + 1e-3).sha256() != src.sha256()
    with pytest.raises(ValueError, match="does not match"):
        CalibrationSource(rows).as_array((2, 4, 5))


# ------------------------------------------------------------------------------- graph
def _chain() -> OpGraph:
    return OpGraph([
        Op("pad", "Pad", ("in",), ("t0",), False),
        Op("stft", "Conv", ("t0", "w0"), ("t1",), True),
        Op("log", "Log", ("t1",), ("t2",), True),
        Op("conv1", "Conv", ("t2", "w1"), ("t3",), False),
        Op("relu1", "Relu", ("t3",), ("t4",), False),
        Op("conv2", "Conv", ("t4", "w2"), ("t5",), False),
        Op("fc", "Gemm", ("t5", "w3"), ("out",), False),
    ])


def test_frontend_ops_include_everything_upstream() -> None:
    g = _chain()
    assert g.frontend_ops() == ["pad", "stft", "log"]
    assert g.frontend_boundary() == ["t2"]
    assert g.ops_before(["t2"]) == ["pad", "stft", "log"]


def test_find_frontend_scope() -> None:
    class M:
        def __init__(self, names):  # noqa: ANN001
            self._n = names

        def named_modules(self):  # noqa: ANN201
            return [(n, None) for n in self._n]

    assert find_frontend_scope(M(["", "student", "student.frontend", "student.frontend.stft"])) \
        == "student.frontend"
    assert find_frontend_scope(M(["", "encoder"])) is None
    assert find_frontend_scope(M([""]), "custom") == "custom"


def test_rank_sensitive_ops_attributes_added_error_and_fused_layers() -> None:
    g = _chain()
    f = {t: np.ones((2, 10)) for t in ("t2", "t3", "t4", "t5", "out")}
    cum = {"t2": 0.0, "t4": 0.01, "t5": 0.3, "out": 0.31}  # t3 vanished (conv1 fused into relu1)
    q = {t: f[t] * (1 + np.sqrt(c)) for t, c in cum.items()}
    ranked = rank_sensitive_ops(g, f, q)
    assert ranked[0][0] == ("conv2",) and ranked[0][1] == pytest.approx(0.29)
    units = dict(ranked)
    assert ("conv1", "relu1") in units and units[("conv1", "relu1")] == pytest.approx(0.01)
    q_bad = dict(q, t2=np.full((2, 10), np.inf))
    assert rank_sensitive_ops(g, f, q_bad)[0] == (("log",), float("inf"))
    assert all("log" not in u for u, _ in rank_sensitive_ops(g, f, q_bad, candidates=["conv2"]))


# ------------------------------------------------------------------------------- gates
def test_compare_reports_centred_cosine_and_gates() -> None:
    rng = np.random.default_rng(0)
    shared = 10 * rng.standard_normal(64)
    ref = shared + rng.standard_normal((20, 64))
    garbage = shared + rng.standard_normal((20, 64))  # same shared direction, no item information
    good = compare(ref, ref + 0.01 * rng.standard_normal(ref.shape), threshold=0.99)
    bad = compare(ref, garbage, threshold=0.9)
    assert good.passed and good.mean_cosine > 0.999 and good.centred_mean_cosine > 0.99
    assert bad.mean_cosine > 0.9 and bad.passed  # plain cosine is fooled ...
    assert abs(bad.centred_mean_cosine) < 0.3  # ... the centred cosine is not
    assert not compare(ref, garbage, threshold=0.9, centred_threshold=0.9).passed
    assert compare(ref, ref, threshold=0.9, centred_threshold=0.9).passed
    nan = compare(ref, np.full(ref.shape, np.nan), threshold=0.5)
    assert not nan.passed and nan.mean_cosine == 0.0
    assert set(good.to_dict()) >= {"mean_cosine", "p5_cosine", "centred_mean_cosine", "passed"}


def test_cross_format_agreement_and_heads_and_overlap() -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal((10, 8))
    ok = cross_format_agreement({"onnx": a, "tflite": a + 1e-3}, 0.98)
    assert ok["passed"] and ok["pairs"]["onnx|tflite"]["mean_cosine"] > 0.999
    bad = cross_format_agreement({"onnx": a, "openvino": a, "tflite": -a}, 0.98)
    assert not bad["passed"] and bad["min_pair_mean_cosine"] < 0
    head = {"name": "h", "weights": rng.standard_normal(8).tolist(), "bias": 0.0}
    same = head_agreement([head, {"name": "x", "kind": "mlp"}], a, a)
    assert same[0]["decision_agreement"] == 1.0 and "skipped" in same[1]
    flipped = head_agreement([head], a, -a)
    assert flipped[0]["decision_agreement"] < 0.5
    assert overlapping_rows(a, a[3:5]) == 2 and overlapping_rows(a, a + 1) == 0
    with pytest.raises(ValueError):
        GateThresholds(min_mean_cosine=2.0)


# -------------------------------------------------------------------- ladder (fake backend)
_LAYER_NOISE = {"conv1": 0.01, "conv2": 0.2, "conv3": 0.05, "fc": 0.01}


class _FakeBackend(QuantBackend):
    """Output noise = sum of the quantized layers' noise (front end: 5.0 when quantized)."""

    format = ModelFormat.ONNX

    def graph(self, fp32_path, frontend_scope):  # noqa: ANN001, ANN201
        ops = [Op("fe", "Log", ("in",), ("t_fe",), True)]
        prev = "t_fe"
        for name in _LAYER_NOISE:
            ops.append(Op(name, "Conv", (prev,), (f"t_{name}",), False))
            prev = f"t_{name}"
        return OpGraph(ops)

    def quantize(self, fp32_path, out_dir, basename, calib, config, exclude=(),  # noqa: ANN001, ANN201
                 cache_dir=None):  # noqa: ANN001
        fe = () if config.quantize_frontend else ("fe",)
        scale = 0.9 if config.calibration is CalibrationMethod.PERCENTILE else 1.0
        active = [n for n in _LAYER_NOISE if n not in exclude]
        noise = scale * sum(_LAYER_NOISE[n] for n in active) + (0 if fe else 5.0)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        main = Path(out_dir) / f"{basename}.onnx"
        main.write_text(repr(sorted(active)))
        return QuantizedArtifact(ModelFormat.ONNX, [main], (), (), {"noise": noise},
                                 tuple(fe) + tuple(exclude), ("fe",), not config.quantize_frontend,
                                 Path(fp32_path))

    def activations(self, path, x):  # noqa: ANN001, ANN201
        f = {f"t_{n}": np.ones((len(x), 16)) for n in ("fe", *_LAYER_NOISE)}
        if str(path).endswith("fp32.onnx"):
            return f
        active = eval(Path(path).read_text())  # noqa: S307 - our own test file
        cum, out = 0.0, {}
        for n in ("fe", *_LAYER_NOISE):
            cum += _LAYER_NOISE.get(n, 0.0) ** 2 if n in active else 0.0
            out[f"t_{n}"] = f[f"t_{n}"] * (1 + np.sqrt(cum))
        return out


def _fake_ladder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cfg: QuantConfig,
                 **kw):  # noqa: ANN003, ANN202
    from hai_edge.quantize import recipes

    monkeypatch.setattr(recipes, "get_backend", lambda fmt: _FakeBackend())
    rng = np.random.default_rng(3)
    ref = rng.standard_normal((12, 32))
    ortho = rng.standard_normal((12, 32))

    def evaluate(art: QuantizedArtifact, x: np.ndarray) -> np.ndarray:
        return ref + art.options["noise"] * ortho

    fp32 = tmp_path / "model_fp32.onnx"
    fp32.write_text("fp32")
    calib = CalibrationSource.from_array(np.zeros((4, 3), np.float32))
    return recipes.quantize_with_ladder("onnx", fp32, tmp_path / "w", calib, np.zeros((12, 3)),
                                        ref, evaluate, cfg, **kw)


def test_ladder_climbs_to_keep_sensitive_layers_float(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    res = _fake_ladder(monkeypatch, tmp_path, QuantConfig(sensitive_k=(1, 2)))
    rungs = [(a.recipe, a.passed) for a in res.attempts]
    assert rungs == [(Recipe.DEFAULT, False), (Recipe.PERCENTILE, False),
                     (Recipe.KEEP_SENSITIVE, True)]
    chosen = res.attempts[res.chosen]
    assert chosen.float_layers == ("conv2",) and not res.degraded
    assert res.table()[2]["float_layers"] == ["conv2"] and res.table()[0]["mean_cosine"] < 0.99
    # the chosen rung's held-out outputs come back, so the export need not run the model again
    rng = np.random.default_rng(3)
    ref, ortho = rng.standard_normal((12, 32)), rng.standard_normal((12, 32))
    np.testing.assert_array_equal(res.heldout_outputs,
                                  ref + res.artifact.options["noise"] * ortho)


def test_ladder_failure_raises_with_table_unless_degraded_allowed(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = QuantConfig(quantize_frontend=True, sensitive_k=(1, 2))
    with pytest.raises(GateError) as info:
        _fake_ladder(monkeypatch, tmp_path, cfg)
    first, *table = str(info.value).splitlines()
    assert first.startswith("onnx INT8 fidelity gate failed on 12 held-out inputs: best mean cosine")
    assert "--allow-degraded" in first and len(table) == 5  # header + 4 attempts
    attempts = info.value.figures["attempts"]
    assert [a["recipe"] for a in attempts] == ["default", "percentile", "keep_sensitive",
                                               "keep_sensitive"]
    assert all("fe" not in a["float_layers"] for a in attempts)  # forced INT8 stays forced
    res = _fake_ladder(monkeypatch, tmp_path, cfg, allow_degraded=True)
    assert res.degraded and not res.report.passed and len(res.attempts) == 4


def test_ladder_keeps_climbing_while_the_head_decision_gate_refuses(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Issue #18: a rung whose cosines pass but whose head decisions do not is refused, so the
    safer rungs run first; the refusal is in the table and in the error."""
    seen: list[float] = []

    def accept(y: np.ndarray) -> str:
        seen.append(float(np.abs(y).max()))
        return "head h: max |score diff| 0.0500 > 0.02"

    cfg = QuantConfig(sensitive_k=(1, 2))
    with pytest.raises(GateError) as info:
        _fake_ladder(monkeypatch, tmp_path, cfg, accept=accept)
    rows = info.value.figures["attempts"]
    assert [a["recipe"] for a in rows] == ["default", "percentile", "keep_sensitive",
                                           "keep_sensitive"]  # one rung more than without
    assert [a.get("decision_gate") for a in rows][2:] == [
        "head h: max |score diff| 0.0500 > 0.02"] * 2 and len(seen) == 2
    assert "head decision gate" in str(info.value).splitlines()[0]
    res = _fake_ladder(monkeypatch, tmp_path, cfg, accept=lambda y: "")
    assert [a.passed for a in res.attempts] == [False, False, True] and not res.degraded


# ------------------------------------------------------------- real quantizers (3 formats)
@pytest.fixture(scope="module")
def wave_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ._quant_fixtures import get_wave_bundle

    return get_wave_bundle(tmp_path_factory)


def _torch_wave(x: np.ndarray) -> np.ndarray:
    import torch

    from ._quant_models import TinyWaveNet

    with torch.no_grad():
        return TinyWaveNet()(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("fmt", INT8_FORMATS)
def test_int8_gate_per_format(wave_bundle: Path, fmt: str) -> None:
    """The bundle's INT8 model passed its gate with the front end kept float, and it still agrees
    with torch FP32 on fresh inputs through the run-side engine."""
    from hai_edge.bundle import Bundle
    from hai_edge.runtime.backends import open_model

    from ._quant_models import wave_inputs

    bundle = Bundle.load(wave_bundle)
    entry = bundle.model(f"{fmt}-int8")
    fid, opt = entry.fidelity, entry.options
    assert fid["passed"] and fid["mean_cosine"] >= 0.99 and fid["gate"]["threshold"] == 0.99
    assert fid["gate"]["degraded_override"] is False
    assert opt["frontend"]["scope"] == "frontend" and opt["frontend"]["float"] is True
    assert opt["frontend"]["n_ops"] >= 5 and len(opt["excluded_ops"]) >= opt["frontend"]["n_ops"]
    assert opt["calibration"] == "minmax" and opt["calibration_samples"] == 32
    assert opt["calibration_hash"] == bundle.manifest.provenance["calibration_hash"]
    if fmt == "openvino":  # OpenVINO compiles the ONNX INT8 model: one quantization (#18)
        assert opt["recipe"] == "shared_onnx" and opt["shared_with"] == "onnx"
        assert "convert_model" in opt["tool"]
    else:
        assert opt["tool"] and opt["recipe"] in ("default", "percentile", "keep_sensitive")
    x = wave_inputs(12, seed=77)
    engine, _ = open_model(bundle, model_id=entry.id)
    try:
        y = engine.run({entry.inputs[0].name: x})[entry.outputs[0].name]
    finally:
        engine.close()
    rep = compare(_torch_wave(x), y, threshold=0.99)
    assert rep.passed and rep.centred_mean_cosine > 0.9, rep.summary()


@pytest.mark.parametrize("fmt", INT8_FORMATS)
def test_broken_frontend_is_caught(wave_bundle: Path, fmt: str, tmp_path: Path) -> None:
    """Forcing the float front end into INT8 (debug switch) ruins the embedding; every rung of the
    ladder keeps it forced, and the gate fails with the measured figures."""
    from hai_edge.bundle import Bundle, Precision
    from hai_edge.export.steps import model_entry, run_quiet
    from hai_edge.quantize.recipes import quantize_with_ladder

    from ._quant_fixtures import wave_data

    bundle = Bundle.load(wave_bundle)
    fp32 = bundle.path_of(bundle.model(f"{fmt}-fp32").main_file)
    cal, held = wave_data()
    ref = _torch_wave(held)

    def evaluate(art: QuantizedArtifact, x: np.ndarray) -> np.ndarray:
        return run_quiet(art.main_file, model_entry(art, Precision.INT8, None), x)

    cfg = QuantConfig(frontend_scope="frontend", quantize_frontend=True, sensitive_k=(2,))
    with pytest.raises(GateError) as info:
        quantize_with_ladder(fmt, fp32, tmp_path, CalibrationSource.from_array(cal), held, ref,
                             evaluate, cfg)
    assert str(info.value).startswith(f"{fmt} INT8 fidelity gate failed on 16 held-out inputs")
    attempts = info.value.figures["attempts"]
    assert {a["recipe"] for a in attempts} >= {"default", "percentile"}
    measured = [a["mean_cosine"] for a in attempts if a["mean_cosine"] is not None]
    assert measured and max(measured) < 0.9, attempts
    int8_ok = bundle.model(f"{fmt}-int8").fidelity["mean_cosine"]
    assert int8_ok - max(measured) > 0.09  # front end float vs forced INT8


def test_frontend_tagging_finds_the_same_front_end_in_every_format(wave_bundle: Path) -> None:
    from hai_edge.bundle import Bundle
    from hai_edge.quantize import get_backend

    bundle = Bundle.load(wave_bundle)
    found = {}
    for fmt in INT8_FORMATS:
        g = get_backend(fmt).graph(bundle.path_of(bundle.model(f"{fmt}-fp32").main_file),
                                   "frontend")
        types = {op.type.lower() for op in g.ops if op.name in set(g.frontend_ops())}
        found[fmt] = types
        assert "log" in types, (fmt, types)
        assert g.frontend_boundary(), fmt
        assert not any(op.frontend for op in g.ops[-3:]), fmt  # the tail is the encoder
    assert all(found.values())


def test_inspection_reads_back_what_the_manifest_records(wave_bundle: Path) -> None:
    """quantize.inspect serves both the FP32 exporters and the INT8 backends (export imports it)."""
    from hai_edge.bundle import Bundle
    from hai_edge.export.formats.onnx import ONNX_OPSET
    from hai_edge.quantize.inspect import MIN_ONNX_OPSET, inspect_onnx, inspect_openvino
    from hai_edge.tools import no_openvino_telemetry

    bundle = Bundle.load(wave_bundle)
    for precision in ("fp32", "int8"):
        onnx_entry = bundle.model(f"onnx-{precision}")
        inputs, outputs, opset = inspect_onnx(bundle.path_of(onnx_entry.main_file))
        assert (inputs, outputs) == (onnx_entry.inputs, onnx_entry.outputs)
        assert opset >= ONNX_OPSET >= MIN_ONNX_OPSET
        ov_entry = bundle.model(f"openvino-{precision}")
        with no_openvino_telemetry():
            assert inspect_openvino(bundle.path_of(ov_entry.main_file)) == (ov_entry.inputs,
                                                                             ov_entry.outputs)
    with pytest.raises(RuntimeError, match=f"opset {opset} is below {opset + 1}"):
        inspect_onnx(bundle.path_of(onnx_entry.main_file), min_opset=opset + 1)


def test_quantizers_reject_unsupported_options(wave_bundle: Path, tmp_path: Path) -> None:
    from hai_edge.bundle import Bundle
    from hai_edge.quantize import get_backend

    bundle = Bundle.load(wave_bundle)
    fp32 = bundle.path_of(bundle.model("openvino-fp32").main_file)
    with pytest.raises(HaiEdgeError, match="per-tensor"):
        get_backend("openvino").quantize(fp32, tmp_path, "m", CalibrationSource.from_array(
            np.zeros((2, 8000), np.float32)), QuantConfig(per_channel=False))
    assert dataclasses.is_dataclass(QuantConfig())


def test_ladder_time_budget_skips_later_rungs(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    with pytest.raises(GateError) as info:
        _fake_ladder(monkeypatch, tmp_path, QuantConfig(ladder_budget_s=1e-9))
    attempts = info.value.figures["attempts"]
    assert [a["recipe"] for a in attempts] == ["default", "percentile"]
    assert attempts[0]["mean_cosine"] is not None
    assert attempts[1]["error"].startswith("skipped: ladder time budget")
