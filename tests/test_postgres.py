"""The PostgreSQL store on a real server: the CLI end to end, identity, connection
errors, passwords, and texts PostgreSQL cannot hold (tests/conftest.py starts the
server; other tests run on both backends through the ``store_db`` fixture)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import psycopg
import pytest
from psycopg import sql

import lineage_kit as lk
from lineage_kit.cli import main
from lineage_kit.store import open_backend

from .conftest import MESSY_JSON, ROOT, SAMPLE_JSON, drop_schema, with_schema


def cli(*argv) -> tuple[int, str]:
    out = io.StringIO()
    code = main([str(a) for a in argv], out=out)
    return code, out.getvalue()


def test_the_cli_runs_and_reads_a_postgres_store(pg_url, tmp_path, capsys):
    assert cli("run", SAMPLE_JSON, "--db", pg_url)[0] == 0
    code, out = cli("runs", "--db", pg_url, "--json")
    assert code == 0
    (run,) = json.loads(out)
    assert (run["status"], run["n_input"], run["n_published"]) == ("completed", 30, 30)
    code, out = cli("trace", "order-101", "--db", pg_url, "--json")
    assert code == 0
    assert [e["step"] for e in json.loads(out)] == ["ingest", "normalize", "publish"]
    assert cli("check", "--db", pg_url)[0] == 0
    assert cli("plot", "order-101", "-o", tmp_path / "chain.png", "--db", pg_url)[0] == 0
    assert (tmp_path / "chain.png").stat().st_size > 1000
    code, out = cli("export", "--format", "openlineage", "--db", pg_url)
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]
    assert events[0]["eventType"] == "START" and events[-1]["eventType"] == "COMPLETE"
    assert (
        cli("export", "--format", "graphml", "-o", tmp_path / "g.graphml", "--db", pg_url)[0] == 0
    )


def test_the_messy_sample_exits_1_with_the_same_counts_as_on_sqlite(pg_url, db, capsys):
    outcomes = []
    for store in (db, pg_url):
        code, _ = cli("run", MESSY_JSON, "--db", store)
        with lk.connect(store) as s:
            row = s.runs().iloc[0]
            outcomes.append((code, row["n_input"], row["n_published"], row["n_rejected"]))
    # data/messy_input.json: 20 records, 8 of them bad in 8 ways
    assert outcomes[0] == outcomes[1] == (1, 20, 12, 8)


def test_a_schema_of_someone_else_is_refused_and_left_untouched(pg_server):
    schema = "someone_elses"
    with psycopg.connect(pg_server, autocommit=True) as con:
        con.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        con.execute(sql.SQL("CREATE TABLE {}.runs (x int)").format(sql.Identifier(schema)))
    try:
        url = with_schema(pg_server, schema)
        with pytest.raises(lk.NotALineageStore, match="is not a lineage store"):
            lk.run_pipeline(SAMPLE_JSON, db=url, progress=False)
        with psycopg.connect(pg_server, autocommit=True) as con:
            tables = con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            ).fetchall()
        assert tables == [("runs",)]
        assert cli("runs", "--db", url)[0] == 2
    finally:
        drop_schema(pg_server, schema)


def test_a_missing_store_is_not_created_by_readers(pg_url):
    with pytest.raises(lk.StoreNotFound, match="run a pipeline into it first"):
        lk.connect(pg_url)
    schema = pg_url.rsplit("schema=", 1)[1]
    server = pg_url.rsplit("?", 1)[0]
    with psycopg.connect(server, autocommit=True) as con:
        found = con.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        assert found.fetchone() is None


def test_a_newer_store_is_refused(pg_url):
    lk.run_pipeline(SAMPLE_JSON, db=pg_url, progress=False)
    with open_backend(pg_url) as backend:
        backend.con.execute(
            "UPDATE lineage_kit_meta SET value = '99' WHERE name = 'schema_version'"
        )
    with pytest.raises(lk.SchemaVersionError, match="schema version 99"):
        lk.connect(pg_url)


def test_readers_cannot_write(pg_url):
    lk.run_pipeline(SAMPLE_JSON, db=pg_url, progress=False)
    with lk.connect(pg_url) as store, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        store.backend.con.execute("DELETE FROM runs")


def _password_server(pg_server: str) -> tuple[str, str]:
    """A role with a password, and the server URL logging in as it."""
    with psycopg.connect(pg_server, autocommit=True) as con:
        if not con.execute("SELECT 1 FROM pg_roles WHERE rolname = 'lk_writer'").fetchone():
            con.execute("CREATE ROLE lk_writer LOGIN")
        con.execute("ALTER ROLE lk_writer PASSWORD 'Sw0rdfish-9'")
        con.execute("GRANT CREATE ON DATABASE postgres TO lk_writer")
    host = pg_server.split("@", 1)[1]
    return "Sw0rdfish-9", f"postgresql://lk_writer:Sw0rdfish-9@{host}"


def test_the_password_is_never_stored_or_shown(pg_server, tmp_path, capsys):
    password, server = _password_server(pg_server)
    url = with_schema(server, "lk_secret")
    try:
        result = lk.run_pipeline(MESSY_JSON, db=url, progress=False)
        assert password not in repr(result) and "lk_writer@" in result.db
        code, out = cli("run", SAMPLE_JSON, "--db", url, "--report", tmp_path / "r.json")
        assert code == 0
        cli("runs", "--db", url)
        cli("trace", "nope", "--db", url)
        cli("check", "--db", url)
        err = capsys.readouterr()
        with lk.connect(url) as store:
            shown = repr(store) + store._repr_html_() + store.runs().to_json(date_format="iso")
        dump = subprocess.run(
            [sys.executable, "-c", "import sys; print(sys.argv[1])", pg_server],
            capture_output=True,
            text=True,
        )
        with psycopg.connect(pg_server, autocommit=True) as con:
            stored = repr(con.execute("SELECT * FROM lk_secret.runs").fetchall())
        for text in (out, err.out, err.err, shown, stored, (tmp_path / "r.json").read_text()):
            assert password not in text
        assert dump.returncode == 0
    finally:
        drop_schema(pg_server, "lk_secret")


def test_a_wrong_password_is_one_line_naming_host_and_database_exit_2(pg_server, capsys):
    _password_server(pg_server)
    host = pg_server.split("@", 1)[1].split("/", 1)[0]
    url = f"postgresql://lk_writer:not-the-password@{host}/postgres?schema=x"
    ours = "LINEAGE_KIT_TEST_PG_DSN" not in os.environ  # our cluster asks lk_writer
    for argv in (("runs", "--db", url), ("run", SAMPLE_JSON, "--db", url)):
        code = cli(*argv)[0]
        err = capsys.readouterr().err
        assert "not-the-password" not in err
        if ours:
            assert code == 2 and "password authentication failed" in err, err
            assert err.count("\n") == 1 and "'postgres'" in err and host in err, err
    drop_schema(pg_server, "x")


@pytest.mark.parametrize(
    ("where", "says"),
    [
        ("127.0.0.1:1/postgres", "127.0.0.1:1"),  # nothing listens on port 1
        ("no-such-host.invalid/postgres", "no-such-host.invalid"),  # a name never resolved
        ("{host}/no_such_database", "no_such_database"),
    ],
)
def test_unreachable_servers_and_missing_databases_are_one_line_exit_2(
    pg_server, where, says, capsys
):
    host = pg_server.split("@", 1)[1].split("/", 1)[0]
    url = f"postgresql://lk_writer:Hunter2-x@{where.format(host=host)}"
    for argv in (("runs", "--db", url), ("run", SAMPLE_JSON, "--db", url)):
        assert cli(*argv)[0] == 2
        err = capsys.readouterr().err
        assert err.startswith("lineage-kit: error: cannot connect to the lineage store")
        assert err.count("\n") == 1 and says in err and "Hunter2-x" not in err, err
    proc = subprocess.run(
        [sys.executable, "-m", "lineage_kit", "runs", "--db", url],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_nul_and_lone_surrogates_round_trip_in_keys_reasons_and_errors(pg_url):
    # The sources refuse keys holding NUL or a lone surrogate (invalid_key), so only
    # reasons and errors can carry them; a key may hold the escape marker U+FFFF.
    keys = ["a\x00b", "c\ud800d", "\uffffmarked", "plain", "tab\there\\n"]

    @lk.step("boom")
    def boom(record):
        if record["key"] == "plain":
            raise lk.Reject("bad\x00reason", "why\ud800 not")
        if record["key"] == "\uffffmarked":
            raise ValueError("error with \x00 and \udfff")
        return record

    records = [{"key": k, "v": i} for i, k in enumerate(keys)]
    result = lk.Pipeline([lk.steps.ingest, boom]).run(records, db=pg_url, progress=False)
    assert (result.n_published, result.n_rejected, result.n_failed) == (1, 3, 1)
    with lk.connect(pg_url) as store:
        frame = store.lineage()
        assert set(frame["key"].dropna()) == {"\uffffmarked", "plain", "tab\there\\n"}
        assert set(frame["reason"].dropna()) == {"invalid_key", "bad\x00reason"}
        assert set(frame["error"].dropna()) >= {
            "why\ud800 not",
            "ValueError: error with \x00 and \udfff",
            "key field 'key' contains a NUL character",
        }
        for key in ("\uffffmarked", "plain", "tab\there\\n"):
            assert set(store.trace(key)["key"]) == {key}
        (run,) = store.run_rows()
        assert (run["n_rejected"], run["n_failed"]) == (3, 1)
        assert store.check().ok
        stored = store.backend.con.execute(
            "SELECT reason FROM entries WHERE reason LIKE %s", ("\uffff%",)
        ).fetchall()
        assert stored == [("\uffffbad\\u0000reason",)]  # escaped, as values are


def test_the_readme_privileges_let_a_writer_write_and_a_reader_read(pg_server):
    """The set-up of README "A shared store on PostgreSQL": a schema owned by the
    writer role, SELECT by default for the reader role, nothing more."""
    host = pg_server.split("@", 1)[1]
    with psycopg.connect(pg_server, autocommit=True) as con:
        for role in ("lk_team_writer", "lk_team_reader"):
            if not con.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                con.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        con.execute("DROP SCHEMA IF EXISTS team_lineage CASCADE")
        con.execute("CREATE SCHEMA team_lineage AUTHORIZATION lk_team_writer")
        con.execute("GRANT USAGE ON SCHEMA team_lineage TO lk_team_reader")
        con.execute(
            "ALTER DEFAULT PRIVILEGES FOR ROLE lk_team_writer IN SCHEMA team_lineage "
            "GRANT SELECT ON TABLES TO lk_team_reader"
        )
    writer = f"postgresql://lk_team_writer@{host}?schema=team_lineage"
    reader = f"postgresql://lk_team_reader@{host}?schema=team_lineage"
    try:
        assert lk.run_pipeline(MESSY_JSON, db=writer, progress=False).n_rejected == 8
        with lk.connect(reader) as store:
            assert store.runs()["n_published"].tolist() == [12]
            assert len(store.trace(store.lineage()["key"].dropna().iloc[0])) >= 1
            assert set(store.check().violations["code"]) <= {"rejected_records"}
            assert len(store.openlineage_events()) > 2
        with pytest.raises(lk.LineageKitError, match="permission denied"):
            lk.run_pipeline(SAMPLE_JSON, db=reader, progress=False)
        assert cli("runs", "--db", reader)[0] == 0
    finally:
        drop_schema(pg_server, "team_lineage")
