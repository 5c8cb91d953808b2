"""Flattened field names are unambiguous (issue 11, defect 12).

A nested ``{"n": {"x": 1}}`` and a literal top-level field ``"n.x"`` used to land
in one column ``value.n.x`` of ``records(expand=True)``, one silently overwriting
the other.
"""

from __future__ import annotations

import re

import lineage_kit as lk
from lineage_kit.frames import flatten


def _unescaped_parts(path: str) -> list[str]:
    """Split a flattened path at the dots not escaped, and unescape each name."""
    parts = re.split(r"(?<!\\)((?:\\\\)*)\.", path)
    # re.split keeps the captured run of escaped backslashes; glue it back on
    names, i = [], 0
    while i < len(parts):
        name = parts[i] + (parts[i + 1] if i + 1 < len(parts) else "")
        names.append(re.sub(r"\\(.)", r"\1", name))
        i += 2
    return names


def _store(db, records):
    lk.Pipeline([lk.steps.ingest, lk.steps.publish]).run(records, db=db, progress=False)
    return lk.connect(db)


def test_nested_and_dotted_fields_get_their_own_columns(db) -> None:
    with _store(
        db,
        [
            {"key": "a", "n": {"x": 1}, "n.x": 2},
            {"key": "b", "n": {"x": 3}},
            {"key": "c", "n.x": 4},
        ],
    ) as store:
        df = store.records(step="publish", expand=True).set_index("key")
    assert df.loc["a", "value.n.x"] == 1
    assert df.loc["a", "value.n\\.x"] == 2
    assert df.loc["b", "value.n.x"] == 3
    assert df.loc["c", "value.n\\.x"] == 4
    assert df["value.n.x"].isna().tolist() == [False, False, True]
    assert df["value.n\\.x"].isna().tolist() == [False, True, False]


def test_every_leaf_keeps_its_value_and_its_path_gives_the_names_back() -> None:
    value = {
        "n": {"x": 1, "y.z": 2, "": 3},
        "n.x": 4,
        "n\\": {"x": 5},
        "n\\.x": 6,
        "empty": {},
        "items": [1, {"a": 2}],
    }
    flat = flatten(value)
    assert len(flat) == 8  # every leaf, none merged
    assert sorted(map(tuple, map(_unescaped_parts, flat))) == sorted(
        [
            ("n", "x"),
            ("n", "y.z"),
            ("n", ""),
            ("n.x",),
            ("n\\", "x"),
            ("n\\.x",),
            ("empty",),
            ("items",),
        ]
    )
    assert flat["empty"] == {} and flat["items"] == [1, {"a": 2}]


def test_plain_names_are_unchanged(db) -> None:
    with _store(db, [{"key": "a", "amount": 2, "address": {"city": "Oslo"}}]) as store:
        df = store.records(step="publish", expand=True)
    assert [c for c in df.columns if c.startswith("value.")] == [
        "value.key",
        "value.amount",
        "value.address.city",
    ]


def test_changes_tell_nested_and_dotted_fields_apart(db) -> None:
    @lk.step("touch")
    def touch(record: dict) -> dict:
        return {**record, "n": {"x": 10}}

    lk.Pipeline([lk.steps.ingest, touch]).run(
        [{"key": "a", "n": {"x": 1}, "n.x": 1}], db=db, progress=False
    )
    with lk.connect(db) as store:
        changes = store.changes("a")
    changed = changes[changes["change"] == "changed"]
    assert changed["field"].tolist() == ["n.x"]  # the dotted top-level field did not change
