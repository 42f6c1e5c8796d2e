"""Derm Foundation teacher (``derm-foundation:PATH_OR_HF_ID``, default ``google/derm-foundation``).

A TensorFlow SavedModel (BiT ResNet-101x3) whose serving signature takes serialized
``tf.train.Example`` protos: ``serving_default(inputs=string[N])["embedding"] -> float32[N, 6144]``,
each Example holding the PNG bytes of a 448 x 448 RGB photo under ``image/encoded`` (and
``image/format`` = ``png``). This adapter resizes every photo to 448 x 448 by stretching it with
Pillow's antialiased bilinear maths (the project's numpy resize, rounded to 8 bit), encodes it
as PNG (lossless) with Pillow and wraps it in the Example. Needs the ``teachers-tf`` extra.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from hai_edge.errors import HaiEdgeError
from hai_edge.teachers._base import TeacherInfo
from hai_edge.teachers._common import check_rgb, resize_rgb_uint8
from hai_edge.teachers._hub import ResolvedModel, import_tensorflow, resolve_model_dir

__all__ = ["IMAGE_SIZE", "DermFoundationTeacher", "encode_png", "load_derm_foundation"]

IMAGE_SIZE = 448


def encode_png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb), "RGB").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


class DermFoundationTeacher:
    def __init__(self, resolved: ResolvedModel) -> None:
        tf = import_tensorflow("the Derm Foundation teacher (derm-foundation:)")
        root = resolved.path
        if not (root / "saved_model.pb").is_file():
            raise HaiEdgeError(f"{root}: no saved_model.pb (derm-foundation: needs the TF "
                               f"SavedModel folder)")
        self._tf = tf
        self._loaded = tf.saved_model.load(str(root))
        sigs = self._loaded.signatures
        if "serving_default" not in sigs:
            raise HaiEdgeError(f"{root}: SavedModel has no serving_default signature")
        self._fn = sigs["serving_default"]
        inputs = self._fn.structured_input_signature[1]
        outputs = self._fn.structured_outputs
        if "inputs" not in inputs or "embedding" not in outputs:
            raise HaiEdgeError(
                f"{root}: expected serving_default(inputs=...)['embedding'] (Derm Foundation's "
                f"signature), got inputs {sorted(inputs)} outputs {sorted(outputs)}")
        if inputs["inputs"].dtype != tf.string:
            raise HaiEdgeError(f"{root}: serving_default 'inputs' must take serialized Examples")
        dim = outputs["embedding"].shape[-1]
        if dim is None:
            raise HaiEdgeError(f"{root}: serving_default has no fixed embedding size")
        self.info = TeacherInfo(
            id=resolved.describe("derm-foundation"), modality="image", embedding_dim=int(dim),
            licence="HAI-DEF", image_size=IMAGE_SIZE,
            notes=resolved.note("Derm Foundation TF SavedModel; photos stretched to 448x448 PNG"),
        )

    def example(self, rgb: np.ndarray) -> bytes:
        """The serialized ``tf.train.Example`` the model receives for one photo."""
        tf = self._tf
        png = encode_png(resize_rgb_uint8(check_rgb(rgb, "Derm Foundation"), IMAGE_SIZE,
                                          IMAGE_SIZE))
        feature = {
            "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[png])),
            "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"png"])),
        }
        return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()

    def embed(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        if len(batch) == 0:
            raise HaiEdgeError("Derm Foundation: empty batch")
        serialized = self._tf.constant([self.example(img) for img in batch])
        out = self._fn(inputs=serialized)["embedding"]
        return np.asarray(out.numpy(), dtype=np.float32).reshape(len(batch), -1)

    def close(self) -> None:
        self._fn = None
        self._loaded = None


def load_derm_foundation(ref: str, *, device: str = "cpu") -> DermFoundationTeacher:
    del device  # runs where TensorFlow puts it
    return DermFoundationTeacher(resolve_model_dir(ref or "google/derm-foundation",
                                                   what="Derm Foundation"))
