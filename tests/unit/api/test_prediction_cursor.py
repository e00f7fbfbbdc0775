"""The prediction cursor and the file-or-live rule of vap_api.predictions, no servers."""

from __future__ import annotations

import base64

import pytest

from vap_api.errors import InvalidRequest
from vap_api.predictions.cursor import START, Position, decode_cursor, encode_cursor
from vap_api.predictions.service import serves_each_frame_once


@pytest.mark.parametrize("position", [START, Position(0, 17), Position(748_213, 3), Position(2**64 - 1, 2**63 - 1)])
def test_cursor_round_trips_its_position(position: Position) -> None:
    cursor = encode_cursor(position)
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor
    assert decode_cursor(cursor) == position


def test_positions_order_by_transaction_then_id() -> None:
    # The order PostgreSQL serves: a row of a later transaction comes after, whatever its id.
    assert sorted([Position(9, 1), Position(7, 50), Position(7, 3), Position(0, 99)]) == [
        Position(0, 99),
        Position(7, 3),
        Position(7, 50),
        Position(9, 1),
    ]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "%%%",
        "garbage!",
        _b64(b"12"),  # no separator
        _b64(b"12.x"),
        _b64(b"-1.5"),
        _b64(b"1.-5"),
        _b64(b" 1.5"),
        _b64(b"1.5.6"),
        _b64("\u00b2.1".encode()),  # a Unicode digit
        _b64(b"\xff\xfe"),
        _b64(f"{2**64}.1".encode()),  # past xid8
        _b64(f"1.{2**63}".encode()),  # past bigint
    ],
)
def test_tampered_cursor_is_refused_naming_the_parameter(cursor: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        decode_cursor(cursor)
    assert raised.value.location == ("query", "cursor")
    assert "next_cursor" in raised.value.detail


@pytest.mark.parametrize(
    ("camera_url", "once"),
    [
        ("file:///media/car.mp4", True),
        ("FILE:///media/car.mp4", True),
        ("file://localhost/media/car.mp4", True),
        ("rtsp://user:secret@cam.example/stream", False),
        ("rtsps://cam.example/stream", False),
        ("http://cam.example/mjpeg", False),
        ("https://cam.example/mjpeg", False),
        ("http://[::1", False),  # unparsable: not a file
    ],
)
def test_only_file_sources_serve_each_frame_number_once(camera_url: str, once: bool) -> None:
    assert serves_each_frame_once(camera_url) is once
