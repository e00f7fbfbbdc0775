"""vap_runner.sources: the camera URLs a runner opens, and how it decodes them."""

from __future__ import annotations

import cv2
import pytest

from tests.conftest import MEDIA
from vap_runner.sources import InvalidSource, open_source, parse_source


@pytest.mark.parametrize(
    ("url", "target", "local_file"),
    [
        ("rtsp://user:secret@cam.example:554/stream", "rtsp://user:secret@cam.example:554/stream", False),
        ("https://cam.example/mjpeg?token=abc", "https://cam.example/mjpeg?token=abc", False),
        ("file:///data/my%20clip.mp4", "/data/my clip.mp4", True),
        ("/data/clip.mp4", "/data/clip.mp4", True),
        ("RTSP://cam.example/stream", "rtsp://cam.example/stream", False),
    ],
)
def test_supported_camera_urls(url: str, target: str, local_file: bool) -> None:
    source = parse_source(url, allow_files=True)
    assert (source.target, source.local_file) == (target, local_file)
    assert "secret" not in source.safe_name and "abc" not in source.safe_name


@pytest.mark.parametrize(
    "url",
    [
        "concat:/etc/passwd|/etc/hosts",
        "udp://0.0.0.0:1234",
        "pipe:0",
        "rtsp:///nohost",
        "subfile:,,start,0,end,0,,:/etc/passwd",
    ],
)
def test_other_ffmpeg_protocols_are_refused(url: str) -> None:
    with pytest.raises(InvalidSource):
        parse_source(url, allow_files=True)


def test_local_files_can_be_disabled() -> None:
    with pytest.raises(InvalidSource, match="disabled"):
        parse_source("/data/clip.mp4", allow_files=False)


@pytest.mark.parametrize("decode_threads", [1, 3, 0])
def test_a_source_is_decoded_with_the_threads_asked_for(decode_threads: int) -> None:
    source = parse_source(str(MEDIA / "one-by-one-person-detection.mp4"), allow_files=True)
    opened = open_source(source, open_timeout_seconds=5, read_timeout_seconds=5, decode_threads=decode_threads)
    try:
        threads = opened.capture.get(cv2.CAP_PROP_N_THREADS)
        # 0 is FFmpeg's choice: one per core OpenCV sees.
        assert threads == decode_threads if decode_threads else threads >= 1
        assert opened.capture.read()[0]
    finally:
        opened.release()
