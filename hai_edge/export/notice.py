"""Licence notices a bundle carries: the HAI-DEF NOTICE for Model Derivatives of a HAI-DEF teacher
(teachers.md) and the demo notice for students of the project's reference teachers.

Kept apart from the build flow so the wording lives in one place and is tested on its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from hai_edge.errors import HaiEdgeError

__all__ = [
    "DEGRADED_NOTICE",
    "HAI_DEF_NOTICE",
    "HAI_DEF_TERMS_URL",
    "REFERENCE_NOTICE",
    "Notices",
    "is_hai_def",
    "licence_notices",
    "notice_text",
    "teacher_dict",
]

HAI_DEF_TERMS_URL = "https://developers.google.com/health-ai-developer-foundations/terms"
HAI_DEF_NOTICE = ("HAI-DEF is provided under and subject to the Health AI Developer Foundations "
                  f"Terms of Use found at {HAI_DEF_TERMS_URL}")
# every bundle distilled from one of the project's reference teachers says so (teachers/_reference)
REFERENCE_NOTICE = "demo, not for clinical use"
DEGRADED_NOTICE = ("DEGRADED: exported with --allow-degraded; some fidelity gates failed (see "
                   "fidelity.overrides)")


def teacher_dict(teacher: Any) -> dict[str, Any] | None:
    """A teacher's info (TeacherInfo or mapping) as the manifest records it; needs an id."""
    if teacher is None:
        return None
    d = teacher.to_dict() if hasattr(teacher, "to_dict") else dict(teacher)
    if not d.get("id"):
        raise HaiEdgeError("teacher info needs an 'id' (and a 'licence')")
    d.setdefault("licence", "unknown")
    return {k: v for k, v in d.items() if v not in (None, "")}


def is_hai_def(teacher: Mapping[str, Any] | None) -> bool:
    return bool(teacher) and str(teacher.get("licence", "")).upper().startswith("HAI-DEF")


def notice_text(teacher: Mapping[str, Any], model_files: Sequence[str], version: str) -> str:
    """The NOTICE a bundle distilled from a HAI-DEF teacher must carry (teachers.md)."""
    files = "\n".join(f"  - {f}" for f in model_files)
    return (
        "NOTICE\n\n"
        f"{HAI_DEF_NOTICE}\n\n"
        "This bundle contains a Model Derivative of HAI-DEF. The model files listed below were "
        f"distilled from outputs of the HAI-DEF model {teacher['id']} and modified: a smaller "
        f"student network was trained on those outputs, then exported and quantized by hai-edge "
        f"{version}. They are not the original HAI-DEF model.\n\n"
        "Use and redistribution of these files are subject to the use restrictions of the Health "
        "AI Developer Foundations Terms of Use (including its prohibited uses), which apply to "
        "every recipient; give each recipient a copy of, or the link to, those terms together "
        "with this NOTICE.\n\n"
        f"Modified files:\n{files}\n"
    )


@dataclasses.dataclass(frozen=True)
class Notices:
    """The notices of one bundle (in order, no repeats) and, for a HAI-DEF derivative, the bytes
    of its NOTICE file."""

    notices: tuple[str, ...]
    notice_file: bytes | None = None


def licence_notices(prov: dict[str, Any], model_files: Sequence[str], notices: Sequence[str],
                    *, degraded: bool) -> Notices:
    """The caller's ``notices`` plus what the teacher's licence and the gates demand; a HAI-DEF
    teacher also adds ``licence_terms`` to ``prov`` (updated in place)."""
    out = list(notices)
    teacher = prov.get("teacher") or {}
    if str(teacher.get("id", "")).startswith("reference:"):
        out.insert(0, REFERENCE_NOTICE)  # the project's demo teachers
    notice_file = None
    if is_hai_def(teacher):
        from hai_edge import __version__

        prov["licence_terms"] = HAI_DEF_TERMS_URL
        notice_file = notice_text(teacher, sorted(model_files), __version__).encode()
        out += [HAI_DEF_NOTICE,
                f"Model Derivative distilled from {teacher['id']} outputs and modified (see NOTICE)."]
    if degraded:
        out.append(DEGRADED_NOTICE)
    return Notices(tuple(dict.fromkeys(out)), notice_file)
