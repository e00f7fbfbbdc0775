"""Rules on a new scenario: its camera URL (vap_common.camera), detectors, and what PostgreSQL can store.

Messages never repeat the URL itself: it may carry a password. Input PostgreSQL cannot store
(vap_common.storable) is a 422 naming its field, never a failed INSERT.
"""

from __future__ import annotations

import json

from vap_api.errors import InvalidRequest
from vap_api.scenarios.schemas import ScenarioInit
from vap_api.settings import ApiSettings
from vap_common import camera, detector_config
from vap_common.address_policy import AddressPolicy, RefusedAddress
from vap_common.camera_secrets import CameraKeyring, NoSealingKey
from vap_common.contracts import MAX_CAMERA_URL_LENGTH
from vap_common.storable import json_problem, text_problem

_URL = ("body", "camera_url")


def admit_camera_url(url: str, *, settings: ApiSettings, camera_policy: AddressPolicy, keyring: CameraKeyring) -> str:
    """The camera URL to store (vap_common.camera: its scheme lower-cased), or InvalidRequest; its host
    must be an address ``camera_policy`` lets cameras have (the runner checks again), and its
    credentials, if any, must be sealable by ``keyring`` (they are never stored in plain text)."""
    try:
        admitted = camera.admit(url, allow_files=settings.allow_file_urls, max_length=settings.max_camera_url_length)
        if admitted.scheme != camera.FILE_SCHEME:
            camera_policy.check_url(admitted.url, unresolved_ok=True)
        sealed = keyring.seal(admitted.url)
    except (camera.InadmissibleCamera, RefusedAddress) as error:
        raise InvalidRequest(_URL, str(error)) from None
    except NoSealingKey:
        raise InvalidRequest(
            _URL,
            "camera_url carries a password or secret value, which this platform stores only encrypted, "
            "and it has no camera key set (VAP_CAMERA_KEYS)",
        ) from None
    if len(sealed) > MAX_CAMERA_URL_LENGTH:
        raise InvalidRequest(_URL, f"camera_url is longer than {MAX_CAMERA_URL_LENGTH} characters once encrypted")
    return admitted.url


def check_init(
    body: ScenarioInit, *, settings: ApiSettings, camera_policy: AddressPolicy, keyring: CameraKeyring
) -> str:
    """Raise InvalidRequest unless a scenario may be created from ``body``; returns its camera URL as
    admitted (see admit_camera_url), in plain text."""
    camera_url = admit_camera_url(body.camera_url, settings=settings, camera_policy=camera_policy, keyring=keyring)
    if body.name is not None and (problem := text_problem(body.name)):
        raise InvalidRequest(("body", "name"), f"name {problem}")
    # Before the list of detectors: that message repeats the name, which must be printable first.
    if body.analysis_fps is not None and body.analysis_fps > settings.max_analysis_fps:
        raise InvalidRequest(("body", "analysis_fps"), f"analysis_fps may be at most {settings.max_analysis_fps:g}")
    if problem := text_problem(body.detector.name):
        raise InvalidRequest(("body", "detector", "name"), f"detector.name {problem}")
    if body.detector.name not in settings.detectors:
        raise InvalidRequest(
            ("body", "detector", "name"),
            f"unknown detector '{body.detector.name}'; use one of: {', '.join(settings.detectors)}",
        )
    if problem := json_problem(body.detector.settings, max_depth=settings.max_detector_settings_depth):
        raise InvalidRequest(("body", "detector", "settings"), f"detector.settings {problem}")
    size = len(json.dumps(body.detector.settings, separators=(",", ":")).encode())
    if size > settings.max_detector_settings_bytes:
        raise InvalidRequest(
            ("body", "detector", "settings"),
            f"detector.settings is {size} bytes as JSON; the limit is {settings.max_detector_settings_bytes}",
        )
    try:
        detector_config.validate(body.detector.name, body.detector.settings)
    except detector_config.InvalidDetectorConfig as error:
        raise InvalidRequest(("body", "detector", "settings", *map(str, error.field)), str(error)) from None
    return camera_url


def check_idempotency_key(key: str | None, *, max_length: int) -> None:
    """Raise InvalidRequest unless ``key`` is absent or a short printable token."""
    if key is None:
        return
    if not key or len(key) > max_length or not key.isprintable() or not key.isascii():
        raise InvalidRequest(
            ("header", "idempotency-key"), f"Idempotency-Key must be 1 to {max_length} printable ASCII characters"
        )
