"""Camera sources: which URLs are accepted, and opening them with OpenCV's FFmpeg backend."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import cv2

from vap_common import camera
from vap_common.lifecycle import FailureReason
from vap_common.redact import redact_url


class InvalidSource(ValueError):
    """A camera URL the runner refuses (reported as InvalidConfig)."""


class SourceError(Exception):
    """Opening the source failed; ``reason`` says whether it was unreachable or sent no frames."""

    def __init__(self, reason: FailureReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Source:
    target: str  # what FFmpeg opens: a URL or a local path
    safe_name: str  # the same with credentials masked: the only form that is logged
    local_file: bool  # a local file is not retried: it will not appear by waiting
    rtsp: bool


@dataclass
class OpenedSource:
    capture: cv2.VideoCapture
    live: bool  # a live stream drops stale frames and reconnects; a file is read to its end
    fps: float  # the source's nominal rate; 0 when it does not say

    def media_seconds(self, frame_index: int) -> float:
        """Where frame ``frame_index`` (just read) sits on a file's own clock."""
        return frame_index / self.fps if self.fps else self.capture.get(cv2.CAP_PROP_POS_MSEC) / 1000

    def release(self) -> None:
        self.capture.release()


def parse_source(url: str, *, allow_files: bool) -> Source:
    """The source ``url`` names, admitted by vap_common.camera: rtsp(s)://, http(s):// and, when
    allowed, file:// (a plain path is taken for its file:// URL); no other FFmpeg protocol
    (``concat:``, ``pipe:``, ``udp://``...), which could read local files or hang."""
    if not urlsplit(url).scheme and url:
        if not allow_files:
            raise InvalidSource("local file sources are disabled (VAP_ALLOW_FILE_SOURCES=false)")
        url = Path(url).absolute().as_uri()
    try:
        admitted = camera.admit(url, allow_files=allow_files)
    except camera.InadmissibleCamera as error:
        raise InvalidSource(str(error)) from None
    if admitted.local_path is not None:
        return Source(target=admitted.local_path, safe_name=admitted.local_path, local_file=True, rtsp=False)
    return Source(
        target=admitted.url,
        safe_name=redact_url(admitted.url),
        local_file=False,
        rtsp=admitted.scheme in camera.LIVE_SCHEMES,
    )


def open_source(
    source: Source, *, open_timeout_seconds: float, read_timeout_seconds: float, decode_threads: int
) -> OpenedSource:
    """Open ``source`` with ``decode_threads`` FFmpeg decoding threads (0: one per core) or raise
    :class:`SourceError`."""
    if source.local_file and not Path(source.target).is_file():
        raise SourceError(FailureReason.SOURCE_UNREACHABLE, f"no such file: {source.safe_name}")
    if source.rtsp:
        # TCP: UDP packets get lost or blocked between clusters and cameras. Read by OpenCV at each
        # open; an operator's own value wins.
        os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        int(open_timeout_seconds * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        int(read_timeout_seconds * 1000),
    ]
    params += [cv2.CAP_PROP_N_THREADS, decode_threads]
    # FFmpeg only: other backends (e.g. the image-sequence one) would print the URL on failure.
    capture = cv2.VideoCapture(source.target, cv2.CAP_FFMPEG, params)
    if not capture.isOpened():
        capture.release()
        raise SourceError(FailureReason.SOURCE_UNREACHABLE, f"cannot open {source.safe_name}")
    # RTSP servers may announce a frame count (the file behind them): RTSP is always live. Over HTTP, a
    # frame count means a video file, its absence an MJPEG or other endless stream.
    live = source.rtsp or (not source.local_file and capture.get(cv2.CAP_PROP_FRAME_COUNT) <= 0)
    return OpenedSource(capture=capture, live=live, fps=max(capture.get(cv2.CAP_PROP_FPS), 0.0))
