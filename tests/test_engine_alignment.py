"""Issue #18, the model side: one INT8 quantization for every engine.

The ONNX INT8 model's embedding output stays float (no 8-bit grid on the output), OpenVINO
compiles the ONNX INT8 model instead of quantizing its own, ``align_int8_engines`` rewrites a
bundle exported the old way, and a head's borderline band keeps definite verdicts from flipping.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hai_edge.evaluation.decisions import compare_decisions, verdict_codes

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


def _tiny_qdq(path: Path) -> None:
    """x [1, 4] -> MatMul -> QuantizeLinear -> DequantizeLinear -> y (an output on an 8-bit grid)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.arange(8, dtype=np.float32).reshape(4, 2) / 7, "w")
    scale = numpy_helper.from_array(np.array(0.25, dtype=np.float32), "s")
    zero = numpy_helper.from_array(np.array(0, dtype=np.uint8), "z")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]),
             helper.make_node("QuantizeLinear", ["m", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                         [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
                              [w, scale, zero])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


def test_float_graph_outputs_drops_the_output_quantization(tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    from hai_edge.quantize.onnx import float_graph_outputs

    path = tmp_path / "m.onnx"
    _tiny_qdq(path)
    x = np.array([[0.3, 0.1, 0.7, 0.2]], dtype=np.float32)
    exact = x @ (np.arange(8, dtype=np.float32).reshape(4, 2) / 7)

    def run() -> np.ndarray:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
            None, {"x": x})[0]

    on_grid = run()
    assert np.allclose(on_grid / 0.25, np.round(on_grid / 0.25))  # 8-bit grid of step 0.25
    assert not np.allclose(on_grid, exact, atol=1e-3)
    assert float_graph_outputs(path) == 1
    model = onnx.load(str(path))
    assert [n.op_type for n in model.graph.node] == ["MatMul"]
    assert model.graph.node[0].output[0] == "y"
    assert {i.name for i in model.graph.initializer} == {"w"}  # unused scale/zero point gone
    np.testing.assert_allclose(run(), exact, rtol=1e-6)
    assert float_graph_outputs(path) == 0  # nothing left to drop


def test_verdict_band_counts_flips_and_borderline_changes_apart() -> None:
    assert verdict_codes(np.array([0.52, 0.51, 0.505, 0.49, 0.489]), 0.5, 0.01).tolist() == \
        [1, 1, 0, 0, -1]
    assert verdict_codes(np.array([0.5, 0.4999]), 0.5).tolist() == [1, -1]  # no band: as before
    ref = np.array([0.52, 0.52, 0.50, 0.30])
    cand = np.array([0.505, 0.47, 0.499, 0.31])
    banded = compare_decisions(ref, cand, 0.5, borderline=0.01)
    assert banded["flips"] == 1 and banded["borderline_changes"] == 1
    assert banded["borderline_reference"] == 1
    bare = compare_decisions(ref, cand, 0.5)
    assert bare["flips"] == 2 and bare["borderline_changes"] == 0


@pytest.fixture(scope="module")
def wave_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ._quant_fixtures import get_wave_bundle

    return get_wave_bundle(tmp_path_factory)


def _run(bundle, model_id: str, x: np.ndarray) -> np.ndarray:  # noqa: ANN001
    from hai_edge.runtime.backends import open_model

    engine, entry = open_model(bundle, model_id=model_id)
    try:
        return np.asarray(engine.run({entry.inputs[0].name: x})[entry.outputs[0].name])
    finally:
        engine.close()


def _one_minus_cos(a: np.ndarray, b: np.ndarray) -> float:
    cos = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return float(np.max(1.0 - cos))


def test_openvino_runs_the_onnx_quantization(wave_bundle: Path) -> None:
    """A new export: the ONNX INT8 output is float and OpenVINO compiled that model, so the two
    engines agree far more closely than either does with FP32."""
    import onnx

    from hai_edge.bundle import Bundle

    from ._quant_models import wave_inputs

    b = Bundle.load(wave_bundle)
    onnx_e, ov_e = b.model("onnx-int8"), b.model("openvino-int8")
    assert onnx_e.options["float_outputs"] == 1
    graph = onnx.load(str(b.root / onnx_e.main_file)).graph
    producer = {o: n for n in graph.node for o in n.output}[graph.output[0].name]
    assert producer.op_type != "DequantizeLinear"
    assert ov_e.options["recipe"] == "shared_onnx" and ov_e.options["shared_with"] == "onnx"
    x = wave_inputs(12, seed=99)
    y_onnx, y_ov = _run(b, "onnx-int8", x), _run(b, "openvino-int8", x)
    y_fp32 = _run(b, "onnx-fp32", x)
    between = _one_minus_cos(y_onnx, y_ov)
    assert between < 1e-4, between
    assert between < 0.5 * _one_minus_cos(y_onnx, y_fp32)


def test_align_int8_engines_rewrites_a_bundle_exported_the_old_way(tmp_path: Path) -> None:
    from hai_edge.bundle import Bundle
    from hai_edge.export.align_int8 import align_int8_engines
    from hai_edge.export.bundle_builder import BuildOptions, build_bundle
    from hai_edge.runtime.verify import verify_bundle

    from ._quant_fixtures import require_export_extra, wave_data
    from ._quant_models import WAVE_SPEC, TinyWaveNet, wave_inputs

    require_export_extra()
    cal, held = wave_data()
    old = build_bundle(TinyWaveNet(), WAVE_SPEC, tmp_path / "old", name="old-way",
                       calibration=cal, heldout=held,
                       options=BuildOptions(precision="int8", golden_items=2,
                                            openvino_shares_onnx_int8=False))
    assert old.model("openvino-int8").options["recipe"] != "shared_onnx"
    x = wave_inputs(8, seed=5)
    new = align_int8_engines(old, tmp_path / "new", inputs=x, inputs_note="8 test waves")
    ov = new.model("openvino-int8")
    assert ov.options["recipe"] == "shared_onnx"
    assert ov.options["replaced"]["recipe"] == old.model("openvino-int8").options["recipe"]
    agree = ov.fidelity["agreement"]["8 test waves"]
    assert agree["vs_onnx_int8"]["mean_cosine"] > agree["vs_previous"]["mean_cosine"] - 1e-6
    assert "vs_torch_fp32" in ov.fidelity["agreement"]["golden items"]
    assert new.manifest.fidelity["int8_cross_format"]["inputs"] == "8 test waves"
    # the TFLite model is untouched, the OpenVINO files are new, everything verifies
    assert new.manifest.files["model_int8.tflite"] == old.manifest.files["model_int8.tflite"]
    assert new.manifest.files["model_int8.xml"] != old.manifest.files["model_int8.xml"]
    assert verify_bundle(Bundle.load(new.root)).passed
    gap_new = _one_minus_cos(_run(new, "onnx-int8", x), _run(new, "openvino-int8", x))
    gap_old = _one_minus_cos(_run(old, "onnx-int8", x), _run(old, "openvino-int8", x))
    assert gap_new < gap_old
