"""The ``--where`` language: parsed, never evaluated as Python."""

from __future__ import annotations

import pytest

from llama_zoo.registry.query import WhereError, parse_where

ROWS = [
    {"id": "a", "params": 8_030_261_248, "context": 131072, "instruct": False, "family": "llama-3.1", "vision": None},
    {"id": "b", "params": 1_235_814_400, "context": 131072, "instruct": True, "family": "llama-3.2", "vision": None},
    {"id": "c", "params": 10_670_220_835, "context": 131072, "instruct": False, "family": "llama-3.2",
     "vision": "cross-attention"},
    {"id": "d", "params": None, "context": None, "instruct": False, "family": "llama-4", "vision": "early-fusion"},
]
FIELDS = set(ROWS[0])


def ids(expr: str) -> list[str]:
    predicate = parse_where(expr, FIELDS)
    return [r["id"] for r in ROWS if predicate(r)]


@pytest.mark.parametrize("expr,expected", [
    ("context >= 131072", ["a", "b", "c"]),
    ("params > 8B", ["a", "c"]),
    ("params < 1.5B", ["b"]),
    ("instruct", ["b"]),
    ("not instruct and params > 5B", ["a", "c"]),
    ("family == llama-3.2 or vision == early-fusion", ["b", "c", "d"]),
    ("family == 'llama-3.2' and (instruct or params > 10B)", ["b", "c"]),
    ("vision ~ FUSION", ["d"]),
    ("params != 1235814400", ["a", "c", "d"]),
    ("vision", ["c", "d"]),
])
def test_expressions(expr, expected):
    assert ids(expr) == expected


@pytest.mark.parametrize("expr,message", [
    ("paramz > 3", "did you mean 'params'"),
    ("params >", "ends too early"),
    ("params > 3 extra", "unexpected"),
    ("(instruct", "ends too early"),
    ("__import__('os').system('true')", "cannot read"),
    ("__import__", "unknown field"),
    ("params > 3; rm", "cannot read"),
])
def test_errors_are_clear_and_nothing_is_evaluated(expr, message):
    with pytest.raises(WhereError, match=message):
        ids(expr)


def test_comparing_a_number_field_with_text_is_false_not_a_crash():
    assert ids("params > abc") == []


def test_text_fields_compare_with_the_value_as_written():
    rows = [{"id": "llama-3.1-8b", "release_date": "2024-07-23"}, {"id": "llama-3.1-70b", "release_date": "2024-07-23"},
            {"id": "llama-2-7b", "release_date": "2023-07-18"}]
    pick = lambda expr: [r["id"] for r in rows if parse_where(expr, {"id", "release_date"})(r)]  # noqa: E731
    assert pick("id ~ 8b") == ["llama-3.1-8b"]
    assert pick("release_date >= 2024-01-01") == ["llama-3.1-8b", "llama-3.1-70b"]


@pytest.mark.parametrize("expr", ["instruct == >", "params > (", "family == )"])
def test_an_operator_needs_a_value(expr):
    with pytest.raises(WhereError, match="expected a value"):
        ids(expr)
