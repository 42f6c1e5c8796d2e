"""The kiosk database's schema, as numbered migrations applied in order by :class:`~.store.Store`.

A kiosk already in the field opens its database with a newer hai-edge and gets the missing
migrations, each in one transaction; a database newer than the code is refused.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

SCHEMA_VERSION = 2

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (1, "initial schema", """
CREATE TABLE users(
  id INTEGER PRIMARY KEY,
  username TEXT NOT NULL UNIQUE COLLATE NOCASE,
  pw_hash TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('admin', 'operator')),
  failed INTEGER NOT NULL DEFAULT 0,
  locked_until REAL NOT NULL DEFAULT 0,
  created_unix REAL NOT NULL
);
CREATE TABLE sessions(
  token_hash TEXT PRIMARY KEY,
  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  csrf TEXT NOT NULL,
  created_unix REAL NOT NULL,
  last_seen_unix REAL NOT NULL
);
CREATE TABLE encounters(
  id TEXT PRIMARY KEY,
  request_id TEXT UNIQUE,
  subject TEXT NOT NULL,
  note TEXT NOT NULL DEFAULT '',
  operator_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
  created_unix REAL NOT NULL
);
CREATE INDEX encounters_subject ON encounters(subject);
CREATE INDEX encounters_created ON encounters(created_unix);
CREATE TABLE media(
  sha256 TEXT PRIMARY KEY,
  mime TEXT NOT NULL,
  size INTEGER NOT NULL,
  last_used_unix REAL NOT NULL,
  deleted_unix REAL
);
CREATE TABLE captures(
  id TEXT PRIMARY KEY,
  encounter_id TEXT NOT NULL REFERENCES encounters(id) ON DELETE CASCADE,
  kind TEXT NOT NULL CHECK (kind IN ('photo', 'cough')),
  source TEXT NOT NULL,
  name TEXT NOT NULL,
  media_sha256 TEXT NOT NULL REFERENCES media(sha256),
  result_json TEXT NOT NULL,
  embeddings BLOB NOT NULL,
  embedding_rows INTEGER NOT NULL,
  embedding_dim INTEGER NOT NULL,
  created_unix REAL NOT NULL
);
CREATE INDEX captures_encounter ON captures(encounter_id);
CREATE TABLE settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""),
    (2, "operators disabled, corrections (void) and the audit log", """
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE encounters ADD COLUMN voided_unix REAL;
ALTER TABLE encounters ADD COLUMN voided_by TEXT;
ALTER TABLE encounters ADD COLUMN void_reason TEXT;
ALTER TABLE captures ADD COLUMN voided_unix REAL;
ALTER TABLE captures ADD COLUMN voided_by TEXT;
ALTER TABLE captures ADD COLUMN void_reason TEXT;
CREATE TABLE audit(
  id INTEGER PRIMARY KEY,
  at_unix REAL NOT NULL,
  actor TEXT,
  action TEXT NOT NULL,
  target_kind TEXT NOT NULL,
  target_id TEXT NOT NULL,
  detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_at ON audit(at_unix);
"""),
)
