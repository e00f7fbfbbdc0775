"""JSON errors everywhere, health/readiness/metrics/docs, and camera passwords kept out of sight."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from vap_api.main import create_app
from vap_api.settings import ApiSettings
from vap_common.logs import configure_logging
from vap_common.settings import DatabaseSettings

INIT = "/api/v1/scenario/init"
SECRET = "Pa55-w0rd-xyz"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("DELETE", "/api/v1/scenario/{uuid}", 405),
        ("GET", "/api/v1/scenario/{uuid}/shutdown", 405),
        ("GET", "/api/v1/nothing-here", 404),
        ("PUT", "/api/v1/scenarios", 405),
    ],
)
def test_routing_errors_are_json(client: TestClient, method: str, path: str, status: int) -> None:
    response = client.request(method, path.format(uuid=uuid.uuid4()))
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json" and "detail" in response.json()


def test_oversized_bodies_are_413_json_whether_declared_or_streamed(
    client: TestClient, api_settings: ApiSettings
) -> None:
    oversized = b'{"camera_url": "rtsp://c/' + b"a" * api_settings.max_body_bytes + b'"}'

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(oversized), 4096):
            yield oversized[start : start + 4096]

    declared = client.post(INIT, content=oversized, headers={"content-type": "application/json"})
    streamed = client.post(INIT, content=chunks(), headers={"content-type": "application/json"})

    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json() == {"detail": f"request body larger than {api_settings.max_body_bytes} bytes"}


def test_unexpected_error_is_500_json_without_a_stack_trace(client: TestClient, db_engine: Engine) -> None:
    with db_engine.begin() as connection:
        connection.execute(text("DROP TABLE scenario_results"))
    scenario_uuid = client.post(INIT, json={"camera_url": "rtsp://cam.example/s"}).json()["scenario_uuid"]

    response = client.get(f"/api/v1/prediction/{scenario_uuid}")

    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error"}
    assert "Traceback" not in response.text and "scenario_results" not in response.text


def test_healthz_and_readyz_answer_when_the_database_is_up(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}


def test_readyz_is_503_when_the_database_is_unreachable(db_settings: DatabaseSettings) -> None:
    unreachable = db_settings.model_copy(update={"url": "postgresql+psycopg2://vap:vap-local-only@127.0.0.1:1/vap"})
    with TestClient(create_app(ApiSettings(database=unreachable, environment="test"))) as client:
        assert client.get("/healthz").status_code == 200
        response = client.get("/readyz")
    assert response.status_code == 503 and response.json() == {
        "status": "unavailable",
        "detail": "database unreachable",
    }
    assert response.headers["retry-after"] == "2"


def test_openapi_docs_describe_every_endpoint(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/api/v1/scenario/init",
        "/api/v1/scenario/{scenario_uuid}",
        "/api/v1/scenarios",
        "/api/v1/prediction/{scenario_uuid}",
        "/api/v1/scenario/{scenario_uuid}/shutdown",
        "/healthz",
        "/readyz",
    } <= set(paths)


def test_metrics_count_requests_by_route_template(client: TestClient) -> None:
    client.get(f"/api/v1/scenario/{uuid.uuid4()}")
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert (
        'vap_http_request_seconds_count{method="GET",route="/api/v1/scenario/{scenario_uuid}",status="404"}'
        in metrics.text
    )


def test_camera_password_never_appears_in_a_response_or_a_log_line(
    client: TestClient, db_engine: Engine, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    configure_logging(service="vap-api-test", level="DEBUG")
    caplog.set_level(logging.DEBUG)
    try:
        url = f"rtsp://admin:{SECRET}@cam.example:554/live?token={SECRET}"
        responses = [client.post(INIT, json={"camera_url": url}, headers={"Idempotency-Key": "pw"})]
        scenario_uuid = responses[0].json()["scenario_uuid"]
        with db_engine.begin() as connection:
            connection.execute(
                text("UPDATE scenarios SET status = 'active', error_message = :m WHERE scenario_uuid = :u"),
                {"m": f"lost {url}", "u": scenario_uuid},
            )
        responses += [
            client.post(INIT, json={"camera_url": url}, headers={"Idempotency-Key": "pw"}),
            client.post(INIT, json={"camera_url": url.replace("cam.example:554", "cam.example:99999")}),
            client.post(INIT, json={"camera_url": url.replace("rtsp", "gopher")}),
            client.post(INIT, json={"camera_url": url + " x"}),
            client.post(INIT, json={"camera_url": url, "unexpected": url}),
            client.post(INIT, json={"camera_url": url}, headers={"Idempotency-Key": "pw-" + SECRET}),
            client.post(INIT, json={"camera_url": url.replace("/live", "/other")}, headers={"Idempotency-Key": "pw"}),
            client.get(f"/api/v1/scenario/{scenario_uuid}"),
            client.get("/api/v1/scenarios"),
            client.post(f"/api/v1/scenario/{scenario_uuid}/shutdown"),
        ]
        with db_engine.begin() as connection:
            connection.execute(text("DROP TABLE scenario_results"))
        responses.append(client.get(f"/api/v1/prediction/{scenario_uuid}"))  # a 500, logged with its traceback
    finally:
        logging.getLogger().handlers.clear()

    assert [response.status_code for response in responses] == [
        201,
        200,
        422,
        422,
        422,
        422,
        201,
        422,
        200,
        200,
        202,
        500,
    ]
    shown = responses[8].json()
    assert shown["camera_url"] == "rtsp://admin:***@cam.example:554/live?token=***"
    assert shown["error_message"] == "lost rtsp://admin:***@cam.example:554/live?token=***"
    for response in responses:
        assert SECRET not in response.text
    captured = capfd.readouterr()
    log_lines = [json.loads(line) for line in captured.err.splitlines() if line.startswith("{")]
    assert any(line["message"] == "scenario created" for line in log_lines)
    assert any(line["message"] == "unhandled error" and "exc_info" in line for line in log_lines)
    assert SECRET not in captured.err + captured.out
    assert all(
        SECRET not in record.getMessage() and SECRET not in json.dumps(record.__dict__, default=str)
        for record in caplog.records
    )
