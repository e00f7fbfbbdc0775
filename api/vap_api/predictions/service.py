"""Reading stored results: every result once, in the order it was stored, behind a cursor that never skips.

* Identity. A result is (scenario, run, frame): a restarted runner is a new run that numbers its
  frames from 0 again, so frame numbers alone collide. Results are served in stored order (for one
  run that is capture order: a run publishes in frame order on one partition per scenario and the
  inbox stores in that order), each with its ``run_id``.
* No skips. The order is (stored_xact, id): ``stored_xact`` is the storing transaction's id
  (``pg_current_xact_id()``, migration 0004). Row ids alone would skip: two overlapping inbox
  transactions take ids in one order and may commit in the other, so a reader between the commits
  sees the higher id, and "id > last id" never returns the lower one. A page holds only rows whose
  transaction is below the reader's snapshot xmin: every such transaction has ended, and any
  transaction still to commit has an id at or above xmin, so nothing can appear behind a cursor
  later. The price: a row is served only once every older transaction (of the whole cluster) has
  ended, one inbox batch's duration in practice, longer behind a long-running transaction.
* File reruns. A file scenario whose runner restarts reads the file from frame 0 again: those are
  the same frames, so a row is skipped when an earlier-stored row of its scenario has the same
  frame_number (NOT EXISTS on ix_scenario_results_frame_order). A live scenario's new run is new
  footage: every row is served. The rule is applied when reading, not storing: the inbox keeps
  storing exactly what each run published (its COPY fast path and its (scenario, run, frame)
  deduplication unchanged, and every result kept), and the decision is stable because every row
  stored earlier than a served one is already visible (its transaction is at or below the row's).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit
from uuid import UUID

from sqlalchemy import TextClause, select, text
from sqlalchemy.orm import Session

from vap_api.errors import NotFound
from vap_api.predictions.cursor import START, Position, decode_cursor, encode_cursor
from vap_common import camera
from vap_common.lifecycle import ScenarioStatus
from vap_common.schema import Scenario

# One page as a JSON array, built by PostgreSQL: the stored detections are already JSON, so parsing
# and re-serialising them in Python would only cost time (about 5x the requests/s, bench/api_http.py).
# Served by ix_scenario_results_page (scenario_uuid, stored_xact, id); the planner may prefer
# ix_scenario_results_frame_order when an after_frame filter leaves few rows.
_PAGE = """
    WITH page AS (
        SELECT r.stored_xact, r.id, r.run_id, r.frame_number, r.detections, r.timestamp
        FROM scenario_results AS r
        WHERE r.scenario_uuid = :scenario_uuid
          AND (r.stored_xact, r.id) > (CAST(:after_xact AS xid8), :after_id)
          AND r.stored_xact < pg_snapshot_xmin(pg_current_snapshot())
          {conditions}
        ORDER BY r.stored_xact, r.id
        LIMIT :limit
    )
    SELECT
        coalesce(
            json_agg(
                json_build_object(
                    'frame_number', frame_number,
                    'run_id', run_id,
                    'detections', detections,
                    'timestamp', to_char(timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
                )
                ORDER BY stored_xact, id
            ),
            '[]'
        )::text AS results,
        (array_agg(stored_xact::text ORDER BY stored_xact DESC, id DESC))[1] AS last_xact,
        (array_agg(id ORDER BY stored_xact DESC, id DESC))[1] AS last_id
    FROM page
"""
_AFTER_FRAME = "AND r.frame_number > :after_frame"
_FIRST_OF_ITS_FRAME = """AND NOT EXISTS (
              SELECT FROM scenario_results AS earlier
              WHERE earlier.scenario_uuid = r.scenario_uuid AND earlier.frame_number = r.frame_number
                AND (earlier.stored_xact, earlier.id) < (r.stored_xact, r.id)
          )"""


def _page_query(*, after_frame: bool, first_of_frame: bool) -> TextClause:
    conditions = [
        condition
        for condition, wanted in ((_AFTER_FRAME, after_frame), (_FIRST_OF_ITS_FRAME, first_of_frame))
        if wanted
    ]
    return text(_PAGE.format(conditions="\n          ".join(conditions)))


# The four statements, built once (their text is the cache key of SQLAlchemy and of the server's plans).
_QUERIES = {
    (frame, first): _page_query(after_frame=frame, first_of_frame=first)
    for frame in (False, True)
    for first in (False, True)
}


@dataclass(frozen=True)
class PredictionPage:
    """The scenario's status, one page of results as a JSON array (PostgreSQL's text) and the cursor after it."""

    status: ScenarioStatus
    results_json: str
    next_cursor: str


def serves_each_frame_once(camera_url: str) -> bool:
    """Whether a frame number is served once across runs: a file source (a rerun re-reads the same
    frames), not a live one (a new run is new footage)."""
    try:
        return urlsplit(camera_url).scheme.lower() == camera.FILE_SCHEME
    except ValueError:
        return False


def get_page(
    *, session: Session, tenant: str, scenario_uuid: UUID, cursor: str | None, after_frame: int | None, limit: int
) -> PredictionPage:
    """The scenario's status, up to ``limit`` results after ``cursor`` and the next page's cursor;
    NotFound if ``tenant`` has no such scenario."""
    position = START if cursor is None else decode_cursor(cursor)
    scenario = session.execute(
        select(Scenario.status, Scenario.camera_url).where(
            Scenario.scenario_uuid == scenario_uuid, Scenario.tenant == tenant
        )
    ).one_or_none()
    if scenario is None:
        raise NotFound(f"scenario {scenario_uuid} not found")
    query = _QUERIES[after_frame is not None, serves_each_frame_once(scenario.camera_url)]
    parameters = {
        "scenario_uuid": scenario_uuid,
        "after_xact": str(position.stored_xact),
        "after_id": position.id,
        "limit": limit,
        "after_frame": after_frame,
    }
    page = session.execute(query, parameters).one()
    if page.last_xact is not None:
        position = Position(int(page.last_xact), int(page.last_id))
    return PredictionPage(ScenarioStatus(scenario.status), page.results, encode_cursor(position))
