"""Rules on a new scenario: camera URL schemes and limits, detectors, and what PostgreSQL can store.

Messages never repeat the URL itself: it may carry a password. Input PostgreSQL cannot store
(vap_common.storable) is a 422 naming its field, never a failed INSERT.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from vap_api.errors import InvalidRequest
from vap_api.scenarios.schemas import ScenarioInit
from vap_api.settings import ApiSettings
from vap_common.storable import json_problem, text_problem

NETWORK_SCHEMES = ("rtsp", "rtsps", "http", "https")
FILE_SCHEME = "file"
_URL = ("body", "camera_url")


def allowed_schemes(*, allow_file_urls: bool) -> tuple[str, ...]:
    """The camera URL schemes accepted under the current settings."""
    return (*NETWORK_SCHEMES, FILE_SCHEME) if allow_file_urls else NETWORK_SCHEMES


def check_camera_url(url: str, *, allow_file_urls: bool, max_length: int) -> None:
    """Raise InvalidRequest unless ``url`` is a camera URL the platform may open."""
    if len(url) > max_length:
        raise InvalidRequest(_URL, f"camera_url is longer than {max_length} characters")
    if any(character.isspace() or not character.isprintable() for character in url):
        raise InvalidRequest(_URL, "camera_url must not contain whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # parses (and range-checks) the port
    except ValueError:
        raise InvalidRequest(_URL, "camera_url is not a valid URL") from None
    schemes = allowed_schemes(allow_file_urls=allow_file_urls)
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        shown = f"'{scheme}'" if scheme else "missing"
        raise InvalidRequest(_URL, f"camera_url scheme {shown} is not allowed; use one of: {', '.join(schemes)}")
    if scheme == FILE_SCHEME:
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/") or parts.path == "/":
            raise InvalidRequest(_URL, "a file camera_url must be file:///absolute/path/to/video")
        return
    if not parts.hostname:
        raise InvalidRequest(_URL, f"a {scheme} camera_url needs a host")
    if port == 0:
        raise InvalidRequest(_URL, "camera_url port must be between 1 and 65535")


def check_init(body: ScenarioInit, *, settings: ApiSettings) -> None:
    """Raise InvalidRequest unless a scenario may be created from ``body``."""
    check_camera_url(body.camera_url, allow_file_urls=settings.allow_file_urls, max_length=settings.max_camera_url_length)
    if body.name is not None and (problem := text_problem(body.name)):
        raise InvalidRequest(("body", "name"), f"name {problem}")
    # Before the list of detectors: that message repeats the name, which must be printable first.
    if problem := text_problem(body.detector.name):
        raise InvalidRequest(("body", "detector", "name"), f"detector.name {problem}")
    if body.detector.name not in settings.detectors:
        raise InvalidRequest(("body", "detector", "name"), f"unknown detector '{body.detector.name}'; use one of: {', '.join(settings.detectors)}")
    if problem := json_problem(body.detector.settings, max_depth=settings.max_detector_settings_depth):
        raise InvalidRequest(("body", "detector", "settings"), f"detector.settings {problem}")
    size = len(json.dumps(body.detector.settings, separators=(",", ":")).encode())
    if size > settings.max_detector_settings_bytes:
        raise InvalidRequest(("body", "detector", "settings"), f"detector.settings is {size} bytes as JSON; the limit is {settings.max_detector_settings_bytes}")


def check_idempotency_key(key: str | None, *, max_length: int) -> None:
    """Raise InvalidRequest unless ``key`` is absent or a short printable token."""
    if key is None:
        return
    if not key or len(key) > max_length or not key.isprintable() or not key.isascii():
        raise InvalidRequest(("header", "idempotency-key"), f"Idempotency-Key must be 1 to {max_length} printable ASCII characters")
