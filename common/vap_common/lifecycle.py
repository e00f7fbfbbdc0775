"""The scenario lifecycle: states, failure reasons and the ONE transition table everybody checks."""

from __future__ import annotations

from enum import StrEnum


class ScenarioStatus(StrEnum):
    INIT_STARTUP = "init_startup"
    IN_STARTUP_PROCESSING = "in_startup_processing"
    ACTIVE = "active"
    INIT_SHUTDOWN = "init_shutdown"
    IN_SHUTDOWN_PROCESSING = "in_shutdown_processing"
    INACTIVE = "inactive"
    FAILED = "failed"


class FailureReason(StrEnum):
    """Fixed reason codes shared by the API, CR conditions, status events and metrics."""

    SOURCE_UNREACHABLE = "SourceUnreachable"  # cannot connect to the camera
    SOURCE_STALLED = "SourceStalled"  # connected, but no frames arrive
    # The camera's host (as the runner resolved it just before connecting) or a redirect of it is an
    # address the camera policy refuses (vap_common.address_policy): not retried.
    CAMERA_ADDRESS_REFUSED = "CameraAddressRefused"
    DECODE_ERROR = "DecodeError"
    DOWNSTREAM_BLOCKED = "DownstreamBlocked"  # Kafka/backpressure: not the camera's fault
    DETECTOR_ERROR = "DetectorError"
    RUNNER_CRASH_LOOP = "RunnerCrashLoop"
    INVALID_CONFIG = "InvalidConfig"
    CREDENTIALS_UNREADABLE = "CredentialsUnreadable"  # no camera key of the operator opens them


S = ScenarioStatus

# Allowed moves. Events come from several producers (API, orchestrator, runner, operator), so a later
# state may arrive before an earlier one: a forward jump is allowed, a backward move never is.
# `inactive` and `failed` are terminal.
TRANSITIONS: dict[ScenarioStatus, frozenset[ScenarioStatus]] = {
    S.INIT_STARTUP: frozenset({S.IN_STARTUP_PROCESSING, S.ACTIVE, S.INIT_SHUTDOWN, S.INACTIVE, S.FAILED}),
    S.IN_STARTUP_PROCESSING: frozenset({S.ACTIVE, S.INIT_SHUTDOWN, S.INACTIVE, S.FAILED}),
    S.ACTIVE: frozenset({S.INIT_SHUTDOWN, S.IN_SHUTDOWN_PROCESSING, S.INACTIVE, S.FAILED}),
    S.INIT_SHUTDOWN: frozenset({S.IN_SHUTDOWN_PROCESSING, S.INACTIVE, S.FAILED}),
    S.IN_SHUTDOWN_PROCESSING: frozenset({S.INACTIVE, S.FAILED}),
    S.INACTIVE: frozenset(),
    S.FAILED: frozenset(),
}

# States in which a shutdown request needs no new command: it is already stopping or stopped.
SHUTDOWN_NOOP_STATES = frozenset({S.INIT_SHUTDOWN, S.IN_SHUTDOWN_PROCESSING, S.INACTIVE, S.FAILED})


def can_transition(current: ScenarioStatus, new: ScenarioStatus) -> bool:
    """True when a scenario in ``current`` may move to ``new``."""
    return new in TRANSITIONS[current]


def is_terminal(status: ScenarioStatus) -> bool:
    """True for states a scenario never leaves."""
    return not TRANSITIONS[status]
