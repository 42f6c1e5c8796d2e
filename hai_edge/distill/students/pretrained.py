"""Warm-start weights for ``hai-edge distill --init``: a finished run, or a shipped student.

A short distillation on a few dozen files cannot train a student from random weights (held-out
centred cosine ~0), but it can adapt one that was distilled from the same teacher on the full
public data. ``--init RUN_DIR`` starts from another run's best weights; ``--init
pretrained:<preset>`` from the students shipped with the package (``pretrained/<preset>/``:
``student.safetensors`` in fp16 plus ``student.json`` with the preset, the teacher it follows
and the front-end spec it was trained with). The warm-started run keeps the init's target
normalisation and, for audio, its feature standardisation: the weights only make sense with
the inputs and outputs they were trained on.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from hai_edge.bundle import sha256_file
from hai_edge.errors import HaiEdgeError

__all__ = ["PRETRAINED_DIR", "StudentInit", "load_init", "save_pretrained"]

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
_FORMAT = "hai-edge/pretrained-student/1"


@dataclasses.dataclass(frozen=True, eq=False)
class StudentInit:
    source: str
    preset: str
    teacher_id: str
    teacher_dim: int
    preprocessing: dict[str, Any]
    state_dict: dict[str, Any]  # torch tensors, float32
    sha256: str  # of the weights file: part of the run fingerprint


def load_init(source: str) -> StudentInit:
    """``RUN_DIR`` (run.json + student.pt) or ``pretrained:<preset>``."""
    if source.startswith("pretrained:"):
        name = source.split(":", 1)[1]
        folder = PRETRAINED_DIR / name
        meta_path, weights = folder / "student.json", folder / "student.safetensors"
        if not meta_path.is_file() or not weights.is_file():
            have = sorted(p.name for p in PRETRAINED_DIR.iterdir() if p.is_dir()) \
                if PRETRAINED_DIR.is_dir() else []
            raise HaiEdgeError(f"--init {source}: no such pretrained student "
                               f"(shipped: {', '.join(have) or 'none'})")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != _FORMAT:
            raise HaiEdgeError(f"{meta_path}: not a pretrained student ({meta.get('format')!r})")
        sha = sha256_file(weights)
        if sha != meta.get("sha256"):
            raise HaiEdgeError(f"{weights}: sha256 does not match student.json (modified?)")
        from safetensors.torch import load_file

        state = {k: v.float() for k, v in load_file(str(weights)).items()}
        return StudentInit(source, meta["preset"], meta["teacher"]["id"],
                           int(meta["teacher_dim"]), meta["preprocessing"], state, sha)
    root = Path(source)
    meta_path, weights = root / "run.json", root / "student.pt"
    if not meta_path.is_file() or not weights.is_file():
        raise HaiEdgeError(f"--init {source}: not a run directory (needs run.json and student.pt) "
                           "nor pretrained:<preset>")
    from hai_edge.distill.rundir import DistillRun

    run = DistillRun.open(root)
    ck = run.student_checkpoint()
    return StudentInit(source, ck["preset"], str(run.teacher_info.get("id", "")),
                       int(ck["teacher_dim"]), run.meta["preprocessing"],
                       {k: v.float() for k, v in ck["state_dict"].items()}, sha256_file(weights))


def save_pretrained(run_dir: str | Path, dest: str | Path) -> Path:
    """Write a run's best student as a shipped pretrained student (fp16 safetensors + JSON)."""
    import torch
    from safetensors.torch import save_file

    from hai_edge.fileio import atomic_write

    init = load_init(str(run_dir))
    from hai_edge.distill.rundir import DistillRun

    meta_run = DistillRun.open(run_dir).meta
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v).contiguous()
             for k, v in init.state_dict.items()}
    tmp = out / ".student.safetensors.tmp"
    save_file(state, str(tmp))
    tmp.replace(out / "student.safetensors")
    doc = {"format": _FORMAT, "preset": init.preset, "teacher": meta_run.get("teacher") or {},
           "teacher_dim": init.teacher_dim, "preprocessing": init.preprocessing,
           "sha256": sha256_file(out / "student.safetensors"),
           "trained": {"data": {k: v for k, v in (meta_run.get("data") or {}).items()
                                if k != "path"},
                       "split": meta_run.get("split"), "fidelity_heldout": meta_run.get("fidelity"),
                       "epochs_done": (meta_run.get("training") or {}).get("epochs_done"),
                       "best_epoch": (meta_run.get("training") or {}).get("best_epoch")},
           "notice": "demo, not for clinical use", "dtype": "float16",
           "torch": torch.__version__}
    with atomic_write(out / "student.json", "w") as fh:
        json.dump(doc, fh, indent=1)
    return out
