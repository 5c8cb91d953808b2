"""The lineage store's schema: DDL, identity pragmas and forward migrations.

The file is marked as ours with ``PRAGMA application_id`` and versioned with
``PRAGMA user_version``. Migrations run forward only, each in one transaction.
"""

from __future__ import annotations

from ..model import EntryStatus, RunStatus, StepKind

#: ``PRAGMA application_id`` of every lineage store: the ASCII bytes ``LKIT``.
APPLICATION_ID = 0x4C4B4954

#: Current schema version (``PRAGMA user_version``).
SCHEMA_VERSION = 3

#: The oldest version a read-only reader can use as it is, when it cannot migrate the
#: store (v3 only adds the id counter, which readers never touch).
READABLE_VERSION = 2

# The stored texts (the enums' values), as plain str for the CHECK constraints.
RUN_STATUSES = tuple(s.value for s in RunStatus)
ENTRY_STATUSES = tuple(s.value for s in EntryStatus)
STEP_KINDS = tuple(k.value for k in StepKind)

# ``x IN ('a', 'b')`` in a CHECK constraint builds a small temporary table every time a
# row is inserted (about 1.8 us a row, a quarter of a lineage insert); the same test
# written with OR costs almost nothing. Used on the hot table, ``lineage``.
_ENTRY_STATUS_CHECK = " OR ".join(f"status = '{s}'" for s in ENTRY_STATUSES)

# Version 1. Timestamps are ISO-8601 UTC text with microseconds, which sorts correctly.
SCHEMA_V1 = f"""
CREATE TABLE runs (
    run_id          TEXT PRIMARY KEY,
    pipeline        TEXT NOT NULL,
    started_at      TEXT NOT NULL,
    finished_at     TEXT,
    status          TEXT NOT NULL CHECK (status IN {RUN_STATUSES!r}),
    input_path      TEXT,
    input_sha256    TEXT,
    n_input         INTEGER NOT NULL DEFAULT 0,
    n_published     INTEGER NOT NULL DEFAULT 0,
    n_rejected      INTEGER NOT NULL DEFAULT 0,
    n_failed        INTEGER NOT NULL DEFAULT 0,
    parameters      TEXT NOT NULL DEFAULT '{{}}',
    package_version TEXT NOT NULL,
    error           TEXT,
    writer_host     TEXT,
    writer_pid      INTEGER
);
CREATE INDEX runs_started ON runs (started_at);

CREATE TABLE steps (
    run_id       TEXT NOT NULL REFERENCES runs (run_id),
    position     INTEGER NOT NULL,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL DEFAULT 'map' CHECK (kind IN {STEP_KINDS!r}),
    source       TEXT,
    destination  TEXT,
    description  TEXT,
    started_at   TEXT,
    finished_at  TEXT,
    busy_seconds REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, position)
) WITHOUT ROWID;

CREATE TABLE lineage (
    entry_id    INTEGER PRIMARY KEY,
    run_id      TEXT NOT NULL,
    position    INTEGER NOT NULL,
    record_key  TEXT,
    status      TEXT NOT NULL CHECK ({_ENTRY_STATUS_CHECK}),
    reason      TEXT,
    error       TEXT,
    created_at  TEXT NOT NULL,
    value_hash  TEXT,
    FOREIGN KEY (run_id, position) REFERENCES steps (run_id, position)
);
CREATE INDEX lineage_key ON lineage (record_key, run_id, position);
CREATE INDEX lineage_run ON lineage (run_id, position, status);

CREATE TABLE parents (
    child_id   INTEGER NOT NULL REFERENCES lineage (entry_id),
    parent_id  INTEGER NOT NULL REFERENCES lineage (entry_id),
    PRIMARY KEY (child_id, parent_id)
) WITHOUT ROWID;
CREATE INDEX parents_parent ON parents (parent_id, child_id);

CREATE TABLE records (
    entry_id  INTEGER PRIMARY KEY REFERENCES lineage (entry_id),
    value     TEXT NOT NULL
);
"""

#: ``MIGRATIONS[v]`` turns a version ``v - 1`` store into version ``v``. A new store
#: is created at version 1 and migrated forward, so every store takes the same path.
MIGRATIONS: dict[int, str] = {
    # v2: the writer's process start time beside its pid, so that a killed run whose
    # pid was later reused by another process is still seen as interrupted.
    2: "ALTER TABLE runs ADD COLUMN writer_started TEXT",
    # v3: the next free entry id, so that a chunk's ids are reserved before it is
    # written (concurrent writers get disjoint ranges; see writer.reserve_ids).
    3: """
CREATE TABLE entry_ids (next_id INTEGER NOT NULL);
INSERT INTO entry_ids (next_id) SELECT coalesce(max(entry_id), 0) + 1 FROM lineage;
""",
}

#: The chunk claims of a v3 store (``Backend.write_chunk``): created on a write-open
#: when missing. Additive, so lineage_kit releases that know only v3 ignore it.
#: ``counts`` is the JSON of ``[[position, ok, rejected, failed], ...]``.
CLAIMS_V3 = """
CREATE TABLE IF NOT EXISTS chunks (
    run_id      TEXT NOT NULL,
    chunk_no    INTEGER NOT NULL,
    first_entry INTEGER NOT NULL,
    last_entry  INTEGER NOT NULL,
    counts      TEXT NOT NULL,
    written_at  TEXT NOT NULL,
    PRIMARY KEY (run_id, chunk_no)
) WITHOUT ROWID
"""
