"""What PostgreSQL can store: the one home of that rule, used by the API (a 422 naming the field) and
by the message contracts (a dead-lettered message instead of a consumer retrying forever).

PostgreSQL ``text`` and ``jsonb`` refuse a NUL character, the driver cannot encode a lone UTF-16
surrogate (both valid JSON escapes), and ``jsonb`` refuses NaN and Infinity (which Python's JSON
parser accepts). Large integers and every finite float are fine.
"""

from __future__ import annotations

import math

# Deepest nesting the contracts accept in free-form JSON (the API's own limit is a setting below it).
MAX_JSON_DEPTH = 200


def text_problem(text: str) -> str | None:
    """Why PostgreSQL cannot store ``text`` (as text or as a jsonb string), or None."""
    if "\x00" in text:
        return "must not contain NUL (\\u0000) characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must not contain unpaired UTF-16 surrogates"
    return None


def json_problem(value: object, *, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why ``value`` (parsed JSON) cannot be stored as jsonb and served back, or None.

    Iterative, so a deeply nested value cannot exhaust the interpreter's stack while it is checked.
    """
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if problem := text_problem(item):
                return f"strings {problem}"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "numbers must be finite (NaN and Infinity are not JSON)"
        elif isinstance(item, (dict, list)):
            if depth > max_depth:
                return f"nests deeper than {max_depth} levels"
            if isinstance(item, dict):
                for key in item:
                    if problem := text_problem(key):
                        return f"keys {problem}"
            pending.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return None
