"""Camera sources: which URLs are accepted, and opening them with OpenCV's FFmpeg backend."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import cv2

from vap_common import camera
from vap_common.address_policy import AddressPolicy, RefusedAddress
from vap_common.lifecycle import FailureReason
from vap_common.redact import redact_url
from vap_runner.destination import Destination, destination

# An operator's own FFmpeg options as the runner started (OpenCV reads the variable at each open, and
# the runner sets it before each open).
_OPERATOR_OPTIONS = os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS")


class InvalidSource(ValueError):
    """A camera URL the runner refuses (reported as InvalidConfig)."""


class SourceError(Exception):
    """Opening the source failed; ``reason`` says whether it was unreachable, refused by the camera
    address policy, or sent no frames."""

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
    source: Source,
    *,
    camera_policy: AddressPolicy,
    open_timeout_seconds: float,
    read_timeout_seconds: float,
    decode_threads: int,
) -> OpenedSource:
    """Open ``source`` with ``decode_threads`` FFmpeg decoding threads (0: one per core), a network
    camera where ``camera_policy`` admits it (vap_runner.destination), or raise :class:`SourceError`."""
    if source.local_file and not Path(source.target).is_file():
        raise SourceError(FailureReason.SOURCE_UNREACHABLE, f"no such file: {source.safe_name}")
    found = None if source.local_file else _destination(source, camera_policy, open_timeout_seconds)
    options = _ffmpeg_options(source, found)
    if options:
        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = options
    else:
        os.environ.pop("OPENCV_FFMPEG_CAPTURE_OPTIONS", None)
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        int(open_timeout_seconds * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        int(read_timeout_seconds * 1000),
    ]
    params += [cv2.CAP_PROP_N_THREADS, decode_threads]
    # FFmpeg only: other backends (e.g. the image-sequence one) would print the URL on failure.
    capture = cv2.VideoCapture(found.url if found else source.target, cv2.CAP_FFMPEG, params)
    if not capture.isOpened():
        capture.release()
        raise SourceError(FailureReason.SOURCE_UNREACHABLE, f"cannot open {source.safe_name}")
    # RTSP servers may announce a frame count (the file behind them): RTSP is always live. Over HTTP, a
    # frame count means a video file, its absence an MJPEG or other endless stream.
    live = source.rtsp or (not source.local_file and capture.get(cv2.CAP_PROP_FRAME_COUNT) <= 0)
    return OpenedSource(capture=capture, live=live, fps=max(capture.get(cv2.CAP_PROP_FPS), 0.0))


def _destination(source: Source, camera_policy: AddressPolicy, timeout_seconds: float) -> Destination:
    try:
        return destination(source.target, policy=camera_policy, timeout_seconds=timeout_seconds)
    except RefusedAddress as error:
        raise SourceError(FailureReason.CAMERA_ADDRESS_REFUSED, f"{source.safe_name}: {error}") from None
    except OSError as error:
        raise SourceError(FailureReason.SOURCE_UNREACHABLE, f"cannot open {source.safe_name}: {error}") from None


def _ffmpeg_options(source: Source, found: Destination | None) -> str:
    """OPENCV_FFMPEG_CAPTURE_OPTIONS for this open: an operator's own, else TCP for RTSP (UDP packets
    get lost or blocked between clusters and cameras); over HTTP always no redirect (each one went
    through the policy already) and the Host of a URL with the address in place of the name."""
    options = [_OPERATOR_OPTIONS or ("rtsp_transport;tcp" if source.rtsp else "")]
    if found is not None and not source.rtsp:
        options.append("max_redirects;0")
    if found is not None and found.host_header:
        host = _ffmpeg_escaped(f"Host: {found.host_header}\r\n")
        options.append(f"headers;{host}")
    return "|".join(option for option in options if option)


def _ffmpeg_escaped(value: str) -> str:
    """``value`` as one option value of FFmpeg's ``key;value|key;value`` syntax (av_get_token)."""
    return re.sub(r"([\\';|\s])", r"\\\1", value)
