"""Golden-vector self-test of a bundle: ``hai-edge verify`` (run side: numpy + engines only).

``golden.json`` (written by ``hai_edge.export.golden``) holds a few model inputs, for audio a short
raw waveform too (and for images small raw photos), plus every model's expected embeddings and
tolerances. Verification re-runs the front end on the raw media (front-end self-test) and every
model of the bundle on every installed engine for its format, and reports per model the max
absolute difference and the min cosine against the tolerance. Arrays are stored as
``{"dtype", "shape", "b64"}`` (little-endian, base64) so a JavaScript app can read them too.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from hai_edge.bundle import Bundle, ModelEntry
from hai_edge.errors import BundleError, GateError, HaiEdgeError, MissingDependencyError
from hai_edge.runtime.frontends import AudioFrontendSpec, prepare_audio, prepare_image
from hai_edge.tools import one_blas_thread

__all__ = [
    "GOLDEN_NAME",
    "ModelCheck",
    "VerifyReport",
    "decode_array",
    "encode_array",
    "golden_model_inputs",
    "load_golden",
    "verify_bundle",
]

GOLDEN_NAME = "golden.json"
_DTYPES = ("float32", "int16", "uint8")


def encode_array(a: np.ndarray, dtype: str = "float32") -> dict[str, Any]:
    if dtype not in _DTYPES:
        raise ValueError(f"unsupported golden dtype {dtype}")
    arr = np.ascontiguousarray(np.asarray(a).astype(np.dtype(dtype).newbyteorder("<")))
    return {"dtype": dtype, "shape": list(arr.shape), "b64": base64.b64encode(arr.tobytes()).decode()}


def decode_array(d: Any, where: str = "golden") -> np.ndarray:
    if not isinstance(d, Mapping) or d.get("dtype") not in _DTYPES or "b64" not in d:
        raise BundleError(f"{where}: not an encoded array")
    try:
        raw = base64.b64decode(str(d["b64"]), validate=True)
        shape = tuple(int(s) for s in d["shape"])
        arr = np.frombuffer(raw, dtype=np.dtype(d["dtype"]).newbyteorder("<")).reshape(shape)
    except (ValueError, TypeError) as exc:
        raise BundleError(f"{where}: corrupt encoded array ({exc})") from None
    return arr.astype(np.dtype(d["dtype"]))


def load_golden(bundle: Bundle) -> dict[str, Any]:
    """The bundle's golden document (sha256-verified like every bundle file)."""
    g = bundle.manifest.golden
    if not g or not isinstance(g, Mapping) or not g.get("file"):
        raise BundleError(f"{bundle.root}: bundle has no golden vectors (re-export it)")
    name = str(g["file"])
    bundle.verify([name])
    try:
        doc = json.loads(bundle.path_of(name).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{bundle.root}: {name} is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
        raise BundleError(f"{bundle.root}: {name} has no items")
    return doc


def golden_model_inputs(bundle: Bundle, doc: Mapping[str, Any]
                        ) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Model inputs ``[n, ...]`` of the golden items, and front-end self-test figures for items
    that carry raw media (the front end recomputed here vs the stored features)."""
    spec = bundle.manifest.preprocessing
    tol = float((doc.get("frontend_tolerance") or {}).get("max_abs", 1e-3))
    inputs, checks = [], []
    for i, item in enumerate(doc["items"]):
        where = f"golden item {i}"
        stored = decode_array(item["input"], where) if "input" in item else None
        computed = None
        raw = item.get("raw")
        if raw is not None:
            if isinstance(spec, AudioFrontendSpec):
                pcm = decode_array(raw["pcm16"], where).astype(np.float32) / 32768.0
                _, feats = prepare_audio(pcm, int(raw["sample_rate"]), spec, where)
                computed = feats[int(raw.get("window", 0))]
            else:
                computed = prepare_image(decode_array(raw["rgb"], where), spec, source=where)
            if stored is not None:
                diff = float(np.max(np.abs(computed - stored)))
            else:
                samples = item.get("feature_samples") or {}
                idx = decode_array(samples["indices"], where).astype(np.int64) if samples else None
                diff = (float(np.max(np.abs(computed.ravel()[idx] - decode_array(samples["values"], where))))
                        if idx is not None else 0.0)
            checks.append({"item": i, "frontend_max_abs_diff": diff, "tolerance": tol,
                           "passed": bool(diff <= tol)})
        x = stored if stored is not None else computed
        if x is None:
            raise BundleError(f"{where}: neither an input nor raw media")
        inputs.append(np.asarray(x, dtype=np.float32))
    return np.stack(inputs), checks


@dataclasses.dataclass(frozen=True)
class ModelCheck:
    model: str
    engine: str
    status: str  # "passed" | "failed" | "skipped"
    max_abs_diff: float | None = None
    min_cosine: float | None = None
    tol_max_abs: float | None = None
    tol_min_cosine: float | None = None
    note: str = ""
    # heads on the same golden inputs: the largest |score difference| from the scores recorded
    # at export and its tolerance; None when the golden file holds no head scores
    head_max_diff: float | None = None
    head_tolerance: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class VerifyReport:
    bundle: str
    n_items: int
    frontend: tuple[dict[str, Any], ...]
    models: tuple[ModelCheck, ...]
    heads_note: str = ""  # why head scores were not checked ("" when they were or none exist)

    @property
    def passed(self) -> bool:
        ran = [m for m in self.models if m.status != "skipped"]
        return bool(ran) and all(m.status == "passed" for m in ran) and all(
            f["passed"] for f in self.frontend)

    def raise_for_failure(self, root: Any = None) -> None:
        """``BundleError`` when no model could run, ``GateError`` (with the figures) when a
        check failed: one line naming each failed model and why."""
        where = root if root is not None else self.bundle
        if not [m for m in self.models if m.status != "skipped"]:
            raise BundleError(f"{where}: no model could be run (no engine installed for "
                              f"{', '.join(sorted({m.model for m in self.models}))})")
        if self.passed:
            return
        what = "; ".join(
            f"{m.model} on {m.engine}: " + (m.note or f"max|diff| {m.max_abs_diff:.3g} (tol "
                                           f"{m.tol_max_abs:.3g}), min cos {m.min_cosine:.5f}")
            for m in self.models if m.status == "failed") or "front-end self-test failed"
        raise GateError(f"golden vectors failed: {what}", figures=self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        out = {"bundle": self.bundle, "n_items": self.n_items, "passed": self.passed,
               "frontend": list(self.frontend), "models": [m.to_dict() for m in self.models]}
        if self.heads_note:
            out["heads_note"] = self.heads_note
        return out

    def table(self) -> str:
        lines = [f"golden vectors: {self.n_items} item(s), bundle {self.bundle}"]
        for f in self.frontend:
            lines.append(f"  front end (item {f['item']}): max |diff| {f['frontend_max_abs_diff']:.3g} "
                         f"(allowed {f['tolerance']:.3g})  {'ok' if f['passed'] else 'FAILED'}")
        lines.append(f"  {'model':<16} {'engine':<12} {'max|diff|':>10} {'allowed':>9} "
                     f"{'min cos':>9} {'allowed':>8}  status")
        for m in self.models:
            if m.status == "skipped" or m.max_abs_diff is None:
                lines.append(f"  {m.model:<16} {m.engine:<12} {'':>10} {'':>9} {'':>9} {'':>8}  "
                             f"{m.status} ({m.note})")
                continue
            lines.append(f"  {m.model:<16} {m.engine:<12} {m.max_abs_diff:>10.3g} "
                         f"{m.tol_max_abs:>9.3g} {m.min_cosine:>9.5f} {m.tol_min_cosine:>8.4f}  "
                         f"{m.status}")
            if m.head_max_diff is not None:
                lines.append(f"  {'':<16} {'':<12} heads: max |score diff| {m.head_max_diff:.3g} "
                             f"(allowed {m.head_tolerance:.3g})")
        if self.heads_note:
            lines.append(f"  {self.heads_note}")
        lines.append("  max|diff|: largest difference of one embedding value from the outputs "
                     "recorded at export; min cos: lowest cosine of one item. 'allowed' is the "
                     "bundle's own tolerance, set at export from the INT8 rounding measured then "
                     "(embedding values are unnormalised, so it can exceed 1).")
        return "\n".join(lines)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.einsum("ij,ij->i", a, b) / (na * nb)
    return np.where((na == 0) & (nb == 0), 1.0, np.nan_to_num(c, nan=0.0))


@one_blas_thread()
def verify_bundle(bundle: Bundle, backend: str | None = None, threads: int | None = 1,
                  exclude: Mapping[str, str] | None = None) -> VerifyReport:
    """Run the golden vectors through every model on every installed engine (or ``backend``).

    ``exclude`` (engine -> one-line reason, from a device profile) skips engines that must not
    run on the target device, e.g. OpenVINO on ARM: never opened, reported as skipped."""
    from hai_edge.runtime.backends import BACKENDS, _backend_info

    doc = load_golden(bundle)
    x, fe_checks = golden_model_inputs(bundle, doc)
    want = _backend_info(backend) if backend else None
    expected_all = doc.get("models") or {}
    heads, heads_note = _golden_heads(bundle, doc)
    checks: list[ModelCheck] = []
    for entry in bundle.manifest.models:
        engines = [b for b in BACKENDS.values() if b.format is entry.format]
        if want is not None:
            engines = [b for b in engines if b is want]
        for info in engines:
            exp = expected_all.get(entry.id)
            if exp is None:
                checks.append(ModelCheck(entry.id, info.name, "skipped", note="no expected outputs"))
                continue
            if not info.is_available():
                checks.append(ModelCheck(entry.id, info.name, "skipped",
                                         note=f"needs hai-edge[{info.extra}]"))
                continue
            if exclude and info.name in exclude:
                checks.append(ModelCheck(entry.id, info.name, "skipped", note=exclude[info.name]))
                continue
            checks.append(_check_model(bundle, entry, info, x, exp, threads, heads))
    if want is not None and not checks:
        raise BundleError(f"{bundle.root}: no model of this bundle runs on {want.name}")
    return VerifyReport(bundle.manifest.name, len(x), tuple(fe_checks), tuple(checks),
                        heads_note)


def _golden_heads(bundle: Bundle, doc: Mapping[str, Any]
                  ) -> tuple[list[tuple[Any, Mapping[str, Any]]], str]:
    """(head, its golden section) pairs, or a note saying why head checks are skipped."""
    from hai_edge.runtime.heads import head_entries, load_head_entry

    # heads with a file (inline export-time heads carry no golden scores)
    heads = [load_head_entry(bundle, e) for e in head_entries(bundle.manifest) if e.file]
    if not heads:
        return [], ""
    section = doc.get("heads")
    if not isinstance(section, dict):
        return [], ("head checks skipped: golden.json holds no head scores (a bundle written "
                    "before they were added)")
    missing = [h.name for h in heads if h.name not in section]
    note = f"no golden scores for head(s) {', '.join(missing)}: not checked" if missing else ""
    return [(h, section[h.name]) for h in heads if h.name in section], note


def _head_diff(heads: list[tuple[Any, Mapping[str, Any]]], model_id: str, out: np.ndarray
               ) -> tuple[float | None, float | None, str]:
    """Largest |score - expected| over heads and items, the tolerance, and a failure note
    (a moved score, or a definite verdict that turned into the other one although the expected
    score is clear of the threshold by more than the tolerance; a score that moves into or out
    of the head's borderline band is no flip)."""
    from hai_edge.runtime.heads import verdict_flips

    worst, tol_used, notes = None, None, []
    for head, sec in heads:
        expected = (sec.get("scores") or {}).get(model_id)
        if expected is None:
            continue
        exp = np.asarray(expected, dtype=np.float64)
        got = head.predict_proba(out.reshape(len(exp), -1))
        tol = float(sec.get("tolerance", 0.02))
        diff = float(np.max(np.abs(got - exp)))
        worst = diff if worst is None else max(worst, diff)
        tol_used = tol if tol_used is None else min(tol_used, tol)
        clear = np.abs(exp - head.threshold) > tol
        flipped = int(np.sum(clear & verdict_flips(got, exp, head.threshold, head.borderline)))
        if diff > tol:
            notes.append(f"head {head.name}: score moved by {diff:.3g} (tol {tol:.3g})")
        if flipped:
            notes.append(f"head {head.name}: {flipped} verdict(s) changed")
    return worst, tol_used, "; ".join(notes)


def _check_model(bundle: Bundle, entry: ModelEntry, info: Any, x: np.ndarray,
                 exp: Mapping[str, Any], threads: int | None,
                 heads: list[tuple[Any, Mapping[str, Any]]] = ()) -> ModelCheck:  # type: ignore[assignment]
    expected = decode_array(exp["outputs"], f"golden {entry.id}").astype(np.float32)
    tol = exp.get("tolerance") or {}
    t_abs, t_cos = float(tol.get("max_abs", 1e-4)), float(tol.get("min_cosine", 0.9999))
    try:
        bundle.verify(entry.files)
        engine = info.open(bundle.path_of(entry.main_file), entry, threads)
        try:
            res = engine.run({entry.inputs[0].name: x})
        finally:
            engine.close()
    except MissingDependencyError:
        return ModelCheck(entry.id, info.name, "skipped", note=f"needs hai-edge[{info.extra}]")
    except HaiEdgeError as exc:
        return ModelCheck(entry.id, info.name, "failed", note=str(exc).splitlines()[0][:200])
    out, problem = _golden_output(res, entry.outputs[0].name, expected.shape)
    if problem:
        return ModelCheck(entry.id, info.name, "failed", tol_max_abs=t_abs, tol_min_cosine=t_cos,
                          note=problem)
    diff = float(np.max(np.abs(out - expected)))
    cos = float(np.min(_cosines(out, expected)))
    ok = diff <= t_abs and cos >= t_cos
    h_diff, h_tol, h_note = _head_diff(list(heads), entry.id, out)
    return ModelCheck(entry.id, info.name, "passed" if ok and not h_note else "failed", diff, cos,
                      t_abs, t_cos, note=h_note, head_max_diff=h_diff, head_tolerance=h_tol)


def _golden_output(res: Mapping[str, Any], name: str, shape: tuple[int, ...]
                   ) -> tuple[np.ndarray, str]:
    """The engine's output as float32 of the expected shape, or a one-line reason it is not:
    a missing or empty output (seen with OpenVINO on ARM), a wrong shape, NaN or infinity."""
    if name not in res:
        if len(res) != 1:
            return np.zeros(0, np.float32), f"the engine returned no output {name!r}"
        res = {name: next(iter(res.values()))}
    try:
        out = np.asarray(res[name], dtype=np.float32)
    except (TypeError, ValueError):
        return np.zeros(0, np.float32), "the engine returned a non-numeric output"
    want = "x".join(str(s) for s in shape)
    if out.size == 0:
        return out, f"the engine returned an empty output (expected {want})"
    if out.size != int(np.prod(shape)):
        got = "x".join(str(s) for s in out.shape)
        return out, f"the engine returned an output of shape {got} (expected {want})"
    out = out.reshape(shape)
    bad = int(np.count_nonzero(~np.isfinite(out)))
    if bad:
        return out, f"the engine returned {bad} non-finite value(s) (NaN or infinity)"
    return out, ""
