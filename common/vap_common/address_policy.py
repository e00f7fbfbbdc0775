"""Which network addresses a camera URL may make the platform connect to: a camera URL is a request
to open a connection from inside the platform's network, so it must not reach what only the platform
should (its own servers, the machine's loopback services, the cloud's metadata service).

Refused by default: loopback (127.0.0.0/8, ::1), link-local (169.254.0.0/16, fe80::/10: cloud metadata
services live there), unspecified (0.0.0.0/8, ::), multicast and broadcast addresses, in every
spelling (``127.1``, ``2130706433``, ``[::ffff:127.0.0.1]``), and the platform's own servers
(``platform``: host and port of PostgreSQL, Kafka, the Kubernetes API). Then, in this order:
- ``deny`` entries refuse more: CIDRs, host names, ``.example.com`` for a domain and its hosts;
- ``allow`` entries admit what the defaults refuse (the local demo: ``127.0.0.0/8``); the platform's
  own servers stay refused.

Names are resolved and every address they resolve to is checked. The API checks at registration (a
name that does not resolve then is admitted: the runner checks again); the runner checks just before
it connects, after resolving the name itself (a name rebound to a refused address since then).
Private networks (10.0.0.0/8, 192.168.0.0/16, ...) are where cameras live: admitted.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from cachetools import TTLCache

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> the addresses it resolves to; socket.getaddrinfo by default.
Resolver = Callable[[str, int], list[IpAddress]]

_UNSPECIFIED_V4 = ipaddress.IPv4Network("0.0.0.0/8")  # "this network": 0.x.x.x reaches the machine itself
_BROADCAST_V4 = ipaddress.IPv4Address("255.255.255.255")
_DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}


class RefusedAddress(ValueError):
    """A camera URL whose host is or resolves to an address the policy refuses (the message names
    the host, never the URL: it may carry a password)."""


def literal_address(host: str) -> IpAddress | None:
    """The address ``host`` spells, in any form the resolver would also take (``127.1``, ``2130706433``,
    ``0x7f.0.0.1``, IPv6 with or without brackets); None for a name."""
    bare = host.strip("[]")
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(bare))
    except OSError:
        return None


def resolve(host: str, port: int) -> list[IpAddress]:
    """Every address ``host`` resolves to (socket.getaddrinfo, as the decoders resolve it)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))


# Lookups with a deadline run here: getaddrinfo itself has none, and a resolver that does not answer
# must not hold a registration for the resolver's own retries (several times 5 s).
_LOOKUPS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="vap-dns")


def resolver_within(seconds: float, resolver: Resolver | None = None) -> Resolver:
    """``resolver`` (``resolve`` by default) giving up with OSError after ``seconds``."""

    def lookup(host: str, port: int) -> list[IpAddress]:
        try:
            return _LOOKUPS.submit(resolver or resolve, host, port).result(timeout=seconds)
        except TimeoutError:
            raise OSError(f"no answer from the resolver within {seconds:g} s") from None

    return lookup


def remembering(resolver: Resolver, *, seconds: float, max_names: int = 10_000) -> Resolver:
    """``resolver`` whose answers (and failures) are kept for ``seconds``: registrations of cameras by
    name then cost no lookup each. The runner checks again when it connects, so a stale answer admits
    nothing it would not refuse then."""
    answers: TTLCache[tuple[str, int], list[IpAddress] | OSError] = TTLCache(maxsize=max_names, ttl=seconds)
    lock = threading.Lock()

    def lookup(host: str, port: int) -> list[IpAddress]:
        with lock:
            known = answers.get((host, port))
        if known is None:
            try:
                known = resolver(host, port)
            except OSError as error:
                known = error
            with lock:
                answers[host, port] = known
        if isinstance(known, OSError):
            raise known
        return known

    return lookup


def _default_refusal(address: IpAddress) -> str | None:
    checked = _unmapped(address)
    if checked.is_loopback:
        return "a loopback address"
    if checked.is_link_local:
        return "a link-local address (cloud metadata services are there)"
    if checked.is_unspecified or (isinstance(checked, ipaddress.IPv4Address) and checked in _UNSPECIFIED_V4):
        return "an unspecified address"
    if checked.is_multicast or checked == _BROADCAST_V4:
        return "a multicast or broadcast address"
    return None


@dataclass(frozen=True)
class _Entries:
    """A list of CIDRs and host names (``.example.com``: that domain and its hosts)."""

    networks: tuple[IpNetwork, ...]
    names: tuple[str, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> _Entries:
        networks: list[IpNetwork] = []
        names: list[str] = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                if not entry or any(character in entry for character in "/:@ "):
                    raise ValueError(f"{entry!r} is neither a CIDR nor a host name") from None
                names.append(entry.lower().rstrip("."))
        return cls(tuple(networks), tuple(names))

    def has_name(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(host == name or (name.startswith(".") and host.endswith(name)) for name in self.names)

    def has_address(self, address: IpAddress) -> bool:
        return any(address in network or _unmapped(address) in network for network in self.networks)


@dataclass(frozen=True)
class AddressPolicy:
    allow: Sequence[str] = ()
    deny: Sequence[str] = ()
    platform: Sequence[tuple[str, int]] = ()  # the platform's own servers: (host, port)
    resolver: Resolver = resolve
    _allow: _Entries = field(init=False, repr=False)
    _deny: _Entries = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_allow", _Entries.parse(self.allow))
        object.__setattr__(self, "_deny", _Entries.parse(self.deny))

    def check_url(self, url: str, *, unresolved_ok: bool) -> list[IpAddress]:
        """The addresses a network camera URL's host resolves to, all admitted; RefusedAddress
        otherwise. A name that does not resolve is admitted (no address) only with ``unresolved_ok``."""
        parts = urlsplit(url)
        host = parts.hostname
        if not host:
            return []
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 0)
        literal = literal_address(host)
        if self._deny.has_name(host):
            raise RefusedAddress(f"camera host {host!r} is on the deny list")
        if literal is not None:
            addresses = [literal]
        else:
            try:
                addresses = self.resolver(host, port)
            except (OSError, UnicodeError):
                if unresolved_ok:
                    return []
                raise RefusedAddress(f"camera host {host!r} does not resolve") from None
        for address in addresses:
            self._check_address(host, address, port, named=self._allow.has_name(host))
        return addresses

    def _check_address(self, host: str, address: IpAddress, port: int, *, named: bool) -> None:
        shown = host if literal_address(host) is not None else f"{host} ({address})"
        if self._is_platform(address, port):
            raise RefusedAddress(f"camera host {shown} port {port} is one of the platform's own servers")
        if self._deny.has_address(address):
            raise RefusedAddress(f"camera host {shown} is on the deny list")
        if named or self._allow.has_address(address):
            return
        if (reason := _default_refusal(address)) is not None:
            raise RefusedAddress(f"camera host {shown} is {reason}, which cameras may not use")

    def _is_platform(self, address: IpAddress, port: int) -> bool:
        for host, server_port in self.platform:
            if server_port != port:
                continue
            literal = literal_address(host)
            try:
                servers = [literal] if literal is not None else self.resolver(host, server_port)
            except (OSError, UnicodeError):
                continue
            if any(_same_machine(address, server) for server in servers):
                return True
        return False


def _unmapped(address: IpAddress) -> IpAddress:
    """An IPv4-mapped IPv6 address (``::ffff:127.0.0.1``) as the IPv4 address it reaches."""
    return address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped else address


def _same_machine(address: IpAddress, server: IpAddress) -> bool:
    """Whether a connection to ``address`` may reach a listener of ``server``: the same address, or
    both loopback (a server bound to all addresses answers on every one of them)."""
    address, server = _unmapped(address), _unmapped(server)
    return address == server or (address.is_loopback and server.is_loopback)
