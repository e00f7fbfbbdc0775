"""Where FFmpeg connects for a network camera: the camera address policy (vap_common.address_policy)
checked again just before each connect, on the addresses the runner resolved itself.

- The host is resolved here and every address it resolves to is checked; FFmpeg then gets the first of
  them in place of the name (rtsp://; http:// with the name as its Host header), so a name rebound
  since the check (DNS rebinding) cannot lead it elsewhere. rtsps:// and https:// keep the name for
  TLS: FFmpeg resolves it once more, moments after the check.
- HTTP redirects are followed here, one hop at a time, each Location checked like the camera URL, at
  most MAX_REDIRECTS; FFmpeg gets the last URL and is told to follow none itself.
- A name that does not resolve and a server that does not answer are OSError (retried like any
  unreachable camera); a refused address is RefusedAddress (not retried: waiting changes no policy).
"""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from vap_common import camera
from vap_common.address_policy import AddressPolicy, IpAddress, RefusedAddress

MAX_REDIRECTS = 5
HTTP_SCHEMES = ("http", "https")
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# As FFmpeg, which does not verify camera certificates either (its tls_verify is off): cameras
# mostly have self-signed ones. Only a redirect is read through it, never a frame.
_TLS = ssl.create_default_context()
_TLS.check_hostname = False
_TLS.verify_mode = ssl.CERT_NONE


@dataclass(frozen=True)
class Destination:
    url: str  # what FFmpeg opens
    host_header: str | None = None  # the Host FFmpeg must send: the name, when ``url`` has the address


def destination(url: str, *, policy: AddressPolicy, timeout_seconds: float) -> Destination:
    """Where FFmpeg connects for the network camera ``url`` (admitted by vap_common.camera), its
    addresses and redirects admitted by ``policy``; RefusedAddress or OSError otherwise."""
    scheme = urlsplit(url).scheme
    if scheme not in HTTP_SCHEMES:
        address = _checked_address(url, policy)
        return Destination(_pinned(url, address) if scheme == "rtsp" else url)
    for hop in range(MAX_REDIRECTS + 1):
        try:
            address = _checked_address(url, policy)
        except RefusedAddress as error:
            raise RefusedAddress(f"{error} (after {hop} redirect(s))" if hop else str(error)) from None
        location = _redirect_of(url, address, timeout_seconds=timeout_seconds)
        if location is None:
            if scheme == "https":
                return Destination(url)
            return Destination(_pinned(url, address), host_header=urlsplit(url).netloc.rpartition("@")[2])
        url = _next_hop(url, location)
        scheme = urlsplit(url).scheme
    raise OSError(f"the camera redirects more than {MAX_REDIRECTS} times")


def _checked_address(url: str, policy: AddressPolicy) -> IpAddress:
    """The address to connect to for ``url``'s host: the first it resolves to, all of them admitted."""
    addresses = policy.check_url(url, unresolved_ok=True)
    if not addresses:
        raise OSError(f"camera host {urlsplit(url).hostname!r} does not resolve")
    return addresses[0]


def _pinned(url: str, address: IpAddress) -> str:
    """``url`` with ``address`` in place of its host (user info, port, path and query kept)."""
    parts = urlsplit(url)
    user_info, at, _ = parts.netloc.rpartition("@")
    host = f"[{address}]" if address.version == 6 else str(address)
    port = f":{parts.port}" if parts.port else ""
    prefix = f"{parts.scheme}://"
    return f"{prefix}{user_info}{at}{host}{port}{url[len(prefix) + len(parts.netloc) :]}"


def _redirect_of(url: str, address: IpAddress, *, timeout_seconds: float) -> str | None:
    """The Location the server of ``url`` at ``address`` answers a GET of it with; None for any other
    answer (FFmpeg gets it too). A GET as FFmpeg sends, not a HEAD: cameras may answer that otherwise.
    No credentials are sent: an answer asking for them is FFmpeg's to give."""
    parts = urlsplit(url)
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    host = parts.hostname or ""
    connection = (http.client.HTTPSConnection if https else http.client.HTTPConnection)(
        host, port, timeout=timeout_seconds
    )
    try:
        # Connected here, to the checked address; http.client sends the name as the Host.
        connection.sock = socket.create_connection((str(address), port), timeout=timeout_seconds)
        if https:
            connection.sock = _TLS.wrap_socket(connection.sock, server_hostname=host)
        connection.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        response = connection.getresponse()
        location = response.getheader("Location")
        return location if response.status in _REDIRECT_STATUSES and location else None
    except http.client.HTTPException as error:
        raise OSError(f"the camera's answer is not HTTP ({type(error).__name__})") from None
    finally:
        connection.close()


def _next_hop(url: str, location: str) -> str:
    """The URL a redirect from ``url`` to ``location`` leads to, if cameras may have it."""
    target = urljoin(url, location)
    try:
        admitted = camera.admit(target, allow_files=False)
    except camera.InadmissibleCamera as error:
        raise RefusedAddress(f"the camera redirects to a URL cameras may not have: {error}") from None
    if admitted.scheme not in HTTP_SCHEMES:
        raise RefusedAddress(f"the camera redirects to a {admitted.scheme} URL; only http and https are followed")
    return admitted.url
