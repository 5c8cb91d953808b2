"""The benchmark harness runs end to end in --quick mode (no speed is asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Every figure the harness reports; each must be measured.
EXPECTED = {
    "capture_throughput_2000",
    "capture_throughput_20000",
    "memory_ratio",
    "input_memory_ratio_json",
    "input_memory_ratio_jsonl",
    "input_memory_ratio_csv",
    "capture_overhead",
    "raw_write_fraction",
    "write_limit_fraction",
    "store_bytes_per_record_step",
    "store_size_ratio",
    "naive_speedup_100",
    "naive_speedup_400",
    "pipeline_seconds_400",
    "startup_ratio",
    "startup_no_heavy_imports",
    "trace_median_ms",
    "trace_p95_ms",
    "trace_vs_bare_sql",
    "upstream_ms",
    "downstream_ms",
    "load_vs_read_sql",
    "graph_vs_add_edges",
    "merge_graph_seconds",
    "merge_graph_vs_run_graph",
    "chain_plot_seconds",
    "check_seconds",
    "frame_vs_record_steps",
    "frame_vs_record_steps_without_writes",
    "frame_vs_write_probe",
    "openlineage_vs_steps",
    "live_emission_overhead",
    "graphml_vs_networkx",
    "dask_cpu_speedup",
    "dask_driver_memory_ratio",
    "pg_capture_vs_sqlite",
    "pg_four_writers",
    "pg_load_vs_read_sql",
    "pg_trace_median_ms",
}


def run_script(script: str, *args: str, work: Path) -> subprocess.CompletedProcess[str]:
    """``benchmarks/SCRIPT ARGS`` in a fresh interpreter, its scratch stores in ``work``."""
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "LINEAGE_KIT_BENCH_WORK": str(work)},
        capture_output=True,
        text=True,
        timeout=1800,  # a loaded shared machine takes minutes; the time is not the test
        check=False,
    )


def test_quick_benchmark_produces_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = run_script("run.py", "--quick", "--out", str(out), work=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(out.read_text())
    figures = {f["id"]: f for f in data["figures"]}
    assert set(figures) == EXPECTED
    for fid, f in figures.items():
        assert f["value"] is not None, fid
        assert f["value"] >= 0, fid
        # the same figure is in the printed table
        assert f["label"] in done.stdout, fid
    assert data["meta"]["mode"] == "quick"
    goals = [f for f in figures.values() if f["goal"]]
    assert goals and all(isinstance(f["met"], bool) for f in goals)


def test_layout_prototype_runs_and_stores_each_changed_value_once(tmp_path: Path) -> None:
    import sqlite3

    done = run_script("layout_prototype.py", "--n", "500", work=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert [r.split(" | ")[0][2:] for r in rows[2:]] == [
        "probe",
        "lineage_kit",
        "lean",
        "lean_run_index",
        "lean_no_parent_index",
        "lean_content_addressed",
    ]
    con = sqlite3.connect(tmp_path / "proto_lean.db")
    try:
        # ingest, normalize, publish: 3 entries a record, but publish (an identity
        # step) points at normalize's value, so 2 values a record
        assert con.execute("SELECT count(*) FROM entries").fetchone() == (1500,)
        assert con.execute("SELECT count(*) FROM vals").fetchone() == (1000,)
        assert con.execute(
            "SELECT count(*) FROM entries AS c JOIN entries AS p ON p.entry_id = c.parent_id "
            "WHERE c.position = 2 AND c.value_id = p.value_id"
        ).fetchone() == (500,)
        assert con.execute("SELECT sum(n_entries) FROM chunks").fetchone() == (1500,)
    finally:
        con.close()


def test_a_childs_peak_rss_is_its_own_not_its_parents():
    # ru_maxrss would carry this process's peak (the 300 MiB below) into the child
    ballast = bytearray(300 * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page
    code = "import common; print(common.peak_rss_mib())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT / "benchmarks",
        capture_output=True,
        text=True,
        check=True,
    )
    assert float(out.stdout) < 150
    del ballast


def test_frames_ceiling_skips_the_writes_and_only_inside_its_block(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import frames
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    import lineage_kit as lk

    with frames.writes_skipped():
        skipped = frames.run(frames.FRAME, 300, tmp_path / "skipped.db")
    written = frames.run(frames.FRAME, 300, tmp_path / "written.db")
    # both ran every record through (about 10% filtered out), but only one wrote it
    assert skipped.n_input == written.n_input == 300
    assert skipped.n_published == written.n_published < 300
    with lk.connect(tmp_path / "skipped.db") as store:
        assert store.lineage("all").empty
    with lk.connect(tmp_path / "written.db") as store:
        assert len(store.lineage("all")) == written.n_entries > 300
