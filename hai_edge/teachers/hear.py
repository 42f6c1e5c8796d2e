"""HeAR (Health Acoustic Representations) teachers: the TF SavedModel and the PyTorch ViT port.

``hear:PATH_OR_HF_ID`` (default ``google/hear``): a TensorFlow SavedModel,
``signatures["serving_default"](x=float32[N, 32000])["output_0"] -> [N, 512]``; TF does the front
end inside the graph. Needs the ``teachers-tf`` extra.

``hear-pytorch:PATH_OR_HF_ID`` (default ``google/hear-pytorch``): a transformers ``ViTModel`` fed
HeAR's PCEN mel front end, re-implemented here in numpy (:func:`hear_features`); the embedding is
``pooler_output`` (``dense(CLS)``, linear, 512-d). Needs the ``teachers`` and ``export`` extras.

Deviation from Google's ``preprocess_audio``, on purpose: it min-max scales the waveform to
[-1, 1] over the **whole batch tensor**, so a clip's embedding depends on which clips share its
batch (and on the batch size). This adapter scales **each clip on its own** with the same formula,
``2 * (x - min) / (max - min + 1e-8) - 1``, so embeddings are reproducible and independent of
batching. For a batch of one clip the two agree exactly. Everything else follows the reference:
STFT frame 400 / hop 160 / FFT 400, periodic Hann, ``pad_end`` (200 frames x 201 bins), power;
128 mel bands 0-8000 Hz (HTK mel, TF ``linear_to_mel_weight_matrix``); PCEN alpha 0.8, smooth
0.04, delta 2, root 2, floor 1e-8, smoother started at the first frame; then [200 frames, 128
mels] is resized to the model's ``image_size`` (192 x 128) with ``tf.image.resize`` bilinear maths
(half-pixel centres, no antialiasing). The mel/STFT/PCEN steps are the project's own
:mod:`hai_edge.runtime.frontends` code driven by an ``AudioFrontendSpec``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hai_edge.errors import HaiEdgeError
from hai_edge.runtime.frontends import AudioFeatures, AudioFrontendSpec, window_features
from hai_edge.teachers._base import TeacherInfo
from hai_edge.teachers._common import audio_batch, first_line
from hai_edge.teachers._hub import ResolvedModel, import_tensorflow, import_transformers, resolve_model_dir

__all__ = [
    "HEAR_SPEC",
    "HearPytorchTeacher",
    "HearSavedModelTeacher",
    "hear_features",
    "hear_normalise",
    "load_hear",
    "load_hear_pytorch",
    "tf_bilinear_matrix",
]

HAI_DEF = "HAI-DEF"
SAMPLE_RATE = 16000
CLIP_SAMPLES = 32000  # exactly 2 s at 16 kHz

# HeAR's mel-PCEN front end expressed with the project's spec (clip normalisation done apart).
HEAR_SPEC = AudioFrontendSpec(
    sample_rate=SAMPLE_RATE, window_s=2.0, hop_s=1.8, features=AudioFeatures.PCEN,
    n_fft=400, win_length=400, hop_length=160, n_mels=128, fmin=0.0, fmax=8000.0,
    pcen_alpha=0.8, pcen_smooth=0.04, pcen_delta=2.0, pcen_root=2.0, pcen_floor=1e-8,
)


# ------------------------------------------------------------------------------ front end
def hear_normalise(x: np.ndarray) -> np.ndarray:
    """Per-clip min-max scaling of ``[B, N]``: ``2 (x - min) / (max - min + 1e-8) - 1``."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.min(axis=1, keepdims=True)
    return x / (x.max(axis=1, keepdims=True) + 1e-8) * 2.0 - 1.0


def tf_bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``[n_out, n_in]`` weights of ``tf.image.resize(method="bilinear", antialias=False)`` along
    one axis: half-pixel centres ``s = (i + 0.5) * (n_in / n_out) - 0.5`` computed in float32 as
    TF does, neighbours ``max(floor(s), 0)`` and ``min(ceil(s), n_in - 1)``, weight
    ``s - floor(s)`` on the upper one (``F.interpolate(mode="bilinear", align_corners=False)``
    is the same maths)."""
    f32 = np.float32
    src = (np.arange(n_out, dtype=f32) + f32(0.5)) * f32(n_in / n_out) - f32(0.5)
    floor = np.floor(src)
    lower = np.maximum(floor, 0).astype(np.int64)
    upper = np.minimum(np.ceil(src), n_in - 1).astype(np.int64)
    frac = (src - floor).astype(np.float64)
    w = np.zeros((n_out, n_in), dtype=np.float64)
    rows = np.arange(n_out)
    np.add.at(w, (rows, lower), 1.0 - frac)
    np.add.at(w, (rows, upper), frac)
    return w


def hear_features(windows: np.ndarray, out_hw: tuple[int, int] = (192, 128)) -> np.ndarray:
    """``[B, 32000]`` 16 kHz windows -> HeAR ViT input float32 ``[B, 1, out_h, out_w]``."""
    x = hear_normalise(np.asarray(windows))
    mel = window_features(x, HEAR_SPEC)[:, 0]  # [B, 128 mels, 200 frames]
    spec = np.swapaxes(mel, 1, 2).astype(np.float64)  # [B, 200 frames, 128 mels] (time = height)
    wh = tf_bilinear_matrix(spec.shape[1], out_hw[0])
    ww = tf_bilinear_matrix(spec.shape[2], out_hw[1])
    out = wh @ spec @ ww.T  # separable: time axis, then mel axis
    return np.ascontiguousarray(out[:, None], dtype=np.float32)


# ------------------------------------------------------------------------- TF SavedModel
class HearSavedModelTeacher:
    """``google/hear``: the SavedModel's serving signature does its own front end."""

    def __init__(self, resolved: ResolvedModel) -> None:
        tf = import_tensorflow("the HeAR SavedModel teacher (hear:)")
        root = resolved.path
        if not (root / "saved_model.pb").is_file():
            raise HaiEdgeError(f"{root}: no saved_model.pb (hear: needs the TF SavedModel folder)")
        self._tf = tf
        self._loaded = tf.saved_model.load(str(root))  # keep alive: the signature refers to it
        sigs = self._loaded.signatures
        if "serving_default" not in sigs:
            raise HaiEdgeError(f"{root}: SavedModel has no serving_default signature")
        self._fn = sigs["serving_default"]
        inputs = self._fn.structured_input_signature[1]
        outputs = self._fn.structured_outputs
        if "x" not in inputs or "output_0" not in outputs:
            raise HaiEdgeError(f"{root}: expected serving_default(x=...)['output_0'] (HeAR's "
                               f"signature), got inputs {sorted(inputs)} outputs {sorted(outputs)}")
        samples = inputs["x"].shape[-1]
        dim = outputs["output_0"].shape[-1]
        if samples is None or dim is None:
            raise HaiEdgeError(f"{root}: serving_default has no fixed clip length/embedding size")
        self.info = TeacherInfo(
            id=resolved.describe("hear"), modality="audio", embedding_dim=int(dim),
            licence=HAI_DEF, sample_rate=SAMPLE_RATE, window_samples=int(samples),
            notes=resolved.note("HeAR TF SavedModel"),
        )

    def embed(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        x = audio_batch(batch, self.info.window_samples or CLIP_SAMPLES, "HeAR")
        out = self._fn(x=self._tf.constant(x))["output_0"]
        return np.asarray(out.numpy(), dtype=np.float32)

    def close(self) -> None:
        self._fn = None
        self._loaded = None


# ------------------------------------------------------------------------------- PyTorch
class HearPytorchTeacher:
    """``google/hear-pytorch``: numpy PCEN mel front end (per-clip scaling) + ViT pooler output."""

    def __init__(self, resolved: ResolvedModel, device: str = "cpu") -> None:
        transformers = import_transformers("the HeAR PyTorch teacher (hear-pytorch:)")
        import torch

        root = resolved.path
        if not (root / "config.json").is_file():
            raise HaiEdgeError(f"{root}: no config.json (hear-pytorch: needs a transformers ViT)")
        self._torch = torch
        self._device = torch.device(device)
        try:
            model = transformers.ViTModel.from_pretrained(str(root))
        except (OSError, ValueError) as exc:
            raise HaiEdgeError(f"{root}: cannot load the HeAR ViT: {first_line(exc)}") from None
        if model.pooler is None:
            raise HaiEdgeError(f"{root}: the ViT has no pooler (HeAR's embedding is pooler_output)")
        cfg = model.config
        size = cfg.image_size
        self._hw = (int(size[0]), int(size[1])) if isinstance(size, (list, tuple)) else (size, size)
        if cfg.num_channels != 1:
            raise HaiEdgeError(f"{root}: HeAR's ViT takes 1 channel, config has {cfg.num_channels}")
        self._model = model.eval().to(self._device)
        dim = int(getattr(cfg, "pooler_output_size", None) or cfg.hidden_size)
        self.info = TeacherInfo(
            id=resolved.describe("hear-pytorch"), modality="audio", embedding_dim=dim,
            licence=HAI_DEF, sample_rate=SAMPLE_RATE, window_samples=CLIP_SAMPLES,
            notes=resolved.note("HeAR ViT (PyTorch); per-clip min-max normalisation"),
        )

    def features(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        return hear_features(audio_batch(batch, CLIP_SAMPLES, "HeAR"), self._hw)

    def embed(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        torch = self._torch
        pixels = torch.from_numpy(self.features(batch)).to(self._device)
        with torch.inference_mode():
            out = self._model(pixel_values=pixels).pooler_output
        return out.float().cpu().numpy()

    def close(self) -> None:
        self._model = None


# ------------------------------------------------------------------------------- loaders
def load_hear(ref: str, *, device: str = "cpu") -> HearSavedModelTeacher:
    del device  # the SavedModel runs where TensorFlow puts it (CPU with tensorflow-cpu)
    return HearSavedModelTeacher(resolve_model_dir(ref or "google/hear", what="HeAR"))


def load_hear_pytorch(ref: str, *, device: str = "cpu") -> HearPytorchTeacher:
    resolved = resolve_model_dir(ref or "google/hear-pytorch", what="HeAR (PyTorch)")
    return HearPytorchTeacher(resolved, device=device)
