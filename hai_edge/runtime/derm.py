"""Derm photo pipeline: photo or DICOM in -> quality checks, embedding, calibrated head scores.

Per input (one result per image; a multi-frame DICOM gives one per frame):

1. decode (``runtime.decoders``): an image far larger than the model needs is reduced by 2, 4
   or 8 (JPEG at a reduced DCT scale, DICOM frames and other formats box-averaged by the same
   factor), EXIF orientation kept aside; DICOM frames as uint8 grey/RGB; HEIC/HEIF only when
   ``pillow-heif`` is installed (extra ``heic``). The stored size is read from the header, so
   ``width``/``height`` and the "too small" check describe the photo, not the reduced decode;
2. quality checks (``runtime.quality``) on the upright photo: they warn; only severe blur,
   darkness or brightness (``quality.blocking_checks``) withholds the heads' scores;
3. the bundle's image front end and model -> embedding (``Embedder``, the one shared path);
4. every head's calibrated probability, its threshold and verdict (``runtime.heads``; within the
   head's borderline band: no verdict, see ``runtime._scores``), unless it
   is withheld (``runtime.abstain``): a blocking quality check failed, or the embedding is out
   of the head's distribution (its stored gate). A withheld head's score is ``None`` and
   ``withheld`` says why; ``score_anyway=True`` scores regardless and marks the result.

Inputs: :meth:`DermPipeline.analyze_path` (a file) or :meth:`DermPipeline.analyze_bytes` (an
upload), the same surface as the cough pipeline.

Privacy: nothing read from a DICOM header reaches a result, an error or a log except the
optional ``pseudonym``: ``HMAC-SHA256(key, PatientID)``, first 16 bytes as 32 hex digits,
computed only when the caller supplies a key (at least 16 bytes). Without the key the pseudonym
cannot be recomputed or reversed; with it, the same patient always gets the same pseudonym.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import io
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from hai_edge.errors import BundleError, HaiEdgeError, InputError
from hai_edge.runtime._embedder import Embedder, EmbedderPipeline
from hai_edge.runtime._scores import DermScore
from hai_edge.runtime.abstain import ood_reason
from hai_edge.runtime.frontends import ImageFrontendSpec
from hai_edge.runtime.heads import Head, load_heads
from hai_edge.runtime.quality import QualityCheck, QualityReport, assess_quality, blocking_reason
from hai_edge.tools import one_blas_thread

__all__ = [
    "HEIC_SUFFIXES",
    "MIN_KEY_BYTES",
    "DermPipeline",
    "DermResult",
    "DermScore",
    "QualityCheck",
    "QualityReport",
    "pseudonym_for",
]

DEFAULT_BUNDLE = "derm-demo"
HEIC_SUFFIXES = (".heic", ".heif", ".hif")
MIN_KEY_BYTES = 16
PSEUDONYM_BYTES = 16
_REFERENCE_NOTICE = ("demo, not for clinical use: distilled from a reference teacher ({id}), "
                     "not from a validated foundation model")


def pseudonym_for(patient_id: str, key: bytes) -> str:
    """``HMAC-SHA256(key, PatientID as UTF-8)`` truncated to 16 bytes, as 32 hex digits."""
    mac = hmac.new(bytes(key), patient_id.encode("utf-8"), hashlib.sha256)
    return mac.digest()[:PSEUDONYM_BYTES].hex()


@dataclasses.dataclass(frozen=True, eq=False)
class DermResult:
    """Result for one photo (or one DICOM frame). ``width``/``height``: the upright photo as
    stored (before any reduced-scale decode). ``scores[name]`` is None when the head was
    withheld; ``withheld[name]`` then says why in plain words. With ``scored_anyway`` every
    head is scored and ``would_withhold`` keeps the reasons that were overridden. ``ood``:
    per head with a gate, its distance and threshold."""

    input: str
    frame: int | None
    width: int
    height: int
    quality: QualityReport
    embedding: np.ndarray
    scores: Mapping[str, DermScore | None]
    pseudonym: str | None
    timing_ms: Mapping[str, float]
    notices: tuple[str, ...]
    bundle: str
    backend: str
    model: str
    withheld: Mapping[str, str] = dataclasses.field(default_factory=dict)
    scored_anyway: bool = False
    would_withhold: Mapping[str, str] = dataclasses.field(default_factory=dict)
    ood: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)

    def to_dict(self, embedding: bool = True) -> dict[str, Any]:
        """The ``hai-edge derm --json`` object (schema: docs/derm.md)."""
        d: dict[str, Any] = {
            "input": self.input,
            "frame": self.frame,
            "width": self.width,
            "height": self.height,
            "quality": self.quality.to_dict(),
        }
        if embedding:
            d["embedding"] = [round(float(x), 6) for x in self.embedding]
        d.update({
            "scores": {k: None if v is None else v.to_dict() for k, v in self.scores.items()},
            "withheld": dict(self.withheld),
            "scored_anyway": self.scored_anyway,
        })
        if self.scored_anyway:
            d["would_withhold"] = dict(self.would_withhold)
        d.update({
            "ood": {k: dict(v) for k, v in self.ood.items()},
            "pseudonym": self.pseudonym,
            "timing_ms": {k: round(float(v), 3) for k, v in self.timing_ms.items()},
            "notices": list(self.notices),
            "bundle": self.bundle,
            "backend": self.backend,
            "model": self.model,
        })
        return d


def _default_bundle() -> str:
    from hai_edge.bundle import builtin_bundles

    if DEFAULT_BUNDLE in builtin_bundles():
        return DEFAULT_BUNDLE
    raise BundleError(f"no bundle given and the built-in {DEFAULT_BUNDLE} bundle is not "
                      "installed; pass a bundle directory (--bundle DIR)")


class DermPipeline(EmbedderPipeline):
    """Quality checks + embedding + heads for one image bundle (default: built-in derm-demo).

    ``heads``: names of the heads to apply (default: all of the bundle's; ``[]``: none);
    ``pseudonym_key``: secret bytes (>= 16) for DICOM pseudonyms; ``engine``: an injected
    :class:`~hai_edge.runtime.backends.Backend` (e.g. ``MockBackend`` in app tests).
    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, bundle: Any = None, backend: str | None = None, *,
                 precision: str | None = None, threads: int | None = None,
                 heads: Sequence[str] | None = None, pseudonym_key: bytes | None = None,
                 engine: Any = None) -> None:
        if pseudonym_key is not None:
            if not isinstance(pseudonym_key, (bytes, bytearray)):
                raise HaiEdgeError("the pseudonym key must be bytes")
            if len(pseudonym_key) < MIN_KEY_BYTES:
                raise HaiEdgeError(f"the pseudonym key must be at least {MIN_KEY_BYTES} bytes "
                                   f"(got {len(pseudonym_key)})")
        self._key = bytes(pseudonym_key) if pseudonym_key is not None else None
        self.embedder = Embedder(_default_bundle() if bundle is None else bundle, backend,
                                 precision=precision, threads=threads, engine=engine)
        self.bundle = self.embedder.bundle
        spec = self.bundle.manifest.preprocessing
        if not isinstance(spec, ImageFrontendSpec):
            self.embedder.close()
            raise HaiEdgeError(f"bundle {self.bundle.manifest.name} is not an image bundle; "
                               "the derm pipeline needs one")
        self.spec: ImageFrontendSpec = spec
        try:
            self.heads: list[Head] = load_heads(self.bundle, heads, verify=False)
        except BaseException:
            self.embedder.close()
            raise
        self.notices = self._notices()

    def __repr__(self) -> str:  # never shows the key
        return (f"DermPipeline(bundle={self.bundle.manifest.name!r}, "
                f"backend={self.embedder.backend_name!r}, heads={[h.name for h in self.heads]}, "
                f"pseudonyms={'on' if self._key else 'off'})")

    def _notices(self) -> tuple[str, ...]:
        m = self.bundle.manifest
        notices = list(m.notices)
        notices += [h.notice for h in self.heads if h.notice and h.notice not in notices]
        teacher = m.provenance_info().teacher
        if teacher is not None and teacher.is_reference and not any(
                "not for clinical use" in n.lower() for n in notices):
            notices.append(_REFERENCE_NOTICE.format(id=teacher.id))
        return tuple(notices)

    # ------------------------------------------------------------------------ inputs
    def analyze_path(self, path: str | os.PathLike[str], *, score_anyway: bool = False
                     ) -> list[DermResult]:
        """One result per image in the file (per frame for a multi-frame DICOM);
        ``score_anyway`` scores heads that would be withheld (and marks the result)."""
        from hai_edge.runtime.decoders import check_input_file, is_dicom, load_images

        src = str(path)
        t0 = time.perf_counter()
        p = Path(path)
        check_input_file(p, src)
        if p.suffix.lower() in HEIC_SUFFIXES or _looks_heif(_head(p)):
            _enable_heic(src)
        images = load_images(p, max_pixels=self.spec.max_pixels,
                             draft_min_side=self._draft_side(), source=src)
        dicom = is_dicom(p)
        stored = pid = None
        try:
            with open(p, "rb") as fh:
                stored = None if dicom else _stored_size(fh)
                pid = _patient_id(fh) if dicom and self._key is not None else None
        except OSError:  # gone since it was decoded: decoded size, no pseudonym
            pass
        return self._results(src, images, stored, dicom, pid, t0, score_anyway)

    analyze_file = analyze_path  # the former name

    def analyze_bytes(self, data: bytes, name: str, *, score_anyway: bool = False
                      ) -> list[DermResult]:
        """:meth:`analyze_path` for an in-memory file (an upload); ``name`` names it."""
        from hai_edge.runtime.decoders import DICOM_SUFFIXES, is_dicom_bytes, load_images_bytes

        src = str(name)
        t0 = time.perf_counter()
        if src.lower().endswith(HEIC_SUFFIXES) or _looks_heif(bytes(data[:12])):
            _enable_heic(src)
        images = load_images_bytes(data, src, max_pixels=self.spec.max_pixels,
                                   draft_min_side=self._draft_side())
        dicom = is_dicom_bytes(data) or src.lower().endswith(DICOM_SUFFIXES)
        fh = io.BytesIO(bytes(data))
        stored = None if dicom else _stored_size(fh)
        pid = _patient_id(fh) if dicom and self._key is not None else None
        return self._results(src, images, stored, dicom, pid, t0, score_anyway)

    def _draft_side(self) -> int:
        return 2 * max(self.spec.height, self.spec.width)

    # ---------------------------------------------------------------------- analysis
    @one_blas_thread()
    def _results(self, src: str, images: Sequence[Any], stored: tuple[int, int] | None,
                 dicom: bool, patient_id: str | None, t0: float, score_anyway: bool = False
                 ) -> list[DermResult]:
        decode_ms = (time.perf_counter() - t0) * 1e3 / max(1, len(images))
        notices = list(self.notices)
        pseudonym = None
        if dicom and self._key is not None:
            if patient_id:
                pseudonym = pseudonym_for(patient_id, self._key)
            else:
                notices.append("no pseudonym: the DICOM file has no usable PatientID")
        return [self._analyze_one(src, img, stored, pseudonym, tuple(notices), decode_ms,
                                  score_anyway) for img in images]

    def _analyze_one(self, src: str, img: Any, stored: tuple[int, int] | None,
                     pseudonym: str | None, notices: tuple[str, ...], decode_ms: float,
                     score_anyway: bool = False) -> DermResult:
        timing = {"decode": decode_ms}
        w, h = img.full_size  # as stored: the decoder may have reduced a large image
        if stored is not None and stored[0] >= w and stored[1] >= h:
            w, h = stored
        if img.orientation in (5, 6, 7, 8):  # stored sideways: upright swaps the sides
            w, h = h, w
        t0 = time.perf_counter()
        try:
            quality = assess_quality(img.pixels, img.orientation, full_size=(w, h),
                                     min_side=max(self.spec.height, self.spec.width))
        except ValueError as exc:  # unsupported pixel layout (the front end says the same)
            raise InputError(src, str(exc)) from None
        t1 = time.perf_counter()
        emb = self.embedder.embed_image(img.pixels, img.orientation, src, img.frame)
        vec = emb.vector
        t3 = time.perf_counter()
        reasons, ood = self._abstain(quality, vec)
        scores: dict[str, DermScore | None] = {}
        for head in self.heads:
            if head.name in reasons and not score_anyway:
                scores[head.name] = None
                continue
            p = float(head.predict_proba(vec)[0])
            scores[head.name] = DermScore.of(head, p)
        t4 = time.perf_counter()
        timing.update(quality=(t1 - t0) * 1e3, preprocess=emb.timing_ms["preprocess"],
                      inference=emb.timing_ms["inference"], heads=(t4 - t3) * 1e3)
        timing["total"] = sum(timing.values())
        return DermResult(input=src, frame=img.frame, width=int(w), height=int(h),
                          quality=quality, embedding=vec, scores=scores, pseudonym=pseudonym,
                          timing_ms=timing, notices=notices, **self.meta,
                          withheld={} if score_anyway else reasons,
                          scored_anyway=bool(score_anyway),
                          would_withhold=reasons if score_anyway else {}, ood=ood)

    def _abstain(self, quality: QualityReport, vec: np.ndarray
                 ) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
        """(head -> reason to withhold its score, head -> its OOD distance and threshold)."""
        blocked = blocking_reason(quality)
        reasons: dict[str, str] = {}
        ood: dict[str, dict[str, Any]] = {}
        for head in self.heads:
            if head.ood is not None:
                dist = float(head.ood.distance(vec, quality)[0])
                inside = dist <= head.ood.threshold
                ood[head.name] = {"distance": round(dist, 4),
                                  "threshold": round(head.ood.threshold, 4),
                                  "in_distribution": inside}
                if not inside:
                    reasons[head.name] = ood_reason(dist, head.ood.threshold)
            if blocked:  # the quality reason comes first: it is what the user can fix
                reasons[head.name] = blocked + (f"; {reasons[head.name]}"
                                                if head.name in reasons else "")
        return reasons, ood


# -------------------------------------------------------------------------- helpers
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")


def _head(p: Path) -> bytes:
    try:
        with open(p, "rb") as fh:
            return fh.read(12)
    except OSError:
        return b""  # the decoder reports the problem


def _looks_heif(head: bytes) -> bool:
    """An ISO-BMFF ``ftyp`` box with a HEIF brand (a HEIC photo renamed to .jpg, say)."""
    return len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS


def _enable_heic(src: str) -> None:
    """Register pillow-heif's opener with Pillow, or say which extra is missing."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:
        raise InputError(src, "HEIC/HEIF photos need pillow-heif, which is not installed: "
                              "pip install 'hai-edge[heic]' (or convert the photo to JPEG)"
                         ) from None
    register_heif_opener()


def _stored_size(fh: BinaryIO) -> tuple[int, int] | None:
    """(width, height) from the image header as stored; None when it cannot be read (the
    decoded size is then used). The file was already fully decoded, so this is header only."""
    try:
        from PIL import Image

        fh.seek(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(fh) as im:
                return int(im.size[0]), int(im.size[1])
    except Exception:
        return None


def _patient_id(fh: BinaryIO) -> str | None:
    """PatientID from a DICOM header, for the pseudonym only: never logged or returned.

    Any failure (no such element, unreadable header) is None; the pixel data were already
    decoded successfully, so the header is known to parse.
    """
    try:
        import pydicom

        from hai_edge.runtime.decoders import quiet_pydicom

        fh.seek(0)
        with quiet_pydicom(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(fh, stop_before_pixels=True, specific_tags=["PatientID"])
            value = ds.get("PatientID", None)
        text = str(value).strip() if value is not None else ""
    except Exception:
        return None
    return text or None
