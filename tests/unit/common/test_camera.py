"""Camera admission (vap_common.camera), the one rule the API, the kubernetes runtime and the runner
apply, run over one table of URLs, and the VideoScenario CRD's cameraURL schema against it."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT
from vap_common import camera

ADMITTED = [
    ("rtsp://cam.example/stream", "rtsp://cam.example/stream"),
    ("rtsps://user:pw@10.0.0.5:322/live?channel=1", "rtsps://user:pw@10.0.0.5:322/live?channel=1"),
    ("http://[2001:db8::1]:8080/mjpeg", "http://[2001:db8::1]:8080/mjpeg"),
    # Schemes are case-insensitive; FFmpeg and the CRD's pattern are not: only the scheme changes.
    ("RTSP://Cam.Example/Stream", "rtsp://Cam.Example/Stream"),
    ("HTTPS://cam.example/video.mjpg?Token=AbC", "https://cam.example/video.mjpg?Token=AbC"),
    ("File:///srv/media/people.mp4", "file:///srv/media/people.mp4"),
    ("file://localhost/srv/media/people.mp4", "file://localhost/srv/media/people.mp4"),
    ("rtsp://cam.example/" + "x" * (camera.MAX_LENGTH - len("rtsp://cam.example/")), None),  # exactly the limit
]
REFUSED = [
    ("ftp://cam.example/x", "scheme 'ftp' is not allowed; use one of: rtsp, rtsps, http, https, file"),
    ("javascript:alert(1)", "scheme 'javascript' is not allowed"),
    ("//cam.example/x", "scheme missing"),
    ("/srv/media/people.mp4", "scheme missing"),
    ("concat:/etc/passwd|/etc/hosts", "scheme 'concat' is not allowed"),
    ("rtsp://:pw@/x", "needs a host"),
    ("rtsp:///nohost", "needs a host"),
    ("http://cam.example:0/x", "port must be between 1 and 65535"),
    ("http://cam.example:70000/x", "not a valid URL"),
    ("http://[::1/x", "not a valid URL"),
    ("rtsp://cam.example/\x00", "control characters"),
    ("rtsp://cam.example/a b", "whitespace"),
    ("rtsp://cam.example/" + "x" * camera.MAX_LENGTH, f"longer than {camera.MAX_LENGTH}"),
    ("file://nas/share/a.mp4", "file:///absolute/path"),
    ("file:///", "file:///absolute/path"),
    ("file:relative.mp4", "file:///absolute/path"),
]


def _crd_camera_url_schema() -> dict[str, Any]:
    crd = yaml.safe_load((ROOT / "crds" / "videoscenario.yaml").read_text())
    [version] = crd["spec"]["versions"]
    return dict(version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["cameraURL"])


def _crd_accepts(url: str) -> bool:
    schema = _crd_camera_url_schema()
    return len(url) <= schema["maxLength"] and re.search(schema["pattern"], url) is not None


@pytest.mark.parametrize(("url", "admitted"), ADMITTED)
def test_camera_urls_are_admitted_with_their_scheme_lower_cased_and_the_crd_takes_them(
    url: str, admitted: str | None
) -> None:
    result = camera.admit(url, allow_files=True)
    assert result.url == (admitted or url)
    assert _crd_accepts(result.url), "the operator would create a VideoScenario the API server refuses"


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_other_urls_are_refused_with_a_reason_that_never_repeats_the_url(url: str, reason: str) -> None:
    with pytest.raises(camera.InadmissibleCamera) as raised:
        camera.admit(url, allow_files=True)
    assert reason in str(raised.value)
    assert "pw@" not in str(raised.value) and "passwd" not in str(raised.value)


def test_every_admitted_scheme_is_one_the_crd_takes_and_the_crd_length_is_the_limit() -> None:
    for scheme in camera.schemes(allow_files=True):
        assert _crd_accepts(
            camera.admit(
                f"{scheme}://cam.example/stream" if scheme != camera.FILE_SCHEME else "file:///v.mp4", allow_files=True
            ).url
        )
    assert _crd_camera_url_schema()["maxLength"] == camera.MAX_LENGTH


def test_file_urls_need_the_setting_and_a_stricter_caller_limit_holds() -> None:
    with pytest.raises(
        camera.InadmissibleCamera, match="scheme 'file' is not allowed; use one of: rtsp, rtsps, http, https$"
    ):
        camera.admit("file:///srv/media/people.mp4", allow_files=False)
    with pytest.raises(camera.InadmissibleCamera, match="longer than 64"):
        camera.admit("rtsp://cam.example/" + "x" * 50, allow_files=False, max_length=64)
    assert camera.admit("file:///srv/media/my%20clip.mp4", allow_files=True).local_path == "/srv/media/my clip.mp4"
    assert camera.admit("rtsp://cam.example/s", allow_files=True).local_path is None
