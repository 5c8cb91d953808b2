"""The storage contract of issue 17: chunks numbered by the engine,
claimed by ``(run, chunk_no)`` so a retried write stores nothing twice, identity
steps passing no value, and a run's counts summed from its chunks."""

from __future__ import annotations

import json

import pytest

import lineage_kit as lk
from lineage_kit.model import EntryRow
from lineage_kit.store import Chunk, ChunkCounts, SQLiteBackend, open_backend

from .conftest import SAMPLE_JSON, records
from .explore_data import PIPELINE, RUN1


def _claims(db, run_id):
    with open_backend(db, read_only=True) as backend:
        return backend.con.execute(
            "SELECT chunk_no, first_entry, last_entry FROM chunks JOIN runs USING (run_no) "
            "WHERE run_id = ? ORDER BY chunk_no",
            (run_id,),
        ).fetchall()


def test_the_engine_numbers_a_runs_chunks_from_zero_in_the_order_it_cuts_them(db):
    # 25 records in chunks of 10: three chunks of 3 steps each (30, 30, 15 entries)
    result = lk.run_pipeline(records(25), db=db, chunk_size=10, progress=False)
    claims = _claims(db, result.run_id)
    assert [c[0] for c in claims] == [0, 1, 2]
    assert [c[2] - c[1] + 1 for c in claims] == [30, 30, 15]
    # the chunks' id ranges are the run's entries, in order, without gaps
    with lk.connect(db) as store:
        ids = sorted(store.lineage(result.run_id)["entry_id"])
    assert [i for lo, hi in ((c[1], c[2]) for c in claims) for i in range(lo, hi + 1)] == ids


def test_a_merge_barriers_chunks_continue_the_numbering(db):
    run_id = PIPELINE.run(RUN1, db, chunk_size=3, progress=False).run_id
    claims = _claims(db, run_id)
    # 8 input records in chunks of 3 before the merge (3 chunks), then the merge's
    # groups (A and B; C's only record was rejected before) in one chunk of 3.
    assert [c[0] for c in claims] == [0, 1, 2, 3]
    with lk.connect(db) as store:
        assert len(store.lineage(run_id)) == sum(c[2] - c[1] + 1 for c in claims)
        assert store.check(run_id).ok


def _chunk(run_id: str, chunk_no: int) -> Chunk:
    entries = [
        EntryRow(run_id, 0, "a", "ok", None, None, "2026-01-01T00:00:00.000000+00:00", None),
        EntryRow(run_id, 1, "a", "ok", None, None, "2026-01-01T00:00:00.000000+00:00", None),
    ]
    return Chunk(entries, ['{"key":"a"}', None], [(1, 0)], [], chunk_no)


def test_a_chunk_written_twice_is_stored_once(db):
    run_id = lk.run_pipeline(SAMPLE_JSON, db=db, progress=False).run_id
    with open_backend(db) as backend:
        before = backend.count_entries(run_id)
        (n_chunks,) = backend.con.execute(
            "SELECT count(*) FROM chunks JOIN runs USING (run_no) WHERE run_id = ?", (run_id,)
        ).fetchone()
        # a retried task: the same chunk number, under a range reserved again
        retried = _chunk(run_id, n_chunks - 1)
        first = backend.reserve_ids(2)
        assert backend.write_chunk(first, retried) is False
        assert backend.count_entries(run_id) == before
        assert backend.value_rows([first, first + 1]) == []
        # a new number is written, once
        fresh = _chunk(run_id, n_chunks)
        first = backend.reserve_ids(2)
        assert backend.write_chunk(first, fresh) is True
        assert backend.write_chunk(backend.reserve_ids(2), fresh) is False
        assert backend.count_entries(run_id) == before + 2
        # the None value is its local parent's
        assert backend.value_rows([first, first + 1]) == [
            (first, '{"key":"a"}'),
            (first + 1, '{"key":"a"}'),
        ]


def test_an_identity_step_passes_no_value_and_stores_its_parents(db, monkeypatch):
    seen: list[Chunk] = []
    write = SQLiteBackend.write_chunk

    def recording(self, first_id, chunk):  # the real write, the chunk kept to look at
        seen.append(chunk)
        return write(self, first_id, chunk)

    monkeypatch.setattr(SQLiteBackend, "write_chunk", recording)
    run_id = lk.run_pipeline(SAMPLE_JSON, db=db, progress=False).run_id
    monkeypatch.undo()
    (chunk,) = seen
    positions = [e.position for e in chunk.entries]
    # ingest (0) has no parent and stores the input; normalize (1) changes the value;
    # publish (2) is an identity step whose parent (normalize's entry) is local
    assert {p for p, v in zip(positions, chunk.values, strict=True) if v is None} == {2}
    assert all(e.value_hash for e in chunk.entries)  # the hash is given all the same
    with lk.connect(db) as store:
        frame = store.lineage(run_id)
        published = frame[frame["step"] == "publish"]
        assert len(published) == 30
        assert store.check(run_id).ok
        values = dict(store._backend.value_rows([int(i) for i in frame["entry_id"]]))
        for entry_id, parent in zip(published["entry_id"], published["parent_id"], strict=True):
            assert values[entry_id] == values[parent]


def test_a_value_of_none_needs_a_local_parent(db):
    run_id = lk.run_pipeline(SAMPLE_JSON, db=db, progress=False).run_id
    entry = EntryRow(run_id, 1, "z", "ok", None, None, "2026-01-01T00:00:00.000000+00:00", None)
    orphan = Chunk([entry], [None], [], [(0, 1)], 99)
    with open_backend(db) as backend:
        with pytest.raises(ValueError, match="no value"):
            backend.write_chunk(backend.reserve_ids(1), orphan)
        assert backend.chunk_counts(run_id).chunks == 1  # nothing claimed


def test_a_runs_counts_are_the_sums_of_its_chunks(db):
    run_id = PIPELINE.run(RUN1, db, chunk_size=3, progress=False).run_id
    with open_backend(db) as backend:
        counts = backend.chunk_counts(run_id)
        expected: dict[int, list[int]] = {}
        for position, status, n in backend.step_status_counts(run_id):
            expected.setdefault(position, [0, 0, 0])[["ok", "rejected", "failed"].index(status)] = n
        stored = backend.con.execute(
            "SELECT counts FROM chunks JOIN runs USING (run_no) WHERE run_id = ?", (run_id,)
        ).fetchall()
    assert counts == ChunkCounts({p: tuple(c) for p, c in expected.items()}, 4)
    assert all(json.loads(text) for (text,) in stored)
    # ingest: 8 inputs, 2 refused (no key, duplicate); validate: o3 rejected, o4 failed
    assert counts.counts[0] == (6, 2, 0)
    assert counts.counts[1] == (4, 1, 1)


def test_a_discarded_run_leaves_no_claims(db, tmp_path):
    lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)
    broken = tmp_path / "broken.jsonl"  # unreadable after two chunks' worth of lines
    broken.write_text("".join(json.dumps(r) + "\n" for r in records(25)) + "{oops\n")
    with pytest.raises(lk.LineageKitError):
        lk.run_pipeline(broken, db=db, chunk_size=10, progress=False)
    with open_backend(db, read_only=True) as backend:
        assert len(backend.all_run_ids()) == 1
    with open_backend(db, read_only=True) as backend:
        assert backend.con.execute("SELECT count(*) FROM chunks").fetchone() == (1,)
