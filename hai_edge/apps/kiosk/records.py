"""What the kiosk store hands out: users, encounters and their captures, as frozen records whose
``to_dict`` is the JSON the API returns (docs/kiosk.md)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from hai_edge.errors import HaiEdgeError

__all__ = ["Capture", "Encounter", "StoreError", "User", "Void"]


class StoreError(HaiEdgeError):
    """The data directory or database cannot be used."""


@dataclasses.dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    failed: int
    locked_until: float
    pw_hash: str = dataclasses.field(repr=False, default="")
    disabled: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"username": self.username, "role": self.role,
                "locked": self.locked_until > time.time()}

    def admin_dict(self) -> dict[str, Any]:
        """What the operators page shows: also whether the account is disabled."""
        return {**self.to_dict(), "disabled": self.disabled, "failed_sign_ins": self.failed}


@dataclasses.dataclass(frozen=True)
class Void:
    """A correction: the record stays, marked void by ``by`` at ``at_unix`` for ``reason``."""

    at_unix: float
    by: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"at": _iso(self.at_unix), "by": self.by, "reason": self.reason}


@dataclasses.dataclass(frozen=True)
class Capture:
    id: str
    encounter_id: str
    kind: str
    source: str
    name: str
    media_sha256: str
    result: dict[str, Any]
    embedding_rows: int
    embedding_dim: int
    created_unix: float
    media_deleted: bool
    voided: Void | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "encounter_id": self.encounter_id, "kind": self.kind,
                "source": self.source, "name": self.name, "media_sha256": self.media_sha256,
                "media_deleted": self.media_deleted, "created": _iso(self.created_unix),
                "embedding_shape": [self.embedding_rows, self.embedding_dim],
                "result": self.result,
                "voided": self.voided.to_dict() if self.voided else None}


@dataclasses.dataclass(frozen=True)
class Encounter:
    id: str
    subject: str
    note: str
    operator: str | None
    created_unix: float
    captures: tuple[Capture, ...] = ()
    voided: Void | None = None

    def to_dict(self, captures: bool = True) -> dict[str, Any]:
        """The API's JSON; ``counts`` leave voided captures out."""
        d: dict[str, Any] = {"id": self.id, "subject": self.subject, "note": self.note,
                             "operator": self.operator, "created": _iso(self.created_unix),
                             "counts": {k: sum(c.kind == k and c.voided is None
                                               for c in self.captures)
                                        for k in ("photo", "cough")},
                             "voided": self.voided.to_dict() if self.voided else None}
        if captures:
            d["captures"] = [c.to_dict() for c in self.captures]
        return d


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
