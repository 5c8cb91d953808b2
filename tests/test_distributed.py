"""Running on a real Dask LocalCluster (worker processes): the same lineage as a local
run, exactly once through a killed worker and a duplicated task."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

import lineage_kit as lk
from lineage_kit.cli import main
from lineage_kit.distributed import ChunkTask, RunContext, close_worker_backends, run_chunk
from lineage_kit.errors import StoreNotFound
from lineage_kit.sources import SourceItem
from lineage_kit.store import open_backend

from . import dask_pipelines as P
from .conftest import MESSY_JSON, SAMPLE_JSON, drop_schema, with_schema


def lineage_rows(db: Path, run_id: str) -> list[tuple]:
    """Every entry as (key, step, status, reason, error, value, parent (key, step),
    n_parents), sorted: what a run stored, without its ids and times."""
    with lk.connect(db) as store:
        frame = store.lineage(run_id)
        values = store.records(run_id).set_index("entry_id")["value"]
    where = {
        e: (k if isinstance(k, str) else None, s)
        for e, k, s in zip(frame["entry_id"], frame["key"], frame["step"], strict=True)
    }
    rows = []
    for row in frame.itertuples():
        parent = where[row.parent_id] if row.n_parents == 1 else None
        rows.append(
            (
                row.key if isinstance(row.key, str) else None,
                row.step,
                row.status,
                row.reason if isinstance(row.reason, str) else None,
                row.error if isinstance(row.error, str) else None,
                json.dumps(values[row.entry_id], sort_keys=True),
                parent,
                row.n_parents,
            )
        )
    return sorted(rows, key=repr)


def chunks_written(db: Path | str) -> int:
    """How many chunks the store's first run has written so far (0 before it exists)."""
    if isinstance(db, Path) and not db.exists():
        return 0
    try:
        backend = open_backend(db, read_only=True)
    except (lk.NotALineageStore, StoreNotFound):  # still being created (not committed)
        return 0
    with backend:
        runs = backend.all_run_ids()
        return backend.chunk_counts(runs[0]).chunks if runs else 0


def counts(result: lk.RunResult) -> tuple:
    return (
        result.status,
        result.n_input,
        result.n_published,
        result.n_rejected,
        result.n_failed,
        result.n_entries,
    )


@pytest.fixture(params=["sqlite", "postgres"])
def two_stores(request, tmp_path, dask_client):
    """Two new stores on one backend, for a local and a cluster run: SQLite files, then
    two schemas on the test PostgreSQL server (dropped once the workers closed theirs)."""
    if request.param == "sqlite":
        yield tmp_path / "local.db", tmp_path / "dask.db"
        return
    server = request.getfixturevalue("pg_server")
    schemas = [f"t_{uuid.uuid4().hex[:16]}" for _ in range(2)]
    yield tuple(with_schema(server, schema) for schema in schemas)
    dask_client.run(close_worker_backends)
    for schema in schemas:
        drop_schema(server, schema)


def both(stores: tuple, client, steps, source, **options) -> tuple:
    """The same pipeline run locally and on the cluster, into the two stores."""
    local_db, dask_db = stores
    pipeline = lk.Pipeline(steps)
    local = pipeline.run(source, local_db, progress=False, **options)
    remote = pipeline.run(source, dask_db, progress=False, executor=client, **options)
    return (local_db, local), (dask_db, remote)


@pytest.mark.parametrize(
    "steps",
    [P.MAP, P.SPLIT, P.MERGE, P.SPLIT_MERGE, P.TWO_MERGES, P.FRAME],
    ids=["map", "split", "merge", "split+merge", "two merges", "frame"],
)
def test_a_cluster_run_stores_what_a_local_run_stores(two_stores, dask_client, steps):
    (local_db, local), (dask_db, remote) = both(
        two_stores, dask_client, steps, P.inputs(), chunk_size=10
    )
    assert counts(remote) == counts(local)
    assert lineage_rows(dask_db, remote.run_id) == lineage_rows(local_db, local.run_id)
    with lk.connect(dask_db) as store:
        assert store.check().ok


def test_the_split_cases_are_the_ones_the_input_describes(tmp_path, dask_client):
    # the expectations come from dask_pipelines' docstring, not from a run
    (_, _), (dask_db, remote) = both(
        (tmp_path / "local.db", tmp_path / "dask.db"),
        dask_client,
        P.SPLIT,
        P.inputs(),
        chunk_size=10,
    )
    rows = lineage_rows(dask_db, remote.run_id)
    refused = {(r[0], r[3]) for r in rows if r[1] == "ingest" and r[2] == "rejected"}
    assert {("r12", "duplicate_key"), ("r31", "duplicate_key"), ("r16", "duplicate_key")} <= refused
    assert {r for r in refused if r[0] is not None} == {
        ("r12", "duplicate_key"),
        ("r31", "duplicate_key"),
        ("r16", "duplicate_key"),
    }
    at_fan = {(r[0], r[2], r[3]) for r in rows if r[1] == "fan" and r[2] != "ok"}
    assert at_fan == {("r22", "rejected", "duplicate_key"), ("r9", "rejected", "split_empty")}
    children = {r[0] for r in rows if r[1] == "fan" and r[2] == "ok"}
    assert {"r31", "r16", "r5#1", "r14#1"} <= children and "r2" not in children
    # 61 distinct input records + the repeated r12: input = published + rejected + failed
    assert remote.n_input == 62
    assert remote.n_input == remote.n_published + remote.n_rejected + remote.n_failed


def test_two_merges_with_more_groups_than_a_chunk(tmp_path):
    # the second merge's inputs come from several chunks of the first (a local run
    # failed here with a TypeError before the merge chunks were factored out)
    result = lk.Pipeline(P.TWO_MERGES).run(
        P.inputs(300), tmp_path / "m.db", chunk_size=4, progress=False
    )
    # 302 records: r3 rejected, r7 failed, r12 again a duplicate, the keyless one rejected
    assert (result.n_published, result.n_rejected, result.n_failed) == (298, 3, 1)
    with lk.connect(tmp_path / "m.db") as store:
        assert store.check().ok


def test_frame_steps_from_a_dataframe_on_the_cluster(tmp_path, dask_client):
    import pandas as pd

    frame = pd.read_json(MESSY_JSON.parent / "sample_input.json")
    (local_db, local), (dask_db, remote) = both(
        (tmp_path / "local.db", tmp_path / "dask.db"), dask_client, P.FRAME, frame, chunk_size=7
    )
    assert counts(remote) == counts(local)
    assert lineage_rows(dask_db, remote.run_id) == lineage_rows(local_db, local.run_id)


def test_messy_input_on_the_default_pipeline(two_stores, dask_client):
    (local_db, local), (dask_db, remote) = both(
        two_stores, dask_client, lk.steps.DEFAULT_STEPS, MESSY_JSON, chunk_size=4
    )
    assert counts(remote) == counts(local)
    assert lineage_rows(dask_db, remote.run_id) == lineage_rows(local_db, local.run_id)


def test_the_run_records_its_executor_without_credentials(tmp_path, dask_client):
    result = lk.run_pipeline(SAMPLE_JSON, tmp_path / "x.db", progress=False, executor=dask_client)
    with lk.connect(tmp_path / "x.db") as store:
        params = store.runs().set_index("run_id").loc[result.run_id, "parameters"]
    assert params["executor"] == "dask"
    assert params["workers"] == 2 and params["threads"] == 2
    assert params["scheduler"] == dask_client.scheduler_info()["address"]


def test_fail_fast_stops_the_run_and_keeps_it_failed(tmp_path, dask_client):
    pipeline = lk.Pipeline(P.MAP)
    with pytest.raises(lk.StepError) as info:
        pipeline.run(
            P.inputs(200),
            tmp_path / "f.db",
            progress=False,
            chunk_size=10,
            fail_fast=True,
            executor=dask_client,
        )
    result = info.value.result
    assert result.status == "failed" and "seven" in result.error
    with lk.connect(tmp_path / "f.db") as store:
        failed = store.lineage(result.run_id).query("status == 'failed'")
        assert list(failed["key"]) == ["r7"]


def test_a_chunk_submitted_twice_is_written_once(tmp_path, dask_client):
    db = tmp_path / "twice.db"
    run = lk.run_pipeline(SAMPLE_JSON, db, progress=False)
    with open_backend(db) as backend:
        first = backend.reserve_ids(6)
    ctx = RunContext(tuple(lk.steps.DEFAULT_STEPS), run.run_id, str(db), False, True)
    items = [
        SourceItem("extra-1", {"key": "extra-1", "amount": 1}),
        SourceItem("extra-2", {"key": "extra-2", "amount": 2}),
    ]
    task = ChunkTask(1000, 0, 3, items, 1000, first, 6)
    futures = [dask_client.submit(run_chunk, ctx, task, pure=False) for _ in range(2)]
    results = dask_client.gather(futures)
    assert sorted(r.written for r in results) == [False, True]
    assert results[0].counts == results[1].counts == [2, 0, 0]
    with lk.connect(db) as store:
        extra = store.lineage(run.run_id).query("key.str.startswith('extra')", engine="python")
        assert len(extra) == 6  # two records, three steps, once each
        codes = set(store.check().violations["code"])
    # the run was finished before the extra chunk: only its stored counts disagree
    assert codes == {"counts_mismatch"}, codes  # no duplicate_processing


def test_a_worker_killed_mid_run_loses_and_repeats_nothing(two_stores, dask_client):
    db = two_stores[1]
    records = [{"key": f"k{i}", "amount": i} for i in range(3000)]
    pids = dask_client.run(os.getpid)
    victim = sorted(pids.values())[0]
    killed = threading.Event()

    def kill_when_half_written() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if chunks_written(db) >= 8:
                os.kill(victim, signal.SIGKILL)
                killed.set()
                return

    killer = threading.Thread(target=kill_when_half_written)
    killer.start()
    result = lk.Pipeline(P.SLOW).run(
        records, db, progress=False, chunk_size=100, executor=dask_client
    )
    killer.join()
    assert killed.is_set(), "the worker was not killed mid-run"
    assert counts(result) == ("completed", 3000, 3000, 0, 0, 9000)
    with lk.connect(db) as store:
        frame = store.lineage(result.run_id)
        assert len(frame) == 9000
        assert not frame.duplicated(["key", "step"]).any()
        assert store.check().ok
    dask_client.wait_for_workers(2, timeout=60)


INTERRUPTED_RUN = """
import signal, sys, cloudpickle
from distributed import Client, LocalCluster
import lineage_kit as lk
from tests import dask_pipelines as P

cloudpickle.register_pickle_by_value(P)

if __name__ == "__main__":
    # as in a terminal: a shell without job control starts background jobs (this
    # test's pytest, say) with SIGINT ignored, and this process would inherit that
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            records = [{"key": f"k{i}", "amount": i} for i in range(20_000)]
            try:
                lk.Pipeline(P.SLOW).run(records, sys.argv[1], chunk_size=100,
                                        progress=False, executor=client)
            except KeyboardInterrupt:
                print("interrupted")
"""


def test_ctrl_c_on_the_driver_marks_the_run_interrupted(tmp_path):
    db = tmp_path / "ctrl-c.db"
    script = tmp_path / "interrupted_run.py"
    script.write_text(INTERRUPTED_RUN)
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    log = tmp_path / "stderr.txt"  # a file, not a pipe: nobody reads it while the run runs
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(script), str(db)],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        deadline = time.monotonic() + 120
        written = 0
        while written < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            written = chunks_written(db)
        assert written >= 3, "the run did not get going"
        os.kill(proc.pid, signal.SIGINT)  # the driver only, as Ctrl-C in its terminal
        sent_after = f"SIGINT sent after {written} chunks"
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    if out.strip() != "interrupted":  # say what became of the run (it failed once in CI)
        with lk.connect(db) as store:
            runs = store.runs()[["status", "n_input", "error"]].to_dict("records")
        err = log.read_text()[-4000:]
        pytest.fail(
            f"{sent_after}: stdout {out!r}, exit {proc.returncode}, runs {runs}, stderr:\n{err}"
        )
    with lk.connect(db) as store:
        run = store.runs().iloc[0]
        assert run["status"] == "interrupted"
        assert 0 < run["n_input"] < 20_000
        report = store.check()
        assert set(report.violations["code"]) <= {"run_interrupted"}, report.violations


def test_unreadable_input_half_way_leaves_nothing(tmp_path, dask_client):
    path = tmp_path / "half.jsonl"
    lines = [json.dumps({"key": f"k{i}", "amount": i}) for i in range(500)]
    path.write_text("\n".join([*lines, "{not json", *lines[:10]]) + "\n")
    db = tmp_path / "half.db"
    with pytest.raises(lk.InputError):
        lk.Pipeline(P.SLOW).run(path, db, chunk_size=50, progress=False, executor=dask_client)
    with lk.connect(db) as store:
        assert store.runs().empty
        assert store.lineage("all").empty


def test_a_sqlite_store_with_a_remote_scheduler_is_refused(tmp_path, capsys):
    db = tmp_path / "far.db"
    code = main(["run", str(SAMPLE_JSON), "--db", str(db), "--dask", "tcp://203.0.113.9:8786"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "203.0.113.9" in err[0] and "PostgreSQL" in err[0]
    assert not db.exists()


def test_the_cli_runs_the_sample_on_a_local_cluster(tmp_path, capsys):
    db = tmp_path / "cli.db"
    code = main(["run", str(SAMPLE_JSON), "--db", str(db), "--dask", "local:2"])
    assert code == 0
    captured = capsys.readouterr()
    assert "dashboard" in captured.err and "http" in captured.err
    with lk.connect(db) as store:
        runs = store.runs()
        assert runs["n_published"].iloc[0] == 30
        assert runs["parameters"].iloc[0]["workers"] == 2
        assert store.check().ok


def test_without_an_executor_distributed_is_never_imported(tmp_path):
    code = (
        "import sys, lineage_kit as lk\n"
        f"lk.run_pipeline({str(SAMPLE_JSON)!r}, db={str(tmp_path / 'n.db')!r}, progress=False)\n"
        "from lineage_kit.cli import main\n"
        f"main(['runs', '--db', {str(tmp_path / 'n.db')!r}])\n"
        "print('distributed' in sys.modules, 'dask' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False False"


def test_the_docs_example_shows_the_same_lineage_as_a_local_run(tmp_path, monkeypatch, capsys):
    text = (Path(__file__).resolve().parent.parent / "docs" / "dask.md").read_text()
    code = re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]
    (tmp_path / "data").mkdir()
    shutil.copy(SAMPLE_JSON, tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/dask.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[-2:] == ["30 30", "True"]  # as the comments in the example say
