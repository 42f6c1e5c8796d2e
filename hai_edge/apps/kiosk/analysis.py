"""Inference for the kiosk: a tiny ``Analyzer`` protocol, the real and mock analyzers, and a
bounded queue that runs them off the request threads (overload -> :class:`Overloaded` -> 503).

An analyzer turns uploaded bytes into an :class:`Analysis`: a JSON-able ``result`` (what the
results page shows and exports) plus the embeddings as a float32 matrix (exported as ``.npy``).
Photos: one result per image (several for a multi-frame DICOM) shaped like
``DermResult.to_dict`` (docs/kiosk.md). Coughs: ``CoughResult.to_dict`` (its ``quality`` block
included). The real analyzer only calls the pipelines' ``analyze_bytes``: decoding and quality
checks live in the runtime, not here. ``score_anyway`` (the upload's ``?score_anyway=1``) asks
the pipelines to score heads they would withhold (runtime.abstain); the result says so.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import enum
import math
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from hai_edge.errors import HaiEdgeError, InputError

__all__ = ["Analysis", "AnalysisQueue", "Analyzer", "Kind", "MockAnalyzer", "Overloaded",
           "PipelineAnalyzer", "sniff"]


class Kind(str, enum.Enum):
    PHOTO = "photo"
    COUGH = "cough"


@dataclasses.dataclass(frozen=True, eq=False)
class Analysis:
    result: dict[str, Any]
    embeddings: np.ndarray  # [rows, dim] float32 (rows: frames for photos, windows for coughs)


class Analyzer(Protocol):
    """What the kiosk needs from inference. Implementations must be callable from one worker
    thread per kind (photo and cough calls may run concurrently)."""

    def analyze_photo(self, data: bytes, name: str, score_anyway: bool = False
                      ) -> Analysis: ...

    def analyze_cough(self, data: bytes, name: str, score_anyway: bool = False
                      ) -> Analysis: ...

    def info(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


# ------------------------------------------------------------------------------ sniffing
_PHOTO_MAGIC = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"),
                (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"), (b"BM", "image/bmp"),
                (b"II*\x00", "image/tiff"), (b"MM\x00*", "image/tiff"))
_AUDIO_MAGIC = ((b"fLaC", "audio/flac"), (b"OggS", "audio/ogg"), (b"ID3", "audio/mpeg"))


def sniff(data: bytes, kind: Kind) -> str | None:
    """The media type from the content (never from the name or the client's header)."""
    if kind is Kind.PHOTO:
        if data[128:132] == b"DICM":
            return "application/dicom"
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return "image/webp"
        return next((m for magic, m in _PHOTO_MAGIC if data.startswith(magic)), None)
    if data[:4] in (b"RIFF", b"RF64") and data[8:12] == b"WAVE":
        return "audio/wav"
    if data[:4] == b"FORM" and data[8:12] in (b"AIFF", b"AIFC"):
        return "audio/aiff"
    if len(data) > 2 and data[0] == 0xFF and (data[1] & 0xE0) == 0xE0:
        return "audio/mpeg"
    return next((m for magic, m in _AUDIO_MAGIC if data.startswith(magic)), None)


# ------------------------------------------------------------------------ real analyzers
class PipelineAnalyzer:
    """Real inference: :class:`~hai_edge.runtime.cough.CoughPipeline` for coughs and
    :class:`~hai_edge.runtime.derm.DermPipeline` for photos."""

    def __init__(self, cough_bundle: Any | None, photo_bundle: Any | None, *,
                 backend: str | None = None, threads: int | None = None,
                 pseudonym_key: bytes | None = None) -> None:
        self.cough: Any = None
        self.photo: Any = None
        self.photo_pipeline = "none"
        self._engine = {"backend": backend, "threads": threads}
        self._pseudonym_key = pseudonym_key
        self._retired: list[Any] = []  # replaced pipelines: closed with the analyzer
        try:
            if cough_bundle is not None:
                self.cough = self._open("audio", cough_bundle)
            if photo_bundle is not None:
                self.photo = self._open("image", photo_bundle)
                self.photo_pipeline = "derm"
        except BaseException:
            self.close()
            raise

    def _open(self, modality: str, bundle: Any) -> Any:
        from hai_edge.runtime.cough import CoughPipeline
        from hai_edge.runtime.derm import DermPipeline

        if modality == "audio":
            return CoughPipeline(bundle, self._engine["backend"], threads=self._engine["threads"],
                                 keep_embeddings=True)
        return DermPipeline(bundle, self._engine["backend"], threads=self._engine["threads"],
                            pseudonym_key=self._pseudonym_key)

    def replace_bundle(self, modality: str, bundle: Any) -> None:
        """Serve ``bundle`` from now on. The new pipeline is opened first; requests already
        running keep the pipeline they started with (it is closed with the analyzer)."""
        fresh = self._open(modality, bundle)
        if modality == "audio":
            old, self.cough = self.cough, fresh
        else:
            old, self.photo = self.photo, fresh
            self.photo_pipeline = "derm"
        if old is not None:
            self._retired.append(old)

    @property
    def cough_sample_rate(self) -> int:
        return self.cough.spec.sample_rate if self.cough is not None else 16000

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"analyzer": "pipeline", "photo_pipeline": self.photo_pipeline}
        if self.cough is not None:
            out["cough"] = {**self.cough.meta, "notices": list(self.cough.notices)}
        if self.photo is not None:
            out["photo"] = _photo_meta(self.photo)
        return out

    def analyze_photo(self, data: bytes, name: str, score_anyway: bool = False) -> Analysis:
        photo = self.photo  # one pipeline for the whole request, even if an update swaps it
        if photo is None:
            raise HaiEdgeError("no photo bundle is configured on this kiosk")
        frames = photo.analyze_bytes(data, name, score_anyway=score_anyway)
        dicts = [f.to_dict(embedding=True) for f in frames]
        vectors = np.asarray([d.pop("embedding") for d in dicts], dtype=np.float32)
        return Analysis({"kind": "photo", "frames": dicts}, vectors)

    def analyze_cough(self, data: bytes, name: str, score_anyway: bool = False) -> Analysis:
        cough = self.cough  # one pipeline for the whole request, even if an update swaps it
        if cough is None:
            raise HaiEdgeError("no cough bundle is configured on this kiosk")
        res = cough.analyze_bytes(data, name, score_anyway=score_anyway)
        d = res.to_dict(embeddings=False, quality=True)  # checked on the recording as uploaded
        d["kind"] = "cough"
        dim = cough.bundle.manifest.embedding_dim
        rows = [w.embedding for w in res.windows if w.embedding is not None]
        vectors = np.asarray(rows, dtype=np.float32).reshape(len(rows), dim)
        return Analysis(d, vectors)

    def close(self) -> None:
        for p in (self.cough, self.photo, *self._retired):
            if p is not None:
                p.close()


def _photo_meta(photo: Any) -> dict[str, Any]:
    emb = getattr(photo, "embedder", None)
    bundle = getattr(photo, "bundle", None) or getattr(emb, "bundle", None)
    out: dict[str, Any] = {}
    if bundle is not None:
        out["bundle"] = bundle.manifest.name
    if emb is not None:
        out.update(backend=emb.backend_name, model=emb.entry.id)
    out["notices"] = list(getattr(photo, "notices", ()))
    return out


def _mock_too_small(side: int) -> dict[str, Any]:
    warn = side < 64
    return {"name": "too_small", "score": round(float(side), 6), "threshold": 64,
            "flag": "warn" if warn else "pass",
            "reason": "the photo is too small: move closer or use a higher resolution"
            if warn else ""}


class MockAnalyzer:
    """Deterministic analyzer for API tests: real decoders (so bad files fail as in
    production), the real energy detector (so a recording without a cough is withheld as in
    production), fixed scores, optional ``delay_s`` to simulate a slow engine."""

    notice = "mock analyzer: not a model, not for clinical use"

    def __init__(self, delay_s: float = 0.0, dim: int = 4) -> None:
        self.delay_s = delay_s
        self.dim = dim
        self.calls = 0
        self.replaced: list[tuple[str, Any]] = []

    def replace_bundle(self, modality: str, bundle: Any) -> None:
        self.replaced.append((modality, bundle))

    def info(self) -> dict[str, Any]:
        return {"analyzer": "mock", "photo_pipeline": "mock",
                "photo": {"bundle": "mock", "notices": [self.notice]},
                "cough": {"bundle": "mock", "notices": [self.notice]}}

    def _vector(self, data: bytes, rows: int) -> np.ndarray:
        import hashlib

        seed = int.from_bytes(hashlib.sha256(data).digest()[:4], "little")
        return np.random.default_rng(seed).standard_normal((rows, self.dim)).astype(np.float32)

    def analyze_photo(self, data: bytes, name: str, score_anyway: bool = False) -> Analysis:
        from hai_edge.runtime.decoders import load_images_bytes

        self.calls += 1
        time.sleep(self.delay_s)
        images = load_images_bytes(data, name)
        frames = []
        for img in images:
            w, h = img.full_size
            frames.append({
                "input": name, "frame": img.frame, "width": int(w), "height": int(h),
                "quality": {"passed": min(h, w) >= 64, "checks": [_mock_too_small(min(h, w))]},
                "scores": {"mock-head": {"probability": 0.25, "threshold": 0.5, "band": 0.0,
                                         "verdict": "negative", "positive": False,
                                         "borderline": False, "label": "negative"}},
                "withheld": {}, "scored_anyway": bool(score_anyway),
                "pseudonym": None, "timing_ms": {"total": 1.0}, "notices": [self.notice],
                "bundle": "mock", "backend": "mock", "model": "mock"})
        return Analysis({"kind": "photo", "frames": frames}, self._vector(data, len(frames)))

    def analyze_cough(self, data: bytes, name: str, score_anyway: bool = False) -> Analysis:
        from hai_edge.runtime.abstain import NO_COUGH
        from hai_edge.runtime.cough_quality import assess_recording
        from hai_edge.runtime.decoders import decode_audio_bytes
        from hai_edge.runtime.events import EnergyDetector
        from hai_edge.runtime.frontends import to_mono

        self.calls += 1
        time.sleep(self.delay_s)
        dec = decode_audio_bytes(data, name)
        mono = to_mono(dec.samples)
        if mono.size < dec.sample_rate // 4:
            raise InputError(name, f"audio is {mono.size / dec.sample_rate:.2f} s long; at "
                                   "least 0.25 s is needed")
        events = EnergyDetector(dec.sample_rate).detect(mono)
        scored = bool(events) or score_anyway
        score = {"mean": 0.75, "max": 0.8, "count": 1, "threshold": 0.5, "band": 0.0,
                 "verdict": "positive", "positive": True, "borderline": False,
                 "label": "positive"}
        result = {"kind": "cough", "input": name, "duration_s": round(dec.duration_s, 4),
                  "sample_rate": dec.sample_rate, "bundle": "mock", "backend": "mock",
                  "model": "mock", "detector": "energy", "events": [e.to_dict() for e in events],
                  "windows": [], "fallback_windows": not events and scored,
                  "scores": {"mock-head": score if scored else None},
                  "withheld": {} if scored else {"mock-head": NO_COUGH},
                  "scored_anyway": bool(score_anyway),
                  "timing_ms": {"total": 1.0}, "notices": [self.notice],
                  "quality": assess_recording(mono, dec.sample_rate, len(events), 1.0).to_dict()}
        if score_anyway:
            result["would_withhold"] = {} if events else {"mock-head": NO_COUGH}
        return Analysis(result, self._vector(data, 1))

    def close(self) -> None:
        pass


# ----------------------------------------------------------------------------- the queue
class Overloaded(HaiEdgeError):
    """The analysis queue is full; ``retry_after_s`` estimates when to try again."""

    def __init__(self, kind: Kind, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(f"the kiosk is busy analysing {kind.value}s; try again in "
                         f"{retry_after_s} s")


class _Lane:
    def __init__(self, kind: Kind, depth: int, workers: int) -> None:
        self.kind = kind
        self.jobs: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.mean_s = 0.05  # running estimate of one job's service time
        self.threads = [threading.Thread(target=self._run, name=f"kiosk-{kind.value}-{i}",
                                         daemon=True) for i in range(workers)]
        for t in self.threads:
            t.start()

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            fut, fn, args, queued_at = job
            if not fut.set_running_or_notify_cancel():
                continue
            t0 = time.perf_counter()
            try:
                res = fn(*args)
            except BaseException as exc:  # handed to the waiting request
                fut.set_exception(exc)
            else:
                if isinstance(res, Analysis):
                    timing = res.result.setdefault("timing_ms", {})
                    timing["queue"] = round((t0 - queued_at) * 1e3, 3)
                fut.set_result(res)
            self.mean_s = 0.8 * self.mean_s + 0.2 * (time.perf_counter() - t0)


class AnalysisQueue:
    """One bounded queue + worker thread(s) per kind, so photos never wait behind coughs."""

    def __init__(self, analyzer: Analyzer, depth: int = 32, workers: int = 1,
                 photo_workers: int | None = None) -> None:
        self.analyzer = analyzer
        self.depth = depth
        n = {Kind.PHOTO: photo_workers or workers, Kind.COUGH: workers}
        self._lanes = {k: _Lane(k, depth, n[k]) for k in Kind}

    def submit(self, kind: Kind, data: bytes, name: str, score_anyway: bool = False
               ) -> concurrent.futures.Future[Analysis]:
        fn: Callable[..., Analysis] = (self.analyzer.analyze_photo if kind is Kind.PHOTO
                                       else self.analyzer.analyze_cough)
        lane = self._lanes[kind]
        fut: concurrent.futures.Future[Analysis] = concurrent.futures.Future()
        try:
            args = (data, name, True) if score_anyway else (data, name)
            lane.jobs.put_nowait((fut, fn, args, time.perf_counter()))
        except queue.Full:
            wait = math.ceil(lane.jobs.qsize() * lane.mean_s / len(lane.threads))
            raise Overloaded(kind, max(1, wait)) from None
        return fut

    def pending(self) -> dict[str, int]:
        return {k.value: lane.jobs.qsize() for k, lane in self._lanes.items()}

    def close(self) -> None:
        for lane in self._lanes.values():
            for _ in lane.threads:
                lane.jobs.put(None)
        for lane in self._lanes.values():
            for t in lane.threads:
                t.join(timeout=10)
