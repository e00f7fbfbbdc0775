"""Reading stored results."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from vap_api.errors import NotFound
from vap_common.lifecycle import ScenarioStatus
from vap_common.schema import Scenario

# One page of frames as a JSON array, built by PostgreSQL: the stored detections are already JSON,
# so parsing and re-serialising them in Python would only cost time (about 5x the requests/s here,
# bench/api_http.py). A restarted runner (a new run_id) may store a frame number again: each frame
# is returned once, from the earliest run (lowest id). Served by ix_scenario_results_frame_order.
_PAGE_JSON = text(
    """
    SELECT coalesce(
        json_agg(
            json_build_object(
                'frame_number', frame_number,
                'detections', detections,
                'timestamp', to_char(timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
            )
            ORDER BY frame_number
        ),
        '[]'
    )::text
    FROM (
        SELECT DISTINCT ON (frame_number) frame_number, detections, timestamp
        FROM scenario_results
        WHERE scenario_uuid = :scenario_uuid AND frame_number > :after_frame
        ORDER BY frame_number, id
        LIMIT :limit
    ) AS page
    """
)


def get_predictions_json(*, session: Session, scenario_uuid: UUID, after_frame: int, limit: int) -> tuple[ScenarioStatus, str]:
    """The scenario's status and up to ``limit`` frames after ``after_frame`` as a JSON array; NotFound if unknown."""
    status = session.scalar(select(Scenario.status).where(Scenario.scenario_uuid == scenario_uuid))
    if status is None:
        raise NotFound(f"scenario {scenario_uuid} not found")
    page = session.execute(_PAGE_JSON, {"scenario_uuid": scenario_uuid, "after_frame": after_frame, "limit": limit}).scalar_one()
    return ScenarioStatus(status), page
