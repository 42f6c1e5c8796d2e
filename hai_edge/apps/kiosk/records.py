"""What the kiosk store hands out: users, encounters and their captures, as frozen records whose
``to_dict`` is the JSON the API returns (docs/kiosk.md)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from hai_edge.errors import HaiEdgeError

__all__ = ["Capture", "Encounter", "StoreError", "User"]


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

    def to_dict(self) -> dict[str, Any]:
        return {"username": self.username, "role": self.role,
                "locked": self.locked_until > time.time()}


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

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "encounter_id": self.encounter_id, "kind": self.kind,
                "source": self.source, "name": self.name, "media_sha256": self.media_sha256,
                "media_deleted": self.media_deleted, "created": _iso(self.created_unix),
                "embedding_shape": [self.embedding_rows, self.embedding_dim],
                "result": self.result}


@dataclasses.dataclass(frozen=True)
class Encounter:
    id: str
    subject: str
    note: str
    operator: str | None
    created_unix: float
    captures: tuple[Capture, ...] = ()

    def to_dict(self, captures: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "subject": self.subject, "note": self.note,
                             "operator": self.operator, "created": _iso(self.created_unix),
                             "counts": {k: sum(c.kind == k for c in self.captures)
                                        for k in ("photo", "cough")}}
        if captures:
            d["captures"] = [c.to_dict() for c in self.captures]
        return d


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
