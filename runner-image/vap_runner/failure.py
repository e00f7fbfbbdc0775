"""Why a run cannot go on."""

from __future__ import annotations

from dataclasses import dataclass

from vap_common.lifecycle import FailureReason


@dataclass(frozen=True)
class Failure:
    """A reason code of the lifecycle plus a message for people; published with the `failed` status."""

    reason: FailureReason
    message: str
