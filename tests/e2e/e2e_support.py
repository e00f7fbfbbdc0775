"""Helpers of the end-to-end tests: the REST API as a user sees it, the `results` topic as the
runners published it, `scenario_results` as the inbox stored it, and the processes of this machine."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx2
from sqlalchemy import Engine, text

from tests.conftest import MEDIA
from tests.helpers import TopicReader, pids_with_env, service_settings, wait_until
from vap_common.contracts import FrameResult, decode
from vap_common.settings import DatabaseSettings, KafkaSettings
from vap_common.topics import Topic

# The file every file scenario reads: 377 frames at 12.5 fps (checked by the `sample_video` fixture).
CAR_VIDEO = MEDIA / "car-detection.mp4"
CAR_FRAMES = 377
CAR_FPS = 12.5
# The runners analyse TARGET_FPS frames per second of the file's own clock: 12.5 / 2.5 = every 5th frame.
TARGET_FPS = 2.5
CAR_SAMPLED = list(range(0, CAR_FRAMES, 5))  # 0, 5, ..., 375: 76 frames
CAR_URL = f"file://{CAR_VIDEO}"
# A live camera (RTSP) plays this one: 139 s at 10 fps, longer than any test needs.
PERSON_VIDEO = MEDIA / "one-by-one-person-detection.mp4"


def platform_settings(database: DatabaseSettings, kafka: KafkaSettings, **extra: str) -> dict[str, str]:
    """The VAP_* settings of a whole platform under test (API, relay, inbox, operator and its runners)
    on ``database`` and ``kafka``: file:// cameras allowed, cheap runners that restart fast."""
    return service_settings(
        database,
        kafka,
        VAP_LOG_LEVEL="INFO",
        VAP_DATABASE__POOL_SIZE="3",
        # The API accepts file:// camera URLs (the runners read the sample videos of this machine); the API
        # and the runners (their operator passes its policy on) accept cameras on loopback (the test
        # cameras), not the platform's own servers there.
        VAP_ALLOW_FILE_URLS="true",
        VAP_CAMERA_POLICY__ALLOW="127.0.0.0/8",
        VAP_ACCESS_LOG="false",
        # Cheap runners: analyse every 5th frame of the 12.5 fps sample file, one inference process.
        VAP_RUNNER__TARGET_FPS=str(TARGET_FPS),
        VAP_RUNNER__MAX_WORKERS="1",
        VAP_RUNNER__STOP_GRACE_SECONDS="10",
        # A crashed runner is restarted after 0.5 s (doubling), not 2 s.
        VAP_RESTART__BACKOFF_BASE_SECONDS="0.5",
        VAP_RESTART__BACKOFF_MAX_SECONDS="2",
        VAP_RELAY__POLL_INTERVAL_SECONDS="0.5",
        **extra,
    )


TERMINAL = ("inactive", "failed")


# --- the REST API -----------------------------------------------------------------------------------


class Api:
    """The platform's REST API over HTTP, as a user calls it."""

    def __init__(self, base_url: str, *, api_key: str, check_alive: Callable[[], None] = lambda: None) -> None:
        self.http = httpx2.Client(base_url=base_url, timeout=15, headers={"Authorization": f"Bearer {api_key}"})
        self._check_alive = check_alive  # raises if a platform process died on its own

    def close(self) -> None:
        self.http.close()

    def init(
        self,
        camera_url: str,
        *,
        detector: str = "mock",
        settings: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> uuid.UUID:
        response = self.http.post(
            "/api/v1/scenario/init",
            json={"camera_url": camera_url, "name": name, "detector": {"name": detector, "settings": settings or {}}},
        )
        assert response.status_code == 201, f"POST /scenario/init: {response.status_code} {response.text}"
        body = response.json()
        assert body["status"] == "init_startup", body
        return uuid.UUID(body["scenario_uuid"])

    def shutdown(self, scenario_uuid: uuid.UUID) -> dict[str, Any]:
        response = self.http.post(f"/api/v1/scenario/{scenario_uuid}/shutdown")
        assert response.status_code in (200, 202), f"POST /shutdown: {response.status_code} {response.text}"
        return dict(response.json())

    def scenario(self, scenario_uuid: uuid.UUID) -> dict[str, Any]:
        response = self.http.get(f"/api/v1/scenario/{scenario_uuid}")
        assert response.status_code == 200, f"GET /scenario: {response.status_code} {response.text}"
        return dict(response.json())

    def status(self, scenario_uuid: uuid.UUID) -> str:
        return str(self.scenario(scenario_uuid)["status"])

    def wait_status(self, scenario_uuid: uuid.UUID, wanted: str, *, timeout_seconds: float) -> dict[str, Any]:
        """Wait until the scenario is ``wanted``; fail at once if it ends in another terminal state."""
        last: dict[str, Any] = {}

        def reached() -> bool:
            nonlocal last
            self._check_alive()
            last = self.scenario(scenario_uuid)
            if last["status"] in TERMINAL and last["status"] != wanted:
                raise AssertionError(
                    f"scenario {scenario_uuid} ended {last['status']} "
                    f"({last['error_reason']}: {last['error_message']}), expected {wanted}"
                )
            return bool(last["status"] == wanted)

        wait_until(reached, timeout_seconds=timeout_seconds, what=f"scenario {scenario_uuid} to be {wanted}")
        return last

    def prediction_page(
        self,
        scenario_uuid: uuid.UUID,
        *,
        cursor: str | None = None,
        after_frame: int | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        params: dict[str, int | str] = {}
        if cursor is not None:
            params["cursor"] = cursor
        if after_frame is not None:
            params["after_frame"] = after_frame
        if limit is not None:
            params["limit"] = limit
        response = self.http.get(f"/api/v1/prediction/{scenario_uuid}", params=params)
        assert response.status_code == 200, f"GET /prediction: {response.status_code} {response.text}"
        body = dict(response.json())
        assert isinstance(body["next_cursor"], str) and body["next_cursor"], body
        return body

    def frames(
        self, scenario_uuid: uuid.UUID, *, after_frame: int | None = None, page_size: int = 50
    ) -> list[dict[str, Any]]:
        """Every result served now (with frame_number > ``after_frame`` if given), in stored order,
        following next_cursor page by page until a short page."""
        frames: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            body = self.prediction_page(scenario_uuid, cursor=cursor, after_frame=after_frame, limit=page_size)
            frames.extend(body["results"])
            if len(body["results"]) < page_size:
                return frames
            cursor = body["next_cursor"]

    def frame_numbers(self, scenario_uuid: uuid.UUID) -> list[int]:
        """The frame numbers served, in stored order: a live scenario's restarted run appears after the
        earlier run; a file scenario's rerun adds only the frames no earlier run stored."""
        return [frame["frame_number"] for frame in self.frames(scenario_uuid)]


# --- Kafka: what the runners published ---------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    run_id: str
    frame_number: int


class ResultsTopic:
    """The test's `results` topic from its beginning, decoded."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self._reader = TopicReader(kafka, Topic.RESULTS)
        self.results: list[FrameResult] = []

    def read_to_end(self, *, timeout_seconds: float = 30.0) -> list[FrameResult]:
        """Everything published so far (up to each partition's high watermark)."""
        self.results = [
            decode(FrameResult, value) for value in self._reader.read_to_end(timeout_seconds=timeout_seconds)
        ]
        return self.results

    def of(self, scenario_uuid: uuid.UUID) -> list[Published]:
        """What the runners of one scenario published, in publishing order (call read_to_end first)."""
        return [
            Published(result.run_id, result.frame_number)
            for result in self.results
            if result.scenario_uuid == scenario_uuid
        ]

    def close(self) -> None:
        self._reader.close()


def runs_of(published: Iterable[Published]) -> dict[str, list[int]]:
    """Frame numbers per run, in order (dict order: the order the runs started publishing)."""
    runs: dict[str, list[int]] = {}
    for item in published:
        runs.setdefault(item.run_id, []).append(item.frame_number)
    return runs


# --- PostgreSQL: what the inbox stored ----------------------------------------------------------------


def stored(engine: Engine, scenario_uuid: uuid.UUID) -> list[Published]:
    """Every row of scenario_results of one scenario, in stored order (duplicates included, if any)."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT run_id, frame_number FROM scenario_results WHERE scenario_uuid = :uuid ORDER BY stored_xact, id"
            ),
            {"uuid": scenario_uuid},
        ).all()
    return [Published(row.run_id, int(row.frame_number)) for row in rows]


def servable(engine: Engine, scenario_uuid: uuid.UUID) -> bool:
    """Is every stored row of the scenario one the API serves (its transaction below the snapshot xmin)?"""
    with engine.connect() as connection:
        return bool(
            connection.execute(
                text(
                    "SELECT coalesce(bool_and(stored_xact < pg_snapshot_xmin(pg_current_snapshot())), true) "
                    "FROM scenario_results WHERE scenario_uuid = :uuid"
                ),
                {"uuid": scenario_uuid},
            ).scalar_one()
        )


def worker_row(engine: Engine, scenario_uuid: uuid.UUID) -> dict[str, Any]:
    with engine.connect() as connection:
        row = (
            connection.execute(text("SELECT * FROM workers WHERE scenario_uuid = :uuid"), {"uuid": scenario_uuid})
            .mappings()
            .one_or_none()
        )
    assert row is not None, f"no workers row for {scenario_uuid}"
    return dict(row)


def check_stored_equals_published(
    engine: Engine, topic: ResultsTopic, scenario_uuid: uuid.UUID, *, timeout_seconds: float = 30.0
) -> dict[str, list[int]]:
    """The exactly-once check: every (run, frame) a runner of the scenario published is stored, and
    stored once; nothing is stored that was not published. Returns the published frames per run.

    Call it when no runner of the scenario runs any more: the topic is then complete, and the inbox
    is given ``timeout_seconds`` to store its tail. On return the API serves every stored row (a row
    is served once no older transaction of the cluster runs), so the caller may compare what it serves.
    """
    topic.read_to_end()
    published = topic.of(scenario_uuid)
    runs = runs_of(published)
    for run_id, frames in runs.items():
        # One run is one idempotent producer session publishing in frame order: each frame once, increasing.
        assert frames == sorted(set(frames)), (
            f"run {run_id} of {scenario_uuid} published frames out of order or twice: {frames}"
        )
    expected = set(published)
    wait_until(
        lambda: expected <= set(stored(engine, scenario_uuid)),
        timeout_seconds=timeout_seconds,
        what=f"every published result of {scenario_uuid} stored",
    )
    rows = stored(engine, scenario_uuid)
    duplicates = sorted({(row.run_id, row.frame_number) for row in rows if rows.count(row) > 1})
    assert not duplicates, f"stored twice: {duplicates}"
    assert set(rows) == expected, (
        f"stored but never published: {sorted((r.run_id, r.frame_number) for r in set(rows) - expected)}"
    )
    wait_until(
        lambda: servable(engine, scenario_uuid),
        timeout_seconds=timeout_seconds,
        what=f"every stored result of {scenario_uuid} servable",
    )
    return runs


# --- processes of this machine -------------------------------------------------------------------------


def runner_pids(scenario_uuid: uuid.UUID) -> list[int]:
    """The runner of a scenario and its inference processes (they inherit its environment)."""
    return pids_with_env(f"VAP_SCENARIO_UUID={scenario_uuid}")
