from __future__ import annotations

import pytest

from vap_common.redact import has_credentials, redact_text, redact_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rtsp://admin:s3cret@10.0.0.5:554/stream1", "rtsp://admin:***@10.0.0.5:554/stream1"),
        ("rtsps://user:p%40ss@cam.example/live", "rtsps://user:***@cam.example/live"),
        ("http://cam.example/mjpeg?user=a&password=hunter2", "http://cam.example/mjpeg?user=a&password=***"),
        ("https://cam.example/snap?token=abc&size=hd", "https://cam.example/snap?token=***&size=hd"),
        ("rtsp://onlyuser@cam.example/s", "rtsp://onlyuser@cam.example/s"),
        ("rtsp://cam.example/s?channel=1", "rtsp://cam.example/s?channel=1"),
        ("file:///media/clip.mp4", "file:///media/clip.mp4"),
    ],
)
def test_redact_url_masks_only_secrets(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_unescaped_at_sign_in_password_is_fully_masked() -> None:
    assert redact_url("rtsp://admin:pa@ss@cam.example/s") == "rtsp://admin:***@cam.example/s"


def test_redact_text_masks_every_url_in_a_sentence() -> None:
    text = "cannot open rtsp://a:one@h1/s; retrying http://b:two@h2/m?x=1 after 2s"
    assert redact_text(text) == "cannot open rtsp://a:***@h1/s; retrying http://b:***@h2/m?x=1 after 2s"


def test_has_credentials() -> None:
    assert has_credentials("rtsp://a:b@h/s")
    assert has_credentials("http://h/s?password=x")
    assert not has_credentials("rtsp://h/s")
