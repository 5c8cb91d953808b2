"""A plain-Python prototype of the lean v4 store layout (issue 17), measured.

Not the product: a yardstick for the schema the next step builds. It writes the
default pipeline's lineage (parse, steps, JSON, BLAKE2b-128, chunks of 2,000, one
transaction each) into the proposed tables, in variants, interleaved with the
write-limit probe and with lineage_kit itself, and prints for each its
record-steps/s as a fraction of the probe and its bytes per table::

    python benchmarks/layout_prototype.py --n 200000 --reps 3

The findings are in docs/benchmarks.md ("v4 layout: measured design").
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from capture import _chunks, input_bytes, run_lineage, store_bytes, write_limit_probe  # noqa: E402
from common import WORK, fresh_db, interleaved, orders  # noqa: E402

from lineage_kit.steps import DEFAULT_STEPS  # noqa: E402
from lineage_kit.values import to_json  # noqa: E402

SCHEMA = """
CREATE TABLE runs (run_no INTEGER PRIMARY KEY, run_id TEXT NOT NULL UNIQUE);
CREATE TABLE chunks (
    run_no INTEGER NOT NULL, chunk_no INTEGER NOT NULL,
    first_entry INTEGER NOT NULL, last_entry INTEGER NOT NULL, n_entries INTEGER NOT NULL,
    written_at INTEGER NOT NULL,
    PRIMARY KEY (run_no, chunk_no)
) WITHOUT ROWID;
CREATE INDEX chunks_first ON chunks (first_entry);
CREATE TABLE entries (
    entry_id INTEGER PRIMARY KEY, run_no INTEGER NOT NULL, position INTEGER NOT NULL,
    record_key TEXT, status INTEGER NOT NULL, parent_id INTEGER, value_id INTEGER NOT NULL,
    reason TEXT, error TEXT
);
CREATE TABLE extra_parents (
    child_id INTEGER NOT NULL, parent_id INTEGER NOT NULL, PRIMARY KEY (child_id, parent_id)
) WITHOUT ROWID;
CREATE TABLE vals (value_id INTEGER PRIMARY KEY, hash BLOB NOT NULL, json TEXT NOT NULL);
CREATE INDEX entries_key ON entries (record_key, run_no, position);
"""

#: Optional indexes, one per variant, to price each.
INDEXES = {
    "parent": "CREATE INDEX entries_parent ON entries (parent_id) WHERE parent_id IS NOT NULL",
    "run": "CREATE INDEX entries_run ON entries (run_no, position, status)",
    "hash": "CREATE UNIQUE INDEX vals_hash ON vals (hash)",
}

#: variant -> the optional indexes it builds while inserting.
VARIANTS = {
    "lean": ("parent",),
    "lean_run_index": ("parent", "run"),
    "lean_no_parent_index": (),
    "lean_content_addressed": ("parent", "hash"),
}

_EMPTY_HASH = hashlib.blake2b(digest_size=16)


def lean(records: Iterable[dict[str, Any]], db: Path, indexes: tuple[str, ...]) -> int:
    """Write the default pipeline's lineage of ``records`` in the lean layout.

    One entry row per record-step (integer run number, status as an integer, the
    parent's id and the value's id in the row, no timestamp), a value row only where
    the step changed the value (an identity step points at its parent's value), a
    chunks row per chunk. ``indexes`` are kept while inserting. Returns the number
    of record-steps written.
    """
    con = sqlite3.connect(db, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("PRAGMA synchronous = NORMAL")
        con.executescript(SCHEMA + ";".join(INDEXES[i] for i in indexes))
        con.execute("INSERT INTO runs VALUES (1, '00000000-0000-0000-0000-000000000000')")
        next_id = next_value = 1
        for chunk_no, block in enumerate(_chunks(records, 2_000)):
            first = next_id
            entries: list[tuple] = []
            values: list[tuple] = []
            parents: list[int | None] = [None] * len(block)
            value_ids: list[int | None] = [None] * len(block)
            current = block
            for position, st in enumerate(DEFAULT_STEPS):
                nxt = []
                for i, value in enumerate(current):
                    if st.identity and value_ids[i] is not None:
                        new, value_id = value, value_ids[i]
                    else:
                        new = value if st.identity else st.func(value)
                        text = to_json(new)
                        h = _EMPTY_HASH.copy()
                        h.update(text.encode())
                        value_id, next_value = next_value, next_value + 1
                        values.append((value_id, h.digest(), text))
                    entries.append((next_id, 1, position, new["key"], 0, parents[i], value_id))
                    parents[i], value_ids[i] = next_id, value_id
                    next_id += 1
                    nxt.append(new)
                current = nxt
            con.execute("BEGIN IMMEDIATE")
            con.executemany(
                "INSERT INTO entries (entry_id, run_no, position, record_key, status, parent_id, "
                "value_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                entries,
            )
            con.executemany("INSERT INTO vals VALUES (?, ?, ?)", values)
            con.execute(
                "INSERT INTO chunks VALUES (1, ?, ?, ?, ?, ?)",
                (chunk_no, first, next_id - 1, next_id - first, time.time_ns() // 1000),
            )
            con.execute("COMMIT")
        return next_id - 1
    finally:
        con.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="records (default 200,000)")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions")
    args = parser.parse_args(argv)
    n = args.n
    files = {"probe": "proto_probe.db", "lineage_kit": "proto_lk.db"}
    files.update({v: f"proto_{v}.db" for v in VARIANTS})
    contenders = {
        "probe": lambda: write_limit_probe(orders(n), fresh_db(files["probe"])),
        "lineage_kit": lambda: run_lineage(n, fresh_db(files["lineage_kit"])),
    }
    for variant, indexes in VARIANTS.items():
        contenders[variant] = lambda v=variant, ix=indexes: lean(orders(n), fresh_db(files[v]), ix)
    t = interleaved(contenders, args.reps)
    steps, raw = n * len(DEFAULT_STEPS), input_bytes(n)
    probe, probe_cpu = t["probe"].median, t["probe"].median_cpu
    print(f"{n:,} records, {args.reps} interleaved repetitions; input {raw / 1e6:.1f} MB")
    print(
        "| layout | record-steps/s | / probe (wall) | / probe (CPU) | B a record-step | "
        "/ input | MB by table and index |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, timing in t.items():
        size, per = store_bytes(WORK / files[name])
        tables = ", ".join(f"{k} {v / 1e6:.1f}" for k, v in sorted(per.items()) if v > 100_000)
        print(
            f"| {name} | {steps / timing.median:,.0f} | {probe / timing.median:.2f} | "
            f"{probe_cpu / timing.median_cpu:.2f} | {size / steps:.0f} | {size / raw:.2f}x | "
            f"{tables} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
