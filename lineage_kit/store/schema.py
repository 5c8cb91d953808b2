"""The lineage store's schema: DDL, identity pragmas and forward migrations.

The file is marked as ours with ``PRAGMA application_id`` and versioned with
``PRAGMA user_version``. Migrations run forward only, each in one transaction.
"""

from __future__ import annotations

from ..model import EntryStatus, RunStatus, StepKind

#: ``PRAGMA application_id`` of every lineage store: the ASCII bytes ``LKIT``.
APPLICATION_ID = 0x4C4B4954

#: Current schema version (``PRAGMA user_version``).
SCHEMA_VERSION = 4

#: The oldest version a read-only reader can use when it cannot migrate the store: a
#: v2 or v3 store is read through TEMP views shaped like the v4 tables
#: (:data:`V3_READER_VIEWS`; v3 only added the id counter, which readers never touch).
READABLE_VERSION = 2

# The stored texts (the enums' values), as plain str for the CHECK constraints.
RUN_STATUSES = tuple(s.value for s in RunStatus)
ENTRY_STATUSES = tuple(s.value for s in EntryStatus)
STEP_KINDS = tuple(k.value for k in StepKind)

# ``x IN ('a', 'b')`` in a CHECK constraint builds a small temporary table every time a
# row is inserted (about 1.8 us a row, a quarter of a lineage insert); the same test
# written with OR costs almost nothing. Used on the hot table, ``lineage``.
_ENTRY_STATUS_CHECK = " OR ".join(f"status = '{s}'" for s in ENTRY_STATUSES)

#: SQL of an entry's status text from its v4 code (0 ok, 1 rejected, 2 failed).
STATUS_TEXT = "CASE {0} WHEN 0 THEN 'ok' WHEN 1 THEN 'rejected' WHEN 2 THEN 'failed' END"
#: SQL of a v3 status text's v4 code.
STATUS_CODE = "CASE {0} WHEN 'ok' THEN 0 WHEN 'rejected' THEN 1 WHEN 'failed' THEN 2 END"
#: The v4 code of each entry status text.
STATUS_CODES = {s: i for i, s in enumerate(ENTRY_STATUSES)}

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

# v4's runs and steps are built under these names, then renamed over v3's.
_RUNS_V4 = f"""
CREATE TABLE runs_v4 (
    run_no          INTEGER PRIMARY KEY,
    run_id          TEXT NOT NULL UNIQUE,
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
    writer_pid      INTEGER,
    writer_started  TEXT
);
CREATE TABLE steps_v4 (
    run_no       INTEGER NOT NULL REFERENCES runs_v4 (run_no),
    run_id       TEXT NOT NULL,
    position     INTEGER NOT NULL,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL DEFAULT 'map' CHECK (kind IN {STEP_KINDS!r}),
    source       TEXT,
    destination  TEXT,
    description  TEXT,
    started_at   TEXT,
    finished_at  TEXT,
    busy_seconds REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (run_no, position)
) WITHOUT ROWID;
"""

# v4: the lean layout of issue 17 (README "Schema"): integer run numbers, one entry row
# per record-step holding its first parent and its value's id, values stored once
# (an identity step's entry points at its parent's value), 16-byte hashes, a chunks
# row per written chunk (the claim; the run's entries as id ranges; the time), and
# views with v3's tables' columns for user SQL.
_TABLES_V4 = """
CREATE TABLE entries (
    entry_id    INTEGER PRIMARY KEY,
    run_no      INTEGER NOT NULL,
    position    INTEGER NOT NULL,
    record_key  TEXT,
    status      INTEGER NOT NULL CHECK (status BETWEEN 0 AND 2),
    parent_id   INTEGER,
    value_id    INTEGER NOT NULL,
    reason      TEXT,
    error       TEXT,
    FOREIGN KEY (run_no, position) REFERENCES steps_v4 (run_no, position)
);
CREATE TABLE extra_parents (
    child_id   INTEGER NOT NULL,
    parent_id  INTEGER NOT NULL,
    PRIMARY KEY (child_id, parent_id)
) WITHOUT ROWID;
CREATE TABLE vals (
    value_id  INTEGER PRIMARY KEY,
    hash      BLOB,
    json      TEXT NOT NULL
);
CREATE TABLE chunks (
    run_no      INTEGER NOT NULL,
    chunk_no    INTEGER NOT NULL,
    first_entry INTEGER NOT NULL,
    last_entry  INTEGER NOT NULL,
    counts      TEXT NOT NULL,
    written_at  TEXT NOT NULL,
    PRIMARY KEY (run_no, chunk_no)
) WITHOUT ROWID;
"""

_INDEXES_V4 = """
CREATE INDEX runs_started ON runs (started_at);
CREATE INDEX entries_key ON entries (record_key, run_no, position);
CREATE INDEX entries_parent ON entries (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX entries_outcome ON entries (run_no, position, status) WHERE status <> 0;
CREATE INDEX entries_backlink ON entries (entry_id) WHERE parent_id >= entry_id;
CREATE INDEX extra_parents_parent ON extra_parents (parent_id, child_id);
CREATE INDEX chunks_first ON chunks (first_entry);
"""

#: An entry's time: its chunk's ``written_at`` (the chunk whose range holds the id).
CHUNK_TIME = (
    "(SELECT ch.written_at FROM chunks ch WHERE ch.first_entry <= {0} "
    "ORDER BY ch.first_entry DESC LIMIT 1)"
)

_VIEWS_V4 = f"""
CREATE VIEW lineage AS
SELECT e.entry_id, r.run_id, e.position, e.record_key, {STATUS_TEXT.format("e.status")} AS status,
       e.reason, e.error, {CHUNK_TIME.format("e.entry_id")} AS created_at,
       lower(hex(v.hash)) AS value_hash
FROM entries e JOIN runs r ON r.run_no = e.run_no LEFT JOIN vals v ON v.value_id = e.value_id;
CREATE VIEW records AS
SELECT e.entry_id, v.json AS value FROM entries e JOIN vals v ON v.value_id = e.value_id;
CREATE VIEW parents AS
SELECT entry_id AS child_id, parent_id FROM entries WHERE parent_id IS NOT NULL
UNION ALL
SELECT child_id, parent_id FROM extra_parents;
"""

# A v3 chunk wrote each step's entries under one stamp: consecutive entries (in id
# order) of one run with one stamp are one v4 chunk, which keeps every timestamp.
_CHUNKS_FROM_V3 = """
CREATE TEMP TABLE lk_islands AS
SELECT entry_id, run_id, created_at, position, status,
       rank_all - row_number() OVER (PARTITION BY run_id, created_at ORDER BY entry_id) AS island
FROM (SELECT entry_id, run_id, created_at, position, status,
             row_number() OVER (ORDER BY entry_id) AS rank_all
      FROM main.lineage);
INSERT INTO chunks (run_no, chunk_no, first_entry, last_entry, counts, written_at)
SELECT r.run_no, row_number() OVER (PARTITION BY i.run_id ORDER BY i.lo) - 1,
       i.lo, i.hi, i.counts, i.created_at
FROM (
    SELECT run_id, created_at, island, min(lo) AS lo, max(hi) AS hi,
           json_group_array(json_array(position, ok, rejected, failed)) AS counts
    FROM (
        SELECT run_id, created_at, island, position, min(entry_id) AS lo, max(entry_id) AS hi,
               sum(status = 'ok') AS ok, sum(status = 'rejected') AS rejected,
               sum(status = 'failed') AS failed
        FROM lk_islands GROUP BY run_id, created_at, island, position
    )
    GROUP BY run_id, created_at, island
) i JOIN runs_v4 r ON r.run_id = i.run_id;
DROP TABLE temp.lk_islands;
"""

MIGRATIONS[4] = (
    # the chunk claims a v3 store may have (the lineage_kit that introduced them made
    # them on a write-open): rebuilt below from the entries, every timestamp kept
    "DROP TABLE IF EXISTS chunks;"
    + _RUNS_V4
    + """
INSERT INTO runs_v4 (run_no, run_id, pipeline, started_at, finished_at, status, input_path,
                     input_sha256, n_input, n_published, n_rejected, n_failed, parameters,
                     package_version, error, writer_host, writer_pid, writer_started)
SELECT rowid, run_id, pipeline, started_at, finished_at, status, input_path, input_sha256,
       n_input, n_published, n_rejected, n_failed, parameters, package_version, error,
       writer_host, writer_pid, writer_started
FROM runs;
INSERT INTO steps_v4 (run_no, run_id, position, name, kind, source, destination, description,
                      started_at, finished_at, busy_seconds)
SELECT r.run_no, s.run_id, s.position, s.name, s.kind, s.source, s.destination, s.description,
       s.started_at, s.finished_at, s.busy_seconds
FROM steps s JOIN runs_v4 r ON r.run_id = s.run_id;
"""
    + _TABLES_V4
    + f"""
INSERT INTO entries (entry_id, run_no, position, record_key, status, parent_id, value_id,
                     reason, error)
SELECT l.entry_id, r.run_no, l.position, l.record_key, {STATUS_CODE.format("l.status")},
       (SELECT min(p.parent_id) FROM parents p WHERE p.child_id = l.entry_id),
       l.entry_id, l.reason, l.error
FROM lineage l JOIN runs_v4 r ON r.run_id = l.run_id
ORDER BY l.entry_id;
INSERT INTO extra_parents (child_id, parent_id)
SELECT p.child_id, p.parent_id FROM parents p
WHERE p.parent_id > (SELECT min(q.parent_id) FROM parents q WHERE q.child_id = p.child_id);
INSERT INTO vals (value_id, hash, json)
SELECT r.entry_id, lk_unhex(l.value_hash), r.value
FROM records r LEFT JOIN lineage l ON l.entry_id = r.entry_id
ORDER BY r.entry_id;
"""
    + _CHUNKS_FROM_V3
    + """
DROP TABLE records;
DROP TABLE parents;
DROP TABLE lineage;
DROP TABLE steps;
DROP TABLE runs;
ALTER TABLE runs_v4 RENAME TO runs;
ALTER TABLE steps_v4 RENAME TO steps;
"""
    + _INDEXES_V4
    + _VIEWS_V4
    + """
UPDATE entry_ids SET next_id = max(next_id, (SELECT coalesce(max(entry_id), 0) + 1 FROM entries));
"""
)


def unhex(text: str | None) -> bytes | None:
    """The bytes of a hex text (SQLite 3.40 has no ``unhex()``; the migration to v4
    registers this as ``lk_unhex``). Text that is not hex is kept as its UTF-8 bytes,
    so a damaged hash stays a mismatch instead of stopping the migration.

    Examples
    --------
    >>> unhex("00ff"), unhex(None), unhex("zz")
    (b'\\x00\\xff', None, b'zz')
    """
    if text is None:
        return None
    try:
        return bytes.fromhex(text)
    except (ValueError, TypeError):
        return str(text).encode()


#: What a read-only reader of a v2 or v3 store it cannot migrate creates on its own
#: connection (TEMP objects only; the store is not written): views named like the v4
#: tables over the v3 ones, and the chunks table made once from the entries' stamps.
V3_READER_VIEWS = f"""
CREATE TEMP VIEW runs AS SELECT rowid AS run_no, * FROM main.runs;
CREATE TEMP VIEW steps AS
SELECT r.rowid AS run_no, s.run_id, s.position, s.name, s.kind, s.source, s.destination,
       s.description, s.started_at, s.finished_at, s.busy_seconds
FROM main.steps s JOIN main.runs r ON r.run_id = s.run_id;
CREATE TEMP VIEW entries AS
SELECT l.entry_id, r.rowid AS run_no, l.position, l.record_key,
       {STATUS_CODE.format("l.status")} AS status,
       (SELECT min(p.parent_id) FROM main.parents p WHERE p.child_id = l.entry_id) AS parent_id,
       l.entry_id AS value_id, l.reason, l.error
FROM main.lineage l JOIN main.runs r ON r.run_id = l.run_id;
CREATE TEMP VIEW extra_parents AS
SELECT p.child_id, p.parent_id FROM main.parents p
WHERE p.parent_id > (SELECT min(q.parent_id) FROM main.parents q WHERE q.child_id = p.child_id);
CREATE TEMP VIEW vals AS
SELECT r.entry_id AS value_id, lk_unhex(l.value_hash) AS hash, r.value AS json
FROM main.records r LEFT JOIN main.lineage l ON l.entry_id = r.entry_id;
CREATE TEMP TABLE chunks (
    run_no INTEGER NOT NULL, chunk_no INTEGER NOT NULL, first_entry INTEGER NOT NULL,
    last_entry INTEGER NOT NULL, counts TEXT NOT NULL, written_at TEXT NOT NULL,
    PRIMARY KEY (run_no, chunk_no)
) WITHOUT ROWID;
CREATE INDEX temp.chunks_first ON chunks (first_entry);
""" + _CHUNKS_FROM_V3.replace("JOIN runs_v4 r", "JOIN runs r")
