"""The one reader of a distillation run directory (what ``hai_edge.distill.run`` writes).

``DistillRun.open(run_dir)`` reads ``run.json``; everything else is read on demand, so callers
without torch (``hai-edge report`` on a run-side install) can still get the config, the front-end
spec, the split items and the held-out rows, and only ``student_*`` needs torch::

    run = DistillRun.open("runs/hear-cough")
    run.spec, run.config, run.teacher_info, run.export_output
    train, heldout = run.split_items()                 # CorpusItems, from split.json
    rows = run.heldout_with_targets()                  # (inputs, teacher vectors) or None
    model = run.student_model()                        # torch, eval mode, the exported embedding
    art = run.artifacts()                              # all of it, as ``load_run`` gives it

The writer (``distill.run``) and this reader share the file names and ``RUN_SCHEMA_VERSION``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hai_edge.bundle.frontend import AudioFrontendSpec, ImageFrontendSpec, spec_from_dict
from hai_edge.corpus import CorpusItem, load_corpus
from hai_edge.distill.config import RUN_SCHEMA_VERSION, DistillConfig, ExportOutput
from hai_edge.distill.store import EmbeddingStore
from hai_edge.distill.students import StudentPreset, get_preset
from hai_edge.errors import HaiEdgeError

if TYPE_CHECKING:
    import torch

__all__ = [
    "CHECKPOINT",
    "RUN_JSON",
    "SPLIT_JSON",
    "STUDENT_PT",
    "DistillRun",
    "RunArtifacts",
    "build_model",
    "export_model",
]

RUN_JSON = "run.json"
SPLIT_JSON = "split.json"
STUDENT_PT = "student.pt"
CHECKPOINT = "checkpoint.pt"


@dataclasses.dataclass
class RunArtifacts:
    model: torch.nn.Module  # eval mode; input [N, *spec.input_shape()] -> exported embedding
    spec: AudioFrontendSpec | ImageFrontendSpec
    meta: dict[str, Any]  # run.json
    teacher_info: dict[str, Any]
    heldout_items: list[CorpusItem]
    train_items: list[CorpusItem]


def build_model(preset: StudentPreset, teacher_dim: int, seed: int) -> Any:
    """A fresh :class:`DistillNet` (student + projection head), seeded without touching the
    global torch RNG."""
    import torch

    from hai_edge.distill.students._nets import DistillNet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return DistillNet(preset.build(seed), teacher_dim)


def export_model(net: Any, output: ExportOutput) -> torch.nn.Module:
    """The exported module (eval mode) for a trained :class:`DistillNet`."""
    from hai_edge.distill.students._nets import EmbeddingModel

    return EmbeddingModel(net.student, net.head if output is ExportOutput.TEACHER else None)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HaiEdgeError(f"{path}: cannot read ({exc})") from None


@dataclasses.dataclass(frozen=True, eq=False)
class DistillRun:
    """A run directory, opened: ``meta`` is run.json; split.json, the items, the teacher store
    and the student weights are read when first asked for."""

    root: Path
    meta: Mapping[str, Any]

    @classmethod
    def open(cls, run_dir: str | os.PathLike[str]) -> DistillRun:
        """Refuses a directory without run.json or with another run schema."""
        root = Path(run_dir)
        if not (root / RUN_JSON).is_file():
            raise HaiEdgeError(f"{root}: not a distillation run directory (no {RUN_JSON})")
        meta = _read_json(root / RUN_JSON)
        if not isinstance(meta, dict) or meta.get("schema_version") != RUN_SCHEMA_VERSION:
            got = meta.get("schema_version") if isinstance(meta, dict) else None
            raise HaiEdgeError(f"{root}: unknown run schema_version {got!r}")
        return cls(root, meta)

    # ---------------------------------------------------------------- run.json
    @property
    def config(self) -> DistillConfig:
        return DistillConfig.from_dict(self.meta["config"])

    @property
    def spec(self) -> AudioFrontendSpec | ImageFrontendSpec:
        """The student's front end, with the feature standardisation the run fitted."""
        return spec_from_dict(self.meta["preprocessing"])

    @property
    def teacher_info(self) -> dict[str, Any]:
        return dict(self.meta.get("teacher") or {})

    @property
    def export_output(self) -> ExportOutput:
        return ExportOutput(self.meta["embedding"]["exported"])

    @property
    def status(self) -> str:
        """"finished" or "paused" (re-running the distill command continues it)."""
        return str(self.meta.get("status", ""))

    @property
    def store_dir(self) -> Path | None:
        """The teacher's embedding store the run trained on, None when it is gone."""
        where = (self.meta.get("targets") or {}).get("store")
        if not where or not (Path(where) / "store.json").is_file():
            return None
        return Path(where)

    def fidelity_report(self) -> Mapping[str, Any] | None:
        """fidelity.json (the held-out student-vs-teacher report), or None before training."""
        path = self.root / "fidelity.json"
        return _read_json(path) if path.is_file() else None

    # ---------------------------------------------------------------- split.json
    @functools.cached_property
    def split(self) -> Mapping[str, Any]:
        """split.json: ``train`` / ``heldout`` item ids and (newer runs) ``items``."""
        return _read_json(self.root / SPLIT_JSON)

    @property
    def train_ids(self) -> list[str]:
        return list(self.split["train"])

    @property
    def heldout_ids(self) -> list[str]:
        return list(self.split["heldout"])

    @functools.cached_property
    def items(self) -> dict[str, CorpusItem]:
        """The run's items as recorded in split.json (path, group, metadata), so a reader does not
        depend on re-reading the corpus CSV the same way; older runs fall back to the corpus."""
        split, data = self.split, self.meta["data"]
        if "items" in split:
            return {iid: CorpusItem(item_id=iid, path=Path(d["path"]), group=d.get("group"),
                                    meta=dict(d.get("meta") or {}))
                    for iid, d in split["items"].items()}
        items = load_corpus(data["path"], data["modality"], group_col=data.get("group_col"),
                            id_col=data.get("id_col"), path_col=data.get("path_col"))
        return {it.item_id: it for it in items}

    def split_items(self, *, check_media: bool = True
                    ) -> tuple[list[CorpusItem], list[CorpusItem]]:
        """(train, held-out) items in split order; refuses a run whose items (or, with
        ``check_media``, media files) are gone."""
        by_id = self.items
        missing = [i for i in (*self.train_ids, *self.heldout_ids) if i not in by_id]
        if missing:
            raise HaiEdgeError(f"{self.root}: {len(missing)} items of the run are no longer in "
                               f"{self.meta['data']['path']} (e.g. {missing[0]!r})")
        if check_media:
            gone = [it for it in by_id.values() if not it.path.is_file()]
            if gone:
                raise HaiEdgeError(f"{self.root}: {len(gone)} media files of the run are missing "
                                   f"(e.g. {gone[0].path})")
        return [by_id[i] for i in self.train_ids], [by_id[i] for i in self.heldout_ids]

    # ---------------------------------------------------------------- held-out rows
    def heldout_with_targets(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The held-out model inputs (clean view of every held-out window/photo, as the run's
        report scored them) and the teacher's embeddings of the same rows, aligned; None when the
        run's embedding store is no longer where run.json says. The inputs come from the run's
        feature cache (recomputed, identically, if it was deleted)."""
        from hai_edge.distill.data import build_feature_cache, select_rows

        store_dir = self.store_dir
        if store_dir is None:
            return None
        rows = EmbeddingStore(store_dir).load()
        held_ids = set(self.heldout_ids)
        mask = np.array([str(i) in held_ids for i in rows["item_id"]]) & (rows["view"] == 0)
        held_rows = select_rows(rows, mask)
        if len(held_rows["sample_id"]) == 0:
            return None
        cache = build_feature_cache(self.spec, held_rows, self.items, self.root / "cache",
                                    "heldout", dtype="float32")
        return np.asarray(cache.x, dtype=np.float32), np.asarray(held_rows["vector"], np.float32)

    # ---------------------------------------------------------------- student.pt (torch)
    @property
    def has_student(self) -> bool:
        return (self.root / STUDENT_PT).is_file()

    def student_checkpoint(self) -> dict[str, Any]:
        """student.pt: ``preset``, ``teacher_dim`` and the best ``state_dict`` (CPU tensors)."""
        import torch

        if not self.has_student:
            raise HaiEdgeError(f"{self.root}: no {STUDENT_PT} (the run has not finished an epoch)")
        return torch.load(self.root / STUDENT_PT, map_location="cpu", weights_only=True)

    def student_net(self) -> Any:
        """The trained :class:`DistillNet` (student + projection head), eval mode."""
        ck = self.student_checkpoint()
        net = build_model(get_preset(ck["preset"]), int(ck["teacher_dim"]), 0)
        net.load_state_dict(ck["state_dict"])
        net.eval()
        return net

    def student_model(self) -> torch.nn.Module:
        """The exported module: input ``[N, *spec.input_shape()]`` -> the exported embedding."""
        return export_model(self.student_net(), self.export_output)

    def artifacts(self) -> RunArtifacts:
        """Model, spec and split items, ready for export (media files checked)."""
        model = self.student_model()
        spec = self.spec
        train, heldout = self.split_items()
        return RunArtifacts(model=model, spec=spec, meta=dict(self.meta),
                            teacher_info=self.teacher_info, heldout_items=heldout,
                            train_items=train)
