"""Kiosk storage: one SQLite database (WAL, foreign keys, versioned migrations) + media by hash.

Durability rules (a power cut must not lose an acknowledged encounter, nor leave a half-written one):

* The database runs ``journal_mode=WAL`` with ``synchronous=FULL``: a transaction is on disk when
  ``COMMIT`` returns, and the API answers only after that.
* Media files are content-addressed (``media/ab/<sha256>``), written to a temp sibling, fsynced,
  renamed, and the folder fsynced, *before* the transaction that references them. A crash in
  between leaves an unreferenced file, which :meth:`Store.sweep` removes at start-up (with any
  temp files), so a referenced file always exists and always matches its hash.
* Retention deletes media files older than N days but keeps every result row.

Two connections: one writer (SQLite has a single writer anyway; its lock also orders media
deletion against new references) and one reader, so session checks and history reads never wait
behind a commit's fsync (WAL lets readers run during a write).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hai_edge.apps.kiosk.audit import AuditMixin
from hai_edge.apps.kiosk.media import MediaStore
from hai_edge.apps.kiosk.migrations import MIGRATIONS, SCHEMA_VERSION
from hai_edge.apps.kiosk.records import Capture, Encounter, StoreError, User, Void

__all__ = ["Capture", "Encounter", "MediaStore", "Store", "StoreError", "User"]

class Store(AuditMixin):
    """The kiosk database + media folder under ``data_dir``. Thread-safe (one lock).
    Corrections and the audit log: :class:`~.audit.AuditMixin`."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.data_dir = Path(data_dir)
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.data_dir, 0o700)
        except OSError as exc:
            raise StoreError(f"{data_dir}: cannot use as data directory ({exc.strerror})") from None
        self.db_path = self.data_dir / "kiosk.sqlite3"
        self.media = MediaStore(self.data_dir / "media")
        self._lock = threading.RLock()  # the writer
        self._rlock = threading.Lock()  # the reader
        try:
            self._db = self._connect()
            self._db.execute("PRAGMA journal_mode=WAL")
            self._migrate()
            self._rdb = self._connect()
            self._rdb.execute("PRAGMA query_only=ON")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.db_path}: {exc}") from None

    # ---------------------------------------------------------------------------- plumbing
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None,
                             timeout=30)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        return db

    def close(self) -> None:
        with self._lock, self._rlock:
            self._db.close()
            if hasattr(self, "_rdb"):
                self._rdb.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed (durably) when the block exits cleanly."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _q(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """A read on the reader connection (sees every committed transaction)."""
        with self._rlock:
            return self._rdb.execute(sql, args).fetchall()

    def _migrate(self) -> None:
        with self._lock:
            self._db.execute("CREATE TABLE IF NOT EXISTS schema_migrations(version INTEGER "
                             "PRIMARY KEY, name TEXT NOT NULL, applied_unix REAL NOT NULL)")
            done = {r[0] for r in self._db.execute("SELECT version FROM schema_migrations")}
            if done and max(done) > SCHEMA_VERSION:
                raise StoreError(f"{self.db_path}: database schema v{max(done)} is newer than "
                                 f"this hai-edge (v{SCHEMA_VERSION}); upgrade hai-edge")
            for version, name, sql in MIGRATIONS:
                if version in done:
                    continue
                with self._tx() as db:
                    for stmt in filter(str.strip, sql.split(";")):
                        db.execute(stmt)
                    db.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                               (version, name, time.time()))

    def schema_versions(self) -> list[int]:
        return [r[0] for r in self._q("SELECT version FROM schema_migrations ORDER BY version")]

    def integrity_check(self) -> str:
        return str(self._q("PRAGMA integrity_check")[0][0])

    def sweep(self) -> int:
        """Remove temp files and media files no row references (left by a crash). Start-up only."""
        keep = {r[0] for r in self._q("SELECT sha256 FROM media WHERE deleted_unix IS NULL")}
        removed = 0
        for f in list(self.media.files()):
            if f.name.endswith(".tmp") or f.name not in keep:
                with contextlib.suppress(OSError):
                    f.unlink()
                    removed += 1
        return removed

    def secret(self, name: str) -> bytes:
        """A per-kiosk random key (e.g. for subject pseudonyms), created once."""
        key = f"secret:{name}"
        with self._tx() as db:
            row = db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
            if row is None:
                value = secrets.token_hex(32)
                db.execute("INSERT INTO settings VALUES (?, ?)", (key, value))
            else:
                value = row[0]
        return bytes.fromhex(value)

    # ------------------------------------------------------------------------------- users
    def count_users(self) -> int:
        return int(self._q("SELECT COUNT(*) FROM users")[0][0])

    def add_user(self, username: str, pw_hash: str, role: str, *, actor: str | None = None
                 ) -> User:
        try:
            with self._tx() as db:
                db.execute("INSERT INTO users(username, pw_hash, role, created_unix) "
                           "VALUES (?, ?, ?, ?)", (username, pw_hash, role, time.time()))
                self._audit_row(db, actor, "user.add", "user", username, role)
        except sqlite3.IntegrityError:
            raise StoreError(f"user {username!r} already exists") from None
        user = self.user(username)
        assert user is not None
        return user

    def set_password(self, username: str, pw_hash: str) -> None:
        with self._tx() as db:
            cur = db.execute("UPDATE users SET pw_hash = ?, failed = 0, locked_until = 0 "
                             "WHERE username = ?", (pw_hash, username))
            if cur.rowcount == 0:
                raise StoreError(f"no user {username!r}")

    def user(self, username: str) -> User | None:
        rows = self._q("SELECT * FROM users WHERE username = ?", (username,))
        return self._user(rows[0]) if rows else None

    def users(self) -> list[User]:
        return [self._user(r) for r in self._q("SELECT * FROM users ORDER BY username")]

    @staticmethod
    def _user(r: sqlite3.Row) -> User:
        return User(r["id"], r["username"], r["role"], r["failed"], r["locked_until"],
                    r["pw_hash"], bool(r["disabled"]))

    def record_login(self, user_id: int, ok: bool, max_failures: int, lockout_s: float) -> User:
        """Count a failed sign-in (locking the account at ``max_failures``) or reset on success."""
        with self._tx() as db:
            if ok:
                db.execute("UPDATE users SET failed = 0, locked_until = 0 WHERE id = ?",
                           (user_id,))
            else:
                db.execute("UPDATE users SET failed = failed + 1 WHERE id = ?", (user_id,))
                db.execute("UPDATE users SET locked_until = ?, failed = 0 WHERE id = ? AND "
                           "failed >= ?", (time.time() + lockout_s, user_id, max_failures))
            row = db.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
        return self._user(row)

    def unlock(self, username: str) -> None:
        with self._tx() as db:
            if db.execute("UPDATE users SET failed = 0, locked_until = 0 WHERE username = ?",
                          (username,)).rowcount == 0:
                raise StoreError(f"no user {username!r}")

    # ---------------------------------------------------------------------------- sessions
    def create_session(self, token_hash: str, user_id: int, csrf: str) -> None:
        now = time.time()
        with self._tx() as db:
            db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?)",
                       (token_hash, user_id, csrf, now, now))

    def session(self, token_hash: str, idle_s: float, max_age_s: float
                ) -> tuple[User, str] | None:
        """(user, csrf token) of a live session, refreshing its idle timer; None if expired."""
        now = time.time()
        rows = self._q("SELECT s.csrf, s.created_unix, s.last_seen_unix, u.* FROM sessions s "
                       "JOIN users u ON u.id = s.user_id WHERE s.token_hash = ? AND u.disabled = 0", (token_hash,))
        if not rows:
            return None
        row = rows[0]
        if now - row["last_seen_unix"] > idle_s or now - row["created_unix"] > max_age_s:
            self.delete_session(token_hash)
            return None
        if now - row["last_seen_unix"] > 30:  # keep writes rare on a busy kiosk
            with self._tx() as db:
                db.execute("UPDATE sessions SET last_seen_unix = ? WHERE token_hash = ?",
                           (now, token_hash))
        return self._user(row), row["csrf"]

    def delete_session(self, token_hash: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))

    # -------------------------------------------------------------------------- encounters
    def create_encounter(self, subject: str, note: str, operator_id: int | None,
                         request_id: str | None = None, *, actor: str | None = None
                         ) -> tuple[Encounter, bool]:
        """Insert (committed before returning, with its audit row). With a ``request_id`` seen
        before, the earlier encounter is returned instead (safe client retries):
        ``(encounter, created)``."""
        if request_id:
            rows = self._q("SELECT id FROM encounters WHERE request_id = ?", (request_id,))
            if rows:
                enc = self.encounter(rows[0][0])
                assert enc is not None
                return enc, False
        eid = secrets.token_hex(8)
        try:
            with self._tx() as db:
                db.execute("INSERT INTO encounters(id, request_id, subject, note, operator_id, "
                           "created_unix) VALUES (?, ?, ?, ?, ?, ?)",
                           (eid, request_id or None, subject, note, operator_id, time.time()))
                self._audit_row(db, actor, "encounter.create", "encounter", eid, subject)
        except sqlite3.IntegrityError:  # the same request_id committed concurrently
            if not request_id:
                raise
            return self.create_encounter(subject, note, operator_id, request_id, actor=actor)
        enc = self.encounter(eid)
        assert enc is not None
        return enc, True

    def encounter(self, eid: str) -> Encounter | None:
        rows = self._q("SELECT e.*, u.username FROM encounters e LEFT JOIN users u "
                       "ON u.id = e.operator_id WHERE e.id = ?", (eid,))
        if not rows:
            return None
        return self._encounter(rows[0], tuple(self.captures([eid])))

    def _encounter(self, r: sqlite3.Row, captures: tuple[Capture, ...]) -> Encounter:
        return Encounter(r["id"], r["subject"], r["note"], r["username"], r["created_unix"],
                         captures, _void(r))

    def search(self, query: str = "", subjects: Sequence[str] = (), limit: int = 50,
               offset: int = 0) -> tuple[int, list[Encounter]]:
        """Encounters newest first whose subject, note, operator or id contains ``query``
        (or whose subject is one of ``subjects``): ``(total, page)``."""
        where, args = "", []
        if query or subjects:
            like = f"%{query.replace('%', '').replace('_', '')}%" if query else None
            conds = []
            if like:
                conds += ["e.subject LIKE ?", "e.note LIKE ?", "u.username LIKE ?", "e.id LIKE ?"]
                args += [like] * 4
            if subjects:
                conds.append(f"e.subject IN ({','.join('?' * len(subjects))})")
                args += list(subjects)
            where = "WHERE " + " OR ".join(conds)
        base = f"FROM encounters e LEFT JOIN users u ON u.id = e.operator_id {where}"
        total = int(self._q(f"SELECT COUNT(*) {base}", args)[0][0])
        rows = self._q(f"SELECT e.*, u.username {base} ORDER BY e.created_unix DESC, e.id "
                       "LIMIT ? OFFSET ?", [*args, limit, offset])
        caps: dict[str, list[Capture]] = {r["id"]: [] for r in rows}
        for c in self.captures(list(caps)):
            caps[c.encounter_id].append(c)
        return total, [self._encounter(r, tuple(caps[r["id"]])) for r in rows]

    # ---------------------------------------------------------------------------- captures
    def add_capture(self, encounter_id: str, kind: str, source: str, name: str, data: bytes,
                    mime: str, result: dict[str, Any], embeddings: bytes, rows: int,
                    dim: int, *, actor: str | None = None) -> Capture:
        """Media file first (durable, outside any lock), then one transaction for the media
        row + capture. Retention unlinks files only under the writer lock and only while their
        row is marked deleted, so re-checking the file inside this transaction is enough."""
        cid = secrets.token_hex(8)
        payload = json.dumps(result, separators=(",", ":"))
        sha = self.media.put(data)
        now = time.time()
        with self._tx() as db:
            db.execute("INSERT INTO media VALUES (?, ?, ?, ?, NULL) ON CONFLICT(sha256) DO "
                       "UPDATE SET last_used_unix = excluded.last_used_unix, deleted_unix = NULL",
                       (sha, mime, len(data), now))
            if not self.media.path(sha).is_file():  # retention removed it since put()
                self.media.put(data)
            db.execute("INSERT INTO captures(id, encounter_id, kind, source, name, media_sha256, "
                       "result_json, embeddings, embedding_rows, embedding_dim, created_unix) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (cid, encounter_id, kind, source, name, sha, payload, embeddings, rows,
                        dim, now))
            self._audit_row(db, actor, "capture.create", "capture", cid,
                            f"{kind} in encounter {encounter_id}")
        return self.captures([encounter_id], capture_id=cid)[0]

    def captures(self, encounter_ids: Sequence[str], capture_id: str | None = None
                 ) -> list[Capture]:
        if not encounter_ids:
            return []
        marks = ",".join("?" * len(encounter_ids))
        sql = (f"SELECT c.*, m.deleted_unix FROM captures c JOIN media m ON m.sha256 = "
               f"c.media_sha256 WHERE c.encounter_id IN ({marks})")
        args: list[Any] = list(encounter_ids)
        if capture_id:
            sql += " AND c.id = ?"
            args.append(capture_id)
        out = []
        for r in self._q(sql + " ORDER BY c.created_unix, c.id", args):
            out.append(Capture(r["id"], r["encounter_id"], r["kind"], r["source"], r["name"],
                               r["media_sha256"], json.loads(r["result_json"]),
                               r["embedding_rows"], r["embedding_dim"], r["created_unix"],
                               r["deleted_unix"] is not None, _void(r)))
        return out

    def embeddings(self, capture_id: str) -> tuple[bytes, int, int]:
        r = self._q("SELECT embeddings, embedding_rows, embedding_dim FROM captures "
                    "WHERE id = ?", (capture_id,))[0]
        return bytes(r[0]), r[1], r[2]

    def media_info(self, sha256: str) -> tuple[str, bool] | None:
        rows = self._q("SELECT mime, deleted_unix FROM media WHERE sha256 = ?", (sha256,))
        return (rows[0][0], rows[0][1] is not None) if rows else None

    # --------------------------------------------------------------------------- retention
    def apply_retention(self, days: float | None) -> int:
        """Delete media files not used for ``days`` days; results stay. Returns files deleted."""
        if days is None:
            return 0
        cutoff = time.time() - days * 86400.0
        old = [r[0] for r in self._q("SELECT sha256 FROM media WHERE deleted_unix IS NULL AND "
                                     "last_used_unix < ?", (cutoff,))]
        deleted = 0
        for sha in old:
            with self._tx() as db:  # mark first: a crash leaves a marked row, not a dangling one
                n = db.execute("UPDATE media SET deleted_unix = ? WHERE sha256 = ? AND "
                               "deleted_unix IS NULL AND last_used_unix < ?",
                               (time.time(), sha, cutoff)).rowcount
            with self._lock:  # unlink only while still marked: a new upload may have revived it
                row = self._db.execute("SELECT deleted_unix FROM media WHERE sha256 = ?",
                                       (sha,)).fetchone()
                if n and row is not None and row[0] is not None:
                    self.media.delete(sha)
                    deleted += 1
        return deleted


def _void(r: sqlite3.Row) -> Void | None:
    return None if r["voided_unix"] is None else Void(r["voided_unix"], r["voided_by"],
                                                      r["void_reason"] or "")
