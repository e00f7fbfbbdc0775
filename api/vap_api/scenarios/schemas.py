"""Request and response bodies of the scenario endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from vap_common.lifecycle import FailureReason, ScenarioStatus


class DetectorIn(BaseModel):
    """The detector plug-in and its settings (a JSON object; the runner validates it in depth)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="mock", min_length=1, max_length=64, examples=["mock", "hog_person"])
    settings: dict[str, Any] = Field(default_factory=dict)


class ScenarioInit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    camera_url: str = Field(min_length=1, examples=["rtsp://user:password@camera.local:554/stream"])
    name: str | None = Field(default=None, max_length=200)
    detector: DetectorIn = Field(default_factory=DetectorIn)
    analysis_fps: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="Frames per second the detector analyses (at most VAP_MAX_ANALYSIS_FPS); absent: the runtime's "
        "rate. Counts against the tenant's analysis quota.",
        examples=[5],
    )


class ScenarioState(BaseModel):
    """Answer of init and shutdown."""

    scenario_uuid: UUID
    status: ScenarioStatus


class DetectorOut(BaseModel):
    name: str
    settings: dict[str, Any]


class RuntimeOut(BaseModel):
    """What the runtime reports of the scenario's runner; defaults before it has a runner record."""

    heartbeat_at: datetime | None = Field(description="Last renewal of the runtime's lease on the running runner")
    stale: bool = Field(description="Active (or shutting down) but the lease lapsed: the runner may not be running")
    wait_reason: str | None = Field(
        description="Why a runner that should run is not running yet (e.g. the runtime is at capacity)"
    )
    restarts: int = Field(description="Times the runtime restarted the runner")
    results_dropped: int = Field(
        description="Results its runners reported dropping, oldest first, because a Kafka outage outlasted their "
        "undelivered-results budget (VAP_UNDELIVERED_RESULTS_MIB); 0 when none was lost"
    )


class ScenarioOut(BaseModel):
    scenario_uuid: UUID
    name: str | None
    status: ScenarioStatus
    camera_url: str = Field(description="With any password or secret query value replaced by ***")
    detector: DetectorOut
    analysis_fps: float | None = Field(description="As registered; null: the runtime's rate")
    error_reason: FailureReason | None
    error_message: str | None
    created_at: datetime
    updated_at: datetime
    runtime: RuntimeOut


class ScenarioPage(BaseModel):
    items: list[ScenarioOut]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page")
