"""Media in, embeddings out: decoder -> manifest-driven front end -> engine.

This is the one code path every run-side user takes (CLI ``embed``, cough/derm pipelines, apps),
so preprocessing never forks between them.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Self

import numpy as np

from hai_edge.bundle import Bundle, ModelEntry, Modality, Precision
from hai_edge.errors import BackendError
from hai_edge.runtime.backends import Backend, open_model
from hai_edge.runtime.frontends import AudioFrontendSpec, ImageFrontendSpec, prepare_audio, prepare_image
from hai_edge.tools import one_blas_thread

__all__ = ["AudioEmbedding", "Embedder", "EmbedderPipeline", "ImageEmbedding"]


@dataclasses.dataclass(frozen=True)
class AudioEmbedding:
    """Embeddings of one recording: one row per kept window."""

    source: str
    starts_s: np.ndarray  # [n]
    ends_s: np.ndarray  # [n]
    vectors: np.ndarray  # [n, dim] float32
    duration_s: float
    timing_ms: dict[str, float]


@dataclasses.dataclass(frozen=True)
class ImageEmbedding:
    """Embedding of one photo (or one DICOM frame)."""

    source: str
    frame: int | None
    vector: np.ndarray  # [dim] float32
    timing_ms: dict[str, float]


class Embedder:
    """A bundle opened on one engine. Use as a context manager, or call ``close``."""

    def __init__(
        self,
        bundle: Bundle | str | os.PathLike[str],
        backend: str | None = None,
        *,
        precision: Precision | str | None = None,
        threads: int | None = None,
        model_id: str | None = None,
        engine: Backend | None = None,
        batch_size: int = 16,
    ) -> None:
        self.bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
        manifest = self.bundle.manifest
        self.spec = manifest.preprocessing
        self.batch_size = batch_size
        if engine is not None:  # injected (e.g. MockBackend in app tests)
            self.engine = engine
            self.entry: ModelEntry = (
                self.bundle.model(model_id) if model_id else manifest.models[0]
            )
        else:
            self.engine, self.entry = open_model(self.bundle, backend, precision, threads, model_id)
        self.input_name = self.entry.inputs[0].name
        self.output_name = self.entry.outputs[0].name

    @property
    def modality(self) -> Modality:
        return self.bundle.manifest.modality

    @property
    def backend_name(self) -> str:
        return self.engine.name

    def __enter__(self) -> Embedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.close()

    def embed_inputs(self, x: np.ndarray) -> np.ndarray:
        """Preprocessed model inputs [B, ...] -> embeddings [B, dim] float32."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        out = []
        for i in range(0, len(x), self.batch_size):
            res = self.engine.run({self.input_name: x[i : i + self.batch_size]})
            if self.output_name not in res:
                if len(res) != 1:
                    raise BackendError(f"model output {self.output_name!r} not found")
                y = next(iter(res.values()))
            else:
                y = res[self.output_name]
            out.append(self._checked(y, len(x[i : i + self.batch_size])))
        y = np.concatenate(out) if out else np.zeros((0, self.bundle.manifest.embedding_dim), np.float32)
        if y.shape[1] != self.bundle.manifest.embedding_dim:
            raise BackendError(
                f"model returned {y.shape[1]}-d vectors, manifest says "
                f"{self.bundle.manifest.embedding_dim}"
            )
        return y

    def _checked(self, y: object, n: int) -> np.ndarray:
        """The engine's output for ``n`` inputs as [n, d] float32, or a one-line BackendError for
        an empty (seen with OpenVINO on ARM), wrongly shaped or non-finite output."""
        where = f"{self.backend_name}/{self.entry.id}"
        try:
            a = np.asarray(y, dtype=np.float32)
        except (TypeError, ValueError):
            raise BackendError(f"{where}: the engine returned a non-numeric output") from None
        dim = self.bundle.manifest.embedding_dim
        if a.size == 0:
            raise BackendError(f"{where}: the engine returned an empty output "
                               f"(expected {n}x{dim})")
        if a.size % n:
            shape = "x".join(str(s) for s in a.shape)
            raise BackendError(f"{where}: the engine returned an output of shape {shape} "
                               f"for {n} input(s) (expected {n}x{dim})")
        a = a.reshape(n, -1)
        if not np.all(np.isfinite(a)):
            raise BackendError(f"{where}: the engine returned non-finite values (NaN or "
                               "infinity)")
        return a

    @one_blas_thread()
    def embed_audio(self, samples: np.ndarray, sample_rate: int, source: str = "<audio>") -> AudioEmbedding:
        spec = self.spec
        if not isinstance(spec, AudioFrontendSpec):
            raise BackendError(f"bundle {self.bundle.manifest.name} is not an audio bundle")
        t0 = time.perf_counter()
        windows, inputs = prepare_audio(samples, sample_rate, spec, source)
        t1 = time.perf_counter()
        vectors = self.embed_inputs(inputs)
        t2 = time.perf_counter()
        return AudioEmbedding(
            source=source,
            starts_s=np.array([w.start_s for w in windows], dtype=np.float64),
            ends_s=np.array([w.end_s for w in windows], dtype=np.float64),
            vectors=vectors,
            duration_s=len(samples) / float(sample_rate),
            timing_ms={"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3},
        )

    def embed_audio_file(self, path: str | os.PathLike[str]) -> AudioEmbedding:
        from hai_edge.runtime.decoders import decode_audio

        t0 = time.perf_counter()
        decoded = decode_audio(path)
        t1 = time.perf_counter()
        emb = self.embed_audio(decoded.samples, decoded.sample_rate, str(path))
        emb.timing_ms["decode"] = (t1 - t0) * 1e3
        return emb

    @one_blas_thread()
    def embed_image(self, pixels: np.ndarray, orientation: int = 1, source: str = "<image>",
                    frame: int | None = None) -> ImageEmbedding:
        spec = self.spec
        if not isinstance(spec, ImageFrontendSpec):
            raise BackendError(f"bundle {self.bundle.manifest.name} is not an image bundle")
        t0 = time.perf_counter()
        x = prepare_image(pixels, spec, orientation=orientation, source=source)
        t1 = time.perf_counter()
        vec = self.embed_inputs(x[None])[0]
        t2 = time.perf_counter()
        return ImageEmbedding(source, frame, vec,
                              {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3})

    def embed_image_file(self, path: str | os.PathLike[str]) -> list[ImageEmbedding]:
        """One embedding per image; a multi-frame DICOM gives one per frame."""
        from hai_edge.runtime.decoders import load_images

        spec = self.spec
        if not isinstance(spec, ImageFrontendSpec):
            raise BackendError(f"bundle {self.bundle.manifest.name} is not an image bundle")
        t0 = time.perf_counter()
        images = load_images(
            Path(path),
            max_pixels=spec.max_pixels,
            draft_min_side=2 * max(spec.height, spec.width),
        )
        decode_ms = (time.perf_counter() - t0) * 1e3 / max(1, len(images))
        results = []
        for img in images:
            emb = self.embed_image(img.pixels, img.orientation, str(path), img.frame)
            emb.timing_ms["decode"] = decode_ms
            results.append(emb)
        return results


class EmbedderPipeline:
    """What the cough and derm pipelines share: they own an :class:`Embedder` (closed with
    them) and stamp every result with the bundle, engine and model that produced it."""

    embedder: Embedder

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.embedder.close()

    @property
    def meta(self) -> dict[str, str]:
        return {"bundle": self.embedder.bundle.manifest.name,
                "backend": self.embedder.backend_name, "model": self.embedder.entry.id}
