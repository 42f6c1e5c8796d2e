"""Torch teachers for the Ray engine tests, loaded by spec (``torch:tests._ray_teachers:...``)
inside Ray actors, i.e. in other processes. So they report through files in the folder named by
``HAI_TEST_TEACHER_DIR`` (set before the test's Ray starts; its workers inherit it):

- ``calls.log``: ``load <pid>`` when a teacher is built, ``embed <pid> <rows>`` per batch;
- ``sleep_s`` (optional, read per batch): seconds to sleep per batch, so that shards get written
  while the teacher still has work;
- ``fail_at`` (optional, read per batch): ``STORE K``: raise once STORE holds K shards (a run that
  dies midway, after some progress).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["LoggedTeacher", "make_logged_audio_teacher", "make_logged_image_teacher"]


def _folder() -> Path | None:
    d = os.environ.get("HAI_TEST_TEACHER_DIR")
    return Path(d) if d else None


def _log(line: str) -> None:
    folder = _folder()
    if folder:
        with open(folder / "calls.log", "a", encoding="utf-8") as fh:
            fh.write(f"{line}\n")


class LoggedTeacher:
    """Delegates to a torch-module teacher (the ``torch:`` adapter's), logging each call."""

    def __init__(self, inner) -> None:  # noqa: ANN001 - a TorchModuleTeacher
        self.inner = inner
        self.info = inner.info
        _log(f"load {os.getpid()}")

    def embed(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        folder = _folder()
        if folder and (folder / "sleep_s").is_file():
            time.sleep(float((folder / "sleep_s").read_text() or 0))
        if folder and (folder / "fail_at").is_file():
            store, k = (folder / "fail_at").read_text().rsplit(" ", 1)
            if len(list(Path(store, "shards").glob("*.npz"))) >= int(k):
                raise RuntimeError("simulated teacher crash")
        out = self.inner.embed(batch)
        _log(f"embed {os.getpid()} {len(batch)}")
        return out

    def close(self) -> None:
        self.inner.close()


def make_logged_audio_teacher() -> LoggedTeacher:
    from hai_edge.teachers.generic import TorchModuleTeacher

    from ._teacher_fakes import make_audio_net

    return LoggedTeacher(TorchModuleTeacher(make_audio_net(), "tests._ray_teachers:audio"))


def make_logged_image_teacher() -> LoggedTeacher:
    from hai_edge.teachers.generic import TorchModuleTeacher

    from ._teacher_fakes import make_image_net

    return LoggedTeacher(TorchModuleTeacher(make_image_net(), "tests._ray_teachers:image"))
