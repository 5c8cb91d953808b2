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
# # 06 · Exports: OpenLineage, W3C PROV, GraphML
#
# The lineage leaves the store in the ecosystem's formats:
#
# - **OpenLineage** run events, at the run and step level, for lineage backends
#   (Marquez, DataHub, ...): counts, reject reasons, schemas, column lineage;
# - **W3C PROV**, at the record level: one entity per lineage entry;
# - **GraphML**, for graph tools (Gephi, yEd, Cytoscape).
#
# Mapping tables and how to see a run in Marquez: `docs/interop.md`.

# %%
import json
import shutil
from pathlib import Path

import networkx as nx
import pandas as pd
from prov.model import ProvDocument

import lineage_kit as lk

DATA = Path("../data")
WORK = Path("_work") / "06_exports"
shutil.rmtree(WORK, ignore_errors=True)
WORK.mkdir(parents=True)
DB = WORK / "lineage.db"

pd.set_option("display.width", 120)
pd.set_option("display.max_colwidth", 60)

# %% [markdown]
# ## OpenLineage events, live
#
# `openlineage=` sends the events while the run goes, through the
# `openlineage-python` client (extra `lineage_kit[openlineage]`). A URL sends them
# to a backend such as Marquez; here the client's *file* transport writes them to a
# file, one JSON event per line, so the notebook needs no server.

# %%
# NBVAL_CHECK_OUTPUT
live_file = WORK / "live_events.jsonl"
transport = {"transport": {"type": "file", "log_file_path": str(live_file), "append": True}}
result = lk.run_pipeline(DATA / "messy_input.json", db=DB, progress=False, openlineage=transport)
live = [json.loads(line) for line in live_file.read_text().splitlines()]
print(result.status, "-", len(live), "events sent")
for event in live:
    print(f"{event['eventType']:<9} {event['job']['name']}")

# %% [markdown]
# The same events come from the store after the fact (`store.openlineage_events()`,
# or `lineage-kit export --format openlineage`), identical but for the `tags` facet
# the client adds when it sends them.

# %%
# NBVAL_CHECK_OUTPUT
store = lk.connect(DB)
events = store.openlineage_events()
for event in live:
    event["run"]["facets"].pop("tags")
print(events == live)

# %% [markdown]
# What one step's COMPLETE event says: rows in and out, the reject reasons as
# data-quality assertions, and what happened to each field (column lineage).

# %%
# NBVAL_CHECK_OUTPUT
normalize = next(
    e for e in events if e["job"]["name"] == "default.normalize" and e["eventType"] == "COMPLETE"
)
(source,) = normalize["inputs"]
(target,) = normalize["outputs"]
print(source["name"], "->", target["name"])
print("rows in ", source["inputFacets"]["inputStatistics"]["rowCount"])
print("rows out", target["outputFacets"]["outputStatistics"]["rowCount"])
for check in source["inputFacets"]["dataQualityAssertions"]["assertions"]:
    print("rejected", check["actual"], "x", check["assertion"])
pd.DataFrame(
    [
        (field, f["field"], f["transformations"][0]["subtype"])
        for field, spec in target["facets"]["columnLineage"]["fields"].items()
        for f in spec["inputFields"]
    ],
    columns=["output field", "from input field", "how"],
)

# %% [markdown]
# The run's own COMPLETE event points back to the store and the run, and carries
# the counts; per-record data stays in the store.

# %%
# NBVAL_CHECK_OUTPUT
run_facet = events[-1]["run"]["facets"]["lineageKit_run"]
{k: v for k, v in run_facet.items() if not k.startswith("_") and k != "store"}

# %% [markdown]
# ## W3C PROV
#
# `store.to_prov()` (extra `lineage_kit[prov]`) gives a `prov.model.ProvDocument`:
# entries are entities, steps and the run are activities, the pipeline is a plan,
# lineage_kit the software agent; every parent link is a `wasDerivedFrom`. With
# `key=`, one record's lineage; with `values=True`, the stored values too.

# %%
# NBVAL_CHECK_OUTPUT
doc = store.to_prov(key="order-101")
provn = doc.get_provn()
entries = provn.count("prov:type='lk:Entry'")
print(entries, "entries as entities,", provn.count("wasDerivedFrom("), "derivations")
print(store.trace("order-101")[["step", "status"]].to_string(index=False))

# %%
print(provn)

# %% [markdown]
# PROV-JSON reads back with the `prov` package as the same document:

# %%
# NBVAL_CHECK_OUTPUT
text = doc.serialize(format="json")
print(
    len(json.loads(text)["entity"]),
    "entities in PROV-JSON;",
    "read back equal:",
    ProvDocument.deserialize(content=text, format="json") == doc,
)

# %% [markdown]
# ## GraphML
#
# `lk.write_graphml` writes `store.graph()` and `store.step_graph()` so that
# networkx, Gephi and yEd read them back (missing values left out, times and
# JSON values as text).

# %%
# NBVAL_CHECK_OUTPUT
path = WORK / "run.graphml"
lk.write_graphml(store.graph(), path)
back = nx.read_graphml(path, node_type=int)
print(back.number_of_nodes(), "entries,", back.number_of_edges(), "parent links")
sorted(back.nodes[1].items())

# %%
store.close()
