"""What an export starts from: a student, its front-end spec and the data that calibrates and gates
it, loaded from a distillation run directory or a checkpoint.

* a run directory (``run.json``, written by ``hai-edge distill``): the student, its spec, the
  teacher's id/licence, calibration inputs from the run's training items and held-out inputs (with
  the teacher's embeddings when the run's store is still there) from its held-out items;
* a ``torch.export`` program (``.pt2``) with its spec next to it (``NAME.spec.json``) or given;
* a ``.pt``/``.pth`` checkpoint: a dict ``{"model": nn.Module or state_dict, "arch": student
  preset (needed for a state_dict), "spec": front-end dict (default: the preset's), "teacher":
  {"id", "licence"} (optional), "name": str (optional)}``. A pickled module runs code from the
  file when loaded, so it needs ``trust_checkpoint``; a state_dict does not.

Bad input raises ``HaiEdgeError`` with one line. torch loads inside the constructors only.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hai_edge.bundle.frontend import AudioFrontendSpec, ImageFrontendSpec, spec_from_dict
from hai_edge.errors import HaiEdgeError

if TYPE_CHECKING:
    import torch

    from hai_edge.bundle import Bundle
    from hai_edge.export.bundle_builder import BuildOptions

__all__ = ["MAX_CALIB_ROWS", "MAX_HELDOUT_ROWS", "ExportSource", "evenly"]

MAX_CALIB_ROWS = 256
MAX_HELDOUT_ROWS = 256

Spec = AudioFrontendSpec | ImageFrontendSpec
Progress = Callable[[str], None]


def _silent(_msg: str) -> None:
    return None


def evenly(x: np.ndarray, n: int) -> np.ndarray:
    """At most ``n`` rows of ``x``, spread evenly over it (first and last kept)."""
    if len(x) <= n:
        return x
    return x[np.linspace(0, len(x) - 1, n).round().astype(int)]


def _spec_from(obj: Any, where: str) -> Spec:
    """A front-end spec from a spec object, a dict or a JSON file path."""
    if isinstance(obj, (str, Path)):
        try:
            obj = json.loads(Path(obj).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise HaiEdgeError(f"{where}: cannot read the front-end spec ({exc})") from None
    if hasattr(obj, "input_shape"):
        return obj
    return spec_from_dict(obj)


def _student_inputs() -> Callable[..., np.ndarray]:
    """``student_inputs(spec, items)`` from the distill package (the run module re-exports it)."""
    try:
        from hai_edge.distill.run import student_inputs
    except ImportError:
        from hai_edge.distill.data import student_inputs
    return student_inputs


@dataclasses.dataclass(frozen=True, eq=False)
class ExportSource:
    """A model to export and everything ``build_bundle`` needs with it. ``calibration`` /
    ``heldout`` None: synthetic inputs through the real front end (recorded as such).
    ``heldout_paths``: a run's held-out media, never used to calibrate."""

    model: torch.nn.Module
    spec: Spec
    name: str
    teacher: Any = None  # TeacherInfo or {"id", "licence"}
    calibration: np.ndarray | None = None
    heldout: np.ndarray | None = None
    teacher_targets: np.ndarray | None = None  # the teacher's embeddings of ``heldout``
    heads: tuple[Mapping[str, Any], ...] = ()
    provenance: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    heldout_paths: frozenset[str] = frozenset()

    @classmethod
    def from_path(cls, path: str | Path, *, spec: str | Path | None = None,
                  trust_checkpoint: bool = False, progress: Progress | None = None
                  ) -> ExportSource:
        """A run directory (``from_run``) or a checkpoint file (``from_checkpoint``)."""
        path = Path(path)
        if not path.exists():
            raise HaiEdgeError(f"{path}: no such run directory or checkpoint")
        if path.is_dir():
            if not (path / "run.json").is_file():
                raise HaiEdgeError(f"{path}: not a distillation run directory (no run.json)")
            return cls.from_run(path, progress)
        return cls.from_checkpoint(path, spec=spec, trust_checkpoint=trust_checkpoint)

    @classmethod
    def from_run(cls, path: str | Path, progress: Progress | None = None) -> ExportSource:
        """The run's exported student, with calibration rows from its training items and held-out
        rows (plus the teacher's embeddings of them, when the run still has its store)."""
        path = Path(path)
        say = progress or _silent
        try:
            from hai_edge.distill.run import heldout_with_targets, load_run
        except ImportError:
            raise HaiEdgeError(f"{path}: run directories need hai-edge's distill module, which is "
                               "not part of this build") from None
        student_inputs = _student_inputs()
        run = load_run(path)
        say(f"computing calibration inputs from {len(run.train_items)} training item(s)")
        cal = evenly(student_inputs(run.spec, run.train_items), MAX_CALIB_ROWS)
        said = heldout_with_targets(path)
        targets = None
        if said is not None:  # the rows the run's report scored, with the teacher's embeddings
            held_all, targets_all = said
            say(f"held-out inputs: {len(held_all)} clean rows of {len(run.heldout_items)} "
                "held-out item(s), with their teacher embeddings")
            held = evenly(held_all, MAX_HELDOUT_ROWS)
            targets = evenly(targets_all, MAX_HELDOUT_ROWS)
        else:
            say(f"computing held-out inputs from {len(run.heldout_items)} held-out item(s) (the "
                "run's embedding store is gone: no INT8-vs-teacher figures)")
            held = evenly(student_inputs(run.spec, run.heldout_items), MAX_HELDOUT_ROWS)
        meta = dict(run.meta or {})
        prov = {k: meta[k] for k in ("data_hash", "student", "command") if k in meta}
        data = meta.get("data")
        corpus = data.get("corpus_hash") if isinstance(data, dict) else None
        if corpus and "data_hash" not in prov:
            prov["data_hash"] = corpus
        prov["run_dir"] = str(path)
        return cls(model=run.model, spec=run.spec, name=str(meta.get("name") or path.name),
                   teacher=run.teacher_info, calibration=cal, heldout=held,
                   teacher_targets=targets, heads=tuple(getattr(run, "heads", None) or ()),
                   provenance=prov,
                   heldout_paths=frozenset(str(Path(i.path).resolve())
                                           for i in run.heldout_items))

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, spec: str | Path | Mapping[str, Any] | None = None,
                        trust_checkpoint: bool = False) -> ExportSource:
        """A ``.pt2`` program or a ``.pt``/``.pth`` checkpoint (see the module docs); ``spec``
        overrides the checkpoint's front-end spec (default: ``NAME.spec.json`` next to it)."""
        import torch

        path = Path(path)
        sidecar = path.with_name(path.name.split(".")[0] + ".spec.json")
        spec_arg = spec or (sidecar if sidecar.is_file() else None)
        if path.suffix == ".pt2":
            model = torch.export.load(str(path)).module()
            if spec_arg is None:
                raise HaiEdgeError(f"{path}: needs its front-end spec ({sidecar.name} or --spec)")
            return cls(model=model, spec=_spec_from(spec_arg, str(path)), name=path.stem)
        ck = _torch_load(path, trust_checkpoint)
        if isinstance(ck, torch.nn.Module):
            ck = {"model": ck}
        if not isinstance(ck, dict) or "model" not in ck:
            raise HaiEdgeError(f"{path}: expected a dict with 'model' (module or state_dict), "
                               "'spec' and, for a state_dict, 'arch'")
        model, arch = ck["model"], ck.get("arch")
        if not isinstance(model, torch.nn.Module):
            if not isinstance(model, dict) or not arch:
                raise HaiEdgeError(f"{path}: a state_dict needs 'arch' (a student preset name)")
            model = _model_from_state(model, str(arch))
        spec_obj = spec_arg or ck.get("spec")
        if spec_obj is None and arch:
            from hai_edge.distill.students import get_preset

            spec_obj = get_preset(str(arch)).frontend
        if spec_obj is None:
            raise HaiEdgeError(f"{path}: no front-end spec ('spec' in the checkpoint, "
                               f"{sidecar.name} or --spec)")
        prov = {"checkpoint": str(path), **({"student": {"arch": arch}} if arch else {})}
        return cls(model=model.eval(), spec=_spec_from(spec_obj, str(path)),
                   name=str(ck.get("name") or path.stem), teacher=ck.get("teacher"),
                   provenance=prov)

    def with_calibration(self, data: str | Path, progress: Progress | None = None
                         ) -> ExportSource:
        """Calibrate on the media at ``data`` (a directory or a CSV). For a run, it replaces the
        calibration set only (minus any of the run's held-out media) and the run's held-out items
        still gate; otherwise the items are split by group: one part calibrates, the other
        gates."""
        from hai_edge.corpus import load_corpus, split_by_group

        say = progress or _silent
        student_inputs = _student_inputs()
        modality = "audio" if hasattr(self.spec, "sample_rate") else "image"
        items = [i for i in load_corpus(data, modality)
                 if str(Path(i.path).resolve()) not in self.heldout_paths]
        held = self.heldout
        if held is not None:
            if not items:
                raise HaiEdgeError(f"{data}: no items left once the run's held-out items are "
                                   "removed")
            say(f"calibration: {len(items)} item(s) from {data}")
            cal = evenly(student_inputs(self.spec, items), MAX_CALIB_ROWS)
        else:
            if len(items) < 2:
                raise HaiEdgeError(f"{data}: need at least 2 items to calibrate and gate on")
            train, held_items = split_by_group(items, holdout=0.25, seed=0)
            if not held_items or not train:
                cut = max(1, len(items) * 3 // 4)
                train, held_items = items[:cut], items[cut:]
            say(f"calibration: {len(train)} item(s), held-out gate: {len(held_items)} item(s) "
                f"from {data}")
            cal = evenly(student_inputs(self.spec, train), MAX_CALIB_ROWS)
            held = evenly(student_inputs(self.spec, held_items), MAX_HELDOUT_ROWS)
        if len(cal) == 0 or len(held) == 0:
            raise HaiEdgeError(f"{data}: no usable items (all unreadable or silent)")
        prov = {**self.provenance, "calibration_data": str(data)}
        return dataclasses.replace(self, calibration=cal, heldout=held, provenance=prov)

    def build(self, dest: str | Path, *, options: BuildOptions, name: str | None = None,
              provenance: Mapping[str, Any] | None = None, overwrite: bool = False,
              progress: Progress | None = None) -> Bundle:
        """``build_bundle`` on this source; ``provenance`` adds to (and overrides) the source's."""
        from hai_edge.export.bundle_builder import build_bundle

        return build_bundle(
            self.model, self.spec, dest, name=name or self.name, options=options,
            calibration=self.calibration, heldout=self.heldout, teacher=self.teacher,
            teacher_targets=self.teacher_targets, heads=self.heads,
            provenance={**self.provenance, **dict(provenance or {})}, overwrite=overwrite,
            progress=progress)


def _torch_load(path: Path, trust: bool) -> Any:
    """``torch.load`` with ``weights_only``; a pickled module only when the caller trusts it."""
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickled module (or not a torch file)
        if not trust:
            raise HaiEdgeError(
                f"{path}: holds pickled Python objects (e.g. a whole nn.Module); loading it runs "
                f"code from the file: pass --trust-checkpoint if you trust it") from None
        try:
            return torch.load(str(path), map_location="cpu", weights_only=False)
        except Exception:
            raise HaiEdgeError(f"{path}: not a torch checkpoint ({type(exc).__name__})") from None


def _model_from_state(state: dict[str, Any], arch: str) -> torch.nn.Module:
    """A student preset's net (or its exported form, with the projection folded in) loaded with
    ``state``."""
    from hai_edge.distill.students import EmbeddingModel, get_preset

    net = get_preset(arch).build()
    if any(k.startswith("embed.") for k in state):
        net.load_state_dict(state)
        return net.eval()
    model = EmbeddingModel(net, None)
    if "out.weight" in state:
        import torch

        w = state["out.weight"]
        model.out = torch.nn.Linear(w.shape[1], w.shape[0])
    model.load_state_dict(state)
    return model.eval()
