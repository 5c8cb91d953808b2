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
# # 01 · Quick start
#
# Run the default pipeline (**ingest → normalize → publish**) over the sample orders,
# then ask the lineage store what happened: the runs, the steps, every lineage entry
# and value as pandas DataFrames, and one record's chain from input to output.
#
# The store is written under `notebooks/_work/` (git ignores it) and deleted first,
# so the notebook gives the same results every time it runs top to bottom.

# %%
import json
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

import lineage_kit as lk

DATA = Path("../data")
WORK = Path("_work") / "01_quickstart"
shutil.rmtree(WORK, ignore_errors=True)
WORK.mkdir(parents=True)
DB = WORK / "lineage.db"

pd.set_option("display.width", 120)
pd.set_option("display.max_colwidth", 40)

# %% [markdown]
# ## Run the pipeline
#
# `lk.run_pipeline` reads the JSON array, keys each record by its `key` field and
# records one lineage entry per record per step. (From a shell, the same run is
# `lineage-kit run data/sample_input.json --db lineage.db`.)

# %%
# NBVAL_CHECK_OUTPUT
sample = json.loads((DATA / "sample_input.json").read_text())
result = lk.run_pipeline(DATA / "sample_input.json", db=DB, progress=False)
print(result.summary())

assert len(sample) == 30
assert result.status == "completed"
assert (result.n_input, result.n_published, result.n_rejected, result.n_failed) == (30, 30, 0, 0)
assert result.n_entries == 30 * 3  # one entry per record per step

# %% [markdown]
# ## The runs in the store
#
# `lk.connect` opens an existing store for reading. Displayed on its own, the store
# shows its runs as a table; `store.runs()` gives them as a typed DataFrame, newest
# first (timestamps are UTC `datetime64`, the status a categorical).

# %%
store = lk.connect(DB)
store

# %%
# NBVAL_CHECK_OUTPUT
runs = store.runs()
assert len(runs) == 1 and runs.loc[0, "run_id"] == result.run_id
assert str(runs["started_at"].dtype) == "datetime64[us, UTC]"
runs[["pipeline", "status", "input_path", "n_input", "n_published", "n_rejected", "n_failed"]]

# %% [markdown]
# ## The steps of the run
#
# Each step reads from a *source* stage and writes to a *destination* stage; the
# counts say how many entries it made with each status.

# %%
# NBVAL_CHECK_OUTPUT
steps = store.steps()
assert steps["name"].tolist() == ["ingest", "normalize", "publish"]
assert steps["n_ok"].tolist() == [30, 30, 30]
steps[["position", "name", "source", "destination", "description", "n_ok", "n_rejected"]]

# %% [markdown]
# ## Lineage entries
#
# `store.lineage()` has one row per record per step: its entry id, step, key,
# status, the hash of the value it stored and its parent entry.

# %%
# NBVAL_CHECK_OUTPUT
lineage = store.lineage()
assert len(lineage) == 90
assert lineage["status"].eq("ok").all()
# every ingest entry starts a chain; every later entry has exactly one parent
assert lineage.groupby("step", observed=True)["n_parents"].max().to_dict() == {
    "ingest": 0,
    "normalize": 1,
    "publish": 1,
}
lineage[["entry_id", "step", "key", "status", "value_hash", "parent_id"]].head(6)

# %% [markdown]
# ## Values
#
# `store.records()` holds what each record looked like after each step.
# `expand=True` flattens the JSON value into `value.<field>` columns. Normalize has
# lower-cased and stripped the field names (`" Amount "` became `amount`).

# %%
# NBVAL_CHECK_OUTPUT
published = store.records(step="publish", expand=True)
assert len(published) == 30
assert "value.amount" in published.columns and "value. Amount " not in published.columns
# nothing was lost on the way: the published total equals the input total
input_total = round(sum(r[" Amount "] for r in sample), 2)
assert round(published["value.amount"].sum(), 2) == input_total
print(f"published total: {published['value.amount'].sum():.2f}")
published[["key", "value.customer name", "value.amount", "value.currency", "value.region"]].head()

# %% [markdown]
# ## Trace one record
#
# `store.trace(key)` gives a record's chain in step order. The ingest entry stores
# the record exactly as received; normalize changed it (a new hash); publish
# delivered it unchanged (the same hash as normalize).

# %%
# NBVAL_CHECK_OUTPUT
chain = store.trace("order-101")
assert chain["step"].tolist() == ["ingest", "normalize", "publish"]
assert chain["status"].eq("ok").all()
hashes = chain["value_hash"].tolist()
assert hashes[0] != hashes[1] and hashes[1] == hashes[2]
assert chain["parent_ids"].tolist() == [[], [chain.entry_id[0]], [chain.entry_id[1]]]
chain[["entry_id", "step", "status", "value_hash", "parent_ids"]]

# %% [markdown]
# What did each step change? `store.changes(key)` compares every entry with its
# parent, field by field.

# %%
# NBVAL_CHECK_OUTPUT
changes = store.changes("order-101")
assert set(changes["step"]) == {"normalize"}  # publish changed nothing
added = set(changes.loc[changes["change"] == "added", "field"])
removed = set(changes.loc[changes["change"] == "removed", "field"])
assert added == {f.strip().lower() for f in sample[0]} - {"key"}
assert removed == set(sample[0]) - {"key"}
changes[["step", "field", "change", "old", "new"]]

# %% [markdown]
# And as a picture: one column per step, one box per lineage entry.

# %%
ax = lk.plot_chain(store, "order-101")
boxes = [t for t in ax.texts if (t.get_gid() or "").startswith("entry:")]
assert len(boxes) == 3
plt.show()

# %%
store.close()
