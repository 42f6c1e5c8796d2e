"""Torch-free tiny embedding models built with onnx.helper, for run-side tests.

They make bundles that exercise the whole run path (manifest, hashes, front ends, onnxruntime)
without the export extra. Weights are seeded so embeddings are deterministic and input-dependent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hai_edge.bundle import Manifest, Modality, ModelEntry, ModelFormat, Precision, TensorSpec, write_bundle
from hai_edge.runtime.frontends import AudioFrontendSpec, ImageFrontendSpec

__all__ = ["AUDIO_SPEC", "IMAGE_SPEC", "make_onnx_bundle", "onnx_linear_model"]

AUDIO_SPEC = AudioFrontendSpec(window_s=1.0, hop_s=0.5, min_clip_s=0.25, n_mels=32, n_fft=512)
IMAGE_SPEC = ImageFrontendSpec(height=32, width=32)


def onnx_linear_model(input_shape: tuple[int, ...], dim: int, seed: int = 0) -> bytes:
    """input [N, *input_shape] -> tanh(flatten(x) @ W + b) as [N, dim]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    flat = int(np.prod(input_shape))
    w = (rng.standard_normal((flat, dim)) / np.sqrt(flat)).astype(np.float32)
    b = (0.1 * rng.standard_normal(dim)).astype(np.float32)
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["mm"]),
        helper.make_node("Add", ["mm", "B"], ["pre"]),
        helper.make_node("Tanh", ["pre"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *input_shape])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dim])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def make_onnx_bundle(dest: Path, modality: str = "audio", dim: int = 16, seed: int = 0) -> Path:
    spec = AUDIO_SPEC if modality == "audio" else IMAGE_SPEC
    shape = spec.input_shape()
    entry = ModelEntry(
        id="onnx-fp32",
        format=ModelFormat.ONNX,
        precision=Precision.FP32,
        files=("model_fp32.onnx",),
        inputs=(TensorSpec("input", (None, *shape)),),
        outputs=(TensorSpec("embedding", (None, dim)),),
    )
    manifest = Manifest(
        name=f"tiny-{modality}",
        modality=Modality(modality),
        preprocessing=spec,
        embedding_dim=dim,
        models=(entry,),
        provenance={"teacher": {"id": "none", "licence": "none"}, "student": {"arch": "linear"}},
        notices=("test bundle, not for clinical use",),
    )
    write_bundle(dest, manifest, {"model_fp32.onnx": onnx_linear_model(shape, dim, seed)})
    return dest
