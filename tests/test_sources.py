"""Sources: formats, keys, and clear errors for files that cannot be read."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lineage_kit as lk
from lineage_kit.sources import guess_format, open_source, parse_key_option

from .conftest import DATA


def keys(source, **kw):
    return [(i.key, i.reason) for i in open_source(source, **kw).items()]


@pytest.mark.parametrize("name", ["sample_input.json", "sample_input.jsonl", "sample_input.csv"])
def test_the_three_sample_files_hold_the_same_keys(name):
    got = [k for k, reason in keys(DATA / name)]
    assert got == [f"order-{n}" for n in range(101, 131)]


def test_csv_and_json_samples_hold_the_same_records_as_text():
    as_json = [i.value for i in open_source(DATA / "sample_input.json").items()]
    as_csv = [i.value for i in open_source(DATA / "sample_input.csv").items()]
    assert [{k: str(v) for k, v in r.items()} for r in as_json] == as_csv


def test_gzip_files_are_read_and_hashed(tmp_path):
    raw = (DATA / "sample_input.jsonl").read_bytes()
    path = tmp_path / "in.jsonl.gz"
    path.write_bytes(gzip.compress(raw))
    src = open_source(path)
    assert len(list(src.items())) == 30
    import hashlib

    assert src.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_format_is_guessed_from_the_suffix_and_can_be_overridden(tmp_path):
    assert guess_format("a/b.JSON") == "json"
    assert guess_format("x.ndjson") == "jsonl"
    assert guess_format("x.csv.gz") == "csv"
    with pytest.raises(lk.InputError, match="suffix"):
        guess_format("x.txt")
    path = tmp_path / "records.txt"
    path.write_text('{"key": "a"}\n{"key": "b"}\n')
    assert keys(path, format="jsonl") == [("a", None), ("b", None)]


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps([{"key": "a"}]).encode())
    assert keys(path) == [("a", None)]
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfkey,x\nb,1\n")
    assert keys(path) == [("b", None)]


@pytest.mark.parametrize(
    ("name", "content", "line", "column"),
    [
        ("bad.json", '[\n  {"key": "a"},\n  {"key": "b",}\n]', 3, 15),
        ("bad.jsonl", '{"key": "a"}\n{"key": "b"\n', 2, 12),
    ],
)
def test_malformed_json_names_file_line_and_column(tmp_path, name, content, line, column):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(lk.InputError) as info:
        list(open_source(path).items())
    err = info.value
    assert (err.path, err.line, err.column) == (str(path), line, column)
    assert f"{path}:{line}:{column}" in str(err)


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"key": "a"}\n{"key": "\xff"}\n')
    with pytest.raises(lk.InputError, match="UTF-8") as info:
        list(open_source(path).items())
    assert info.value.line == 2


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.json", "", "empty"),
        ("blank.json", "  \n", "empty"),
        ("empty.csv", "", "empty"),
        ("object.json", '{"key": "a"}', "JSON array"),
    ],
)
def test_files_without_records_are_errors(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(lk.InputError, match=message):
        list(open_source(path).items())


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("header.csv", "key,x\n"),
        ("header_crlf.csv", "\ufeffkey;x\r\n"),
        ("nothing.json", "[]"),
        ("nothing_spaced.json", " [\n ]\n"),
        ("zero.jsonl", ""),
        ("blank.jsonl", "\n\n"),
    ],
)
def test_inputs_with_no_records_are_empty_runs(tmp_path, name, content, capsys):
    """An empty daily extract is a valid input: a run of 0 records, exit 0."""
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    src = open_source(path)
    assert list(src.items()) == []
    assert src.sha256 is not None
    result = lk.run_pipeline(path, db=tmp_path / "s.db")
    assert (result.status, result.n_input, result.n_entries) == ("completed", 0, 0)
    from lineage_kit.cli import main

    assert main(["run", str(path), "--db", str(tmp_path / "s.db"), "-q"]) == 0
    assert capsys.readouterr().err == ""
    with lk.connect(tmp_path / "s.db") as store:
        runs = store.runs()
        assert runs["status"].tolist() == ["completed", "completed"]
        assert runs["n_input"].tolist() == [0, 0]


def test_csv_fields_longer_than_pythons_default_limit_are_read(tmp_path):
    path = tmp_path / "big.csv"
    big = "x" * 200_000  # the csv module refuses more than 131,072 by default
    path.write_text(f'key,note\na,"{big}"\nb,short\n', encoding="utf-8")
    assert [i.value["note"] for i in open_source(path).items()] == [big, "short"]


@pytest.mark.parametrize("delimiter", [";", "\t", "|", ","])
def test_csv_delimiter_is_judged_from_the_header_or_given(tmp_path, delimiter):
    path = tmp_path / "d.csv"
    other = "," if delimiter != "," else ";"
    d = delimiter
    # the other character inside a field does not split it
    path.write_text(f"key{d}amount{d}note\na{d}1{d}x{other}y\nb{d}2{d}\n", encoding="utf-8")
    expected = [
        {"key": "a", "amount": "1", "note": f"x{other}y"},
        {"key": "b", "amount": "2", "note": ""},
    ]
    src = open_source(path)
    assert [i.value for i in src.items()] == expected
    assert src.delimiter == delimiter
    assert [i.value for i in open_source(path, delimiter=delimiter).items()] == expected


def test_the_sniffer_keeps_comma_files_as_they_were():
    from lineage_kit.sources import sniff_delimiter

    assert sniff_delimiter("key") == ","
    assert sniff_delimiter("key,a;b") == ","  # a comma anywhere: a comma file, as before
    assert sniff_delimiter('"a,b";c') == ";"  # the quoted comma is inside a field
    assert sniff_delimiter("a;b|c;d") == ";"


def test_a_wrong_delimiter_is_named_in_the_key_error(tmp_path, db):
    path = tmp_path / "semi.csv"
    path.write_text("key;amount\na;1\nb;2\n", encoding="utf-8")
    with pytest.raises(lk.InputError) as info:
        lk.run_pipeline(path, db=db, delimiter=",")
    message = str(info.value)
    assert "fields seen: 'key;amount'" in message
    assert "the header looks ';'-delimited, try --delimiter ';'" in message
    assert not db.exists()  # nothing was written
    # sniffed, the same file just works, and the fields-as-key mistake is caught
    assert lk.run_pipeline(path, db=db).n_published == 2
    with pytest.raises(lk.InputError, match="no record among the first 2 has the key field"):
        lk.run_pipeline(path, db=db, key="key;amount")


def test_bad_delimiters_are_refused(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("key\na\n")
    for bad in (";;", "", '"', "\n", 5):
        with pytest.raises(ValueError, match="delimiter"):
            open_source(path, delimiter=bad)
    with pytest.raises(ValueError, match="CSV"):
        open_source(tmp_path / "a.json", delimiter=";")
    with pytest.raises(ValueError, match="CSV"):
        open_source([{"key": "a"}], delimiter=";")


def test_missing_and_unreadable_files_are_errors(tmp_path):
    with pytest.raises(lk.InputError, match="file not found"):
        list(open_source(tmp_path / "nope.json").items())
    with pytest.raises(lk.InputError, match="directory"):
        list(open_source(tmp_path, format="json").items())
    corrupt = tmp_path / "broken.json.gz"
    corrupt.write_bytes(b"this is not gzip")
    with pytest.raises(lk.InputError, match="cannot be read"):
        list(open_source(corrupt).items())


def test_csv_rows_with_the_wrong_number_of_fields_are_rejected(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("key,x\na,1\nb,2,extra\nc\nd,4\n")
    assert keys(path) == [
        ("a", None),
        (None, "malformed_row"),
        (None, "malformed_row"),
        ("d", None),
    ]


def test_key_rules():
    got = keys(
        [
            {"key": "a"},
            {"key": 7},
            {"key": 2.5},
            {"key": None},
            {"key": ""},
            {"key": "   "},
            {},
            {"key": True},
            {"key": [1]},
            {"key": float("nan")},
            {" KEY ": "messy"},
            [1, 2],
            "text",
        ]
    )
    assert got == [
        ("a", None),
        ("7", None),
        ("2.5", None),
        (None, "missing_key"),
        (None, "missing_key"),
        (None, "missing_key"),
        (None, "missing_key"),
        (None, "invalid_key"),
        (None, "invalid_key"),
        (None, "invalid_key"),
        ("messy", None),
        (None, "not_an_object"),
        (None, "not_an_object"),
    ]


def test_composite_and_callable_keys():
    rows = [{"region": "EU", "id": 1}, {"region": "US", "id": None}]
    assert keys(rows, key=["region", "id"]) == [("EU|1", None), (None, "missing_key")]
    assert keys(rows, key=lambda r: f"{r['region']}-x") == [("EU-x", None), ("US-x", None)]
    assert keys(rows, key=lambda r: r["nope"]) == [(None, "missing_key")] * 2
    assert parse_key_option("region, id") == ["region", "id"]
    assert parse_key_option("id") == "id"
    with pytest.raises(ValueError):
        parse_key_option("a,,b")
    with pytest.raises(ValueError):
        open_source(rows, key=[])


def test_composite_keys_whose_parts_hold_the_separator_do_not_collide(db, capsys):
    rows = [
        {"region": "EU|1", "id": "2"},
        {"region": "EU", "id": "1|2"},
        {"region": "EU", "id": 1017},
    ]
    # before: both first records became "EU|1|2", the second rejected as duplicate_key
    assert keys(rows, key=["region", "id"]) == [
        ("EU\\|1|2", None),
        ("EU|1\\|2", None),
        ("EU|1017", None),  # a key without "|" in its parts is stored as it always was
    ]
    result = lk.run_pipeline(rows, db=db, key=["region", "id"])
    assert (result.n_published, result.n_rejected) == (3, 0)
    with lk.connect(db) as store:
        # the list of parts, the escaped text, or the plain text when unambiguous
        first = store.trace(["EU|1", "2"])
        assert first["key"].unique().tolist() == ["EU\\|1|2"]
        assert first.equals(store.trace("EU\\|1|2"))
        assert store.source_of(("EU", "1|2"))["value"].tolist() == [rows[1]]
        assert store.trace("EU|1017").equals(store.trace(["EU", 1017]))
        with pytest.raises(lk.KeyNotFound, match=r"escaped"):
            store.trace("EU|1|2")  # ambiguous: which part holds the "|"?
    from lineage_kit.cli import main

    assert main(["trace", "EU\\|1|2", "--db", str(db), "--json"]) == 0
    assert {r["key"] for r in json.loads(capsys.readouterr().out)} == {"EU\\|1|2"}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.lists(st.text(alphabet="ab|\\", min_size=1, max_size=4), min_size=2, max_size=2),
        min_size=2,
        max_size=2,
        unique_by=tuple,
    ),
    st.integers(min_value=2, max_value=3),
)
def test_composite_keys_are_one_to_one(pairs, width):
    from lineage_kit.sources import composite_key

    a, b = ([*p, *["x"] * (width - 2)] for p in pairs)
    assert composite_key(a) != composite_key(b)
    if not any("|" in part for part in a):
        assert composite_key(a) == "|".join(a)


def test_dataframe_source_turns_missing_cells_into_null():
    frame = pd.DataFrame(
        {
            "key": ["a", "b"],
            "amount": [1.5, float("nan")],
            "day": pd.to_datetime(["2026-01-02", None]),
        }
    )
    values = [i.value for i in open_source(frame).items()]
    assert values[0] == {"key": "a", "amount": 1.5, "day": "2026-01-02T00:00:00"}
    assert values[1] == {"key": "b", "amount": None, "day": None}


def test_objects_that_are_not_inputs_are_refused():
    with pytest.raises(lk.InputError, match="iterable of records"):
        open_source(42)
    with pytest.raises(lk.InputError, match="iterable of records"):
        open_source({"key": "a"})


def test_key_names_match_field_names_normalised_on_both_sides():
    rows = [{" Order No ": 5, "Store": "BER"}]
    assert keys(rows, key="order no") == [("5", None)]
    assert keys(rows, key="Order No") == [("5", None)]
    assert keys(rows, key=["STORE", " order no"]) == [("BER|5", None)]
