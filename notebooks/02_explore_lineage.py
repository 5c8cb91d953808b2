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
# # 02 · Explore lineage
#
# Walk lineage up- and downstream from any entry, see what each step changed,
# compare two runs record by record, and follow a record through a pipeline of your
# own with a **merge** step (many records in, one out): which inputs is a published
# row made of?

# %%
import copy
import dataclasses
import json
import shutil
from pathlib import Path

import networkx as nx
import pandas as pd

import lineage_kit as lk

DATA = Path("../data")
WORK = Path("_work") / "02_explore_lineage"
shutil.rmtree(WORK, ignore_errors=True)
WORK.mkdir(parents=True)

pd.set_option("display.width", 120)
pd.set_option("display.max_colwidth", 40)

sample = json.loads((DATA / "sample_input.json").read_text())
assert len(sample) == 30

# %% [markdown]
# ## Upstream and downstream
#
# Run the default pipeline over the sample, then walk the parent links of one
# published entry back to its input (`store.upstream`), and from an input entry
# forward (`store.downstream`). Both are recursive SQL queries over the `parents`
# table; `depth` 0 is the entry you start from.

# %%
DB = WORK / "orders.db"
first = lk.run_pipeline(DATA / "sample_input.json", db=DB, progress=False)
store = lk.connect(DB)

lineage = store.lineage(key="order-110")
published_id = int(lineage.loc[lineage["step"] == "publish", "entry_id"].iloc[0])
ingest_id = int(lineage.loc[lineage["step"] == "ingest", "entry_id"].iloc[0])
print(f"order-110: ingest entry {ingest_id}, publish entry {published_id}")

# %%
# NBVAL_CHECK_OUTPUT
up = store.upstream(published_id)
assert up["depth"].tolist() == [0, 1, 2]
assert up["step"].tolist() == ["publish", "normalize", "ingest"]
assert up["entry_id"].iloc[-1] == ingest_id
up[["entry_id", "depth", "step", "key", "status", "value_hash"]]

# %%
# NBVAL_CHECK_OUTPUT
down = store.downstream(ingest_id, depth=1)  # one step deep only
assert down["step"].tolist() == ["ingest", "normalize"]
down[["entry_id", "depth", "step", "key", "status"]]

# %% [markdown]
# ## What each step changed
#
# `store.changes(key)` diffs each entry against its parent. Normalize renames the
# fields; it does not touch the values.

# %%
# NBVAL_CHECK_OUTPUT
changes = store.changes("order-110")
renamed = changes.pivot_table(index="step", columns="change", values="field", aggfunc="count")
assert renamed.loc["normalize", "added"] == renamed.loc["normalize", "removed"] == 7
record = sample[9]
assert record["key"] == "order-110"
new_values = changes.loc[changes["change"] == "added"].set_index("field")["new"]
assert new_values["amount"] == record[" Amount "]
renamed

# %% [markdown]
# ## Comparing two runs
#
# Run the pipeline again over an edited copy of the input: one amount corrected,
# one order dropped, one added, and one record that now has both `" Amount "` and
# `"amount"` (normalize rejects it rather than lose one of them).
# `store.compare_runs(a, b)` lists every key whose outcome differs.

# %%
edited = copy.deepcopy(sample)
by_key = {r["key"]: r for r in edited}
by_key["order-105"][" Amount "] = 170.99  # a corrected amount
by_key["order-110"]["amount"] = 357.0  # a colliding field
edited.remove(by_key["order-130"])  # dropped
edited.append({**by_key["order-101"], "key": "order-131"})  # new
second = lk.run_pipeline(edited, db=DB, progress=False)
assert (second.n_input, second.n_published, second.n_rejected) == (30, 29, 1)

# %%
# NBVAL_CHECK_OUTPUT
diff = store.compare_runs(first.run_id, second.run_id)
assert dict(zip(diff["key"], diff["difference"].astype(str), strict=True)) == {
    "order-130": "only_in_a",
    "order-131": "only_in_b",
    "order-110": "different_path",
    "order-105": "different_value",
}
diff[["key", "difference", "path_a", "path_b", "status_b"]]

# %% [markdown]
# Why was order-110 rejected in the second run? Its trace says at which step and
# with what reason; `run="latest"` is the default.

# %%
# NBVAL_CHECK_OUTPUT
trace = store.trace("order-110")
assert trace["step"].tolist() == ["ingest", "normalize"]
assert trace["status"].tolist() == ["ok", "rejected"]
assert trace["reason"].iloc[-1] == "field_collision"
trace[["entry_id", "step", "status", "reason", "error"]]

# %%
store.close()

# %% [markdown]
# ## Your own steps, and a merge (fan-in)
#
# A pipeline is a list of steps. `enrich` is an ordinary map step (one record in,
# one out) that adds the region's name and rejects an order with no region;
# `by_region` is a **merge** step: `group_by` picks each record's group, and the
# step turns the group's records into one, whose key is the group. Its lineage
# entry has one parent per merged record.

# %%
REGION_NAMES = {
    "EMEA": "Europe, Middle East and Africa",
    "AMER": "Americas",
    "APAC": "Asia-Pacific",
}


@lk.step("enrich", source="normalized", destination="enriched", description="add the region name")
def enrich(record: dict) -> dict:
    if record.get("region") not in REGION_NAMES:
        raise lk.Reject("unknown_region", f"region is {record.get('region')!r}")
    return {**record, "region_name": REGION_NAMES[record["region"]]}


@lk.step(
    "by_region",
    source="enriched",
    destination="regions",
    kind="merge",
    group_by=lambda key, record: record["region"],
    description="one record per region: orders and total",
)
def by_region(records: list[dict]) -> dict:
    return {
        "region": records[0]["region"],
        "region_name": records[0]["region_name"],
        "orders": len(records),
        "total": round(sum(r["amount"] for r in records), 2),
    }


# the built-in publish step reads "normalized"; here it reads the merged regions
publish = dataclasses.replace(lk.steps.publish, source="regions")
pipeline = lk.Pipeline(
    [lk.steps.ingest, lk.steps.normalize, enrich, by_region, publish], name="regions"
)
pipeline

# %%
# NBVAL_CHECK_OUTPUT
REGIONS_DB = WORK / "regions.db"
result = pipeline.run(DATA / "sample_input.json", REGIONS_DB, progress=False)
regions = lk.connect(REGIONS_DB)
steps = regions.steps()
assert steps["name"].tolist() == ["ingest", "normalize", "enrich", "by_region", "publish"]
# 30 orders reach the merge; three region records leave it
assert steps["n_ok"].tolist() == [30, 30, 30, 3, 3]
assert steps["destination"].iloc[3] == steps["source"].iloc[4] == "regions"
steps[["name", "kind", "source", "destination", "n_ok", "n_rejected"]]

# %% [markdown]
# The published rows are one per region:

# %%
# NBVAL_CHECK_OUTPUT
out = regions.records(step="publish", expand=True)
totals = {}
for r in sample:
    totals[r["REGION"]] = round(totals.get(r["REGION"], 0) + r[" Amount "], 2)
assert dict(zip(out["key"], out["value.total"], strict=True)) == totals
out[["key", "value.region_name", "value.orders", "value.total"]]

# %% [markdown]
# ## Trace a published row back to its input
#
# Which input records is the published `AMER` row made of? `source_of` follows the
# parent links from the row's last entry back to the first step, through the
# merge, and returns each input exactly as it arrived.

# %%
# NBVAL_CHECK_OUTPUT
sources = regions.source_of("AMER")
amer_keys = sorted(r["key"] for r in sample if r["REGION"] == "AMER")
assert sorted(sources["key"]) == amer_keys and len(amer_keys) == 9
assert all(v["REGION"] == "AMER" for v in sources["value"])
sources[["entry_id", "key", "status"]].assign(
    amount=[v[" Amount "] for v in sources["value"]],
    customer=[v["Customer Name"] for v in sources["value"]],
)

# %% [markdown]
# `trace` shows the row's own entries (`relation` *self*) together with everything
# up- and downstream of them, so the nine merged orders appear as *upstream*:

# %%
# NBVAL_CHECK_OUTPUT
trace = regions.trace("AMER")
own = trace[trace["relation"] == "self"]
assert own["step"].tolist() == ["by_region", "publish"]
merged = own.iloc[0]
assert len(merged["parent_ids"]) == 9  # fan-in: one parent per merged order
assert trace["relation"].astype(str).value_counts().to_dict() == {"upstream": 27, "self": 2}
trace.groupby(["relation", "step"], observed=True).size().rename("entries").reset_index()

# %% [markdown]
# The same as a networkx graph: every node is a lineage entry, every edge a
# parent → child link, so networkx's algorithms apply directly.

# %%
# NBVAL_CHECK_OUTPUT
G = regions.graph(key="AMER")
publish_node = own["entry_id"].iloc[-1]
ancestors = nx.ancestors(G, publish_node)
assert len(ancestors) == 9 * 3 + 1  # ingest, normalize, enrich per order, plus the merge
roots = sorted(G.nodes[n]["key"] for n in G if G.in_degree(n) == 0)
assert roots == amer_keys
print(f"{G.number_of_nodes()} entries, {G.number_of_edges()} links; {len(roots)} roots")
print(" -> ".join(G.nodes[n]["step"] for n in nx.shortest_path(G, min(G), publish_node)))

# %% [markdown]
# And downstream from one input: order-102's ingest entry leads, through the
# merge, to the AMER row.

# %%
# NBVAL_CHECK_OUTPUT
start = int(regions.lineage(key="order-102", step="ingest")["entry_id"].iloc[0])
down = regions.downstream(start)
assert down["step"].tolist() == ["ingest", "normalize", "enrich", "by_region", "publish"]
assert down["key"].tolist()[-2:] == ["AMER", "AMER"]
down[["entry_id", "depth", "step", "key", "status"]]

# %%
regions.close()
