"""Camera URL, detector, Idempotency-Key and storable-input rules (vap_api.scenarios.rules), no servers."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vap_api.errors import InvalidRequest
from vap_api.scenarios.rules import admit_camera_url, check_idempotency_key, check_init
from vap_api.scenarios.schemas import DetectorIn, ScenarioInit
from vap_api.settings import ApiSettings
from vap_common import camera
from vap_common.address_policy import AddressPolicy
from vap_common.camera_secrets import CameraKeyring, generate_key

# Names do not resolve here (no DNS): the policy's own rules are tests/unit/common/test_address_policy.py.
POLICY = AddressPolicy(resolver=lambda host, port: [])
KEYRING = CameraKeyring.parse([generate_key("k1")])


def test_a_camera_url_is_stored_as_admitted_and_a_refusal_is_a_422_on_camera_url() -> None:
    """The rule itself is vap_common.camera's (tests/unit/common/test_camera.py); the API applies it
    with its own settings and names the field."""
    settings = ApiSettings(max_camera_url_length=64)
    assert (
        admit_camera_url("RTSP://cam.example/stream", settings=settings, camera_policy=POLICY, keyring=KEYRING)
        == "rtsp://cam.example/stream"
    )
    for url, reason in (
        ("rtsp://u:hunter2@cam.example/" + "x" * 64, "longer than 64"),
        ("file:///videos/a.mp4", "scheme 'file' is not allowed"),
    ):
        with pytest.raises(InvalidRequest) as raised:
            admit_camera_url(url, settings=settings, camera_policy=POLICY, keyring=KEYRING)
        assert (
            raised.value.location == ("body", "camera_url")
            and reason in raised.value.detail
            and "hunter2" not in raised.value.detail
        )
    assert (
        admit_camera_url(
            "file:///videos/a.mp4",
            settings=settings.model_copy(update={"allow_file_urls": True}),
            camera_policy=POLICY,
            keyring=KEYRING,
        )
        == "file:///videos/a.mp4"
    )


def test_a_camera_password_is_refused_when_no_key_would_seal_it_and_too_many_secrets_are_refused() -> None:
    """Credentials are only stored sealed: without a camera key they are a 422, never stored in plain text."""
    settings = ApiSettings()
    assert admit_camera_url("rtsp://cam.example/s", settings=settings, camera_policy=POLICY, keyring=CameraKeyring({}))
    many_secrets = "rtsp://cam.example/s?" + "&".join("token=x" for _ in range(250))
    for url, keyring, reason in (
        ("rtsp://admin:hunter2@cam.example/s", CameraKeyring({}), "no camera key set (VAP_CAMERA_KEYS)"),
        ("rtsp://cam.example/s?token=hunter2", CameraKeyring({}), "stores only encrypted"),
        (many_secrets, KEYRING, "once encrypted"),
    ):
        with pytest.raises(InvalidRequest) as raised:
            admit_camera_url(url, settings=settings, camera_policy=POLICY, keyring=keyring)
        assert raised.value.location == ("body", "camera_url") and reason in raised.value.detail
        assert "hunter2" not in raised.value.detail


def test_the_api_cannot_admit_longer_camera_urls_than_kubernetes_runs() -> None:
    """Raised past the operator's 2048, the API's limit let through URLs every VideoScenario refused."""
    with pytest.raises(ValidationError, match="max_camera_url_length"):
        ApiSettings(max_camera_url_length=camera.MAX_LENGTH + 1)


def test_detector_must_be_allowed_and_its_settings_small() -> None:
    settings = ApiSettings(detectors=["mock", "motion"], max_detector_settings_bytes=32)
    check_init(
        ScenarioInit(camera_url="rtsp://c/s", detector=DetectorIn(name="motion", settings={"history_frames": 500})),
        settings=settings,
        camera_policy=POLICY,
        keyring=KEYRING,
    )
    with pytest.raises(InvalidRequest, match="unknown detector 'onnx'; use one of: mock, motion"):
        check_init(
            ScenarioInit(camera_url="rtsp://c/s", detector=DetectorIn(name="onnx")),
            settings=settings,
            camera_policy=POLICY,
            keyring=KEYRING,
        )
    with pytest.raises(InvalidRequest, match="the limit is 32"):
        check_init(
            ScenarioInit(camera_url="rtsp://c/s", detector=DetectorIn(settings={"padding": "x" * 32})),
            settings=settings,
            camera_policy=POLICY,
            keyring=KEYRING,
        )


@pytest.mark.parametrize(
    ("name", "settings", "location", "reason"),
    [
        ("motion", {"history": 500}, ("body", "detector", "settings", "history"), "Extra inputs are not permitted"),
        (
            "mock",
            {"max_detections": -1},
            ("body", "detector", "settings", "max_detections"),
            "greater than or equal to 0",
        ),
        ("mock", {"classes": ["person", 7]}, ("body", "detector", "settings", "classes", "1"), "valid string"),
        ("hog_person", {"type": "motion"}, ("body", "detector", "settings", "type"), "say type 'motion'"),
        ("haar_face", {"cascade": "../../etc/passwd"}, ("body", "detector", "settings", "cascade"), "cascade"),
        ("onnx", {}, ("body", "detector", "settings", "model_path"), "Field required"),
    ],
)
def test_bad_detector_settings_are_a_422_naming_the_setting_not_a_failed_scenario_later(
    name: str, settings: dict[str, object], location: tuple[str, ...], reason: str
) -> None:
    with pytest.raises(InvalidRequest) as raised:
        check_init(
            ScenarioInit(camera_url="rtsp://c/s", detector=DetectorIn(name=name, settings=settings)),
            settings=ApiSettings(),
            camera_policy=POLICY,
            keyring=KEYRING,
        )
    assert raised.value.location == location and reason in raised.value.detail
    # The model file is on the runner's machine: the API takes any path, the runner checks it.
    check_init(
        ScenarioInit(
            camera_url="rtsp://c/s", detector=DetectorIn(name="onnx", settings={"model_path": "/models/x.onnx"})
        ),
        settings=ApiSettings(),
        camera_policy=POLICY,
        keyring=KEYRING,
    )


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
        (
            ScenarioInit(camera_url="rtsp://c/s", detector=DetectorIn(settings={"k": "\x00"})),
            ("body", "detector", "settings"),
        ),
        (
            ScenarioInit(camera_url="rtsp://c/s", detector=DetectorIn(settings={"k": float("nan")})),
            ("body", "detector", "settings"),
        ),
    ],
)
def test_init_refuses_unstorable_input_naming_its_field(body: ScenarioInit, location: tuple[str, ...]) -> None:
    with pytest.raises(InvalidRequest) as raised:
        check_init(body, settings=ApiSettings(), camera_policy=POLICY, keyring=KEYRING)
    assert raised.value.location == location


def test_an_unknown_detector_name_that_cannot_be_shown_is_refused_for_that_first() -> None:
    with pytest.raises(InvalidRequest, match="unpaired UTF-16 surrogates"):
        check_init(
            ScenarioInit.model_construct(
                camera_url="rtsp://c/s", name=None, detector=DetectorIn.model_construct(name="\ud800", settings={})
            ),
            settings=ApiSettings(),
            camera_policy=POLICY,
            keyring=KEYRING,
        )
