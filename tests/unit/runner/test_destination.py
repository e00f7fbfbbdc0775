"""vap_runner.destination: the runner's own check of the camera address policy just before it connects
(the name resolved by the runner itself, HTTP redirects followed one hop at a time)."""

from __future__ import annotations

import ipaddress
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers import UntouchedPort
from vap_common.address_policy import AddressPolicy, IpAddress, RefusedAddress
from vap_runner.destination import MAX_REDIRECTS, Destination, destination
from vap_runner.settings import RunnerSettings

# A resolver standing in for DNS, as the runner sees it when it connects.
NAMES = {
    "localhost": ["127.0.0.1"],
    "cam.lan": ["192.168.1.20"],
    "cam6.lan": ["2001:db8::20"],
    "rebound.example": ["127.0.0.1"],  # resolved to a public address at registration, rebound since
    "kafka.internal": ["10.0.0.9"],
    "local.test": ["127.0.0.1"],
}


def resolver(host: str, _port: int) -> list[IpAddress]:
    if host not in NAMES:
        raise OSError("Name or service not known")
    return [ipaddress.ip_address(address) for address in NAMES[host]]


def policy(**options: object) -> AddressPolicy:
    return AddressPolicy(resolver=resolver, **options)  # type: ignore[arg-type]


def check(url: str, camera_policy: AddressPolicy | None = None) -> Destination:
    return destination(url, policy=camera_policy or policy(), timeout_seconds=2)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("rtsp://localhost:8554/cam", "loopback"),
        ("rtsp://127.1/cam", "loopback"),
        ("rtsp://2130706433/cam", "loopback"),
        ("rtsp://[::1]:8554/cam", "loopback"),
        ("rtsp://[::ffff:127.0.0.1]/cam", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("rtsps://user:pw@rebound.example/cam", "loopback"),
        ("rtsp://kafka.internal:9092/x", "platform's own servers"),
        ("rtsp://10.0.0.9:9092/x", "platform's own servers"),  # the platform server by its address
    ],
)
def test_the_runner_refuses_what_the_policy_refuses_before_it_connects(url: str, reason: str) -> None:
    with pytest.raises(RefusedAddress, match=reason) as refused:
        check(url, policy(platform=[("kafka.internal", 9092)]))
    assert "pw" not in str(refused.value)


@pytest.mark.parametrize(
    ("url", "allow", "expected"),
    [
        # FFmpeg gets the address the runner checked in place of the name: a name rebound since leads nowhere else.
        ("rtsp://user:pw@cam.lan:8554/live?ch=1", [], "rtsp://user:pw@192.168.1.20:8554/live?ch=1"),
        ("rtsp://cam6.lan/live", [], "rtsp://[2001:db8::20]/live"),
        ("rtsp://2130706433:8554/cam", ["127.0.0.0/8"], "rtsp://127.0.0.1:8554/cam"),
        ("rtsp://localhost:8554/cam", ["127.0.0.1/32"], "rtsp://127.0.0.1:8554/cam"),
        # TLS checks the name: rtsps keeps it.
        ("rtsps://cam.lan/live", [], "rtsps://cam.lan/live"),
    ],
)
def test_an_admitted_camera_is_opened_at_the_address_the_runner_checked(
    url: str, allow: list[str], expected: str
) -> None:
    assert check(url, policy(allow=allow)) == Destination(expected)


def test_a_name_that_does_not_resolve_is_unreachable_not_refused() -> None:
    """Retried like a camera that does not answer: its DNS may be back in a moment."""
    with pytest.raises(OSError, match="does not resolve") as unresolved:
        check("rtsp://gone.example/cam")
    assert not isinstance(unresolved.value, RefusedAddress)


def test_the_runner_refuses_its_own_kafka_and_the_servers_its_operator_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAP_KAFKA__BOOTSTRAP_SERVERS", "10.0.0.9:9092")
    monkeypatch.setenv("VAP_CAMERA_POLICY__ALLOW", "10.0.0.0/8")
    monkeypatch.setenv("VAP_CAMERA_POLICY__PLATFORM", "10.0.0.8:5432,[fd00::8]:6443")
    camera_policy = RunnerSettings(scenario_uuid=uuid.uuid4(), camera_url="rtsp://cam.lan/x").address_policy()
    for url in ("rtsp://10.0.0.9:9092/x", "rtsp://10.0.0.8:5432/x", "https://[fd00::8]:6443/x"):
        with pytest.raises(RefusedAddress, match="platform's own servers"):
            check(url, camera_policy)
    assert check("rtsp://10.0.0.8:554/x", camera_policy) == Destination("rtsp://10.0.0.8:554/x")


# --- HTTP: each redirect checked ------------------------------------------------------------------


class Redirects(BaseHTTPRequestHandler):
    """``/to?<url>``: a 302 to that URL; ``/loop``: a 302 to itself; anything else: 200."""

    hosts: list[str | None]

    def do_GET(self) -> None:
        self.hosts.append(self.headers["Host"])
        path, _, query = self.path.partition("?")
        location = {"/to": query, "/loop": "/loop"}.get(path)
        self.send_response(302 if location else 200)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[tuple[str, list[str | None]]]:
    """``http://127.0.0.1:<port>`` of a Redirects server, and the Host header of each request it got."""
    hosts: list[str | None] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (Redirects,), {"hosts": hosts}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hosts
    server.shutdown()
    server.server_close()


@pytest.fixture
def untouched() -> Iterator[UntouchedPort]:
    """A port on 127.0.0.2, loopback that LOCAL does not allow."""
    port = UntouchedPort("127.0.0.2")
    yield port
    port.close()


LOCAL = policy(allow=["127.0.0.1/32"])


def test_an_http_redirect_to_a_refused_address_is_refused_without_connecting_to_it(
    http_server: tuple[str, list[str | None]], untouched: UntouchedPort
) -> None:
    base, _ = http_server
    with pytest.raises(RefusedAddress, match=r"127\.0\.0\.2.* loopback .*after 1 redirect"):
        check(f"{base}/to?http://127.0.0.2:{untouched.port}/video.mp4", LOCAL)
    assert untouched.connections() == 0


@pytest.mark.parametrize(
    ("location", "refusal"),
    [
        ("file:///etc/passwd", "may not have"),
        ("rtsp://127.0.0.1/cam", "only http and https"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ],
)
def test_an_http_redirect_leaves_neither_http_nor_the_policy(
    http_server: tuple[str, list[str | None]], location: str, refusal: str
) -> None:
    base, _ = http_server
    with pytest.raises(RefusedAddress, match=refusal):
        check(f"{base}/to?{location}", LOCAL)


def test_an_admitted_redirect_is_followed_and_ffmpeg_gets_its_address_with_the_name_as_host(
    http_server: tuple[str, list[str | None]],
) -> None:
    base, hosts = http_server
    port = base.rpartition(":")[2]
    assert check(f"http://local.test:{port}/to?/video.mp4", LOCAL) == Destination(
        f"http://127.0.0.1:{port}/video.mp4", host_header=f"local.test:{port}"
    )
    assert hosts == [f"local.test:{port}"] * 2  # each hop asked at the checked address, by its name


def test_redirects_past_the_limit_are_unreachable(http_server: tuple[str, list[str | None]]) -> None:
    base, hosts = http_server
    with pytest.raises(OSError, match=f"more than {MAX_REDIRECTS}"):
        check(f"{base}/loop", LOCAL)
    assert len(hosts) == MAX_REDIRECTS + 1
