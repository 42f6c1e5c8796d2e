"""``distill``: train a small student to reproduce a teacher's embeddings, then report fidelity.

Inputs: teacher embeddings in an :class:`EmbeddingStore` (``targets``), or a teacher spec that is
first run into ``RUN_DIR/targets`` (resumable), plus the corpus the store was computed from. The
held-out split is by group (``split_by_group``): no window or view of a held-out item or group is
ever trained on. Outputs in ``RUN_DIR``::

    run.json        config, preset + params/MACs, front-end spec, teacher info (licence), corpus
                    hash, split sizes, dims, which embedding a bundle exports, versions, history
    split.json      train / held-out item ids
    checkpoint.pt   last epoch (model, optimizer, scheduler, RNG, history): re-running resumes
    student.pt      best weights (by held-out mean cosine)
    fidelity.json / fidelity.md   the held-out report (``fidelity``)
    cache/          student inputs computed once by the runtime front end
    targets/        the teacher's store when ``teacher`` was given

The directory is read back only through :class:`hai_edge.distill.rundir.DistillRun`;
``load_run`` / ``heldout_with_targets`` here are its thin wrappers (the export command: the model
in eval mode returning the exported embedding, its spec and the train/held-out items; calibrate on
train, gate on held-out).
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from hai_edge.corpus import corpus_hash
from hai_edge.distill import _steps as steps
from hai_edge.distill.config import RUN_SCHEMA_VERSION, DistillConfig, ExportOutput, RunResult
from hai_edge.distill.data import student_inputs
from hai_edge.distill.rundir import (
    CHECKPOINT,
    RUN_JSON,
    STUDENT_PT,
    DistillRun,
    RunArtifacts,
    build_model,
    export_model,
)
from hai_edge.distill.students import StudentPreset, count_params_and_macs, get_preset
from hai_edge.distill.train import LossWeights, Progress, StudentAug, train
from hai_edge.errors import HaiEdgeError
from hai_edge.fileio import atomic_write

__all__ = [
    "DistillConfig",
    "DistillRun",
    "ExportOutput",
    "LossWeights",
    "RunArtifacts",
    "RunResult",
    "StudentAug",
    "distill",
    "export_model",
    "heldout_with_targets",
    "load_run",
    "student_inputs",
]


def distill(config: DistillConfig) -> RunResult:
    """Run (or resume) a distillation; see the module docstring for what lands in RUN_DIR.

    torch's thread count and deterministic-algorithms flag are set for the call and restored."""
    import torch

    threads = torch.get_num_threads()
    det = (torch.are_deterministic_algorithms_enabled(),
           torch.is_deterministic_algorithms_warn_only_enabled())
    try:
        if config.num_threads:
            torch.set_num_threads(config.num_threads)
        torch.use_deterministic_algorithms(True, warn_only=True)
        return _distill(config)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det[0], warn_only=det[1])


def _distill(cfg: DistillConfig) -> RunResult:
    import torch

    t_start = time.monotonic()
    deadline = t_start + 60.0 * cfg.max_minutes if cfg.max_minutes else None
    progress = Progress(cfg.progress)
    preset = get_preset(cfg.student)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)

    tg = steps.targets_and_split(cfg, preset, run_dir, progress)
    spec = steps.student_spec(preset, tg.teacher)
    init = steps.warm_start(cfg, preset, tg.teacher, spec)
    feats = steps.features(spec, init, tg, run_dir, progress)
    spec = feats.spec
    setup = steps.train_setup(tg, feats, init)
    dim = int(setup.train_z.shape[1])
    model = build_model(preset, dim, cfg.seed)
    if init is not None:
        model.load_state_dict(init.state_dict)
    with torch.no_grad():
        model.head.shift.copy_(torch.from_numpy(setup.shift))
        model.head.scale.fill_(setup.scale)
    device = steps.device_of(cfg)
    run_cfg = dataclasses.replace(cfg, device=device)
    fingerprint = steps.fingerprint(cfg, preset, spec.to_dict(), tg.rows, tg.split,
                                    init.sha256 if init is not None else None)
    state, best = train(model, setup, run_cfg, run_dir / CHECKPOINT, fingerprint,
                        deadline=deadline, progress=progress,
                        on_epoch_end=_EPOCH_HOOK.get("hook"))
    model.load_state_dict(best)
    model.to("cpu").eval()

    paused = state.stopped in ("time_budget", "stop_after_epoch")
    report = _write_fidelity(model, cfg, tg, feats, setup.shift, run_dir, paused)
    student = _write_student(model, best, preset, dim, cfg, spec, run_dir)
    meta = {
        "schema_version": RUN_SCHEMA_VERSION,
        "status": "paused" if paused else "finished",
        "config": cfg.to_dict(),
        "student": student,
        "preprocessing": spec.to_dict(),
        "teacher": tg.teacher,
        **_run_record(cfg, preset, tg, dim, setup.scale),
        "training": {"init": ({"source": init.source, "sha256": init.sha256}
                              if init is not None else None),
                     "epochs_done": state.epoch, "best_epoch": state.best_epoch,
                     "best_heldout_cosine": round(state.best_cosine, 6),
                     "stopped": state.stopped or "completed", "history": state.history,
                     "wall_s_this_call": round(time.monotonic() - t_start, 1),
                     "device": device, "threads": torch.get_num_threads()},
        "fidelity": report["rows"] | ({"probe": {k: report["probe"].get(k) for k in
                                                 ("teacher", "student", "auroc_delta", "repeats")}}
                                      if "probe" in report else {}),
        "versions": steps.versions(),
    }
    steps.write_json(run_dir / RUN_JSON, meta)
    if paused:
        progress.line(f"paused ({state.stopped}) after epoch {state.epoch}/{cfg.epochs}: re-run "
                      f"the same command to continue")
    return RunResult(run_dir=run_dir, status=meta["status"], stopped=state.stopped or "completed",
                     epochs_done=state.epoch, best_epoch=state.best_epoch, fidelity=report,
                     meta=meta)


def _write_fidelity(model: Any, cfg: DistillConfig, tg: steps.Targets, feats: steps.Features,
                    shift: np.ndarray, run_dir: Path, paused: bool) -> dict[str, Any]:
    """Fidelity on the held-out clean rows, in teacher space: fidelity.json + fidelity.md."""
    import torch

    from hai_edge.distill.fidelity import build_report, render_markdown
    from hai_edge.distill.train import predict

    pred = predict(model, feats.held.x, torch.device("cpu"))
    metas = {it.item_id: dict(it.meta) for it in tg.held_items}
    groups = {it.item_id: it.group or f"item:{it.item_id}" for it in tg.held_items}
    report = build_report(pred, np.asarray(tg.held_rows["vector"], np.float32),
                          [str(i) for i in tg.held_rows["item_id"]], metas, groups, shift,
                          label=cfg.label_spec(), subgroups=cfg.subgroups, seed=cfg.seed,
                          probe_repeats=cfg.probe_repeats)
    title = "Fidelity (held-out)" + (" -- paused run, best so far" if paused else "")
    md = render_markdown(report, title)
    steps.write_json(run_dir / "fidelity.json", report)
    with atomic_write(run_dir / "fidelity.md", "w") as fh:
        fh.write(md)
    return report


def _write_student(model: Any, best: dict[str, Any], preset: StudentPreset, dim: int,
                   cfg: DistillConfig, spec: Any, run_dir: Path) -> dict[str, Any]:
    """student.pt (the best weights); returns run.json's ``student`` (preset, params, MACs)."""
    import torch

    exported = export_model(model, cfg.export_output)
    e_params, e_macs = count_params_and_macs(exported, spec.input_shape())
    s_params, s_macs = count_params_and_macs(model.student, spec.input_shape())
    torch_state = {k: v.detach().cpu() for k, v in best.items()}
    with atomic_write(run_dir / STUDENT_PT) as fh:
        torch.save({"format": "hai-edge-student", "version": RUN_SCHEMA_VERSION,
                    "preset": preset.name, "teacher_dim": dim, "state_dict": torch_state}, fh)
    return {**preset.to_dict(), "params": s_params, "macs": s_macs,
            "exported_params": e_params, "exported_macs": e_macs}


def _run_record(cfg: DistillConfig, preset: StudentPreset, tg: steps.Targets, dim: int,
                scale: float) -> dict[str, Any]:
    """run.json's ``targets``, ``data``, ``split`` and ``embedding`` sections."""
    rows, train_items, held_items = tg.rows, tg.train_items, tg.held_items
    teacher_space = cfg.export_output is ExportOutput.TEACHER
    return {
        "targets": {"store": str(tg.store.root.resolve()), "rows": int(len(rows["sample_id"])),
                    "rows_without_corpus_item": tg.rows_unmatched,
                    "views": sorted({int(v) for v in rows["view"]}),
                    "target_normalisation": {"shift": "teacher train mean",
                                             "scale": round(scale, 8)}},
        "data": {"path": str(Path(cfg.data).resolve()), "modality": preset.modality.value,
                 "group_col": cfg.group_col, "id_col": cfg.id_col, "path_col": cfg.path_col,
                 "corpus_items": len(tg.items),
                 "items_with_targets": len(tg.used),
                 "corpus_hash": corpus_hash(tg.used)},
        "split": {"method": "split_by_group", "holdout": cfg.holdout, "seed": cfg.seed,
                  "train_items": len(train_items), "heldout_items": len(held_items),
                  "train_groups": len({it.group or it.item_id for it in train_items}),
                  "heldout_groups": len({it.group or it.item_id for it in held_items}),
                  "train_rows": int(len(tg.train_rows["sample_id"])),
                  "heldout_rows": int(len(tg.held_rows["sample_id"]))},
        "embedding": {"teacher_dim": dim, "student_dim": preset.dim,
                      "exported": cfg.export_output.value,
                      "exported_dim": dim if teacher_space else preset.dim,
                      "note": ("the bundle outputs the student's projection into the teacher's "
                               "space (de-normalised), so probes trained on teacher embeddings "
                               "apply" if teacher_space else
                               "the bundle outputs the student's own embedding; probes must be "
                               "trained on it")},
    }


# A test seam: tests set _EPOCH_HOOK["hook"] = callable(epoch, state) to inject failures.
_EPOCH_HOOK: dict[str, Any] = {}


# ------------------------------------------------------------------------------ reading a run
def heldout_with_targets(run_dir: str | os.PathLike[str]
                         ) -> tuple[np.ndarray, np.ndarray] | None:
    """``DistillRun.open(run_dir).heldout_with_targets()``: the held-out model inputs and the
    teacher's embeddings of the same rows, or None when the run's store is gone."""
    return DistillRun.open(run_dir).heldout_with_targets()


def load_run(run_dir: str | os.PathLike[str]) -> RunArtifacts:
    """The trained student of a finished (or paused) run, ready for export
    (``DistillRun.open(run_dir).artifacts()``)."""
    root = Path(run_dir)
    if not (root / RUN_JSON).is_file() or not (root / STUDENT_PT).is_file():
        raise HaiEdgeError(f"{root}: not a distillation run (needs run.json and student.pt)")
    return DistillRun.open(root).artifacts()
