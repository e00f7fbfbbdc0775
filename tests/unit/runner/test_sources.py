"""vap_runner.sources: the camera URLs a runner opens, and how it decodes them."""

from __future__ import annotations

import functools
import ipaddress
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import cv2
import pytest

from tests.conftest import MEDIA
from tests.helpers import UntouchedPort
from vap_common.address_policy import AddressPolicy, IpAddress
from vap_common.lifecycle import FailureReason
from vap_runner.sources import InvalidSource, OpenedSource, SourceError, open_source, parse_source


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
    opened = open_source(
        source,
        camera_policy=AddressPolicy(),
        open_timeout_seconds=5,
        read_timeout_seconds=5,
        decode_threads=decode_threads,
    )
    try:
        threads = opened.capture.get(cv2.CAP_PROP_N_THREADS)
        # 0 is FFmpeg's choice: one per core OpenCV sees.
        assert threads == decode_threads if decode_threads else threads >= 1
        assert opened.capture.read()[0]
    finally:
        opened.release()


# --- network cameras: the camera address policy, checked just before FFmpeg connects -------------------


def camera_policy(**options: object) -> AddressPolicy:
    """The policy with ``cam.test`` resolving to 127.0.0.1 (a name rebound to loopback, unless allowed)."""

    def resolver(host: str, _port: int) -> list[IpAddress]:
        if host != "cam.test":
            raise OSError("Name or service not known")
        return [ipaddress.ip_address("127.0.0.1")]

    return AddressPolicy(resolver=resolver, **options)  # type: ignore[arg-type]


def open_camera(url: str, policy: AddressPolicy) -> OpenedSource:
    source = parse_source(url, allow_files=False)
    return open_source(source, camera_policy=policy, open_timeout_seconds=3, read_timeout_seconds=3, decode_threads=1)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("rtsp://admin:s3cret@cam.test/live", FailureReason.CAMERA_ADDRESS_REFUSED),
        ("http://admin:s3cret@127.1/video.mp4", FailureReason.CAMERA_ADDRESS_REFUSED),
        # Retried like any camera that does not answer: its name may resolve again in a moment.
        ("rtsp://admin:s3cret@gone.test/live", FailureReason.SOURCE_UNREACHABLE),
    ],
)
def test_a_camera_the_policy_refuses_is_never_opened(url: str, reason: FailureReason) -> None:
    with pytest.raises(SourceError) as failed:
        open_camera(url, camera_policy())
    assert failed.value.reason == reason and "s3cret" not in str(failed.value)


class _Camera(SimpleHTTPRequestHandler):
    """The media folder over HTTP; ``/bounce?<url>``: 200 to the runner's own check, and to FFmpeg
    (User-Agent Lavf) a 302 to ``url``. Records (User-Agent, Host) of each request."""

    requests: list[tuple[str, str]]

    def do_GET(self) -> None:
        agent = self.headers.get("User-Agent", "")
        self.requests.append((agent, self.headers.get("Host", "")))
        path, _, location = self.path.partition("?")
        if path != "/bounce":
            super().do_GET()
            return
        self.send_response(302 if agent.startswith("Lavf") else 200)
        if agent.startswith("Lavf"):
            self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_camera() -> Iterator[tuple[int, list[tuple[str, str]]]]:
    """The port of a _Camera server on 127.0.0.1, and the requests it got."""
    requests: list[tuple[str, str]] = []
    handler = type("Handler", (_Camera,), {"requests": requests})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(MEDIA)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], requests
    server.shutdown()
    server.server_close()


def test_an_http_camera_by_name_is_opened_at_the_address_checked_with_its_name_as_host(
    http_camera: tuple[int, list[tuple[str, str]]],
) -> None:
    """FFmpeg never resolves the name itself (it would not resolve cam.test at all)."""
    port, requests = http_camera
    opened = open_camera(f"http://cam.test:{port}/car-detection.mp4", camera_policy(allow=["127.0.0.1/32"]))
    try:
        assert opened.capture.read()[0]
    finally:
        opened.release()
    by_ffmpeg = [host for agent, host in requests if agent.startswith("Lavf")]
    assert by_ffmpeg and set(by_ffmpeg) == {f"cam.test:{port}"}


def test_ffmpeg_follows_no_redirect_itself(http_camera: tuple[int, list[tuple[str, str]]]) -> None:
    """A server that redirects FFmpeg but not the runner's check (or not the first time) leads nowhere,
    not even to an address the policy admits: only the check follows redirects."""
    port, _ = http_camera
    untouched = UntouchedPort("127.0.0.1")
    try:
        with pytest.raises(SourceError) as failed:
            open_camera(
                f"http://127.0.0.1:{port}/bounce?http://127.0.0.1:{untouched.port}/car-detection.mp4",
                camera_policy(allow=["127.0.0.1/32"]),
            )
        assert failed.value.reason == FailureReason.SOURCE_UNREACHABLE
        assert untouched.connections() == 0
    finally:
        untouched.close()
