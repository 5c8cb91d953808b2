"""The capture hot path (issue 17's write limit): the rows a chunk is written as,
whatever statement each entry takes, and the garbage collector held off per chunk."""

from __future__ import annotations

import gc

import lineage_kit as lk
from lineage_kit.model import EntryRow
from lineage_kit.steps import DEFAULT_STEPS
from lineage_kit.store import Chunk, open_backend

from .conftest import SAMPLE_JSON, records

_T = "2026-01-01T00:00:00.000000+00:00"
_H = "00112233445566778899aabbccddeeff"


def test_a_mixed_chunk_is_stored_row_for_row(db):
    run_id = lk.run_pipeline(SAMPLE_JSON, db=db, progress=False).run_id
    with open_backend(db) as backend:
        (before,) = backend.con.execute("SELECT max(entry_id) FROM entries").fetchone()
        (n_chunks,) = backend.con.execute("SELECT count(*) FROM chunks").fetchone()
        rows = [
            EntryRow(run_id, 0, "a", "ok", None, None, _T, _H),  # a root
            EntryRow(run_id, 1, "a", "ok", None, None, _T, _H),  # identity: no value
            EntryRow(run_id, 0, None, "rejected", "missing_key", "no key", _T, None),
            EntryRow(run_id, 1, "b", "failed", None, "ValueError: x", _T, _H),  # linked
            EntryRow(run_id, 2, "m", "ok", None, None, _T, _H),  # merged: three parents
            EntryRow(run_id, 2, "c", "ok", None, None, _T, _H),  # an earlier chunk's parent
            EntryRow(run_id, 1, "d", "ok", "odd", None, _T, _H),  # ok, with a reason
        ]
        values = ['{"a":1}', None, '{"x":[]}', '{"b":2}', '{"m":3}', '{"c":4}', '{"d":5}']
        local = [(1, 0), (3, 0), (4, 1), (4, 3), (6, 0)]
        chunk = Chunk(rows, values, local, [(4, before), (5, before)], n_chunks)
        first = backend.reserve_ids(len(rows))
        assert backend.write_chunk(first, chunk) is True
        stored = backend.con.execute(
            "SELECT entry_id - ?, position, record_key, status, parent_id - ?, value_id - ?, "
            "reason, error FROM entries WHERE entry_id >= ? ORDER BY entry_id",
            (first, first, first, first),
        ).fetchall()
        vals = backend.con.execute(
            "SELECT value_id - ?, hash, typeof(hash), json FROM vals WHERE value_id >= ? "
            "ORDER BY value_id",
            (first, first),
        ).fetchall()
        extra = backend.con.execute(
            "SELECT child_id - ?, parent_id FROM extra_parents WHERE child_id >= ? ORDER BY 2",
            (first, first),
        ).fetchall()
    assert stored == [
        (0, 0, "a", 0, None, 0, None, None),
        (1, 1, "a", 0, 0, 0, None, None),
        (2, 0, None, 1, None, 2, "missing_key", "no key"),
        (3, 1, "b", 2, 0, 3, None, "ValueError: x"),
        (4, 2, "m", 0, 1, 4, None, None),
        (5, 2, "c", 0, before - first, 5, None, None),
        (6, 1, "d", 0, 0, 6, "odd", None),
    ]
    blob = bytes.fromhex(_H)
    assert vals == [
        (0, blob, "blob", '{"a":1}'),
        (2, None, "null", '{"x":[]}'),
        (3, blob, "blob", '{"b":2}'),
        (4, blob, "blob", '{"m":3}'),
        (5, blob, "blob", '{"c":4}'),
        (6, blob, "blob", '{"d":5}'),
    ]
    assert extra == [(4, before), (4, first + 3)]


def test_a_run_holds_the_collector_off_while_steps_run_and_restores_it(db):
    seen = []

    @lk.step("watch")
    def watch(record):
        seen.append(gc.isenabled())
        return record

    pipeline = lk.Pipeline([*DEFAULT_STEPS, watch])
    assert gc.isenabled()
    result = pipeline.run(records(30), db, chunk_size=10, progress=False)
    assert result.n_published == 30
    assert seen == [False] * 30
    assert gc.isenabled()


def test_a_collector_the_caller_turned_off_stays_off(db):
    gc.disable()
    try:
        lk.run_pipeline(records(5), db=db, progress=False)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_cycles_a_step_makes_are_collected_between_chunks(db):
    live = [0]

    class Node:
        def __init__(self) -> None:
            self.me = self  # garbage held only by its own cycle
            live[0] += 1

        def __del__(self) -> None:
            live[0] -= 1

    most = []

    @lk.step("cyclic")
    def cyclic(record):
        for _ in range(50):
            Node()
        most.append(live[0])
        return record

    gc.collect()
    pipeline = lk.Pipeline([*DEFAULT_STEPS, cyclic])
    pipeline.run(records(400), db, chunk_size=20, progress=False)
    # 20,000 made; within a chunk (1,000) they pile up, but the collector gets to them
    # at chunk boundaries
    assert max(most) < 3_000
    gc.collect()
    assert live[0] == 0
