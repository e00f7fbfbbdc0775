"""What PostgreSQL can store (vap_common.storable): the rule the API and the contracts share."""

from __future__ import annotations

from typing import Any

import pytest

from vap_common.storable import json_problem, text_problem


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("кафе 東京 🎥", None),
        ("tab\tnewline\n\x7f", None),  # control characters are storable text
        ("", None),
        ("a\x00b", "must not contain NUL (\\u0000) characters"),
        ("\ud800", "must not contain unpaired UTF-16 surrogates"),
        ("x\udfffy", "must not contain unpaired UTF-16 surrogates"),
    ],
)
def test_text_postgresql_refuses_is_named(text: str, problem: str | None) -> None:
    assert text_problem(text) == problem


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"level": value}
    return value


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"кафе": ["東京 🎥", 2**200, -(2**63), 1e308, 5e-324, True, None]}, None),
        (_nested(4), None),
        (_nested(5), "nests deeper than 4 levels"),
        ({"a": [[[1]]]}, None),
        ({"a": [[[[1]]]]}, "nests deeper than 4 levels"),
        ({"a\x00": 1}, "keys must not contain NUL (\\u0000) characters"),
        ({"a": {"\ud800": 1}}, "keys must not contain unpaired UTF-16 surrogates"),
        ({"a": ["ok", "x\x00"]}, "strings must not contain NUL (\\u0000) characters"),
        ({"a": [{"b": "\udc00"}]}, "strings must not contain unpaired UTF-16 surrogates"),
        ({"a": float("nan")}, "numbers must be finite (NaN and Infinity are not JSON)"),
        ({"a": [float("inf")]}, "numbers must be finite (NaN and Infinity are not JSON)"),
        ({"a": {"b": float("-inf")}}, "numbers must be finite (NaN and Infinity are not JSON)"),
    ],
)
def test_json_postgresql_refuses_or_cannot_serve_back_is_named(value: dict[str, Any], problem: str | None) -> None:
    assert json_problem(value, max_depth=4) == problem


def test_a_very_deep_value_is_refused_without_recursing() -> None:
    value: list[Any] = []
    for _ in range(100_000):
        value = [value]
    assert json_problem({"a": value}, max_depth=32) == "nests deeper than 32 levels"
