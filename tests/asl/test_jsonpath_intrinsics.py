"""The JSONPath evaluator and intrinsic functions, on their own."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, strategies as st

from wayline.runtime.asl import StatesError
from wayline.runtime.asl._intrinsics import _json_equal, compile_intrinsic
from wayline.runtime.asl._jsonpath import PathNotFound, compile_path, set_path

DOC: dict[str, Any] = {
    "store": {
        "book": [
            {"title": "A", "price": 8.95, "tags": ["x"]},
            {"title": "B", "price": 12.99},
            {"title": "C", "price": 8.99, "isbn": "1"},
        ],
        "bicycle": {"price": 19.95},
    },
    "odd key": 1,
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$", DOC),
        ("$.store.bicycle.price", 19.95),
        ("$['odd key']", 1),
        ("$.store.book[0].title", "A"),
        ("$.store.book[-1].title", "C"),
        ("$.store.book[*].title", ["A", "B", "C"]),
        ("$.store.book[1:].title", ["B", "C"]),
        ("$.store.book[:2].price", [8.95, 12.99]),
        ("$.store.book[::2].title", ["A", "C"]),
        ("$.store.book[0,2].title", ["A", "C"]),
        ("$.store.book[?(@.price < 10)].title", ["A", "C"]),
        ("$.store.book[?(@.isbn)].title", ["C"]),
        ("$.store.book[?(@.price > 9 || @.title == 'A')].title", ["A", "B"]),
        ("$.store.book[?(@.title =~ /[AB]/)].title", ["A", "B"]),
        ("$..price", [8.95, 12.99, 8.99, 19.95]),
        ("$.store.book.length()", 3),
        ("$.store.book[*].price.max()", 12.99),
        ("$.nothing[*]", []),
    ],
)
def test_paths(path: str, expected: Any) -> None:
    assert compile_path(path).evaluate(DOC) == expected


def test_definite_path_missing_reports_jayway_canonical_form() -> None:
    with pytest.raises(PathNotFound) as info:
        compile_path("$.store.book[7].title").evaluate(DOC)
    assert info.value.path == "$['store']['book'][7]['title']"


def test_variable_and_context_roots() -> None:
    p = compile_path("$orders[0].id")
    assert (p.root, p.var) == ("var", "orders")
    assert p.get({}, {}, {"orders": [{"id": 7}]}.__getitem__) == 7
    assert compile_path("$$.Execution.Id").get({}, {"Execution": {"Id": "e"}}, dict().__getitem__) \
        == "e"


def test_set_path_copies_only_along_the_path() -> None:
    shared = {"keep": [1, 2]}
    doc = {"a": {"b": 1}, "s": shared}
    out = set_path(doc, compile_path("$.a.c.d"), 5)
    assert out == {"a": {"b": 1, "c": {"d": 5}}, "s": shared}
    assert out["s"] is shared and doc == {"a": {"b": 1}, "s": shared}
    with pytest.raises(ValueError):
        set_path({"a": "text"}, compile_path("$.a.b"), 1)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ("States.Format('{} and {}', $.a, $.b)", "x and [1, 2]"),
        ("States.Format('literal \\\\{\\\\} {}', 1)", "literal {} 1"),
        ("States.Array($.a, 1, 2.5, true, null)", ["x", 1, 2.5, True, None]),
        ("States.ArrayUnique(States.Array(1, 1, 'a', 'a'))", [1, "a"]),
        ("States.ArrayRange(10, 0, -5)", [10, 5, 0]),
        ("States.JsonToString($.o)", '{"k":[1,null]}'),
        ("States.StringToJson('{\"a\": 1}')", {"a": 1}),
        ("States.JsonMerge($.o, States.StringToJson('{\"k\": 2}'), false)", {"k": 2}),
        ("States.Hash('input data', 'SHA-256')",
         "b4a697a057313163aee33cd8d40c66e9f0f177e00cac2de32475ffff6169c3e3"),
        ("States.MathAdd(-2.5, 0)", -2),
        ("States.StringSplit('a,b;;c', ',;')", ["a", "b", "c"]),
        ("States.ArrayLength($.b)", 2),
    ],
)
def test_intrinsics(call: str, expected: Any) -> None:
    data = {"a": "x", "b": [1, 2], "o": {"k": [1, None]}}
    assert compile_intrinsic(call).evaluate(data, {}, {}.__getitem__) == expected


def test_uuid_and_random() -> None:
    uuid = compile_intrinsic("States.UUID()").evaluate({}, {}, {}.__getitem__)
    assert len(uuid) == 36 and uuid.count("-") == 4
    for _ in range(50):
        n = compile_intrinsic("States.MathRandom(3, 6)").evaluate({}, {}, {}.__getitem__)
        assert 3 <= n < 6
    seeded = compile_intrinsic("States.MathRandom(0, 1000, 7)")
    assert seeded.evaluate({}, {}, {}.__getitem__) == seeded.evaluate({}, {}, {}.__getitem__)


@pytest.mark.parametrize(
    "call",
    [
        "States.Format('{} {}', 1)",
        "States.ArrayGetItem(States.Array(1), 5)",
        "States.ArrayPartition(States.Array(1), 0)",
        "States.Hash('x', 'CRC32')",
        "States.StringToJson('{bad')",
        "States.Base64Decode('%%%')",
        "States.ArrayLength('text')",
    ],
)
def test_intrinsic_failures_are_states_intrinsic_failure(call: str) -> None:
    with pytest.raises(StatesError) as info:
        compile_intrinsic(call).evaluate({}, {}, {}.__getitem__)
    assert info.value.error == "States.IntrinsicFailure"


_keys = st.text(alphabet="abcxyz_", min_size=1, max_size=5)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=10,
)


@given(doc=st.dictionaries(_keys, _json, max_size=4), path=st.lists(_keys, min_size=1,
                                                                       max_size=4), value=_json)
def test_set_then_get_returns_the_value_and_leaves_the_input_alone(
    doc: dict[str, Any], path: list[str], value: Any
) -> None:
    compiled = compile_path("$." + ".".join(path))
    before = repr(doc)
    try:
        out = set_path(doc, compiled, value)
    except ValueError:
        return  # a non-object on the way: ResultPathMatchFailure, nothing to check
    assert compiled.evaluate(out) == value or value != value
    assert repr(doc) == before


def _unique_by_pairs(items: list[Any]) -> list[Any]:
    """ArrayUnique as the States Language defines it: keep an item unless an equal one was kept."""
    out: list[Any] = []
    for x in items:
        if not any(_json_equal(x, y) for y in out):
            out.append(x)
    return out


_scalars = st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from([1.0, 2.0, 0.5]) | st.sampled_from("ab")


@given(items=st.lists(st.recursive(_scalars, lambda inner: st.lists(inner, max_size=2)
                                   | st.dictionaries(st.sampled_from("xy"), inner, max_size=2), max_leaves=4),
                      max_size=12))
def test_array_unique_keeps_what_the_pairwise_definition_keeps(items: list[Any]) -> None:
    out = compile_intrinsic("States.ArrayUnique($.v)").evaluate({"v": items}, {}, {}.__getitem__)
    assert repr(out) == repr(_unique_by_pairs(items))


@given(start=st.integers(-50, 50), end=st.integers(-50, 50), step=st.integers(-7, 7).filter(bool))
def test_array_range_counts_before_it_builds(start: int, end: int, step: int) -> None:
    expected = list(range(start, end + (1 if step > 0 else -1), step))
    assert compile_intrinsic(f"States.ArrayRange({start}, {end}, {step})").evaluate({}, {}, {}.__getitem__) == expected


@pytest.mark.parametrize(
    ("call", "cause"),
    [
        ("States.ArrayRange(1, 100000000, 1)", "at most 1000 items, these arguments make 100000000"),
        ("States.ArrayRange(1000, -1000000000000, -1)", "at most 1000 items"),
        ("States.Format('{}{}{}{}{}', $.s, $.s, $.s, $.s, $.s)", "longer than 1048576 characters (placeholder 5 of 5)"),
        ("States.StringToJson($.deep)", "the value is nested too deeply"),
    ],
)
def test_intrinsics_refuse_what_they_would_build_too_large(call: str, cause: str) -> None:
    data = {"s": "x" * 250_000, "deep": "[" * 50_000}
    with pytest.raises(StatesError) as info:
        compile_intrinsic(call).evaluate(data, {}, {}.__getitem__)
    assert info.value.error == "States.IntrinsicFailure"
    assert cause in (info.value.cause or "")
