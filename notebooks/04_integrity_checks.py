# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Integrity checks
#
# `store.check()` checks that the **lineage itself is whole**: every record that
# should continue reached the next step, every parent link points to a real entry
# one step earlier in the same run, no key was processed twice, every stored value
# matches its hash, no run died half-way. Rejected and failed records are outcomes,
# not violations.
#
# Below: a clean check, then four faults injected one at a time, with plain SQL,
# into **copies** of a good store (a skipped step, an orphan link, a record
# processed twice, an interrupted run), each one caught; then a check of our own.

# %%
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd

import lineage_kit as lk

DATA = Path("../data")
WORK = Path("_work") / "04_integrity_checks"
shutil.rmtree(WORK, ignore_errors=True)
WORK.mkdir(parents=True)
DB = WORK / "lineage.db"

pd.set_option("display.width", 120)
pd.set_option("display.max_colwidth", 80)

# %% [markdown]
# ## A clean check
#
# The messy sample has records rejected for every reason, and still checks clean:
# each of them ended in exactly one place, with a reason.

# %%
# NBVAL_CHECK_OUTPUT
result = lk.run_pipeline(DATA / "messy_input.json", db=DB, progress=False)
assert (result.n_input, result.n_published, result.n_rejected) == (20, 12, 8)

with lk.connect(DB) as store:
    report = store.check(expected_steps=["ingest", "normalize", "publish"])
assert report.ok and report.violations.empty
print(report)

# %% [markdown]
# ## Injecting faults
#
# Each fault goes into its own copy of the clean store (SQLite's backup API copies
# it consistently). The helper returns the connection to write with, and the
# entry ids of one record's chain, so the SQL below can name what it breaks.


# %%
def broken_copy(name: str) -> sqlite3.Connection:
    """A fresh copy of the clean store, opened with plain sqlite3 for tampering."""
    path = WORK / f"{name}.db"
    path.unlink(missing_ok=True)
    target = sqlite3.connect(path, isolation_level=None)
    source = sqlite3.connect(DB)
    try:
        source.backup(target)
    finally:
        source.close()
    return target


def chain_of(con: sqlite3.Connection, key: str) -> list[int]:
    """The entry ids of one key's chain, in step order."""
    rows = con.execute(
        "SELECT entry_id FROM lineage WHERE record_key = ? AND status = 'ok' ORDER BY position",
        (key,),
    )
    return [r[0] for r in rows]


def check(name: str) -> lk.CheckReport:
    """Check the tampered copy ``name`` with lineage_kit."""
    with lk.connect(WORK / f"{name}.db") as store:
        return store.check()


def codes(report: lk.CheckReport) -> dict[str, int]:
    return report.violations["code"].value_counts().sort_index().to_dict()


# %% [markdown]
# ### 1. A skipped step
#
# order-101's normalize entry is deleted and its publish entry re-linked straight to
# its ingest entry: the chain now jumps from step 0 to step 2. (The normalize entry's
# value stays: publish did not change it, so publish points at the same stored value.)
# The run's chunk still records the lost entry among its counts, so those disagree
# with the entries too.

# %%
# NBVAL_CHECK_OUTPUT
con = broken_copy("skipped_step")
ingest_id, normalize_id, publish_id = chain_of(con, "order-101")
with con:
    con.execute("BEGIN")
    con.execute("DELETE FROM entries WHERE entry_id = ?", (normalize_id,))
    con.execute("UPDATE entries SET parent_id = ? WHERE entry_id = ?", (ingest_id, publish_id))
con.close()

report = check("skipped_step")
assert not report.ok
assert codes(report) == {"chain_gap": 1, "counts_mismatch": 1}
gap = report.violations.iloc[0]
assert (gap["record_key"], gap["entry_id"]) == ("order-101", publish_id)
report.violations[["code", "severity", "record_key", "entry_id", "message"]]

# %% [markdown]
# ### 2. An orphan link
#
# A parent link that points to an entry that does not exist (as a buggy writer or a
# hand-made delete would leave behind).

# %%
# NBVAL_CHECK_OUTPUT
con = broken_copy("orphan_link")
ingest_id, normalize_id, publish_id = chain_of(con, "order-103")
(max_id,) = con.execute("SELECT max(entry_id) FROM entries").fetchone()
con.execute(  # a second parent (a merge's further parents live in extra_parents)
    "INSERT INTO extra_parents (child_id, parent_id) VALUES (?, ?)", (publish_id, max_id + 100)
)
con.close()

report = check("orphan_link")
assert codes(report) == {"orphan_parent": 1}
assert report.violations["entry_id"].tolist() == [publish_id]
report.violations[["code", "severity", "record_key", "entry_id", "message"]]

# %% [markdown]
# ### 3. A record processed twice
#
# order-104 goes through normalize a second time: a second entry at the same step,
# for the same key, in the same run, with its value and its link to the ingest entry,
# written as a chunk of its own (as a retried write that was not refused would be).

# %%
# NBVAL_CHECK_OUTPUT
con = broken_copy("processed_twice")
ingest_id, normalize_id, publish_id = chain_of(con, "order-104")
with con:
    con.execute("BEGIN")
    (twin,) = con.execute("SELECT max(entry_id) + 1 FROM entries").fetchone()
    con.execute(
        "INSERT INTO entries (entry_id, run_no, position, record_key, status, parent_id,"
        " value_id) SELECT ?1, run_no, position, record_key, status, ?2, ?1"
        " FROM entries WHERE entry_id = ?3",
        (twin, ingest_id, normalize_id),
    )
    con.execute(
        "INSERT INTO vals (value_id, hash, json) SELECT ?, hash, json FROM vals WHERE value_id = ?",
        (twin, normalize_id),
    )
    con.execute(
        "INSERT INTO chunks (run_no, chunk_no, first_entry, last_entry, counts, written_at)"
        " SELECT run_no, 1, ?1, ?1, '[[1, 1, 0, 0]]', written_at FROM chunks WHERE chunk_no = 0",
        (twin,),
    )
con.close()

report = check("processed_twice")
found = codes(report)
assert "duplicate_processing" in found
# the twin never reached publish, so its chain is also reported as unfinished
assert found == {"duplicate_processing": 1, "incomplete_chain": 1}
assert set(report.violations["record_key"]) == {"order-104"}
report.violations[["code", "severity", "record_key", "entry_id", "message"]]

# %% [markdown]
# ### 4. An interrupted run
#
# A run whose process died: it is still marked `running`, its last step half
# written, and the process that wrote it is gone. Here the writer is a process we
# start and let finish, so its pid no longer exists.

# %%
# NBVAL_CHECK_OUTPUT
con = broken_copy("interrupted_run")
(run_id,) = con.execute("SELECT run_id FROM runs").fetchone()
gone = subprocess.run(
    [sys.executable, "-c", "import os; print(os.getpid())"],
    capture_output=True,
    text=True,
    check=True,
)
dead_pid = int(gone.stdout)
with con:
    con.execute("BEGIN")
    con.execute(
        "UPDATE runs SET status = 'running', finished_at = NULL, writer_pid = ? WHERE run_id = ?",
        (dead_pid, run_id),
    )
    # the last step never finished writing: drop its entries (publish stored no
    # values of its own: it points at normalize's)
    con.execute("DELETE FROM entries WHERE position = 2")
con.close()

report = check("interrupted_run")
# reported once, as the run; its unfinished chains are not repeated one by one
assert codes(report) == {"run_interrupted": 1}
with lk.connect(WORK / "interrupted_run.db") as store:
    assert store.runs()["status"].tolist() == ["interrupted"]
# printed whole: a table would cut the message at a width that depends on the pid
print(report.violations[["code", "severity"]].to_string(index=False))
print(report.violations["message"].iloc[0])

# %% [markdown]
# `report.summary()` counts the violations per code with a one-line explanation,
# and `raise_if_failed()` turns a failed check into an exception (for a scheduled
# job, or the CLI: `lineage-kit check --db ...` exits with 1).

# %%
# NBVAL_CHECK_OUTPUT
try:
    report.raise_if_failed()
except lk.IntegrityError as exc:
    print(f"IntegrityError: {exc}")
else:
    raise AssertionError("an interrupted run must fail the check")
report.summary()

# %% [markdown]
# ## A check of your own
#
# A check is a function `(store, run_ids) -> violations` (a DataFrame or a list of
# dicts with any of the violation columns). It reads the store through the same
# public methods as this notebook (`store.records`, `store.lineage`, ...), which
# every storage backend serves. This one flags published amounts that are not
# positive numbers. Pass it once with `store.check(extra=[...])`, or register it
# with `lk.register_check` so every later check runs it.


# %%
def non_positive_amounts(store, run_ids):
    published = store.records(run_ids, step="publish")
    published = published[published["status"] == "ok"]
    problems = []
    for row in published.itertuples(index=False):
        amount = row.value.get("amount")
        if amount is None or (isinstance(amount, int | float) and amount <= 0):
            problems.append(
                {
                    "run_id": row.run_id,
                    "record_key": row.key,
                    "entry_id": row.entry_id,
                    "message": f"amount is {amount}",
                }
            )
    return problems


# %%
# NBVAL_CHECK_OUTPUT
# the messy run publishes only positive amounts: the check passes
with lk.connect(DB) as store:
    assert store.check(extra=[non_positive_amounts]).ok

# a refund run: two orders with a zero and a negative amount get published
refunds = [
    {"key": "refund-1", "amount": -19.99, "currency": "EUR"},
    {"key": "refund-2", "amount": 0, "currency": "EUR"},
    {"key": "order-501", "amount": 25.0, "currency": "EUR"},
]
lk.run_pipeline(refunds, db=DB, progress=False)

lk.register_check(
    "non_positive_amount", severity="warning", description="a published amount is not positive"
)(non_positive_amounts)
try:
    with lk.connect(DB) as store:
        report = store.check()
finally:
    lk.unregister_check("non_positive_amount")

assert report.ok  # warnings do not fail a check
assert codes(report) == {"non_positive_amount": 2}
assert sorted(report.violations["record_key"]) == ["refund-1", "refund-2"]
assert set(report.violations["severity"]) == {"warning"}
report.violations[["code", "severity", "record_key", "message"]]
