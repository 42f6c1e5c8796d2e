"""MedSigLIP teacher (``medsiglip:PATH_OR_HF_ID``, default ``google/medsiglip-448``).

A transformers ``SiglipVisionModel`` (loads the vision tower of a full ``SiglipModel`` checkpoint
too); the embedding is its attention-pooled ``pooler_output`` (what ``get_image_features``
returns, not L2-normalised). Preprocessing follows the checkpoint's ``preprocessor_config.json``
like ``SiglipImageProcessor`` does: stretch to ``size`` with Pillow using its ``resample`` filter
(default bicubic), ``* rescale_factor`` (1/255), ``(x - image_mean) / image_std``. Without that
file: the model config's ``image_size``, bicubic, mean = std = 0.5 (SigLIP's values). Needs the
``teachers`` and ``export`` extras.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hai_edge.errors import HaiEdgeError
from hai_edge.teachers._base import TeacherInfo
from hai_edge.teachers._common import check_rgb, first_line, read_json
from hai_edge.teachers._hub import ResolvedModel, import_transformers, resolve_model_dir

__all__ = ["MedSiglipTeacher", "load_medsiglip"]

_DEFAULT_RESAMPLE = 3  # PIL.Image.BICUBIC, SiglipImageProcessor's default


class MedSiglipTeacher:
    def __init__(self, resolved: ResolvedModel, device: str = "cpu") -> None:
        transformers = import_transformers("the MedSigLIP teacher (medsiglip:)")
        import torch

        root = resolved.path
        if not (root / "config.json").is_file():
            raise HaiEdgeError(f"{root}: no config.json (medsiglip: needs a transformers SigLIP)")
        try:
            model, report = transformers.SiglipVisionModel.from_pretrained(
                str(root), output_loading_info=True)
        except (OSError, ValueError, KeyError) as exc:
            raise HaiEdgeError(f"{root}: cannot load a SigLIP vision model: {first_line(exc)}") \
                from None
        if report.get("missing_keys"):
            missing = sorted(report["missing_keys"])
            raise HaiEdgeError(f"{root}: SigLIP vision weights missing ({len(missing)} tensors, "
                               f"e.g. {missing[0]})")
        self._torch = torch
        self._device = torch.device(device)
        self._model = model.eval().to(self._device)
        cfg = model.config
        pre = read_json(root / "preprocessor_config.json")
        size = pre.get("size") or {}
        self.height = int(size.get("height") or size.get("shortest_edge") or cfg.image_size)
        self.width = int(size.get("width") or size.get("shortest_edge") or cfg.image_size)
        self.resample = int(pre.get("resample", _DEFAULT_RESAMPLE))
        self.rescale = float(pre.get("rescale_factor", 1 / 255)) if pre.get("do_rescale", True) \
            else 1.0
        norm = pre.get("do_normalize", True)
        self.mean = np.asarray(pre.get("image_mean", [0.5] * 3) if norm else [0.0] * 3, np.float32)
        self.std = np.asarray(pre.get("image_std", [0.5] * 3) if norm else [1.0] * 3, np.float32)
        self.info = TeacherInfo(
            id=resolved.describe("medsiglip"), modality="image", embedding_dim=int(cfg.hidden_size),
            licence="HAI-DEF", image_size=self.height,
            notes=resolved.note("MedSigLIP vision tower (SiglipVisionModel pooler_output)"),
        )

    def pixel_values(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        """``[N, 3, H, W]`` float32 model inputs, as ``SiglipImageProcessor`` makes them."""
        from PIL import Image

        if len(batch) == 0:
            raise HaiEdgeError("MedSigLIP: empty batch")
        out = np.empty((len(batch), 3, self.height, self.width), dtype=np.float32)
        for i, img in enumerate(batch):
            a = check_rgb(img, "MedSigLIP")
            if a.shape[:2] != (self.height, self.width):
                pil = Image.fromarray(np.ascontiguousarray(a), "RGB")
                a = np.asarray(pil.resize((self.width, self.height), resample=self.resample))
            x = a.astype(np.float32) * np.float32(self.rescale)
            out[i] = ((x - self.mean) / self.std).transpose(2, 0, 1)
        return out

    def embed(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        torch = self._torch
        pixels = torch.from_numpy(self.pixel_values(batch)).to(self._device)
        with torch.inference_mode():
            pooled = self._model(pixel_values=pixels).pooler_output
        if pooled is None:
            raise HaiEdgeError("MedSigLIP: this vision model has no pooling head (vision_use_head)")
        return pooled.float().cpu().numpy()

    def close(self) -> None:
        self._model = None


def load_medsiglip(ref: str, *, device: str = "cpu") -> MedSiglipTeacher:
    resolved = resolve_model_dir(ref or "google/medsiglip-448", what="MedSigLIP")
    return MedSiglipTeacher(resolved, device=device)
