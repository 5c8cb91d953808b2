"""Stores to corrupt for the integrity-check tests (shared by test_checks and
test_check_passes): split and merge pipelines, and raw SQL edits of a store file."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd

import lineage_kit as lk

SAMPLE_JSON = Path(__file__).resolve().parent.parent / "data" / "sample_input.json"

KEY = "order-110"  # 4 items in data/sample_input.json, so the split makes order-110#1..#4


@lk.step("explode", kind="split", description="one record per item")
def explode(record: dict) -> list[dict]:
    return [{**record, "item": i} for i in range(1, int(record["items"]) + 1)]


@lk.step("by_region", kind="merge", group_by=lambda key, record: record["region"])
def by_region(records: list[dict]) -> dict:
    return {"region": records[0]["region"], "amount": sum(r["amount"] for r in records)}


SPLIT_STEPS = [lk.steps.ingest, lk.steps.normalize, explode, lk.steps.publish]
MERGE_STEPS = [lk.steps.ingest, lk.steps.normalize, by_region, lk.steps.publish]


def _build(path: Path, steps=None, source=SAMPLE_JSON) -> Path:
    lk.run_pipeline(source, db=path, steps=steps, progress=False)
    return path


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "corrupt.db"
    shutil.copyfile(src, dst)
    return dst


def _corrupt(path: Path, *statements: tuple) -> None:
    """Apply raw SQL to a store, as a buggy writer or a hand edit would."""
    con = sqlite3.connect(path)
    con.execute("PRAGMA foreign_keys = OFF")
    for sql, *params in statements:
        con.execute(sql, params)
    con.commit()
    con.close()


def _entry(path: Path, key: str, step: str) -> int:
    """The entry id of ``key`` at the step named ``step`` in the latest run."""
    con = sqlite3.connect(path)
    try:
        rows = con.execute(
            """
            SELECT l.entry_id FROM lineage l
            JOIN steps s ON s.run_id = l.run_id AND s.position = l.position
            WHERE l.record_key = ? AND s.name = ?
              AND l.run_id = (SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1)
            """,
            (key, step),
        ).fetchall()
    finally:
        con.close()
    assert len(rows) == 1, rows
    return rows[0][0]


def _check(path: Path, **kwargs) -> lk.CheckReport:
    with lk.connect(path) as store:
        return store.check(**kwargs)


def _only(report: lk.CheckReport, code: str) -> pd.Series:
    """Assert the report holds exactly one violation, of ``code``; return it."""
    v = report.violations
    assert list(v["code"]) == [code], v.to_string()
    return v.iloc[0]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


#: The chunk holding entry ``?1`` recounted without it (its step's count of its
#: status one less), as a writer that lost the entry before counting would record.
_UNCOUNT = """
UPDATE chunks SET counts = (
    SELECT json_group_array(CASE WHEN json_extract(c.value, '$[0]') = e.position
        THEN json_array(json_extract(c.value, '$[0]'),
                        json_extract(c.value, '$[1]') - (e.status = 0),
                        json_extract(c.value, '$[2]') - (e.status = 1),
                        json_extract(c.value, '$[3]') - (e.status = 2))
        ELSE json(c.value) END)
    FROM json_each(chunks.counts) c, entries e WHERE e.entry_id = ?1)
WHERE ?1 BETWEEN first_entry AND last_entry
"""


#: Every chunk of entry ``?1``'s run recounted from the entries in its range.
RECOUNT = """
UPDATE chunks SET counts = (
    SELECT json_group_array(json_array(position, ok, rejected, failed)) FROM (
        SELECT position, sum(status = 0) AS ok, sum(status = 1) AS rejected,
               sum(status = 2) AS failed
        FROM entries e WHERE e.entry_id BETWEEN chunks.first_entry AND chunks.last_entry
        GROUP BY position))
WHERE run_no = (SELECT run_no FROM entries WHERE entry_id = ?1)
"""


def _delete_entry(entry_id: int, *, recount: bool = True) -> list[tuple]:
    """An entry lost with its links (both ends) and its value, unless another entry
    shares that value (an identity step's entry points at its parent's); its chunk's
    counts recounted without it unless ``recount`` is false."""
    return [
        *([(_UNCOUNT, entry_id)] if recount else []),
        ("DELETE FROM extra_parents WHERE child_id = ?1 OR parent_id = ?1", entry_id),
        ("UPDATE entries SET parent_id = NULL WHERE parent_id = ?1", entry_id),
        (
            "DELETE FROM vals WHERE value_id = ?1 "
            "AND NOT EXISTS (SELECT 1 FROM entries WHERE value_id = ?1 AND entry_id <> ?1)",
            entry_id,
        ),
        ("DELETE FROM entries WHERE entry_id = ?1", entry_id),
    ]


def _link(child: int, parent: int) -> list[tuple]:
    """A parent link added: the child's first parent if it has none, else an extra one
    (a child that does not exist gets an extra link too)."""
    return [
        (
            "INSERT INTO extra_parents (child_id, parent_id) SELECT ?1, ?2 "
            "WHERE NOT EXISTS (SELECT 1 FROM entries WHERE entry_id = ?1 AND parent_id IS NULL)",
            child,
            parent,
        ),
        (
            "UPDATE entries SET parent_id = ?2 WHERE entry_id = ?1 AND parent_id IS NULL",
            child,
            parent,
        ),
    ]


def _restamp(entry_id: int, written_at: str) -> list[tuple]:
    """An entry given another time: entries take their chunk's, so its chunk is cut
    in three, the entry alone in the middle one, written at ``written_at`` (each
    recording the counts of the entries it holds)."""
    holds = "?1 BETWEEN first_entry AND last_entry AND chunk_no < 1000"
    return [
        (
            "INSERT INTO chunks (run_no, chunk_no, first_entry, last_entry, counts, written_at) "
            f"SELECT run_no, 1000, ?1 + 1, last_entry, '[]', written_at FROM chunks WHERE {holds}",
            entry_id,
        ),
        (
            "INSERT INTO chunks (run_no, chunk_no, first_entry, last_entry, counts, written_at) "
            f"SELECT run_no, 1001, ?1, ?1, '[]', ?2 FROM chunks WHERE {holds}",
            entry_id,
            written_at,
        ),
        (f"UPDATE chunks SET last_entry = ?1 - 1 WHERE {holds}", entry_id),
        (RECOUNT, entry_id),
    ]


def _unlink(child: int) -> list[tuple]:
    """Every parent link of an entry lost."""
    return [
        ("UPDATE entries SET parent_id = NULL WHERE entry_id = ?", child),
        ("DELETE FROM extra_parents WHERE child_id = ?", child),
    ]


# --------------------------------------------------------------- clean stores
