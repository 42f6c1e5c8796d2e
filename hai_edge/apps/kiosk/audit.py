"""Corrections and the audit log of the kiosk store: void an encounter or a capture (the row
stays, marked, and leaves exports), disable an operator, and one audit row for every create,
void, export and operator change, written in the same transaction as the change it records."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import enum
import io
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from hai_edge.apps.kiosk.records import StoreError

__all__ = ["AuditAction", "AuditEntry", "AuditMixin", "audit_csv"]


class AuditAction(str, enum.Enum):
    """What the audit log records (``action`` column)."""

    ENCOUNTER_CREATE = "encounter.create"
    CAPTURE_CREATE = "capture.create"
    ENCOUNTER_VOID = "encounter.void"
    CAPTURE_VOID = "capture.void"
    EXPORT = "export"
    AUDIT_EXPORT = "audit.export"
    USER_ADD = "user.add"
    USER_DISABLE = "user.disable"
    USER_ENABLE = "user.enable"
    USER_UNLOCK = "user.unlock"
    USER_RESET_PIN = "user.reset_pin"


@dataclasses.dataclass(frozen=True)
class AuditEntry:
    id: int
    at_unix: float
    actor: str | None
    action: str
    target_kind: str
    target_id: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at_unix))
        return {"id": self.id, "at": at, "actor": self.actor, "action": self.action,
                "target_kind": self.target_kind, "target_id": self.target_id,
                "detail": self.detail}


def audit_csv(entries: Sequence[AuditEntry]) -> bytes:
    """The audit log as CSV (UTC times, oldest first), for the admin's download."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(("id", "at_utc", "actor", "action", "target_kind", "target_id", "detail"))
    for e in sorted(entries, key=lambda e: e.id):
        d = e.to_dict()
        w.writerow((d["id"], d["at"], d["actor"] or "", d["action"], d["target_kind"],
                    d["target_id"], d["detail"]))
    return buf.getvalue().encode()


class AuditMixin:
    """Mixed into :class:`~.store.Store`, whose ``_tx`` and ``_q`` it uses."""

    def _tx(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _q(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError

    @staticmethod
    def _audit_row(db: sqlite3.Connection, actor: str | None, action: AuditAction | str,
                   kind: str, target: str, detail: str = "") -> None:
        db.execute("INSERT INTO audit(at_unix, actor, action, target_kind, target_id, detail) "
                   "VALUES (?, ?, ?, ?, ?, ?)",
                   (time.time(), actor, AuditAction(action).value, kind, target, detail))

    def audit(self, actor: str | None, action: AuditAction, kind: str, target: str,
              detail: str = "") -> None:
        """One audit row on its own (exports: nothing else changes in the database)."""
        with self._tx() as db:
            self._audit_row(db, actor, action, kind, target, detail)

    def audit_log(self, limit: int | None = 200, offset: int = 0) -> tuple[int, list[AuditEntry]]:
        """``(total, entries newest first)``; ``limit=None``: all of them."""
        total = int(self._q("SELECT COUNT(*) FROM audit")[0][0])
        rows = self._q("SELECT * FROM audit ORDER BY id DESC LIMIT ? OFFSET ?",
                       (-1 if limit is None else limit, offset))
        return total, [AuditEntry(r["id"], r["at_unix"], r["actor"], r["action"],
                                  r["target_kind"], r["target_id"], r["detail"]) for r in rows]

    # ---------------------------------------------------------------------------- corrections
    def _void(self, table: str, action: AuditAction, target: str, actor: str | None,
              reason: str, detail: str = "") -> None:
        with self._tx() as db:
            row = db.execute(f"SELECT voided_unix FROM {table} WHERE id = ?", (target,)).fetchone()
            if row is None:
                raise StoreError(f"no {table[:-1]} {target!r}")
            if row[0] is not None:
                raise StoreError(f"this {table[:-1]} is already voided")
            db.execute(f"UPDATE {table} SET voided_unix = ?, voided_by = ?, void_reason = ? "
                       "WHERE id = ?", (time.time(), actor, reason, target))
            self._audit_row(db, actor, action, table[:-1], target,
                            f"{detail}reason: {reason}")

    def void_encounter(self, eid: str, actor: str | None, reason: str) -> None:
        """Mark an encounter void (kept, struck through, left out of exports)."""
        self._void("encounters", AuditAction.ENCOUNTER_VOID, eid, actor, reason)

    def void_capture(self, eid: str, cid: str, actor: str | None, reason: str) -> None:
        """Mark one photo or recording of encounter ``eid`` void."""
        if not self._q("SELECT 1 FROM captures WHERE id = ? AND encounter_id = ?", (cid, eid)):
            raise StoreError(f"no capture {cid!r} in encounter {eid!r}")
        self._void("captures", AuditAction.CAPTURE_VOID, cid, actor, reason,
                   f"in encounter {eid}; ")

    # ------------------------------------------------------------------------------ operators
    def user_change(self, username: str, actor: str | None, action: AuditAction,
                    pw_hash: str | None = None) -> None:
        """Disable, enable, unlock or reset the PIN of ``username`` (with its audit row).
        Disabling also ends the user's sessions; a new PIN also clears a lock-out."""
        sql = {AuditAction.USER_DISABLE: "disabled = 1",
               AuditAction.USER_ENABLE: "disabled = 0",
               AuditAction.USER_UNLOCK: "failed = 0, locked_until = 0",
               AuditAction.USER_RESET_PIN: "pw_hash = ?, failed = 0, locked_until = 0"}[action]
        args: list[Any] = [pw_hash] if action is AuditAction.USER_RESET_PIN else []
        with self._tx() as db:
            if db.execute(f"UPDATE users SET {sql} WHERE username = ?",
                          [*args, username]).rowcount == 0:
                raise StoreError(f"no user {username!r}")
            if action is AuditAction.USER_DISABLE:
                db.execute("DELETE FROM sessions WHERE user_id = (SELECT id FROM users WHERE "
                           "username = ?)", (username,))
            self._audit_row(db, actor, action, "user", username)

    def active_admins(self) -> list[str]:
        return [r[0] for r in self._q("SELECT username FROM users WHERE role = 'admin' AND "
                                      "disabled = 0")]
