"""Student inputs for distillation: each store row's media, cut and augmented exactly as the
teacher saw it, through the runtime front end, computed once and cached on disk.

Per row (``sample_id``, ``item_id``, ``view``, ``start_s``, ``aug``):

- audio: decode -> mono -> resample to the student's rate -> the window starting at ``start_s``
  (zero-padded at its end, as ``split_windows`` pads) -> replay ``aug`` on the window
  (``augment.apply_audio_aug``) -> ``window_features``;
- image: decode (first frame) -> EXIF transpose -> RGB -> replay ``aug``
  (``augment.apply_image_aug``) -> ``prepare_image``.

The front end is deterministic, so caching its output is what makes CPU training fast. The cache
key covers the spec, the rows (ids + augmentation JSON) and the item files' sizes and times.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.fileio import atomic_write
from hai_edge.errors import HaiEdgeError, InputError
from hai_edge.bundle.frontend import AudioFrontendSpec, ImageFrontendSpec
from hai_edge.corpus import CorpusItem

__all__ = [
    "CACHE_VERSION",
    "FeatureCache",
    "build_feature_cache",
    "fit_feature_norm",
    "item_features",
    "load_media",
    "row_features",
    "row_media",
    "select_rows",
    "student_inputs",
]

CACHE_VERSION = 1
Spec = AudioFrontendSpec | ImageFrontendSpec


# --------------------------------------------------------------------------------- media
def load_media(item: CorpusItem, spec: Spec) -> np.ndarray:
    """Decoded media as the teacher's rows start from: mono audio resampled to
    ``spec.sample_rate``, or the upright RGB uint8 photo (first frame)."""
    if isinstance(spec, AudioFrontendSpec):
        return _load_audio(item, spec)
    return _load_rgb(item, spec)


class _MediaCache:
    """Decoded media of the most recent item (rows are sorted by sample id, so an item's rows
    are consecutive and each file is decoded once)."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self._key: str | None = None
        self._value: Any = None

    def get(self, item: CorpusItem) -> Any:
        if self._key != item.item_id:
            self._value = load_media(item, self.spec)
            self._key = item.item_id
        return self._value


def _load_audio(item: CorpusItem, spec: AudioFrontendSpec) -> np.ndarray:
    from hai_edge.runtime.decoders import decode_audio
    from hai_edge.runtime.frontends import resample, to_mono

    dec = decode_audio(item.path, source=item.item_id)
    return resample(to_mono(dec.samples), dec.sample_rate, spec.sample_rate)


def _load_rgb(item: CorpusItem, spec: ImageFrontendSpec) -> np.ndarray:
    from hai_edge.runtime.decoders import load_images
    from hai_edge.runtime.frontends import apply_exif_orientation, to_rgb

    img = load_images(item.path, max_pixels=spec.max_pixels, source=item.item_id)[0]
    return to_rgb(apply_exif_orientation(img.pixels, img.orientation))


def _aug(text: str) -> Any:
    if not text:
        return None
    from hai_edge.distill.augment import aug_from_json

    try:
        return aug_from_json(text)
    except (ValueError, TypeError, KeyError) as exc:
        raise HaiEdgeError(f"store row has an unreadable augmentation {text[:80]!r}: {exc}"
                           ) from None


def _audio_window(mono: np.ndarray, spec: AudioFrontendSpec, start_s: float) -> np.ndarray:
    """The ``window_samples`` samples from ``start_s`` (a hop-grid start), zero-padded."""
    start = int(round(float(start_s) * spec.sample_rate)) if np.isfinite(start_s) else 0
    win = np.zeros(spec.window_samples, dtype=np.float32)
    chunk = mono[max(0, start): start + spec.window_samples]
    win[: chunk.size] = chunk
    return win


def row_media(media: Any, spec: Spec, start_s: float, aug_json: str) -> np.ndarray:
    """What the teacher saw for one row: the (augmented) audio window at ``spec.sample_rate``
    (float32 ``[window_samples]``) or the (augmented) upright RGB photo (uint8 ``[H, W, 3]``)."""
    aug = _aug(aug_json)
    if isinstance(spec, AudioFrontendSpec):
        win = _audio_window(media, spec, start_s)
        if aug is None:
            return win
        from hai_edge.distill.augment import apply_audio_aug

        return apply_audio_aug(win, spec.sample_rate, aug)
    if aug is None:
        return media
    from hai_edge.distill.augment import apply_image_aug

    return apply_image_aug(media, aug)


def row_features(media: Any, spec: Spec, start_s: float, aug_json: str, source: str
                 ) -> np.ndarray:
    """One row's model input ``[*spec.input_shape()]`` float32 from decoded media."""
    from hai_edge.runtime.frontends import prepare_image, window_features

    x = row_media(media, spec, start_s, aug_json)
    if isinstance(spec, AudioFrontendSpec):
        return window_features(x[None, :], spec)[0]
    return prepare_image(x, spec, orientation=1, source=source)


# --------------------------------------------------------------------------------- cache
@dataclasses.dataclass
class FeatureCache:
    """Cached inputs ``x [n, *input_shape]`` (float16 or float32, memory-mapped) for ``ids``."""

    ids: list[str]
    x: np.ndarray
    path: Path


def _cache_key(spec: Spec, rows: Mapping[str, np.ndarray], items: Mapping[str, CorpusItem],
               dtype: str) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"v": CACHE_VERSION, "spec": spec.to_dict(), "dtype": dtype},
                        sort_keys=True).encode())
    for sid, start, aug in zip(rows["sample_id"], rows["start_s"], rows["aug"]):
        h.update(f"{sid}\0{float(start)!r}\0{aug}\n".encode())
    for iid in sorted({str(i) for i in rows["item_id"]}):
        st = items[iid].path.stat()
        h.update(f"{iid}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def build_feature_cache(
    spec: Spec,
    rows: Mapping[str, np.ndarray],
    items: Mapping[str, CorpusItem],
    cache_dir: str | os.PathLike[str],
    name: str,
    *,
    dtype: str = "float16",
    progress: Callable[[int, int], None] | None = None,
) -> FeatureCache:
    """Compute (or reuse) the model inputs of ``rows``; written atomically as one ``.npy``.

    Rows whose media cannot be read raise :class:`InputError` naming the item: the teacher read
    the same file, so a failure here means the data changed under the store.
    """
    cache_dir = Path(cache_dir)
    key = _cache_key(spec, rows, items, dtype)
    path = cache_dir / f"{name}-{key}.npy"
    ids = [str(s) for s in rows["sample_id"]]
    if path.is_file():
        x = np.load(path, mmap_mode="r")
        if len(x) == len(ids):
            return FeatureCache(ids, x, path)
    cache_dir.mkdir(parents=True, exist_ok=True)
    for old in cache_dir.glob(f"{name}-*.npy"):  # a stale cache of an earlier spec/store
        old.unlink()
    shape = (len(ids), *spec.input_shape())
    media = _MediaCache(spec)
    with atomic_write(path) as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                 "shape": shape})
        for i, (iid, start, aug) in enumerate(zip(rows["item_id"], rows["start_s"], rows["aug"])):
            item = items[str(iid)]
            feats = row_features(media.get(item), spec, float(start), str(aug), item.item_id)
            fh.write(np.ascontiguousarray(feats, dtype=dtype).tobytes())
            if progress is not None:
                progress(i + 1, len(ids))
    return FeatureCache(ids, np.load(path, mmap_mode="r"), path)


def fit_feature_norm(x: np.ndarray, max_rows: int = 4096) -> tuple[float, float]:
    """(mean, std) of spectral features over (a deterministic subset of) rows, for
    ``feature_mean``/``feature_std`` of the exported spec."""
    step = max(1, len(x) // max_rows)
    sub = np.asarray(x[::step], dtype=np.float64)
    mean, std = float(sub.mean()), float(sub.std())
    return round(mean, 6), round(max(std, 1e-6), 6)


# --------------------------------------------------------------------------------- runtime
def item_features(spec: Spec, item: CorpusItem) -> np.ndarray:
    """All model inputs of one item with the runtime front end: audio ``[n_windows, ...]`` (every
    non-silent window, as ``hai-edge embed`` cuts them), image ``[1, ...]`` (first frame)."""
    if isinstance(spec, AudioFrontendSpec):
        from hai_edge.runtime.decoders import decode_audio
        from hai_edge.runtime.frontends import prepare_audio

        dec = decode_audio(item.path, source=item.item_id)
        return prepare_audio(dec.samples, dec.sample_rate, spec, item.item_id)[1]
    from hai_edge.runtime.frontends import prepare_image

    from hai_edge.runtime.decoders import load_images

    img = load_images(item.path, max_pixels=spec.max_pixels, source=item.item_id)[0]
    return prepare_image(img.pixels, spec, img.orientation, item.item_id)[None]


def student_inputs(spec: Spec, items: Iterable[CorpusItem], *, max_rows: int | None = None,
                   skip_unreadable: bool = True) -> np.ndarray:
    """Model inputs ``[n, *spec.input_shape()]`` float32 for ``items`` through the runtime front
    end (e.g. INT8 calibration data). Unreadable/silent items are skipped when
    ``skip_unreadable`` (their InputError otherwise propagates); stops at ``max_rows``."""
    out: list[np.ndarray] = []
    n = 0
    for item in items:
        try:
            x = item_features(spec, item)
        except InputError:
            if not skip_unreadable:
                raise
            continue
        out.append(x)
        n += len(x)
        if max_rows is not None and n >= max_rows:
            break
    if not out:
        return np.zeros((0, *spec.input_shape()), dtype=np.float32)
    x = np.concatenate(out).astype(np.float32, copy=False)
    return x[:max_rows] if max_rows is not None else x


def select_rows(rows: Mapping[str, np.ndarray], mask: np.ndarray | Sequence[bool]
                ) -> dict[str, np.ndarray]:
    m = np.asarray(mask, dtype=bool)
    return {k: v[m] for k, v in rows.items()}
