"""The camera address policy on a table of URLs: every spelling of loopback, link-local (cloud
metadata), unspecified and multicast addresses is refused, names are refused by what they resolve
to, the platform's own servers stay refused, and deny and allow lists change the rest."""

from __future__ import annotations

import ipaddress
import time

import pytest

from vap_common.address_policy import (
    AddressPolicy,
    RefusedAddress,
    literal_address,
    remembering,
    resolve,
    resolver_within,
)

# A resolver standing in for DNS: names a camera might have, some of them rebound to refused addresses.
NAMES = {
    "cam.lan": ["192.168.1.20"],
    "rebound.example": ["127.0.0.1"],
    "metadata.example": ["169.254.169.254"],
    "mixed.example": ["10.0.0.7", "127.0.0.1"],
    "db.internal": ["10.0.0.5"],
}


def fake_resolver(host: str, _port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    if host not in NAMES:
        raise OSError("Name or service not known")
    return [ipaddress.ip_address(address) for address in NAMES[host]]


def policy(**options: object) -> AddressPolicy:
    return AddressPolicy(resolver=fake_resolver, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("rtsp://127.0.0.1:8554/cam", "loopback"),
        ("rtsp://127.1/cam", "loopback"),
        ("rtsp://2130706433/cam", "loopback"),
        ("rtsp://0x7f.0.0.1/cam", "loopback"),
        ("rtsp://[::1]:8554/cam", "loopback"),
        ("rtsp://[::ffff:127.0.0.1]/cam", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/x", "link-local"),
        ("rtsp://0.0.0.0/cam", "unspecified"),
        ("rtsp://0/cam", "unspecified"),
        ("rtsp://[::]/cam", "unspecified"),
        ("rtsp://224.0.0.1/cam", "multicast"),
        ("rtsp://255.255.255.255/cam", "broadcast"),
        ("rtsp://user:pw@rebound.example/cam", "loopback"),
        ("http://metadata.example/", "link-local"),
        ("rtsp://mixed.example/cam", "loopback"),  # every address a name resolves to must be admitted
    ],
)
def test_refused_by_default(url: str, reason: str) -> None:
    with pytest.raises(RefusedAddress, match=reason) as refused:
        policy().check_url(url, unresolved_ok=True)
    assert "pw" not in str(refused.value) and "/cam" not in str(refused.value)  # the host only, never the URL


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://192.168.1.10/stream",
        "rtsp://10.1.2.3:554/h264",
        "rtsps://172.16.0.9/live",
        "http://203.0.113.7/mjpeg",
        "rtsp://[2001:db8::1]/cam",
        "rtsp://cam.lan/stream",
    ],
)
def test_cameras_on_private_and_public_networks_are_admitted(url: str) -> None:
    assert policy().check_url(url, unresolved_ok=False)


def test_a_name_that_does_not_resolve_is_admitted_only_where_a_later_check_follows() -> None:
    assert policy().check_url("rtsp://not-yet.example/cam", unresolved_ok=True) == []
    with pytest.raises(RefusedAddress, match="does not resolve"):
        policy().check_url("rtsp://not-yet.example/cam", unresolved_ok=False)


def test_the_allow_list_admits_what_the_defaults_refuse_but_never_the_platforms_servers() -> None:
    local = policy(allow=["127.0.0.0/8"], platform=[("127.0.0.1", 5432), ("127.0.0.1", 19092)])
    assert local.check_url("rtsp://127.0.0.1:8554/cam", unresolved_ok=False)
    assert local.check_url("rtsp://rebound.example:8554/cam", unresolved_ok=False)
    for url in ("http://127.0.0.1:5432/", "rtsp://127.0.0.2:19092/x", "http://rebound.example:5432/"):
        with pytest.raises(RefusedAddress, match="platform's own servers"):
            local.check_url(url, unresolved_ok=False)
    named = policy(allow=["rebound.example"], platform=[("db.internal", 5432)])
    assert named.check_url("rtsp://rebound.example/cam", unresolved_ok=False)
    with pytest.raises(RefusedAddress, match="platform's own servers"):
        named.check_url("http://10.0.0.5:5432/", unresolved_ok=False)
    with pytest.raises(RefusedAddress, match="loopback"):  # an allowed name does not allow others
        named.check_url("rtsp://127.0.0.1/cam", unresolved_ok=False)


def test_the_deny_list_refuses_networks_names_and_domains() -> None:
    strict = policy(deny=["10.0.0.0/8", "cam.lan", ".corp.example"])
    for url, shown in (
        ("rtsp://10.9.9.9/cam", "10.9.9.9"),
        ("rtsp://mixed.example/cam", "mixed.example"),
        ("rtsp://CAM.LAN/cam", "cam.lan"),
        ("rtsp://door.corp.example/cam", "door.corp.example"),
    ):
        with pytest.raises(RefusedAddress, match="deny list") as refused:
            strict.check_url(url, unresolved_ok=True)
        assert shown in str(refused.value)
    assert strict.check_url("rtsp://192.168.1.10/cam", unresolved_ok=False)


def test_list_entries_that_are_neither_networks_nor_names_are_refused() -> None:
    with pytest.raises(ValueError, match="neither a CIDR nor a host name"):
        AddressPolicy(deny=["http://cam.lan/"])


def test_literal_addresses_in_every_spelling_the_resolver_takes() -> None:
    assert [str(literal_address(host)) for host in ("127.1", "2130706433", "[::1]", "10.0.0.1")] == [
        "127.0.0.1",
        "127.0.0.1",
        "::1",
        "10.0.0.1",
    ]
    assert literal_address("cam.lan") is None


def test_the_real_resolver_sees_localhost_as_loopback() -> None:
    """A name that resolves to loopback: `localhost`, through the machine's own resolver."""
    assert all(address.is_loopback for address in resolve("localhost", 554))
    with pytest.raises(RefusedAddress, match="loopback"):
        AddressPolicy().check_url("rtsp://localhost:8554/cam", unresolved_ok=True)


def test_a_resolver_that_does_not_answer_counts_as_not_resolving_after_the_timeout() -> None:
    def silent(_host: str, _port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        time.sleep(3)
        return [ipaddress.IPv4Address("127.0.0.1")]

    started = time.monotonic()
    slow = AddressPolicy(resolver=resolver_within(0.2, silent))
    assert slow.check_url("rtsp://slow.example/cam", unresolved_ok=True) == []
    with pytest.raises(RefusedAddress, match="does not resolve"):
        slow.check_url("rtsp://slow.example/cam", unresolved_ok=False)
    assert time.monotonic() - started < 2


def test_answers_and_failures_are_remembered_for_a_while() -> None:
    asked: list[str] = []

    def counting(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        asked.append(host)
        return fake_resolver(host, port)

    remembered = AddressPolicy(resolver=remembering(counting, seconds=60))
    for _ in range(3):
        remembered.check_url("rtsp://cam.lan/stream", unresolved_ok=False)
        assert remembered.check_url("rtsp://unknown.example/cam", unresolved_ok=True) == []
    assert asked == ["cam.lan", "unknown.example"]
    forgetful = AddressPolicy(resolver=remembering(counting, seconds=0))
    forgetful.check_url("rtsp://cam.lan/stream", unresolved_ok=False)
    forgetful.check_url("rtsp://cam.lan/stream", unresolved_ok=False)
    assert asked[2:] == ["cam.lan", "cam.lan"]
