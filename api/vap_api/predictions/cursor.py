"""The prediction cursor: an opaque token for a position in a scenario's stored results (and events,
``vap_api.events.service``, which page the same way).

A position is (stored_xact, id) of the last row served: the transaction that stored it and its
row id (see ``vap_api.predictions.service`` for why both). The token is that pair, base64url-encoded;
clients must treat it as opaque.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from vap_api.errors import InvalidRequest

_XID8_MAX = 2**64 - 1
_BIGINT_MAX = 2**63 - 1
_INVALID = "cursor is not valid; use next_cursor from the previous page"


@dataclass(frozen=True, order=True)
class Position:
    """After this (stored_xact, id); compared in that order, as PostgreSQL orders the rows."""

    stored_xact: int
    id: int


# Before every row: migrated rows have stored_xact 0 and ids from 1.
START = Position(0, 0)


def encode_cursor(position: Position) -> str:
    """The opaque token of ``position``."""
    return base64.urlsafe_b64encode(f"{position.stored_xact}.{position.id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """The position in ``cursor``, or InvalidRequest naming the ``cursor`` query parameter."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        stored_xact, separator, row_id = raw.partition(".")
        if not (separator and stored_xact.isdigit() and row_id.isdigit()):
            raise ValueError(raw)
        position = Position(int(stored_xact), int(row_id))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequest(("query", "cursor"), _INVALID) from None
    if position.stored_xact > _XID8_MAX or position.id > _BIGINT_MAX:
        raise InvalidRequest(("query", "cursor"), _INVALID)
    return position
