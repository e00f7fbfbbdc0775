"""Message contracts on the Kafka topics (JSON values, key = scenario UUID).

Every producer serialises with :func:`encode` and every consumer parses with :func:`decode`, so a
schema change happens here once. A value that does not parse raises :class:`InvalidMessage`, which
consumers route to the topic's dead-letter queue.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self, TypeVar, overload
from uuid import UUID

import msgspec
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from vap_common.lifecycle import FailureReason, ScenarioStatus
from vap_common.storable import json_problem
from vap_common.tenants import DEFAULT_TENANT, TENANT_PATTERN


def utc_now() -> datetime:
    return datetime.now(UTC)


# What PostgreSQL can store: a contract that lets through a value the database refuses would stall
# its consumer on that message, so every bound the database has is checked here first.
BIGINT_MAX = 2**63 - 1
# Text without NUL (vap_common.storable's rule as a pattern, checked in Rust on the hot path; lone
# surrogates are already invalid JSON).
Text = Annotated[str, Field(pattern=r"^[^\x00]*$")]
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
# Frames per second a scenario's detector analyses.
AnalysisFps = Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)]
Tenant = Annotated[str, Field(pattern=TENANT_PATTERN)]
# Detections one frame result may carry: bounds a result's size (far above any real detector's).
MAX_DETECTIONS_PER_FRAME = 1000
MAX_CLASS_NAME_LENGTH = 100
MAX_CAMERA_URL_LENGTH = 8192


def storable_json(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` unchanged if PostgreSQL's jsonb can store it (vap_common.storable), else ValueError."""
    if problem := json_problem(value):
        raise ValueError(problem)
    return value


StorableJson = Annotated[dict[str, Any], AfterValidator(storable_json)]


class Contract(BaseModel):
    """Base of every message: immutable, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class DetectorSpec(Contract):
    """Which detector plug-in a scenario uses and its settings (validated by the runner's registry)."""

    name: Text = Field(default="mock", min_length=1, max_length=64)
    settings: StorableJson = Field(default_factory=dict)


class ScenarioCommand(Contract):
    """`init_scenario`: the API asks the orchestrator to start or stop a scenario."""

    scenario_uuid: UUID
    command: Literal["start", "shutdown"]
    camera_url: Text = Field(max_length=MAX_CAMERA_URL_LENGTH)
    detector: DetectorSpec = Field(default_factory=DetectorSpec)
    issued_at: datetime = Field(default_factory=utc_now)
    tenant: Tenant = DEFAULT_TENANT  # the default: sent before tenants existed
    analysis_fps: AnalysisFps | None = None  # None: the runtime's default (and sent before rates existed)


class DeployCommand(Contract):
    """`to_deploy`: the orchestrator asks the runtime to run or stop one runner."""

    scenario_uuid: UUID
    worker_id: Text = Field(min_length=1, max_length=64)
    action: Literal["deploy", "stop"]
    camera_url: Text = Field(max_length=MAX_CAMERA_URL_LENGTH)
    detector: DetectorSpec = Field(default_factory=DetectorSpec)
    issued_at: datetime = Field(default_factory=utc_now)
    tenant: Tenant = DEFAULT_TENANT  # the default: sent before tenants existed
    analysis_fps: AnalysisFps | None = None


class Detection(Contract):
    class_name: Text = Field(alias="class", min_length=1, max_length=MAX_CLASS_NAME_LENGTH)
    confidence: float = Field(ge=0.0, le=1.0)
    bbox: tuple[FiniteFloat, FiniteFloat, FiniteFloat, FiniteFloat]  # x1, y1, x2, y2 in pixels of the original frame


class FrameResult(Contract):
    """`results`: one analysed frame.

    ``run_id`` names one runner session: (scenario, run, frame) is the inbox's dedupe key, so a
    redelivered message is stored once while a restarted runner (a new run) never collides.
    """

    scenario_uuid: UUID
    run_id: Text = Field(min_length=1, max_length=64)
    frame_number: int = Field(ge=0, le=BIGINT_MAX)
    detections: list[Detection] = Field(max_length=MAX_DETECTIONS_PER_FRAME)
    timestamp: datetime


# FrameResult as msgspec structs, for the one hot path that validates every result but needs no pydantic
# models (the inbox turns them straight into COPY rows): the same fields and constraints, validated about
# 3x faster. msgspec is strict (no numeric timestamps, no numeric strings), so whatever it refuses is
# decided by FrameResult itself (see _frame_result_record); tests/unit/common/test_contracts.py keeps
# the two in step.
class DetectionRecord(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False, rename={"class_name": "class"}
):
    class_name: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_CLASS_NAME_LENGTH)]
    confidence: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
    bbox: tuple[float, float, float, float]  # msgspec refuses NaN, Infinity and out-of-range numbers


class FrameResultRecord(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    scenario_uuid: UUID
    run_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    frame_number: Annotated[int, msgspec.Meta(ge=0, le=BIGINT_MAX)]
    detections: Annotated[list[DetectionRecord], msgspec.Meta(max_length=MAX_DETECTIONS_PER_FRAME)]
    timestamp: datetime


_RECORD_DECODER = msgspec.json.Decoder(FrameResultRecord)
# A NUL in a JSON string is always this escape (raw control characters are invalid JSON).
_NUL_ESCAPE = b"\\u0000"


def _frame_result_record(raw: bytes) -> FrameResultRecord:
    if _NUL_ESCAPE not in raw:
        try:
            return _RECORD_DECODER.decode(raw)
        except msgspec.MsgspecError:
            pass
    # What the strict fast path does not take (a value with a NUL escape, a lax one such as a numeric
    # timestamp, or an invalid one): the contract decides, and its canonical form becomes the record.
    model = decode(FrameResult, raw)
    try:
        return _RECORD_DECODER.decode(encode(model))
    except msgspec.MsgspecError as error:  # the two definitions disagree: refuse rather than stall
        raise InvalidMessage(f"FrameResultRecord: {error}") from error


# What a consumer can decode a topic's values into.
Decodable = type[Contract] | type[FrameResultRecord]


class ResultDrops(Contract):
    """What one runner run had to drop so far (a live stream over its undelivered-results budget).

    Counts are the run's totals, not increments, so a redelivered or reordered report stores the same.
    """

    run_id: Text = Field(min_length=1, max_length=64)
    dropped: int = Field(ge=1, le=BIGINT_MAX)
    first_frame: int = Field(ge=0, le=BIGINT_MAX)
    last_frame: int = Field(ge=0, le=BIGINT_MAX)


class StatusEvent(Contract):
    """`scenario_status`: a lifecycle step reported by the orchestrator, runner or operator; a runner
    that dropped results says so in ``drops`` (with its unchanged status)."""

    scenario_uuid: UUID
    status: ScenarioStatus
    reason: FailureReason | None = None
    message: Text | None = Field(default=None, max_length=2000)
    drops: ResultDrops | None = None
    occurred_at: datetime = Field(default_factory=utc_now)


class EventType(StrEnum):
    OBJECT_APPEARED = "object_appeared"
    OBJECT_LOST = "object_lost"
    OBJECT_ENTERED = "object_entered"  # a zone
    OBJECT_LEFT = "object_left"  # a zone, after dwell_seconds in it
    LINE_CROSSED = "line_crossed"


# Which optional fields each event type carries (and no other type may).
_ZONE_EVENTS = frozenset({EventType.OBJECT_ENTERED, EventType.OBJECT_LEFT})
ShapeName = Annotated[Text, Field(min_length=1, max_length=64)]


class ObjectEvent(Contract):
    """`events`: something a tracked object did, as a runner run found it.

    (scenario, run, sequence) names one event: a redelivery stores nothing twice, and a restarted
    runner (a new run) never collides with the old one's events.
    """

    scenario_uuid: UUID
    run_id: Text = Field(min_length=1, max_length=64)
    sequence: int = Field(ge=0, le=BIGINT_MAX)  # per run, in the order found
    type: EventType
    track_id: int = Field(ge=0, le=BIGINT_MAX)
    class_name: Text = Field(alias="class", min_length=1, max_length=MAX_CLASS_NAME_LENGTH)
    frame_number: int = Field(ge=0, le=BIGINT_MAX)
    captured_at: AwareDatetime
    zone: ShapeName | None = None  # object_entered / object_left
    line: ShapeName | None = None  # line_crossed
    # line_crossed, as seen walking the line from its first point to its second.
    direction: Literal["left_to_right", "right_to_left"] | None = None
    dwell_seconds: FiniteFloat | None = Field(default=None, ge=0)  # object_left: time inside the zone

    @model_validator(mode="after")
    def _fields_match_type(self) -> Self:
        expected = {
            "zone": self.type in _ZONE_EVENTS,
            "line": self.type is EventType.LINE_CROSSED,
            "direction": self.type is EventType.LINE_CROSSED,
            "dwell_seconds": self.type is EventType.OBJECT_LEFT,
        }
        for name, wanted in expected.items():
            if (getattr(self, name) is not None) != wanted:
                raise ValueError(f"{name} is {'required' if wanted else 'not allowed'} for {self.type.value}")
        return self

    @property
    def event_id(self) -> str:
        return event_id(self.scenario_uuid, self.run_id, self.sequence)


def event_id(scenario_uuid: UUID, run_id: str, sequence: int) -> str:
    """The id that names one event everywhere (the API, webhooks): receivers dedupe on it."""
    return f"{scenario_uuid}:{run_id}:{sequence}"


class InvalidMessage(ValueError):
    """A Kafka value that is not JSON or does not match its contract."""


ContractT = TypeVar("ContractT", bound=Contract)


def encode(message: Contract) -> bytes:
    """Serialise a contract to the JSON bytes put on the wire (aliases, e.g. ``class``, applied)."""
    return message.model_dump_json(by_alias=True).encode()


@overload
def decode(contract: type[ContractT], raw: bytes | None) -> ContractT: ...
@overload
def decode(contract: type[FrameResultRecord], raw: bytes | None) -> FrameResultRecord: ...
def decode(contract: Decodable, raw: bytes | None) -> Any:
    """Parse wire bytes into ``contract`` (a model, or FrameResultRecord) or raise
    :class:`InvalidMessage` with a short reason."""
    if raw is None:
        raise InvalidMessage("empty message value")
    if contract is FrameResultRecord:
        return _frame_result_record(raw)
    try:
        return contract.model_validate_json(raw)  # type: ignore[union-attr]
    except ValidationError as error:
        name = error.title
        raise InvalidMessage(
            f"{name}: {error.error_count()} error(s): {error.errors()[0]['msg']} at {error.errors()[0]['loc']}"
        ) from error
