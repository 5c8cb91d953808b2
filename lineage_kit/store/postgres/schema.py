"""The PostgreSQL store's layout: schema v4's lean tables (docs/benchmarks.md,
"v4 layout: measured design"), created at once (no older layout exists here).

The store is one schema (default ``lineage_kit``) identified by the row
``application = lineage_kit`` of its ``lineage_kit_meta`` table and versioned by
its ``schema_version`` row, as ``application_id`` / ``user_version`` mark a SQLite
store. Differences from the SQLite layout, and why:

- values are ``json``, not ``jsonb``: ``jsonb`` rewrites the text (key order,
  spaces, duplicate keys) and refuses ``\\u0000``, so the stored bytes would no
  longer match their hash;
- ``entries.created_at`` stays per entry (``timestamptz``, 8 bytes): the moments a
  step started on each chunk (timeline plots, OpenLineage START events, the
  created-after-parent check) keep their exact stamp without a join;
- timestamps are ``timestamptz`` (UTC), returned as the same ISO text SQLite holds.
"""

from __future__ import annotations

from ...model import RunStatus, StepKind

#: The value of the ``application`` row that marks a schema as a lineage store.
APPLICATION = "lineage_kit"
#: The layout's version (the ``schema_version`` row).
SCHEMA_VERSION = 4
#: The meta table's name: a schema holding it without our ``application`` row is
#: someone else's.
META_TABLE = "lineage_kit_meta"

_RUN_STATUSES = ", ".join(f"'{s.value}'" for s in RunStatus)
_STEP_KINDS = ", ".join(f"'{k.value}'" for k in StepKind)

#: ISO-8601 UTC text of a ``timestamptz`` column, as the writer's stamps are in SQLite.
ISO = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"

#: A ``timestamptz`` as integer microseconds since the epoch.
MICROS = "(extract(epoch FROM {}) * 1000000)::bigint"

#: Entry status codes (index = code), the texts readers see.
STATUS_TEXT = "(ARRAY['ok','rejected','failed'])[{} + 1]"

#: Statements creating the layout (inside the store's schema, on the search path).
DDL = [
    f"""CREATE TABLE {META_TABLE} (
        name  text PRIMARY KEY,
        value text NOT NULL
    )""",
    # The next free entry id: a chunk's range is reserved by one UPDATE (disjoint
    # across writers, hosts included), before the chunk is built into rows.
    "CREATE TABLE entry_ids (next_id bigint NOT NULL)",
    "INSERT INTO entry_ids (next_id) VALUES (1)",
    "CREATE SEQUENCE run_nos AS integer",
    f"""CREATE TABLE runs (
        run_no          integer PRIMARY KEY,
        run_id          text NOT NULL UNIQUE,
        pipeline        text NOT NULL,
        started_at      timestamptz NOT NULL,
        finished_at     timestamptz,
        status          text NOT NULL CHECK (status IN ({_RUN_STATUSES})),
        input_path      text,
        input_sha256    text,
        n_input         bigint NOT NULL DEFAULT 0,
        n_published     bigint NOT NULL DEFAULT 0,
        n_rejected      bigint NOT NULL DEFAULT 0,
        n_failed        bigint NOT NULL DEFAULT 0,
        parameters      text NOT NULL DEFAULT '{{}}',
        package_version text NOT NULL,
        error           text,
        writer_host     text,
        writer_pid      integer,
        writer_started  text
    )""",
    "CREATE INDEX runs_started ON runs (started_at, run_no)",
    f"""CREATE TABLE steps (
        run_no       integer NOT NULL REFERENCES runs (run_no),
        position     integer NOT NULL,
        name         text NOT NULL,
        kind         text NOT NULL DEFAULT 'map' CHECK (kind IN ({_STEP_KINDS})),
        source       text,
        destination  text,
        description  text,
        started_at   timestamptz,
        finished_at  timestamptz,
        busy_seconds double precision NOT NULL DEFAULT 0,
        PRIMARY KEY (run_no, position)
    )""",
    # The claim row of a chunk: inserted first in the chunk's transaction, so a
    # retried write of the same chunk meets the primary key and writes nothing. A
    # run's entries are its chunks' id ranges (no run index on entries).
    """CREATE TABLE chunks (
        run_no      integer NOT NULL,
        chunk_no    integer NOT NULL,
        first_entry bigint NOT NULL,
        last_entry  bigint NOT NULL,
        n_entries   integer NOT NULL,
        counts      text NOT NULL,
        written_at  timestamptz NOT NULL,
        PRIMARY KEY (run_no, chunk_no)
    )""",
    "CREATE INDEX chunks_first ON chunks (first_entry)",
    """CREATE TABLE entries (
        entry_id   bigint PRIMARY KEY,
        run_no     integer NOT NULL,
        position   integer NOT NULL,
        status     smallint NOT NULL CHECK (status BETWEEN 0 AND 2),
        parent_id  bigint,
        value_id   bigint NOT NULL,
        created_at timestamptz NOT NULL,
        record_key text,
        reason     text,
        error      text
    )""",
    "CREATE INDEX entries_key ON entries (record_key, run_no, position)",
    "CREATE INDEX entries_parent ON entries (parent_id) WHERE parent_id IS NOT NULL",
    # The second and later parents of a merged entry (the first is entries.parent_id).
    """CREATE TABLE extra_parents (
        child_id  bigint NOT NULL,
        parent_id bigint NOT NULL,
        PRIMARY KEY (child_id, parent_id)
    )""",
    "CREATE INDEX extra_parents_parent ON extra_parents (parent_id, child_id)",
    # value_id is the id of the entry that first stored the value; an identity step's
    # entry points at its parent's.
    """CREATE TABLE vals (
        value_id bigint PRIMARY KEY,
        hash     bytea,
        json     json NOT NULL
    )""",
    # Every parent link, for the walks and for users' SQL.
    """CREATE VIEW parents (child_id, parent_id) AS
        SELECT entry_id, parent_id FROM entries WHERE parent_id IS NOT NULL
        UNION ALL
        SELECT child_id, parent_id FROM extra_parents""",
    # The v3 shape of an entry, for users' SQL (the package reads the tables).
    f"""CREATE VIEW lineage AS
        SELECT l.entry_id, r.run_id, l.position, l.record_key,
               {STATUS_TEXT.format("l.status")} AS status, l.reason, l.error,
               {ISO.format("l.created_at")} AS created_at,
               encode(v.hash, 'hex') AS value_hash
        FROM entries l JOIN runs r ON r.run_no = l.run_no
        LEFT JOIN vals v ON v.value_id = l.value_id""",
    """CREATE VIEW records (entry_id, value) AS
        SELECT l.entry_id, v.json::text FROM entries l JOIN vals v ON v.value_id = l.value_id""",
]

#: ``MIGRATIONS[v]`` turns a version ``v - 1`` store into version ``v`` (none yet:
#: PostgreSQL stores start at v4).
MIGRATIONS: dict[int, list[str]] = {}
