"""The bundled sample set as plain files a newcomer can point every command at.

``hai-edge samples -o samples/`` writes ``coughs/`` (32 CC0 cough recordings) and ``lesions/``
(36 CC BY 4.0 skin-lesion photos), each with a ``metadata.csv`` whose ``path`` column is relative
to the CSV, plus the attribution. The README's tour runs on these files as written.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hai_edge.errors import HaiEdgeError
from hai_edge.fileio import replace_dir

__all__ = ["SAMPLES_DIR", "SampleSet", "write_samples"]

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "demo_data"
_PARTS = ("coughs", "lesions")
_ATTRIBUTION = "ATTRIBUTION.md"


@dataclass(frozen=True)
class SampleSet:
    """Where :func:`write_samples` put the files."""

    root: Path
    coughs_csv: Path
    lesions_csv: Path
    n_coughs: int
    n_lesions: int


def _count_rows(csv_path: Path) -> int:
    with open(csv_path, encoding="utf-8") as fh:
        return max(0, sum(1 for line in fh if line.strip()) - 1)


def write_samples(dest: str | Path, *, overwrite: bool = False) -> SampleSet:
    """Copy the sample set to ``dest`` (a new folder; ``overwrite`` replaces an earlier copy).

    The copy is assembled in a temporary sibling and renamed into place, so an interrupted run
    leaves nothing half-written.
    """
    out = Path(dest)
    if not (SAMPLES_DIR / "coughs" / "metadata.csv").is_file():
        raise HaiEdgeError(f"{SAMPLES_DIR}: the bundled sample set is missing from this install")
    if out.exists() and not (out.is_dir() and not any(out.iterdir())) and not overwrite:
        raise HaiEdgeError(f"{out}: already exists and is not empty (use --overwrite to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for part in _PARTS:
            shutil.copytree(SAMPLES_DIR / part, tmp / part)
        shutil.copy2(SAMPLES_DIR / _ATTRIBUTION, tmp / _ATTRIBUTION)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    coughs, lesions = out / "coughs" / "metadata.csv", out / "lesions" / "metadata.csv"
    return SampleSet(out, coughs, lesions, _count_rows(coughs), _count_rows(lesions))
