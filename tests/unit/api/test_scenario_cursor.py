"""The opaque list cursor of vap_api.scenarios.service, no servers."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import pytest

from vap_api.errors import InvalidRequest
from vap_api.scenarios.service import decode_cursor, encode_cursor


def test_cursor_round_trips_its_position() -> None:
    position = (datetime(2026, 11, 25, 12, 30, 1, 123456, tzinfo=UTC), uuid.uuid4())
    cursor = encode_cursor(*position)
    assert "=" not in cursor and "/" not in cursor
    assert decode_cursor(cursor) == position


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "%%%",
        base64.urlsafe_b64encode(b"2026-11-25T12:00:00+00:00|nope").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        base64.urlsafe_b64encode(f"2026-11-25T12:00:00|{uuid.UUID(int=1)}".encode()).decode(),
    ],
)
def test_tampered_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        decode_cursor(cursor)
    assert raised.value.location == ("query", "cursor")
