"""Camera URL, detector, Idempotency-Key and storable-input rules (vap_api.scenarios.rules), no servers."""

from __future__ import annotations

import pytest

from vap_api.errors import InvalidRequest
from vap_api.scenarios.rules import check_camera_url, check_idempotency_key, check_init
from vap_api.scenarios.schemas import DetectorIn, ScenarioInit
from vap_api.settings import ApiSettings


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://cam.example/stream",
        "rtsps://user:pw@10.0.0.5:322/live?channel=1",
        "http://[2001:db8::1]:8080/mjpeg",
        "HTTPS://cam.example/video.mjpg",
    ],
)
def test_network_camera_urls_are_accepted(url: str) -> None:
    check_camera_url(url, allow_file_urls=False, max_length=2048)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://cam.example/x", "scheme 'ftp' is not allowed; use one of: rtsp, rtsps, http, https"),
        ("javascript:alert(1)", "scheme 'javascript' is not allowed"),
        ("//cam.example/x", "scheme missing"),
        ("rtsp://:pw@/x", "needs a host"),
        ("http://cam.example:0/x", "port must be between 1 and 65535"),
        ("http://cam.example:70000/x", "not a valid URL"),
        ("http://[::1/x", "not a valid URL"),
        ("rtsp://cam.example/\x00", "control characters"),
        ("rtsp://cam.example/" + "x" * 100, "longer than 64"),
        ("file:///videos/a.mp4", "scheme 'file' is not allowed"),
    ],
)
def test_invalid_camera_urls_are_refused_with_a_reason(url: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        check_camera_url(url, allow_file_urls=False, max_length=64)
    assert message in raised.value.detail
    assert raised.value.location == ("body", "camera_url")


def test_refusal_never_repeats_the_url_or_its_password() -> None:
    for url in ("gopher://u:hunter2@h/x", "rtsp://u:hunter2@h:99999/x", "rtsp://u:hunter2@h/ x"):
        with pytest.raises(InvalidRequest) as raised:
            check_camera_url(url, allow_file_urls=False, max_length=2048)
        assert "hunter2" not in raised.value.detail


def test_file_urls_need_the_setting_and_an_absolute_local_path() -> None:
    check_camera_url("file:///srv/media/people.mp4", allow_file_urls=True, max_length=2048)
    check_camera_url("file://localhost/srv/media/people.mp4", allow_file_urls=True, max_length=2048)
    for url in ("file://nas/share/a.mp4", "file:///", "file:relative.mp4"):
        with pytest.raises(InvalidRequest, match="file:///absolute/path"):
            check_camera_url(url, allow_file_urls=True, max_length=2048)


def test_detector_must_be_allowed_and_its_settings_small() -> None:
    settings = ApiSettings(detectors=["mock", "motion"], max_detector_settings_bytes=32)
    check_init(ScenarioInit(camera_url="rtsp://c/s", detector=DetectorIn(name="motion", settings={"history": 500})), settings=settings)
    with pytest.raises(InvalidRequest, match="unknown detector 'onnx'; use one of: mock, motion"):
        check_init(ScenarioInit(camera_url="rtsp://c/s", detector=DetectorIn(name="onnx")), settings=settings)
    with pytest.raises(InvalidRequest, match="the limit is 32"):
        check_init(ScenarioInit(camera_url="rtsp://c/s", detector=DetectorIn(settings={"padding": "x" * 32})), settings=settings)


@pytest.mark.parametrize("key", ["", "k" * 201, "tab\tkey", "clé", "nul\x00key", "\ud800"])
def test_idempotency_keys_must_be_short_printable_ascii(key: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        check_idempotency_key(key, max_length=200)
    assert raised.value.location == ("header", "idempotency-key")


def test_absent_or_ordinary_idempotency_key_is_fine() -> None:
    check_idempotency_key(None, max_length=200)
    check_idempotency_key("9b1f6a3e-order-42", max_length=200)


@pytest.mark.parametrize(
    ("body", "location"),
    [
        (ScenarioInit(camera_url="rtsp://c/s", name="a\x00"), ("body", "name")),
        (ScenarioInit(camera_url="rtsp://c/s\x00"), ("body", "camera_url")),
        (ScenarioInit(camera_url="rtsp://c/s", detector=DetectorIn(name="mock\x00")), ("body", "detector", "name")),
        (ScenarioInit(camera_url="rtsp://c/s", detector=DetectorIn(settings={"k": "\x00"})), ("body", "detector", "settings")),
        (ScenarioInit(camera_url="rtsp://c/s", detector=DetectorIn(settings={"k": float("nan")})), ("body", "detector", "settings")),
    ],
)
def test_init_refuses_unstorable_input_naming_its_field(body: ScenarioInit, location: tuple[str, ...]) -> None:
    with pytest.raises(InvalidRequest) as raised:
        check_init(body, settings=ApiSettings())
    assert raised.value.location == location


def test_an_unknown_detector_name_that_cannot_be_shown_is_refused_for_that_first() -> None:
    with pytest.raises(InvalidRequest, match="unpaired UTF-16 surrogates"):
        check_init(ScenarioInit.model_construct(camera_url="rtsp://c/s", name=None, detector=DetectorIn.model_construct(name="\ud800", settings={})), settings=ApiSettings())
