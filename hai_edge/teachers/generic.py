"""Bring-your-own teachers: an ONNX file (``onnx:FILE``) or a torch module (``torch:MOD:CALLABLE``).

Input conventions, read from the model itself:

- audio: a rank-2 input ``[N, samples]`` float32 waveform (mono, about [-1, 1]); ``samples`` must be
  a fixed number. The sample rate comes from ONNX metadata ``sample_rate`` / the module's
  ``sample_rate`` attribute, else 16000.
- image: a rank-4 input ``[N, 3, H, W]`` float32 RGB in [0, 1] (no mean/std: put normalisation in
  the model); every photo is stretched to ``H x W`` (antialiased bilinear, rounded to 8 bit).

The model's first output is the embedding, flattened to ``[N, D]``.

``torch:module:callable``: ``module`` is imported and ``callable()`` is called with no arguments.
If it returns an object with ``info``/``embed``/``close`` (a :class:`Teacher`), that is used as is
(no torch needed). If it returns an ``nn.Module``, its optional attributes ``modality``
("audio"/"image"), ``sample_rate``, ``window_samples`` (default 2 s), ``image_size`` (default 224),
``licence`` and ``teacher_id`` describe it; a missing modality is found by a dummy forward pass
(audio ``[1, window_samples]`` first, then image ``[1, 3, S, S]``), which also gives the dimension.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.errors import HaiEdgeError, MissingDependencyError
from hai_edge.teachers._base import Teacher, TeacherInfo
from hai_edge.teachers._common import as_float_images, audio_batch, first_line
from hai_edge.teachers._hub import import_torch

__all__ = ["OnnxTeacher", "TorchModuleTeacher", "load_onnx", "load_torch"]

DEFAULT_SAMPLE_RATE = 16000
DEFAULT_IMAGE_SIZE = 224


def _fixed(dim: Any) -> int | None:
    return int(dim) if isinstance(dim, (int, np.integer)) and dim > 0 else None


class OnnxTeacher:
    def __init__(self, path: Path, device: str = "cpu") -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise MissingDependencyError("the ONNX teacher (onnx:)", "onnx", "onnxruntime") \
                from None
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self._sess = ort.InferenceSession(str(path), providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise HaiEdgeError(f"{path}: cannot load the ONNX model: {first_line(exc)}") from None
        inp = self._sess.get_inputs()[0]
        self._input = inp.name
        meta = dict(self._sess.get_modelmeta().custom_metadata_map)
        shape = list(inp.shape)
        if len(shape) == 2:
            samples = _fixed(shape[1])
            if samples is None:
                raise HaiEdgeError(f"{path}: audio input {inp.name}{shape} needs a fixed length")
            modality, extra = "audio", {"sample_rate": int(meta.get("sample_rate") or
                                                           DEFAULT_SAMPLE_RATE),
                                        "window_samples": samples}
        elif len(shape) == 4 and _fixed(shape[1]) == 3 and _fixed(shape[2]) and _fixed(shape[3]):
            self._hw = (int(shape[2]), int(shape[3]))
            modality, extra = "image", {"image_size": self._hw[0]}
        else:
            raise HaiEdgeError(f"{path}: input {inp.name}{shape} is neither audio [N, samples] nor "
                               f"image [N, 3, H, W] with fixed sizes")
        self.info = TeacherInfo(id=meta.get("teacher_id") or f"onnx:{path}", modality=modality,
                                embedding_dim=1, licence=meta.get("licence") or
                                meta.get("license") or "unknown", **extra)
        dim = self._probe_dim()
        self.info = dataclasses.replace(self.info, embedding_dim=dim)

    def _probe_dim(self) -> int:
        out = self._sess.get_outputs()[0].shape
        if len(out) == 2 and _fixed(out[1]):
            return int(out[1])
        return int(self._run(self._dummy()).shape[1])

    def _dummy(self) -> np.ndarray:
        if self.info.modality == "audio":
            return np.zeros((1, self.info.window_samples or 0), np.float32)
        return np.zeros((1, 3, *self._hw), np.float32)

    def _run(self, x: np.ndarray) -> np.ndarray:
        out = self._sess.run(None, {self._input: x})[0]
        return np.asarray(out, dtype=np.float32).reshape(x.shape[0], -1)

    def embed(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        if self.info.modality == "audio":
            x = audio_batch(batch, self.info.window_samples or 0, self.info.id)
        else:
            x = as_float_images(batch, *self._hw, self.info.id)
        return self._run(x)

    def close(self) -> None:
        self._sess = None


class TorchModuleTeacher:
    def __init__(self, module: Any, name: str, device: str = "cpu") -> None:
        torch = import_torch("the torch teacher (torch:)")
        self._torch = torch
        self._device = torch.device(device)
        self._module = module.eval().to(self._device)
        sr = int(getattr(module, "sample_rate", DEFAULT_SAMPLE_RATE))
        samples = int(getattr(module, "window_samples", 2 * sr))
        size = int(getattr(module, "image_size", DEFAULT_IMAGE_SIZE))
        modality = getattr(module, "modality", None)
        candidates = [modality] if modality else ["audio", "image"]
        failures = []
        for m in candidates:
            dummy = np.zeros((1, samples), np.float32) if m == "audio" else \
                np.zeros((1, 3, size, size), np.float32)
            try:
                dim = self._run(dummy).shape[1]
            except Exception as exc:  # the dummy forward decides the modality
                failures.append(f"{m}: {first_line(exc, 120)}")
                continue
            modality = m
            break
        else:
            raise HaiEdgeError(f"torch:{name}: the module takes neither audio [1, {samples}] nor "
                               f"image [1, 3, {size}, {size}] input ({'; '.join(failures)})")
        extra = {"sample_rate": sr, "window_samples": samples} if modality == "audio" else \
            {"image_size": size}
        self._size = size
        self.info = TeacherInfo(id=str(getattr(module, "teacher_id", "") or f"torch:{name}"),
                                modality=modality, embedding_dim=int(dim),
                                licence=str(getattr(module, "licence", "unknown")), **extra)

    def _run(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            out = self._module(torch.from_numpy(x).to(self._device))
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.float().cpu().numpy().reshape(x.shape[0], -1)

    def embed(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        if self.info.modality == "audio":
            x = audio_batch(batch, self.info.window_samples or 0, self.info.id)
        else:
            x = as_float_images(batch, self._size, self._size, self.info.id)
        return self._run(x)

    def close(self) -> None:
        self._module = None


def load_onnx(ref: str, *, device: str = "cpu") -> OnnxTeacher:
    path = Path(ref).expanduser()
    if not path.is_file():
        raise HaiEdgeError(f"{ref}: no such ONNX file")
    return OnnxTeacher(path.resolve(), device=device)


def _is_teacher(obj: Any) -> bool:
    return isinstance(obj, Teacher) and isinstance(getattr(obj, "info", None), TeacherInfo)


def load_torch(ref: str, *, device: str = "cpu") -> Teacher:
    module_name, sep, attr = ref.rpartition(":")
    if not sep or not module_name or not attr:
        raise HaiEdgeError(f"torch:{ref}: expected torch:MODULE:CALLABLE (e.g. "
                           f"torch:mypkg.models:make_teacher)")
    saved = list(sys.path)
    sys.path.insert(0, os.getcwd())  # like `python -m`: modules in the working directory import
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise HaiEdgeError(f"torch:{ref}: cannot import {module_name}: {first_line(exc)}") \
            from None
    finally:
        sys.path[:] = saved
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise HaiEdgeError(f"torch:{ref}: {module_name} has no callable {attr!r}")
    obj = factory()
    if _is_teacher(obj):
        return obj
    torch = import_torch("the torch teacher (torch:)")
    if not isinstance(obj, torch.nn.Module):
        raise HaiEdgeError(f"torch:{ref}: {attr}() returned {type(obj).__name__}, not an "
                           f"nn.Module or a Teacher")
    return TorchModuleTeacher(obj, ref, device=device)
