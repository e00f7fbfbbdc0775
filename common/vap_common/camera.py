"""Which camera URLs the platform opens: the one rule, used by the API (a 422 naming camera_url), the
kubernetes runtime (a scenario failed with InvalidConfig before any Pod) and the runner. The
VideoScenario CRD's cameraURL pattern and maxLength say the same (tests/unit/common/test_camera.py
runs one table of URLs through both).

Schemes are case-insensitive (RFC 3986) but FFmpeg's protocol names and the CRD pattern are not, so an
admitted URL has its scheme lower-cased: the only change made to it. Refusals never repeat the URL: it
may carry a password.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

NETWORK_SCHEMES = ("rtsp", "rtsps", "http", "https")
LIVE_SCHEMES = frozenset({"rtsp", "rtsps"})  # always a live stream (HTTP may serve a file)
FILE_SCHEME = "file"
# The VideoScenario CRD's cameraURL maxLength: nothing longer can be run on Kubernetes.
MAX_LENGTH = 2048


class InadmissibleCamera(ValueError):
    """Why a camera URL is refused (the message never contains the URL)."""


@dataclass(frozen=True)
class Camera:
    url: str  # as admitted: its scheme lower-cased
    scheme: str

    @property
    def local_path(self) -> str | None:
        """The file a file:// URL names; None for a network camera."""
        return unquote(urlsplit(self.url).path) if self.scheme == FILE_SCHEME else None


def schemes(*, allow_files: bool) -> tuple[str, ...]:
    return (*NETWORK_SCHEMES, FILE_SCHEME) if allow_files else NETWORK_SCHEMES


def admit(url: str, *, allow_files: bool, max_length: int = MAX_LENGTH) -> Camera:
    """The camera ``url`` names, or InadmissibleCamera (file:// only with ``allow_files``)."""
    limit = min(max_length, MAX_LENGTH)
    if len(url) > limit:
        raise InadmissibleCamera(f"camera_url is longer than {limit} characters")
    if any(character.isspace() or not character.isprintable() for character in url):
        raise InadmissibleCamera("camera_url must not contain whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # parses (and range-checks) the port
    except ValueError:
        raise InadmissibleCamera("camera_url is not a valid URL") from None
    allowed = schemes(allow_files=allow_files)
    scheme = parts.scheme.lower()
    if scheme not in allowed:
        shown = f"'{scheme}'" if scheme else "missing"
        raise InadmissibleCamera(f"camera_url scheme {shown} is not allowed; use one of: {', '.join(allowed)}")
    if scheme == FILE_SCHEME:
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/") or parts.path == "/":
            raise InadmissibleCamera("a file camera_url must be file:///absolute/path/to/video")
    elif not parts.hostname:
        raise InadmissibleCamera(f"a {scheme} camera_url needs a host")
    elif port == 0:
        raise InadmissibleCamera("camera_url port must be between 1 and 65535")
    return Camera(url=scheme + url[len(parts.scheme) :], scheme=scheme)
