"""What a distillation run is asked to do (``DistillConfig``) and what it reports back.

Kept apart from the pipeline (``distill.run``) and the run-directory reader (``distill.rundir``)
so that both can use it: ``run.json["config"]`` is ``DistillConfig.to_dict()``.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hai_edge.distill.train import LossWeights, StudentAug
from hai_edge.errors import HaiEdgeError
from hai_edge.evaluation.probes import LabelSpec

__all__ = ["RUN_SCHEMA_VERSION", "DistillConfig", "ExportOutput", "RunResult"]

RUN_SCHEMA_VERSION = 1


class ExportOutput(str, enum.Enum):
    """Which embedding the exported model returns."""

    TEACHER = "teacher"  # projected + de-normalised into the teacher's space (probes keep working)
    STUDENT = "student"  # the student's own (smaller) embedding


@dataclasses.dataclass(frozen=True)
class DistillConfig:
    """Everything ``hai-edge distill`` needs. Exactly one of ``targets`` / ``teacher``."""

    data: str  # corpus directory or CSV (the one the store was computed from)
    student: str  # preset name (``STUDENTS``)
    run_dir: str
    targets: str | None = None  # an EmbeddingStore directory
    teacher: str | None = None  # a teacher spec (``load_teacher``), run into RUN_DIR/targets
    views: int = 4  # augmented teacher views per item (besides the clean view 0), with teacher
    teacher_batch_size: int = 16
    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    loss: LossWeights = LossWeights()
    seed: int = 0
    holdout: float = 0.2
    group_col: str | None = None
    id_col: str | None = None  # CSV column of item ids (default: load_corpus's detection)
    path_col: str | None = None
    label: str | None = None  # report only: probe label column
    positive: tuple[str, ...] = ()
    label_filter: tuple[tuple[str, str], ...] = ()
    subgroups: tuple[str, ...] = ()
    probe_repeats: int = 5  # report only: repetitions of the grouped 5-fold probe CV
    patience: int = 8  # early stopping: epochs without a better held-out mean cosine
    max_minutes: float | None = None  # wall-clock budget of this call (teacher + features + train)
    num_threads: int | None = None
    device: str = "cpu"  # "cpu", "cuda" or "auto" (cuda when available)
    student_aug: StudentAug = StudentAug.NONE
    export_output: ExportOutput = ExportOutput.TEACHER
    stop_after_epoch: int | None = None  # pause (resumably) after this epoch
    init: str | None = None  # warm start: a run directory or pretrained:<preset>
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "student_aug", StudentAug(self.student_aug))
        object.__setattr__(self, "export_output", ExportOutput(self.export_output))
        object.__setattr__(self, "positive", tuple(self.positive))
        object.__setattr__(self, "subgroups", tuple(self.subgroups))
        object.__setattr__(self, "label_filter", tuple(tuple(f) for f in self.label_filter))
        if isinstance(self.loss, Mapping):
            object.__setattr__(self, "loss", LossWeights(**self.loss))
        if (self.targets is None) == (self.teacher is None):
            raise HaiEdgeError("give exactly one of --targets STORE or --teacher SPEC")
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 2, "batch size must be >= 2"),
            (self.lr > 0 and self.weight_decay >= 0, "lr must be > 0 and weight decay >= 0"),
            (0 < self.holdout < 1, "holdout fraction must be between 0 and 1"),
            (self.patience >= 1, "patience must be >= 1"),
            (self.probe_repeats >= 1, "probe repeats must be >= 1"),
            (self.views >= 0, "views must be >= 0"),
            (self.max_minutes is None or self.max_minutes > 0, "max minutes must be > 0"),
            (self.num_threads is None or self.num_threads >= 1, "threads must be >= 1"),
            (self.device in ("cpu", "cuda", "auto"), "device must be cpu, cuda or auto"),
        ]
        for ok, msg in checks:
            if not ok:
                raise HaiEdgeError(msg)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["student_aug"] = self.student_aug.value
        d["export_output"] = self.export_output.value
        d["positive"] = list(self.positive)
        d["subgroups"] = list(self.subgroups)
        d["label_filter"] = [f"{c}={v}" for c, v in self.label_filter]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DistillConfig:
        d = dict(d)
        d["label_filter"] = tuple(tuple(str(f).split("=", 1)) for f in d.get("label_filter", ()))
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def label_spec(self) -> LabelSpec | None:
        if not self.label:
            return None
        return LabelSpec(self.label, self.positive, self.label_filter)


@dataclasses.dataclass(frozen=True)
class RunResult:
    run_dir: Path
    status: str  # "finished" or "paused" (re-run the same command to continue)
    stopped: str  # completed | early_stopping | time_budget | stop_after_epoch
    epochs_done: int
    best_epoch: int
    fidelity: dict[str, Any]
    meta: dict[str, Any]
