"""Capture benchmarks (issue 7, items 1-5): throughput, overhead, raw-write limit,
naive design, memory. Every baseline is built and timed here, in the same run."""

from __future__ import annotations

import json
import sqlite3
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from common import (
    WORK,
    Figure,
    compared,
    fresh_db,
    interleaved,
    orders,
    peak_rss_mib,
    ratio_figure,
    run_child,
    timed,
)

import lineage_kit as lk
from lineage_kit.steps import DEFAULT_STEPS
from lineage_kit.values import to_json as _pipeline_dumps

N_STEPS = len(DEFAULT_STEPS)
# The pipeline's own JSON serialiser, so the baselines pay exactly the same for it.
_DUMPS = _pipeline_dumps


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(items)
    while block := list(islice(it, size)):
        yield block


def run_lineage(n: int, db: Path) -> lk.RunResult:
    """The thing measured: ``n`` synthetic orders through the default pipeline."""
    return lk.run_pipeline(orders(n), db=db, progress=False)


# ------------------------------------------------------------------ baselines


def values_only(n: int, db: Path, chunk_size: int = 2_000) -> int:
    """Baseline for the overhead: apply the same steps, store only each step's value.

    Same records, steps, chunking, JSON form and SQLite settings (WAL,
    ``synchronous=NORMAL``) as the pipeline, one transaction per chunk, but no
    lineage entries, keys, statuses, hashes or parent links. A step that returns
    its input object reuses the JSON already made (as the pipeline does).
    """
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = NORMAL")
    con.execute("CREATE TABLE records (entry_id INTEGER PRIMARY KEY, value TEXT NOT NULL)")
    funcs = [s.func for s in DEFAULT_STEPS]
    written = 0
    for block in _chunks(orders(n), chunk_size):
        rows: list[tuple[str]] = []
        values, texts = block, [None] * len(block)
        for func in funcs:
            new_values, new_texts = [], []
            for value, text in zip(values, texts, strict=True):
                new = func(value)
                new_text = text if new is value and text is not None else _DUMPS(new)
                new_values.append(new)
                new_texts.append(new_text)
                rows.append((new_text,))
            values, texts = new_values, new_texts
        con.execute("BEGIN IMMEDIATE")
        con.executemany("INSERT INTO records (value) VALUES (?)", rows)
        con.execute("COMMIT")
        written += len(rows)
    con.close()
    return written


#: The tables a pipeline run writes, in an order their foreign keys accept.
_TABLES = ("runs", "steps", "chunks", "entries", "vals", "extra_parents")


def prebuilt_rows(db: Path) -> dict[str, list[tuple]]:
    """Every row a pipeline run wrote, read back into memory (for the raw-write limit)."""
    con = sqlite3.connect(db)
    try:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in _TABLES}
    finally:
        con.close()


def bare_executemany(rows: dict[str, list[tuple]], db: Path) -> None:
    """The raw write limit: the same rows, into the same schema, in one transaction.

    Runs and steps are inserted first (they are a handful of rows the foreign keys
    need); chunks, entries, values and extra parent links are bare ``executemany``.
    """
    store = lk.LineageStore(db, create=True)  # same schema, pragmas and indexes
    con = store.backend.con
    con.execute("BEGIN IMMEDIATE")
    for table in _TABLES:
        if rows[table]:
            width = len(rows[table][0])
            con.executemany(f"INSERT INTO {table} VALUES ({','.join('?' * width)})", rows[table])
    con.execute("COMMIT")
    store.close()


_PROBE_SCHEMA = """
CREATE TABLE lineage (entry_id INTEGER PRIMARY KEY, run INTEGER NOT NULL, step INTEGER NOT NULL,
                      record_key TEXT, parent_id INTEGER);
CREATE TABLE value (entry_id INTEGER PRIMARY KEY, json TEXT NOT NULL);
"""


def write_limit_probe(
    records: Iterable[dict[str, Any]],
    db: Path,
    funcs: Sequence[Callable[[Any], Any]] | None = None,
    chunk_size: int = 2_000,
    key: str = "key",
) -> int:
    """The machine's write limit for lineage capture (issue 17, figure a).

    Plain Python, no lineage_kit: the steps ``funcs`` (default: the default
    pipeline's) applied to chunks of ``records``; for every record-step one lineage
    row ``(entry_id, run, step, record_key, parent_id)`` and one row of the value's
    JSON (the pipeline's serialiser, so both pay the same for it); one
    ``executemany`` per table and one transaction per chunk, ids given in memory;
    a key index and a parent index built once, afterwards. The same SQLite
    settings as the store (WAL, ``synchronous=NORMAL``). No hashes, statuses,
    timestamps, duplicate-key check or error handling: what any capture of this
    workload must at least pay. Returns the number of record-steps written.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     write_limit_probe([{"key": "a", "x": 1}], Path(d) / "probe.db")
    3
    """
    funcs = [s.func for s in DEFAULT_STEPS] if funcs is None else list(funcs)
    con = sqlite3.connect(db, isolation_level=None)
    try:
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("PRAGMA synchronous = NORMAL")
        con.executescript(_PROBE_SCHEMA)
        next_id = 1
        for block in _chunks(records, chunk_size):
            lineage: list[tuple] = []
            values: list[tuple[int, str]] = []
            parents: list[int | None] = [None] * len(block)
            current = block
            for position, func in enumerate(funcs):
                nxt = []
                for i, value in enumerate(current):
                    new = func(value)
                    lineage.append((next_id, 1, position, new.get(key), parents[i]))
                    values.append((next_id, _DUMPS(new)))
                    parents[i] = next_id
                    next_id += 1
                    nxt.append(new)
                current = nxt
            con.execute("BEGIN IMMEDIATE")
            con.executemany("INSERT INTO lineage VALUES (?, ?, ?, ?, ?)", lineage)
            con.executemany("INSERT INTO value VALUES (?, ?)", values)
            con.execute("COMMIT")
        con.execute("CREATE INDEX lineage_key ON lineage (record_key, run, step)")
        con.execute("CREATE INDEX lineage_parent ON lineage (parent_id)")
        return next_id - 1
    finally:
        con.close()


_NAIVE_SCHEMA = """
CREATE TABLE lineage (entry_id INTEGER PRIMARY KEY, run_id TEXT, step TEXT, record_key TEXT,
                      status TEXT, created_at TEXT, value TEXT, parent_id INTEGER)
"""


def naive(n: int, db: Path) -> int:
    """What a first attempt at lineage capture does.

    For every record and step: SELECT the record's previous entry by key (no index on
    the key), INSERT the new entry, COMMIT. SQLite's default settings (rollback
    journal, ``synchronous=FULL``).
    """
    con = sqlite3.connect(db)
    con.execute(_NAIVE_SCHEMA)
    con.commit()
    run_id = "naive"
    rows = 0
    for record in orders(n):
        value, key = record, record["key"]
        for st in DEFAULT_STEPS:
            value = st.func(value)
            row = con.execute(
                "SELECT entry_id FROM lineage WHERE run_id = ? AND record_key = ? "
                "ORDER BY entry_id DESC LIMIT 1",
                (run_id, key),
            ).fetchone()
            con.execute(
                "INSERT INTO lineage (run_id, step, record_key, status, created_at, value, "
                "parent_id) VALUES (?, ?, ?, 'ok', ?, ?, ?)",
                (
                    run_id,
                    st.name,
                    key,
                    time.strftime("%Y-%m-%dT%H:%M:%S"),
                    _DUMPS(value),
                    row[0] if row else None,
                ),
            )
            con.commit()
            rows += 1
    con.close()
    return rows


# ------------------------------------------------------------------ children


def child_capture(n: int, db: str) -> dict[str, Any]:
    """In a fresh process: one pipeline run of ``n`` records; its time and peak RSS."""
    path = fresh_db(db)
    before = peak_rss_mib()
    wall, cpu, result = timed(lambda: run_lineage(n, path))
    return {
        "n": n,
        "wall": wall,
        "cpu": cpu,
        "entries": result.n_entries,
        "rss_before_mib": before,
        "peak_rss_mib": peak_rss_mib(),
    }


# ------------------------------------------------------------------ figures


def throughput_and_memory(sizes: list[int], reps: dict[int, int], mem_pair: tuple[int, int]):
    """Items 1 and 5: fresh process per run, so each size's peak RSS is its own."""
    figures = []
    per_size: dict[int, dict[str, float]] = {}
    for n in sizes:
        samples = [run_child("capture", str(n), f"capture_{n}.db") for _ in range(reps[n])]
        wall = statistics.median(s["wall"] for s in samples)
        cpu = statistics.median(s["cpu"] for s in samples)
        rss = statistics.median(s["peak_rss_mib"] for s in samples)
        per_size[n] = {"wall": wall, "rss": rss}
        figures.append(
            Figure(
                f"capture_throughput_{n}",
                f"capture throughput, {n:,} records (default pipeline)",
                n / wall,
                "records/s",
                detail={
                    "record_steps_per_s": n * N_STEPS / wall,
                    "us_per_record": 1e6 * wall / n,
                    "us_per_record_cpu": 1e6 * cpu / n,
                    "median_seconds": wall,
                    "samples_seconds": [s["wall"] for s in samples],
                    "peak_rss_mib": rss,
                    "rss_after_import_mib": statistics.median(s["rss_before_mib"] for s in samples),
                },
            )
        )
        print(
            f"  capture {n:>9,}: {n / wall:>10,.0f} records/s, peak RSS {rss:.1f} MiB", flush=True
        )
    small, large = mem_pair
    ratio = per_size[large]["rss"] / per_size[small]["rss"]
    figures.append(
        ratio_figure(
            "memory_ratio",
            f"peak RSS at {large:,} / at {small:,} records",
            ratio,
            goal="<= 1.5",
            detail={
                f"peak_rss_mib_{small}": per_size[small]["rss"],
                f"peak_rss_mib_{large}": per_size[large]["rss"],
            },
        )
    )
    return figures


def overhead_and_raw_limit(n: int, reps: int) -> list[Figure]:
    """Items 2 and 3, interleaved in one loop: pipeline, values only, bare executemany."""
    warm = fresh_db("overhead_lineage.db")
    run_lineage(n, warm)
    rows = prebuilt_rows(warm)
    paths = {
        "lineage": "overhead_lineage.db",
        "values_only": "overhead_values.db",
        "bare": "overhead_bare.db",
    }
    db = {name: fresh_db(p) for name, p in paths.items()}
    t = interleaved(
        {
            "lineage": lambda: run_lineage(n, db["lineage"]),
            "values_only": lambda: values_only(n, db["values_only"]),
            "bare": lambda: bare_executemany(rows, db["bare"]),
        },
        reps,
        setup=lambda name: fresh_db(paths[name]),
    )
    ours, base, bare = t["lineage"], t["values_only"], t["bare"]
    n_rows = len(rows["entries"]) + len(rows["vals"]) + len(rows["extra_parents"])
    return [
        compared(
            "capture_overhead",
            f"capture overhead vs steps + value storage only, {n:,} records",
            t,
            "lineage",
            "values_only",
            goal="<= 1.3",
            detail={
                "ratio_cpu": ours.median_cpu / base.median_cpu,
                # the SQLite floor: writing the lineage rows alone, with no Python work
                "bare_write_over_values_only": bare.median / base.median,
            },
        ),
        compared(
            "raw_write_fraction",
            f"throughput as a fraction of bare executemany of the same rows, {n:,} records",
            t,
            "bare",
            "lineage",
            goal=">= 0.5",
            detail={
                "rows_written": n_rows,
                "bare_rows_per_s": n_rows / bare.median,
                "fraction_cpu": bare.median_cpu / ours.median_cpu,
            },
        ),
    ]


def against_naive(sizes: list[int], reps: int, headline: int) -> list[Figure]:
    """Item 4 (and issue 2's 8,000-record pipeline time)."""
    figures = []
    for n in sizes:
        paths = {"naive": f"naive_{n}.db", "lineage": f"naive_ours_{n}.db"}
        t = interleaved(
            {
                "naive": lambda n=n, p=paths: naive(n, fresh_db(p["naive"])),
                "lineage": lambda n=n, p=paths: run_lineage(n, fresh_db(p["lineage"])),
            },
            reps,
        )
        at_headline = n == headline
        figures.append(
            compared(
                f"naive_speedup_{n}",
                f"speed-up over the naive design (SELECT parent + commit per row), {n:,} records",
                t,
                "naive",
                "lineage",
                goal="> 100" if at_headline else None,
            )
        )
        if at_headline:
            figures.append(
                Figure(
                    f"pipeline_seconds_{n}",
                    f"pipeline time for {n:,} records (default pipeline)",
                    t["lineage"].median,
                    "s",
                    goal="well under 1",
                    met=t["lineage"].median < 0.5,
                    detail={"us_per_record": 1e6 * t["lineage"].median / n},
                )
            )
    return figures


def input_bytes(n: int) -> int:
    """Bytes of the benchmark's ``n`` orders as JSON Lines (the input the size is against)."""
    return sum(len(json.dumps(r).encode()) + 1 for r in orders(n))


def store_bytes(db: Path) -> tuple[int, dict[str, int]]:
    """A store's size once its WAL is checkpointed, and bytes per table/index (dbstat)."""
    con = sqlite3.connect(db)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        try:
            per = dict(con.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"))
        except sqlite3.OperationalError:  # SQLite built without dbstat
            per = {}
    finally:
        con.close()
    return db.stat().st_size, per


def write_limit(n: int, reps: int) -> list[Figure]:
    """Figures (a) and (b) of issue 17: capture speed as a fraction of the machine's
    write limit (:func:`write_limit_probe`), interleaved; store bytes per record-step."""
    paths = {"lineage": "limit_lineage.db", "probe": "limit_probe.db"}
    t = interleaved(
        {
            "lineage": lambda: run_lineage(n, fresh_db(paths["lineage"])),
            "probe": lambda: write_limit_probe(orders(n), fresh_db(paths["probe"])),
        },
        reps,
    )
    steps = n * N_STEPS
    ours, probe = steps / t["lineage"].median, steps / t["probe"].median
    fraction = ours / probe
    size, per_table = store_bytes(WORK / paths["lineage"])
    probe_size, _ = store_bytes(WORK / paths["probe"])
    raw = input_bytes(n)
    print(
        f"  {ours:,.0f} record-steps/s, probe {probe:,.0f}: {fraction:.2f} of the limit; "
        f"store {size / steps:.0f} bytes a record-step, {size / raw:.1f}x the input",
        flush=True,
    )
    return [
        compared(  # the same record-steps on both sides: the ratio of the times
            "write_limit_fraction",
            f"record-steps/s as a fraction of the plain-Python write probe, {n:,} records",
            t,
            "probe",
            "lineage",
            goal=">= 0.8",
            detail={
                "record_steps_per_s": ours,
                "probe_record_steps_per_s": probe,
                "fraction_cpu": t["probe"].median_cpu / t["lineage"].median_cpu,
            },
        ),
        Figure(
            "store_bytes_per_record_step",
            f"store bytes per record-step, {n:,} records (default pipeline)",
            size / steps,
            " B",
            detail={"store_bytes": size, "per_table_bytes": per_table},
        ),
        ratio_figure(
            "store_size_ratio",
            f"store size / input size (JSON Lines), {n:,} records",
            size / raw,
            goal="<= 4",
            detail={"input_bytes": raw, "probe_store_bytes": probe_size},
        ),
    ]
