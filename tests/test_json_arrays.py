"""JSON array files are streamed: flat memory, the values and the errors of json.loads."""

from __future__ import annotations

import gzip
import json
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lineage_kit as lk
from lineage_kit import sources
from lineage_kit.sources import open_source


def _pieces(text: str, size: int):
    return iter([text[i : i + size] for i in range(0, len(text), size)])


def _loads_or_error(text: str):
    try:
        return ("ok", json.loads(text))
    except json.JSONDecodeError as exc:
        return ("error", exc.msg, exc.lineno, exc.colno)


def _streamed_or_error(text: str, size: int):
    from lineage_kit.jsonstream import MalformedJSON, iter_array

    try:
        return ("ok", list(iter_array(_pieces(text, size))))
    except MalformedJSON as exc:
        return ("error", exc.msg, exc.line, exc.column)


def test_a_long_array_is_read_in_flat_memory(tmp_path):
    path = tmp_path / "big.json"
    record = {"key": "k", "note": "x" * 200, "n": [1, 2, 3]}
    with path.open("w") as fh:
        fh.write("[\n" + ",\n".join(json.dumps({**record, "key": f"k{i}"}) for i in range(25_000)))
        fh.write("\n]\n")
    size = path.stat().st_size
    assert size > 5_000_000
    tracemalloc.start()
    try:
        count = sum(1 for _ in open_source(path).items())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 25_000
    # reading the whole file first (as before) holds at least its text: 5 MB and more
    assert peak < 1_000_000, peak


def test_records_before_a_late_error_arrive_first(tmp_path):
    path = tmp_path / "late.json"
    path.write_text("[" + ",".join(json.dumps({"key": f"k{i}"}) for i in range(3)) + ", {oops}]")
    items = open_source(path).items()
    assert [next(items).key for _ in range(3)] == ["k0", "k1", "k2"]
    with pytest.raises(lk.InputError, match="malformed JSON: Expecting property name"):
        next(items)


TRICKY = [
    {"key": "a", "f": 0.1, "g": 1e-7, "h": 1.0, "big": 12345678901234567890123, "neg": -0.0},
    {"key": "b", "u": "é ☃ \U0001f600", "esc": 'q"\\/\b\f\n\r\t', "lone": "\ud800"},
    {"key": "c", "nested": {"a": [1, {"b": None}], "t": True}, "dup": 2, "inf": 1e400},
    {"key": "d", "long": "y" * 100_000, "list": list(range(50))},
]


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 16])
def test_values_are_byte_identical_to_json_lines_and_to_json_loads(tmp_path, monkeypatch, block):
    monkeypatch.setattr(
        sources, "JSON_BLOCK", block, raising=False
    )  # elements cut at every boundary
    array = tmp_path / "in.json"
    text = json.dumps(TRICKY, indent=2).replace('"dup": 2', '"dup": 1, "dup": 2')
    array.write_text(text)
    lines = tmp_path / "in.jsonl"
    lines.write_text("".join(json.dumps(r) + "\n" for r in json.loads(text)))
    got = [i.value for i in open_source(array).items()]
    assert repr(got) == repr(json.loads(text))  # what the whole-file read gave
    db_a, db_l = tmp_path / "a.db", tmp_path / "l.db"
    lk.run_pipeline(array, db=db_a)
    lk.run_pipeline(lines, db=db_l)
    with lk.connect(db_a) as a, lk.connect(db_l) as b:
        for column in ("key", "step", "status", "value_hash"):
            assert a.lineage()[column].tolist() == b.lineage()[column].tolist()
        assert a.records()["value"].tolist() == b.records()["value"].tolist()


MALFORMED = [
    '[\n  {"key": "a"},\n  {"key": "b",}\n]',
    '[{"key": "a"} {"key": "b"}]',
    '[{"key": "a"},\n]',
    '[{"key": "a"},',
    '[{"key": "a"}',
    "[",
    '[{"key": "a"}]\n{"key": "b"}\n',
    '[{"key": "a"}, tru]',
    '[{"key": "a\nb"}]',
    '[{"key": "a"}, {"key": "b}]',
    "\n\n  [1, 2, 3.]",
    '[{"key": "\\u12"}]',
]


@pytest.mark.parametrize("text", MALFORMED)
@pytest.mark.parametrize("block", [1, 5, 1 << 16])
def test_malformed_arrays_get_json_loads_message_line_and_column(
    tmp_path, monkeypatch, text, block
):
    monkeypatch.setattr(sources, "JSON_BLOCK", block, raising=False)
    expected = _loads_or_error(text)
    assert expected[0] == "error"
    path = tmp_path / "bad.json.gz"
    path.write_bytes(gzip.compress(text.encode()))
    with pytest.raises(lk.InputError) as info:
        list(open_source(path).items())
    err = info.value
    assert (err.line, err.column) == expected[2:]
    assert str(err) == f"{path}:{expected[2]}:{expected[3]}: malformed JSON: {expected[1]}"


def test_what_is_not_an_array_is_refused_as_before(tmp_path):
    from lineage_kit.jsonstream import NotAnArray, iter_array

    for text, message in [
        ('{"key": "a"}', "expected a JSON array of records, found a dict"),
        ('{"key": "a"}\n{"key": "b"}\n', "malformed JSON: Extra data"),
        ("  \n", "file is empty"),
    ]:
        path = tmp_path / "x.json"
        path.write_text(text)
        with pytest.raises(lk.InputError, match=message):
            list(open_source(path).items())
    with pytest.raises(NotAnArray):
        list(iter_array(iter(['"a"'])))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(json_values, max_size=6),
    st.integers(min_value=1, max_value=40),
    st.sampled_from([None, 1]),
    st.data(),
)
def test_streaming_agrees_with_json_loads_on_any_text(values, size, indent, data):
    text = json.dumps(values, indent=indent)
    if data.draw(st.booleans()):  # damage it: insert, drop or replace one character
        i = data.draw(st.integers(min_value=0, max_value=len(text)))
        ch = data.draw(st.sampled_from(list(',[]{}:"\\ 1e.-\nxtn')))
        text = data.draw(st.sampled_from([text[:i] + ch + text[i:], text[:i] + text[i + 1 :]]))
    if not text.lstrip(" \t\n\r").startswith("["):
        return
    expected = _loads_or_error(text)
    if expected[0] == "ok" and not isinstance(expected[1], list):
        return
    assert repr(_streamed_or_error(text, size)) == repr(expected)


def test_values_json_cannot_hold_are_errors_as_before(tmp_path):
    for text, message in [
        ('[{"key": "a"}, {"n": ' + "9" * 5000 + "}]", "unreadable JSON value"),
        ("[" * 100_000 + "]" * 100_000, "JSON nested too deeply to read"),
    ]:
        path = tmp_path / "x.json"
        path.write_text(text)
        with pytest.raises(lk.InputError, match=message):
            list(open_source(path).items())
