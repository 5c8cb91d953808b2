"""The pipeline: lineage rows, parent links, outcomes, fan-in and fan-out."""

from __future__ import annotations

import json

import pytest

import lineage_kit as lk

from .backends import rows
from .conftest import MESSY_JSON, SAMPLE_JSON, records


def chain_of(store, run_id, key):
    """(position, status, value) of a key's entries, in step order."""
    return [
        (pos, status, json.loads(value))
        for pos, status, value in rows(
            store,
            "SELECT l.position, l.status, r.value FROM lineage l JOIN records r USING (entry_id) "
            "WHERE l.run_id = ? AND l.record_key = ? ORDER BY l.position, l.entry_id",
            (run_id, key),
        )
    ]


def test_default_pipeline_records_one_entry_per_record_per_step(sample_store):
    run_id = sample_store.resolve_run()
    raw = json.loads(SAMPLE_JSON.read_text())
    per_step = rows(
        sample_store,
        "SELECT position, status, count(*) FROM lineage WHERE run_id = ? GROUP BY 1, 2",
        (run_id,),
    )
    assert per_step == [(0, "ok", 30), (1, "ok", 30), (2, "ok", 30)]
    steps = [row[1:3] + row[4:6] for row in sample_store.backend.step_meta_rows(run_id)]
    assert steps == [
        (0, "ingest", "input_file", "staging"),
        (1, "normalize", "staging", "normalized"),
        (2, "publish", "normalized", "output"),
    ]
    first = raw[0]
    chain = chain_of(sample_store, run_id, first["key"])
    normalized = {k.strip().lower(): v for k, v in first.items()}
    assert chain == [(0, "ok", first), (1, "ok", normalized), (2, "ok", normalized)]


def test_each_entry_links_to_the_previous_step_of_the_same_record(sample_store):
    links = rows(
        sample_store,
        "SELECT c.record_key, c.position, p.record_key, p.position "
        "FROM parents JOIN lineage c ON c.entry_id = child_id "
        "JOIN lineage p ON p.entry_id = parent_id",
    )
    assert len(links) == 60  # 30 records x 2 links (normalize <- ingest, publish <- normalize)
    assert all(ck == pk and cp == pp + 1 for ck, cp, pk, pp in links)
    roots = rows(
        sample_store,
        "SELECT count(*) FROM lineage WHERE entry_id NOT IN (SELECT child_id FROM parents)",
    )
    assert roots == [(30,)]


def test_stored_hash_is_the_hash_of_the_stored_value(sample_store):
    from lineage_kit.values import value_hash

    for stored, value in rows(
        sample_store, "SELECT value_hash, value FROM lineage JOIN records USING (entry_id)"
    ):
        assert stored == value_hash(value)


def test_runs_record_counts_status_and_input_hash(db):
    import hashlib

    result = lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)
    assert (result.status, result.n_input, result.n_published, result.n_entries) == (
        "completed",
        30,
        30,
        90,
    )
    assert result.ok
    with lk.connect(db) as store:
        (run,) = store.run_rows()
    assert run["status"] == "completed"
    assert run["input_sha256"] == hashlib.sha256(SAMPLE_JSON.read_bytes()).hexdigest()
    assert run["input_path"] == str(SAMPLE_JSON)
    assert run["finished_at"] > run["started_at"]
    assert (run["n_input"], run["n_published"], run["n_rejected"], run["n_failed"]) == (
        30,
        30,
        0,
        0,
    )


def test_two_runs_of_the_same_input_never_link_across_runs(db):
    a = lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)
    b = lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)
    assert a.run_id != b.run_id
    with lk.connect(db) as store:
        crossing = rows(
            store,
            "SELECT count(*) FROM parents JOIN lineage c ON c.entry_id = child_id "
            "JOIN lineage p ON p.entry_id = parent_id WHERE c.run_id != p.run_id",
        )
        per_run = rows(store, "SELECT run_id, count(*) FROM lineage GROUP BY run_id")
    assert crossing == [(0,)]
    assert sorted(n for _, n in per_run) == [90, 90]


def test_messy_input_rejects_every_bad_record_with_a_reason(messy_store):
    run_id = messy_store.resolve_run()
    rejected = rows(
        messy_store,
        "SELECT position, record_key, reason, value FROM lineage JOIN records USING (entry_id) "
        "WHERE run_id = ? AND status = 'rejected' ORDER BY entry_id",
        (run_id,),
    )
    by_reason = {}
    for position, key, reason, value in rejected:
        by_reason.setdefault(reason, []).append((position, key, json.loads(value)))
    assert {r: len(v) for r, v in by_reason.items()} == {
        "not_an_object": 2,
        "missing_key": 3,
        "duplicate_key": 1,
        "invalid_key": 1,
        "field_collision": 1,
    }
    assert [v for _, _, v in by_reason["not_an_object"]] == [
        ["order-900", "Ada Lovelace", 10.0],
        42,
    ]
    # never filed under a placeholder key: records without a usable key have none
    assert {k for _, k, _ in by_reason["missing_key"] + by_reason["invalid_key"]} == {None}
    assert by_reason["duplicate_key"][0][:2] == (0, "order-102")
    assert by_reason["duplicate_key"][0][2]["Status"] == "resent"  # the raw duplicate is kept
    # a field collision is found by normalize (position 1), after ingest stored the record
    assert by_reason["field_collision"][0][:2] == (1, "order-950")
    (run,) = messy_store.run_rows()
    assert (run["status"], run["n_input"], run["n_published"], run["n_rejected"]) == (
        "completed_with_errors",
        20,
        12,
        8,
    )


@lk.step("explode_on_bad", description="fails on records whose amount is 3")
def explode_on_bad(record):
    if record["amount"] == 3.0:
        raise ZeroDivisionError("amount 3 is cursed")
    return record


@lk.step("lowercase")
def lowercase(record):
    return {k.strip().lower(): v for k, v in record.items()}


def test_a_step_that_raises_fails_only_that_record(db):
    pipeline = lk.Pipeline([lk.steps.ingest, lowercase, explode_on_bad, lk.steps.publish])
    result = pipeline.run(records(6), db=db, progress=False)
    assert (result.status, result.n_published, result.n_failed) == ("completed_with_errors", 5, 1)
    with lk.connect(db) as store:
        failed = rows(
            store, "SELECT record_key, position, error FROM lineage WHERE status='failed'"
        )
        published = rows(store, "SELECT count(*) FROM lineage WHERE position = 3")
    assert failed == [("k3", 2, "ZeroDivisionError: amount 3 is cursed")]
    assert published == [(5,)]


def test_fail_fast_stops_the_run_and_marks_it_failed(db):
    pipeline = lk.Pipeline([lk.steps.ingest, lowercase, explode_on_bad, lk.steps.publish])
    with pytest.raises(lk.StepError, match="cursed") as info:
        pipeline.run(records(6), db=db, fail_fast=True, progress=False)
    stopped = info.value.result
    assert (stopped.status, stopped.n_input, stopped.n_failed) == ("failed", 6, 1)
    with lk.connect(db) as store:
        (run,) = store.run_rows()
        failed = rows(store, "SELECT record_key FROM lineage WHERE status = 'failed'")
        after = rows(store, "SELECT count(*) FROM lineage WHERE position = 3")
    assert run["run_id"] == stopped.run_id
    assert run["status"] == "failed"
    assert "cursed" in run["error"]
    assert failed == [("k3",)]
    assert after == [(0,)]  # nothing was published after the failure


def test_steps_returning_bad_values_fail_the_record(db):
    @lk.step("returns_none")
    def returns_none(record):
        return None if record["key"] == "k0" else record

    @lk.step("returns_set")
    def returns_set(record):
        return {**record, "bad": {1, 2}} if record["key"] == "k1" else record

    result = lk.Pipeline([returns_none, returns_set]).run(records(3), db=db, progress=False)
    assert (result.n_published, result.n_failed) == (1, 2)
    with lk.connect(db) as store:
        errors = dict(rows(store, "SELECT record_key, error FROM lineage WHERE status='failed'"))
    assert "not a dict" in errors["k0"]
    assert "JSON" in errors["k1"]


def test_reject_inside_a_step_rejects_with_its_reason(db):
    @lk.step("validate")
    def validate(record):
        if record[" Amount "] > 2:
            raise lk.Reject("too_big", "amount over 2")
        return record

    result = lk.Pipeline([lk.steps.ingest, validate]).run(records(5), db=db, progress=False)
    assert (result.n_published, result.n_rejected) == (3, 2)
    with lk.connect(db) as store:
        got = rows(store, "SELECT record_key, reason, error FROM lineage WHERE status='rejected'")
    assert sorted(got) == [("k3", "too_big", "amount over 2"), ("k4", "too_big", "amount over 2")]


def test_non_finite_numbers_are_rejected_not_stored_as_invalid_json(db):
    result = lk.run_pipeline(
        [{"key": "a", "x": float("nan")}, {"key": "b", "x": 1}], db=db, progress=False
    )
    assert (result.n_published, result.n_rejected) == (1, 1)
    with lk.connect(db) as store:
        assert rows(store, "SELECT record_key, reason FROM lineage WHERE status='rejected'") == [
            ("a", "invalid_value")
        ]


def test_batch_steps_transform_whole_chunks(db):
    @lk.step("double", batch=True)
    def double(batch):
        return [{**r, "x": r["x"] * 2} for r in batch]

    data = [{"key": f"k{i}", "x": i} for i in range(5)]
    result = lk.Pipeline([double]).run(data, db=db, chunk_size=2, progress=False)
    assert result.n_published == 5
    with lk.connect(db) as store:
        values = [json.loads(v) for (v,) in rows(store, "SELECT value FROM records ORDER BY 1")]
    assert sorted(v["x"] for v in values) == [0, 2, 4, 6, 8]


def test_merge_step_links_the_merged_record_to_every_member(db):
    @lk.step("by_customer", kind="merge", group_by=lambda key, r: r["customer name"])
    def by_customer(members):
        return {
            "customer": members[0]["customer name"],
            "total": sum(m["amount"] for m in members),
            "orders": len(members),
        }

    pipeline = lk.Pipeline([lk.steps.ingest, lk.steps.normalize, by_customer, lk.steps.publish])
    result = pipeline.run(records(14), db=db, chunk_size=4, progress=False)
    assert result.n_input == 14
    assert result.n_published == 14  # every input record reached publish through its group
    with lk.connect(db) as store:
        merged = rows(
            store,
            "SELECT l.record_key, group_concat(p.record_key) FROM lineage l "
            "JOIN parents ON child_id = l.entry_id JOIN lineage p ON p.entry_id = parent_id "
            "WHERE l.position = 2 GROUP BY l.entry_id ORDER BY l.record_key",
        )
        parent_steps = rows(
            store,
            "SELECT DISTINCT p.position FROM lineage l JOIN parents ON child_id = l.entry_id "
            "JOIN lineage p ON p.entry_id = parent_id WHERE l.position = 2",
        )
        published = rows(
            store,
            "SELECT record_key, value FROM lineage JOIN records "
            "USING (entry_id) WHERE position = 3 ORDER BY record_key",
        )
    # records(14) gives customer c{i % 7}: c0 <- k0, k7; c1 <- k1, k8; ...
    assert [(k, sorted(ps.split(","))) for k, ps in merged] == [
        (f"c{i}", sorted([f"k{i}", f"k{i + 7}"])) for i in range(7)
    ]
    assert parent_steps == [(1,)]
    assert json.loads(published[0][1]) == {"customer": "c0", "total": 7.0, "orders": 2}


def test_split_step_gives_one_parent_several_children(db):
    @lk.step("per_item", kind="split", description="one record per item")
    def per_item(record):
        return [{"order": record["key"], "item": n} for n in range(int(record[" Amount "]))]

    result = lk.Pipeline([lk.steps.ingest, per_item, lk.steps.publish]).run(
        records(4), db=db, progress=False
    )
    # k0 has amount 0: no items, rejected as split_empty; k1..k3 give 1 + 2 + 3 children
    assert (result.n_input, result.n_published, result.n_rejected) == (4, 3, 1)
    with lk.connect(db) as store:
        children = rows(
            store,
            "SELECT p.record_key, group_concat(c.record_key) FROM parents "
            "JOIN lineage c ON c.entry_id = child_id JOIN lineage p ON p.entry_id = parent_id "
            "WHERE c.position = 1 AND c.status = 'ok' GROUP BY p.entry_id ORDER BY p.record_key",
        )
        empty = rows(store, "SELECT record_key, reason FROM lineage WHERE status = 'rejected'")
        final = rows(store, "SELECT count(*) FROM lineage WHERE position = 2")
    assert [(p, sorted(c.split(","))) for p, c in children] == [
        ("k1", ["k1#1"]),
        ("k2", ["k2#1", "k2#2"]),
        ("k3", ["k3#1", "k3#2", "k3#3"]),
    ]
    assert empty == [("k0", "split_empty")]
    assert final == [(6,)]


@pytest.mark.parametrize("chunk_size", [1, 3, 2000])
def test_chunk_size_does_not_change_what_is_recorded(tmp_path, chunk_size):
    db = tmp_path / "x.db"
    lk.run_pipeline(MESSY_JSON, db=db, chunk_size=chunk_size, progress=False)
    with lk.connect(db) as store:
        got = rows(
            store,
            "SELECT l.record_key, l.position, l.status, l.reason, r.value, "
            "(SELECT count(*) FROM parents WHERE child_id = l.entry_id) "
            "FROM lineage l JOIN records r USING (entry_id) "
            "ORDER BY l.record_key, l.position, l.status",
        )
    reference = tmp_path / "ref.db"
    lk.run_pipeline(MESSY_JSON, db=reference, chunk_size=7, progress=False)
    with lk.connect(reference) as store:
        expected = rows(
            store,
            "SELECT l.record_key, l.position, l.status, l.reason, r.value, "
            "(SELECT count(*) FROM parents WHERE child_id = l.entry_id) "
            "FROM lineage l JOIN records r USING (entry_id) "
            "ORDER BY l.record_key, l.position, l.status",
        )
    assert got == expected
    assert len(got) == 45  # 12 x 3 published + 7 rejected at ingest + 2 for the collision


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("bad.jsonl", "["),
        ("bad.jsonl", '[{"key": "a"}, {"key": "b"'),
        ("bad.jsonl", '{"key": "a"}\n{oops}\n'),
        ("bad.json", '[{"key": "a"}, {"key": "b"'),
        ("bad.json", '[{"key": "a"}, {oops}]'),
        ("bad.json", ""),
    ],
)
def test_unreadable_input_writes_nothing(tmp_path, name, content):
    # (an empty .jsonl file is an empty input, not an unreadable one: a run of 0 records)
    path = tmp_path / name
    path.write_text(content)
    db = tmp_path / "x.db"
    with pytest.raises(lk.InputError):
        lk.run_pipeline(path, db=db, progress=False)
    assert not db.exists()


def test_input_error_after_the_first_chunk_removes_the_run(tmp_path):
    path = tmp_path / "late.jsonl"
    good = "".join(json.dumps({"key": f"k{i}"}) + "\n" for i in range(50))
    path.write_text(good + "{broken\n")
    db = tmp_path / "x.db"
    lk.run_pipeline(SAMPLE_JSON, db=db, progress=False)
    with pytest.raises(lk.InputError, match=":51:"):
        lk.run_pipeline(path, db=db, chunk_size=10, progress=False)
    with lk.connect(db) as store:
        assert len(store.run_rows()) == 1
        assert rows(store, "SELECT count(*) FROM lineage") == [(90,)]
        assert rows(store, "SELECT count(*) FROM records") == [(90,)]


def test_pipeline_and_step_arguments_are_checked_at_once():
    with pytest.raises(ValueError, match="at least one step"):
        lk.Pipeline([])
    with pytest.raises(ValueError, match="not a step"):
        lk.Pipeline([lambda r: r])
    with pytest.raises(ValueError, match="unique"):
        lk.Pipeline([lk.steps.ingest, lk.steps.ingest])
    with pytest.raises(ValueError, match="group_by"):
        lk.step("m", kind="merge")(lambda rs: rs[0])
    with pytest.raises(ValueError, match="kind"):
        lk.step("m", kind="sideways")(lambda r: r)
    with pytest.raises(ValueError, match="chunk_size"):
        lk.run_pipeline(SAMPLE_JSON, db=":memory:", chunk_size=0)


def test_step_description_defaults_to_the_docstring():
    @lk.step()
    def tidy(record):
        """Trim whitespace from every value.

        More words.
        """
        return record

    assert (tidy.name, tidy.description) == ("tidy", "Trim whitespace from every value.")
    assert tidy({"a": 1}) == {"a": 1}


def test_a_step_without_a_source_reads_from_the_previous_destination(db):
    @lk.step("enrich", source="normalized", destination="enriched")
    def enrich(record):
        return {**record, "region_name": "Europe"}

    assert lk.steps.publish.source is None
    pipeline = lk.Pipeline([lk.steps.ingest, lk.steps.normalize, enrich, lk.steps.publish])
    assert pipeline.sources == ("input_file", "staging", "normalized", "enriched")
    pipeline.run(records(2), db=db, progress=False)
    with lk.connect(db) as store:
        stored = rows(store, "SELECT name, source, destination FROM steps ORDER BY position")
    assert stored[-1] == ("publish", "enriched", "output")


def test_progress_bar_shows_on_request_and_stays_quiet_otherwise(db, capsys, monkeypatch):
    import tqdm.auto

    counted = []

    class Recording(tqdm.auto.tqdm):
        def update(self, n=1):
            counted.append(n)
            return super().update(n)

    monkeypatch.setattr(tqdm.auto, "tqdm", Recording)
    lk.run_pipeline(records(50), db=db, chunk_size=10, progress=True)
    assert "lineage-kit" in capsys.readouterr().err  # the bar was drawn on stderr
    assert counted == [10] * 5  # advanced once per chunk, to every record
    lk.run_pipeline(records(50, start=50), db=db, chunk_size=10)  # stderr is not a tty here
    assert capsys.readouterr().err == ""
    assert len(counted) == 5


def test_ctrl_c_marks_the_run_interrupted_and_keeps_what_was_written(db):
    @lk.step("slow")
    def slow(record):
        if record["key"] == "k25":
            raise KeyboardInterrupt
        return record

    with pytest.raises(KeyboardInterrupt):
        lk.Pipeline([lk.steps.ingest, slow]).run(records(40), db=db, chunk_size=10, progress=False)
    with lk.connect(db) as store:
        (run,) = store.run_rows()
        kept = rows(store, "SELECT count(*) FROM lineage WHERE position = 1")
        report = store.check()
    assert run["status"] == "interrupted"
    assert kept == [(20,)]  # the two chunks before the interrupted one, whole
    assert list(report.violations["code"]) == ["run_interrupted"]


class _InterruptsWhenCollected:
    """Sends this process SIGINT from its ``__del__``, and keeps running Python code
    there, so the KeyboardInterrupt is raised inside the finaliser: Python prints
    "Exception ignored" and drops it, as it may for a real Ctrl-C."""

    def __del__(self) -> None:
        import os
        import signal

        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(10_000):
            pass


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the dropped one
def test_a_ctrl_c_lost_in_a_finaliser_still_interrupts_the_run(db, python_sigint):
    @lk.step("collects")
    def collects(record):
        if record["key"] == "k25":
            _InterruptsWhenCollected()  # collected at once, in this step
        return record

    with pytest.raises(KeyboardInterrupt):
        lk.Pipeline([lk.steps.ingest, collects]).run(
            records(60), db=db, chunk_size=10, progress=False
        )
    with lk.connect(db) as store:
        (run,) = store.run_rows()
        kept = rows(store, "SELECT count(*) FROM lineage WHERE position = 1")
    assert run["status"] == "interrupted"
    assert kept == [(30,)]  # the chunk holding k25 ended, the next was not read


def test_group_by_failure_with_fail_fast_keeps_the_failed_entry(db):
    @lk.step("by_region", kind="merge", group_by=lambda key, r: r["region"])
    def by_region(members):
        return {"n": len(members)}

    data = [{"key": "a", "region": "EU"}, {"key": "b"}]  # b has no region: group_by raises
    with pytest.raises(lk.StepError, match="KeyError"):
        lk.Pipeline([lk.steps.ingest, by_region]).run(data, db=db, fail_fast=True, progress=False)
    with lk.connect(db) as store:
        failed = rows(
            store, "SELECT record_key, position, error FROM lineage WHERE status = 'failed'"
        )
        (run,) = store.run_rows()
    assert run["status"] == "failed"
    assert failed == [("b", 1, "group_by raised KeyError: 'region'")]


def test_a_duplicate_is_recorded_after_the_record_it_duplicates(messy_store):
    dup = rows(
        messy_store,
        "SELECT entry_id, status, reason, created_at FROM lineage "
        "WHERE record_key = 'order-102' AND position = 0 ORDER BY entry_id",
    )
    (first_id, first_status, _, first_at), (dup_id, dup_status, reason, dup_at) = dup
    assert (first_status, dup_status, reason) == ("ok", "rejected", "duplicate_key")
    assert first_id < dup_id and first_at <= dup_at


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"key": "order_id"}, "has the key field 'order_id'"),
        ({"format": "csv"}, "fields seen: '\\['"),
    ],
)
def test_a_key_no_record_has_is_an_input_error_not_a_run_of_rejects(tmp_path, options, message):
    db = tmp_path / "x.db"
    with pytest.raises(lk.InputError, match=message):
        lk.run_pipeline(SAMPLE_JSON, db=db, progress=False, **options)
    assert not db.exists()


def test_records_that_all_lack_a_value_for_a_present_key_field_are_a_run(db):
    # the field exists, the values are missing: data to reject, not a wrong key
    result = lk.run_pipeline([{"key": None}, {"key": ""}], db=db, progress=False)
    assert (result.n_input, result.n_rejected) == (2, 2)


def test_a_failing_merge_under_fail_fast_names_the_error(db):
    @lk.step("boom", kind="merge", group_by=lambda key, r: "all")
    def boom(members):
        raise ValueError("cannot merge these")

    with pytest.raises(lk.StepError, match="cannot merge these"):
        lk.Pipeline([lk.steps.ingest, boom]).run(records(3), db=db, fail_fast=True, progress=False)
