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
# # 05 · Your own data, with pandas steps
#
# A small shop's order export, `data/shop_orders.csv`, as it comes from the tills:
# order numbers restart in every store, so a record is identified by a **composite
# key**, store and order number (stored as `BER|1001`). A few rows are bad. We run a
# pipeline whose steps are written in pandas (`frame=True`: each step gets a chunk of
# records as a DataFrame indexed by record key), look at what was rejected and why,
# fix the data, run again, and compare the two runs.
#
# To use your own file, change `INPUT` and `KEY` (and the steps) below.

# %%
import csv
import dataclasses
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

import lineage_kit as lk

INPUT = Path("../data/shop_orders.csv")
KEY = ["Store", "Order No"]  # the raw column names, before normalize

WORK = Path("_work") / "05_your_own_data"
shutil.rmtree(WORK, ignore_errors=True)
WORK.mkdir(parents=True)
DB = WORK / "shop.db"

pd.set_option("display.width", 120)
pd.set_option("display.max_colwidth", 60)

# %% [markdown]
# ## The pipeline
#
# CSV values arrive as text. `lk.steps.normalize_frame` lowercases the column names
# (`quantity`, `unit price`, ...). Then four steps of our own, each a few lines of
# pandas over the whole chunk:
#
# - `typed` parses quantity and price with `pd.to_numeric`; it returns the rows it
#   keeps **and** the rows it rejects, with a reason code for each (`invalid_price`
#   for a price written with a decimal comma);
# - `positive` is a plain filter: a row it drops is recorded as rejected with reason
#   `filtered_out`;
# - `line_total` derives a column;
# - `pick_list` explodes a list column: one row per item to pick from the shelves
#   (a bag ships with its strap), so an order with a bag is **split** into children
#   keyed `MUC|1001#1`, `MUC|1001#2`.


# %%
@lk.step(
    "typed",
    frame=True,
    source="normalized",
    destination="typed",
    description="typed quantity and price",
)
def typed(df: pd.DataFrame):
    quantity = pd.to_numeric(df["quantity"], errors="coerce")
    price = pd.to_numeric(df["unit price"], errors="coerce")
    reasons = pd.Series(None, index=df.index, dtype=object)
    reasons[price.isna()] = "invalid_price"
    reasons[quantity.isna()] = "invalid_quantity"
    bad = reasons.notna()
    rejected = pd.DataFrame(
        {
            "reason": reasons[bad],
            "message": "could not read quantity "
            + df["quantity"][bad]
            + " x price "
            + df["unit price"][bad],
        }
    )
    kept = df[~bad].assign(quantity=quantity[~bad].astype(int), **{"unit price": price[~bad]})
    return kept, rejected


@lk.step(
    "positive", frame=True, source="typed", destination="checked", description="quantity above zero"
)
def positive(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["quantity"] > 0]


@lk.step(
    "line_total",
    frame=True,
    source="checked",
    destination="priced",
    description="quantity × unit price",
)
def line_total(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(**{"line total": (df["quantity"] * df["unit price"]).round(2)})


CONTENTS = {"BAG-04": ["BAG-04", "STRAP-01"]}  # what else leaves the shelf with an item


@lk.step(
    "pick_list",
    frame=True,
    kind="split",
    source="priced",
    destination="picking",
    description="one row per item to pick",
)
def pick_list(df: pd.DataFrame) -> pd.DataFrame:
    items = df["sku"].map(lambda sku: CONTENTS.get(sku, [sku]))
    return df.assign(pick=items).explode("pick")


publish = dataclasses.replace(lk.steps.publish, source="picking")
pipeline = lk.Pipeline(
    [lk.steps.ingest, lk.steps.normalize_frame, typed, positive, line_total, pick_list, publish],
    name="shop_orders",
)
pipeline

# %% [markdown]
# ## First run

# %%
# NBVAL_CHECK_OUTPUT
with INPUT.open(newline="") as fh:
    n_rows = sum(1 for _ in csv.reader(fh)) - 1  # minus the header
first = pipeline.run(INPUT, DB, key=KEY, progress=False)
print(first.summary())

assert n_rows == 16
assert first.status == "completed_with_errors"
assert (first.n_input, first.n_published, first.n_rejected, first.n_failed) == (16, 11, 5, 0)
assert first.n_input == first.n_published + first.n_rejected + first.n_failed

# %% [markdown]
# Where were records lost? The funnel: three rows rejected at ingest, one by `typed`,
# one filtered out by `positive`.

# %%
store = lk.connect(DB)
ax = lk.plot_run(store)
assert [int(b.get_height()) for b in ax.containers[1]] == [3, 0, 1, 1, 0, 0, 0]  # rejected
plt.show()

# %% [markdown]
# ## The rejected records
#
# Every rejected entry has a reason code and a message: the codes `typed` gave, and
# `filtered_out` for the row `positive` dropped. Records rejected at ingest before they
# had a usable key have no key (missing, shown as NaN): they are never filed under a
# made-up one.

# %%
# NBVAL_CHECK_OUTPUT
lineage = store.lineage()
rejected = lineage[lineage["status"] == "rejected"]
assert rejected["reason"].value_counts().sort_index().to_dict() == {
    "duplicate_key": 1,
    "filtered_out": 1,
    "invalid_price": 1,
    "malformed_row": 1,
    "missing_key": 1,
}
assert rejected["key"].isna().sum() == 2  # the missing key and the malformed row
rejected[["entry_id", "step", "key", "reason", "error"]]

# %% [markdown]
# What did those rows look like? A rejected entry stores the value it arrived with;
# `source_of(entry_id=...)` follows it back to the input exactly as read (for a
# malformed row, the raw fields). (A bare number would be read as a record key.)

# %%
# NBVAL_CHECK_OUTPUT
raw = pd.concat([store.source_of(entry_id=int(e)) for e in rejected["entry_id"]], ignore_index=True)
raw.insert(1, "rejected_for", rejected["reason"].to_numpy())
assert raw.loc[raw["rejected_for"] == "invalid_price", "value"].iloc[0]["Unit Price"] == "19,90"
for reason, value in zip(raw["rejected_for"], raw["value"], strict=True):
    print(f"{reason:17} {value}")

# %% [markdown]
# The duplicate: `HAM|1003` appears twice. The first row was published; the second,
# a different customer, was refused. `trace` shows both position-0 entries.

# %%
# NBVAL_CHECK_OUTPUT
dup = store.trace("HAM|1003")
steps = ["normalize", "typed", "positive", "line_total", "pick_list", "publish"]
assert dup["step"].tolist() == ["ingest", "ingest", *steps]
assert sorted(dup.loc[dup["step"] == "ingest", "status"]) == ["ok", "rejected"]
dup[["entry_id", "step", "status", "reason"]]

# %%
# NBVAL_CHECK_OUTPUT
dup_values = store.records(key="HAM|1003", step="ingest")["value"]
assert sorted(v["Customer"] for v in dup_values) == ["Ben Neumann", "Sophie Richter"]
print(sorted(v["Customer"] for v in dup_values))

# %% [markdown]
# ## What the pandas steps did to one record
#
# The frame steps are in the lineage like any other step. `changes` shows, per step,
# what each of ours did to `HAM|1001`: `typed` turned the texts `"4"` and `"8.50"`
# into numbers, `line_total` and `pick_list` added a field, `positive` kept the record
# as it was.

# %%
# NBVAL_CHECK_OUTPUT
changes = store.changes("HAM|1001")
assert set(zip(changes["step"], changes["field"], changes["change"], strict=True)) >= {
    ("typed", "quantity", "changed"),
    ("typed", "unit price", "changed"),
    ("line_total", "line total", "added"),
    ("pick_list", "pick", "added"),
}
ours = changes[changes["step"] != "normalize"]  # normalize renamed every field
ours[["step", "field", "change", "old", "new"]]

# %% [markdown]
# An order with a bag was split by `pick_list`: its chain goes on in two children, one
# per item picked.

# %%
# NBVAL_CHECK_OUTPUT
bag = store.trace("MUC|1001")
children = bag[bag["relation"] == "downstream"]
assert sorted(set(children["key"])) == ["MUC|1001#1", "MUC|1001#2"]
assert [v["pick"] for v in store.records(key="MUC|1001#2", step="publish")["value"]] == ["STRAP-01"]
bag[["entry_id", "step", "key", "relation", "status"]]

# %%
ax = lk.plot_chain(store, "MUC|1001")
plt.show()

# %% [markdown]
# ## Fix the data and run again
#
# What we learned, row by row (the fixes are written to a copy under `_work/`; the
# original export stays as it is):
#
# | problem | fix |
# | --- | --- |
# | order 1005 has no store | it is Berlin's (BER's numbers run 1004, 1005, 1006) |
# | `HAM,1003` twice | Ben Neumann's order is HAM's 1005, mistyped |
# | `Schwarz, Anna` unquoted: 9 fields | quote the name |
# | quantity `-2` (filtered out) | a sign typo: 2 |
# | unit price `19,90` | a decimal comma: 19.90 |

# %%
FIXED = WORK / "shop_orders_fixed.csv"
with INPUT.open(newline="") as fh:
    header, *rows = list(csv.reader(fh))
fixed_rows = []
for row in rows:
    if len(row) == len(header) + 1:  # an unquoted comma split the customer's name
        row = [*row[:2], f"{row[2]},{row[3]}", *row[4:]]
    record = dict(zip(header, row, strict=True))
    if record["Store"] == "" and record["Order No"] == "1005":
        record["Store"] = "BER"
    if (record["Store"], record["Order No"], record["Customer"]) == ("HAM", "1003", "Ben Neumann"):
        record["Order No"] = "1005"
    record["Quantity"] = record["Quantity"].lstrip("-")
    record["Unit Price"] = record["Unit Price"].replace(",", ".")
    fixed_rows.append(record)
with FIXED.open("w", newline="") as fh:
    writer = csv.DictWriter(fh, fieldnames=header)
    writer.writeheader()
    writer.writerows(fixed_rows)
assert len(fixed_rows) == 16

# %%
# NBVAL_CHECK_OUTPUT
second = pipeline.run(FIXED, DB, key=KEY, progress=False)
print(second.summary())
assert second.status == "completed"
assert (second.n_input, second.n_published, second.n_rejected) == (16, 16, 0)

# %% [markdown]
# ## Compare the two runs
#
# `compare_runs` lists every key whose outcome differs: keys only in one run, keys
# that took a different path through the steps, and keys whose final value differs.
# (Rows rejected before they had a key cannot be matched across runs; the fixed
# ones show up as new keys, with their children.)

# %%
# NBVAL_CHECK_OUTPUT
diff = store.compare_runs(first.run_id, second.run_id)
assert dict(zip(diff["key"], diff["difference"].astype(str), strict=True)) == {
    "BER|1005": "only_in_b",  # had no store
    "BER|1005#1": "only_in_b",  # ... and holds a bag: picked as bag
    "BER|1005#2": "only_in_b",  # ... and strap
    "BER|1006": "only_in_b",  # was a malformed row
    "HAM|1005": "only_in_b",  # was the duplicate HAM|1003
    "BER|1004": "different_path",  # filtered out by positive, now published
    "HAM|1003": "different_path",  # no longer has a rejected duplicate
    "MUC|1002": "different_path",  # rejected by typed, now published
}
diff[["key", "difference", "path_a", "path_b"]]

# %% [markdown]
# Both runs at a glance, and a last integrity check over every run in the store.

# %%
ax = lk.plot_runs(store)
assert len(ax.get_xticklabels()) == 2
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
lines = store.records(step="line_total", expand=True)
published = store.records(step="publish", expand=True)
assert len(lines) == 16 and lines["key"].is_unique
# three orders hold a bag, each picked as bag and strap: 16 + 3 pick lines
assert len(published) == 19 and published["key"].is_unique
# worked out by hand from the 16 fixed rows
assert round(lines["value.line total"].sum(), 2) == 461.7
report = store.check("all")
assert report.ok, report.violations
print(f"revenue: {lines['value.line total'].sum():.2f} EUR, {len(published)} pick lines; {report}")
store.close()
