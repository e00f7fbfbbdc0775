"""The camera address policy at registration, on the real app: a camera URL whose host is or
resolves to an address cameras may not use is a 422 naming camera_url, and nothing is stored."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from vap_api.settings import ApiSettings
from vap_common.schema import Scenario
from vap_common.settings import CameraPolicyOptions

INIT = "/api/v1/scenario/init"


def _stored(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(Scenario)) or 0)


@pytest.mark.parametrize(
    ("camera_url", "reason"),
    [
        ("rtsp://localhost:8554/cam", "loopback"),  # a name the machine's resolver maps to loopback
        ("rtsp://127.1/cam", "loopback"),
        ("rtsp://2130706433/cam", "loopback"),
        ("rtsp://admin:pw@[::1]:8554/cam", "loopback"),
        ("rtsp://[::ffff:127.0.0.1]/cam", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("rtsp://0.0.0.0/cam", "unspecified"),
        ("rtsp://239.1.2.3/cam", "multicast"),
    ],
)
def test_registration_refuses_camera_hosts_cameras_may_not_use(
    client: TestClient, session_factory: sessionmaker[Session], camera_url: str, reason: str
) -> None:
    response = client.post(INIT, json={"camera_url": camera_url})
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "camera_url"] and reason in error["msg"], error
    assert "pw" not in response.text
    assert _stored(session_factory) == 0


def test_allowed_loopback_still_refuses_the_platforms_own_servers(
    api_settings: ApiSettings, make_client: Callable[..., TestClient]
) -> None:
    local = api_settings.model_copy(update={"camera_policy": CameraPolicyOptions(allow=["127.0.0.0/8"])})
    database_port = api_settings.platform_servers()[-1][1]  # the test database, on loopback here
    kafka_host, kafka_port = api_settings.platform_servers()[0]
    with make_client(local) as client:
        assert client.post(INIT, json={"camera_url": "rtsp://127.0.0.1:8554/cam"}).status_code == 201
        for url in (f"http://127.0.0.1:{database_port}/", f"rtsp://{kafka_host}:{kafka_port}/x"):
            refused = client.post(INIT, json={"camera_url": url})
            assert refused.status_code == 422 and "platform's own servers" in refused.json()["detail"][0]["msg"], url


def test_the_deny_list_refuses_a_site_network(
    api_settings: ApiSettings, make_client: Callable[..., TestClient]
) -> None:
    strict = api_settings.model_copy(update={"camera_policy": CameraPolicyOptions(deny=["10.0.0.0/8"])})
    with make_client(strict) as client:
        assert client.post(INIT, json={"camera_url": "rtsp://10.1.2.3/cam"}).status_code == 422
        assert client.post(INIT, json={"camera_url": "rtsp://192.168.1.5/cam"}).status_code == 201
