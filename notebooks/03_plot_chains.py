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
# # 03 · Plot chains, funnels, trends and timelines
#
# Every `lk.plot_*` function draws with matplotlib, takes `ax=None` (then it makes a
# figure sized to what it draws) and returns the `Axes`; none calls `plt.show()`, so
# the figures appear inline here and can be combined into your own figures.
#
# Each cell below also checks what the figure shows by reading its artists back:
# node boxes are text artists with `gid` `"entry:<id>"`, the funnel's bars are one
# `BarContainer` per status.

# %%
import dataclasses
import json
import shutil
from pathlib import Path

import matplotlib.pyplot as plt

import lineage_kit as lk

DATA = Path("../data")
WORK = Path("_work") / "03_plot_chains"
shutil.rmtree(WORK, ignore_errors=True)
WORK.mkdir(parents=True)
DB = WORK / "orders.db"

sample = json.loads((DATA / "sample_input.json").read_text())
assert len(sample) == 30


def boxes(ax):
    """The chain plot's node boxes: {entry id: the box's text}."""
    return {
        int(t.get_gid().split(":")[1]): t.get_text()
        for t in ax.texts
        if (t.get_gid() or "").startswith("entry:")
    }


# %% [markdown]
# ## The pipeline and three runs
#
# A pipeline with a step of our own: `to_eur` converts each amount to euros with a
# rate table. The first run has no rate for JPY, so every yen order **fails** at
# `to_eur` (a `KeyError`: an error, not a decision, so the record is *failed*, not
# *rejected*). The second runs over the messy sample, the third again over the sample
# with the JPY rate added.

# %%
RATES = {"EUR": 1.0, "USD": 0.92}


@lk.step("to_eur", source="normalized", destination="priced", description="amount in euros")
def to_eur(record: dict) -> dict:
    return {**record, "amount_eur": round(record["amount"] * RATES[record["currency"]], 2)}


publish = dataclasses.replace(lk.steps.publish, source="priced")
pipeline = lk.Pipeline([lk.steps.ingest, lk.steps.normalize, to_eur, publish], name="eur")

# chunk_size=10: three chunks, so the timeline below shows the steps interleave
no_yen = pipeline.run(DATA / "sample_input.json", DB, chunk_size=10, progress=False)
messy = pipeline.run(DATA / "messy_input.json", DB, chunk_size=10, progress=False)
RATES["JPY"] = 0.0061
fixed = pipeline.run(DATA / "sample_input.json", DB, chunk_size=10, progress=False)

n_yen = sum(r["Currency"] == "JPY" for r in sample)
assert (no_yen.n_published, no_yen.n_failed) == (30 - n_yen, n_yen) == (21, 9)
messy_input = json.loads((DATA / "messy_input.json").read_text())
messy_yen = sum(isinstance(r, dict) and r.get("Currency") == "JPY" for r in messy_input)
assert (messy.n_input, messy.n_rejected, messy.n_failed) == (20, 8, messy_yen) == (20, 8, 3)
assert messy.n_published == 20 - 8 - 3
assert fixed.status == "completed" and fixed.n_published == 30
store = lk.connect(DB)

# %% [markdown]
# ## A plain chain
#
# One column per step, one box per lineage entry, arrows from parent to child. Each
# box shows a summary of the value the step stored (`to_eur` added a ninth field).

# %%
ax = lk.plot_chain(store, "order-101")
texts = boxes(ax)
assert sorted(texts) == store.trace("order-101")["entry_id"].tolist()
assert [t.splitlines()[0] for t in texts.values()] == ["ingest", "normalize", "to_eur", "publish"]
# to_eur added one field (amount_eur) to the eight normalize left
n_fields = [t.splitlines()[1].split(":")[0] for t in texts.values()]
assert n_fields == ["8 fields", "8 fields", "9 fields", "9 fields"]
plt.show()

# %% [markdown]
# ## A failed record
#
# In the first run, order-107 (in yen) failed at `to_eur`: its box carries the error,
# with a dotted outline, and the publish column it never reached stays empty.

# %%
ax = lk.plot_chain(store, "order-107", run=no_yen.run_id)
texts = boxes(ax)
steps_reached = [t.splitlines()[0] for t in texts.values()]
assert steps_reached == ["ingest", "normalize", "to_eur"]  # never published
failed = " ".join(texts[max(texts)].split())
assert "KeyError" in failed and "JPY" in failed
plt.show()

# %% [markdown]
# ## A rejected record
#
# In the messy run, order-950 has both `" Amount "` and `"amount"`; normalize
# rejects it (`field_collision`) rather than keep one and silently lose the other.

# %%
ax = lk.plot_chain(store, "order-950", run=messy.run_id)
texts = boxes(ax)
assert [t.splitlines()[0] for t in texts.values()] == ["ingest", "normalize"]
assert "field_collision" in texts[max(texts)]
plt.show()

# %% [markdown]
# ## A merged record (fan-in)
#
# A merge step makes one record out of many: here one record per region. The
# published `AMER` row has nine parents, one per American order; each parent box is
# labelled with its own key.

# %%
MERGED_DB = WORK / "regions.db"


@lk.step(
    "by_region",
    source="normalized",
    destination="regions",
    kind="merge",
    group_by=lambda key, record: record["region"],
    description="one record per region",
)
def by_region(records: list[dict]) -> dict:
    return {"orders": len(records), "total": round(sum(r["amount"] for r in records), 2)}


publish_regions = dataclasses.replace(publish, source="regions")
regions = lk.Pipeline(
    [lk.steps.ingest, lk.steps.normalize, by_region, publish_regions], name="regions"
)
regions.run(DATA / "sample_input.json", MERGED_DB, progress=False)
with lk.connect(MERGED_DB) as merged_store:
    ax = lk.plot_chain(merged_store, "AMER")
texts = boxes(ax)
n_amer = sum(r["REGION"] == "AMER" for r in sample)
assert n_amer == 9
assert len(texts) == n_amer * 2 + 2  # ingest + normalize per order, the merge, publish
merge_box = next(t for t in texts.values() if t.startswith("by_region"))
assert "orders=9" in merge_box
edges = [a for a in ax.get_children() if (a.get_gid() or "").startswith("edge:")]
assert len(edges) == n_amer * 2 + 1
plt.show()

# %% [markdown]
# ## The step funnel of a run
#
# How many entries reached each step, stacked by status. In the messy run, 7 records
# are rejected at ingest (not an object, no usable key, a duplicate key), one at
# normalize (order-950), and its three yen orders fail at `to_eur` (the rate table
# still lacks JPY at that run).

# %%
ax = lk.plot_run(store, run=messy.run_id)
heights = {
    name: [int(b.get_height()) for b in bars]
    for name, bars in zip(lk.plot.STATUSES, ax.containers, strict=True)
}
messy_steps = store.steps(messy.run_id)
assert heights["ok"] == messy_steps["n_ok"].tolist() == [13, 12, 9, 9]
assert heights["rejected"] == [7, 1, 0, 0]
assert heights["failed"] == [0, 0, 3, 0]
plt.show()

# %% [markdown]
# ## The trend across runs
#
# `lk.plot_runs` draws the funnel of each of the last runs side by side, oldest
# first: the yen failures of the first run, the messy input's rejections, and the
# fixed run where every record reaches publish.

# %%
ax = lk.plot_runs(store, last=10)
run_labels = [t.get_text().splitlines()[0] for t in ax.get_xticklabels()]
assert len(run_labels) == 3
assert run_labels == [r[:8] for r in (no_yen.run_id, messy.run_id, fixed.run_id)]
plt.show()

# %% [markdown]
# ## When each step ran
#
# The pipeline works in chunks (10 records here), so steps interleave. The light
# bar is a step's span (first chunk in to last chunk out), the dark bar its busy
# time summed over chunks, and each tick a moment a chunk entered the step. Times
# differ on every run, so this cell checks the structure, not the numbers.

# %%
ax = lk.plot_timeline(store, run=fixed.run_id)
labels = [t.get_text().splitlines()[0] for t in ax.get_yticklabels()]
assert labels == ["ingest", "normalize", "to_eur", "publish"]
(ticks,) = [c for c in ax.collections if c.get_gid() == "chunk"]
assert len(ticks.get_offsets()) == 3 * 4  # three chunks through four steps
plt.show()

# %%
store.close()
