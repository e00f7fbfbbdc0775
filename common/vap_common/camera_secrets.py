"""Camera credentials sealed where they are stored: the API seals the password and every secret query
value of a camera URL (vap_common.redact.SECRET_QUERY_KEYS) before the URL reaches PostgreSQL, the
outbox or Kafka; only the operator opens it (for the runner's environment or the scenario's Secret).

A sealed value replaces the secret in place, so the rest of the URL stays readable (host, port,
path: the address policy and the CRD still see them) and a redacted URL looks as before:
``rtsp://admin:vapenc.k2.<base64url>@cam.local/stream``. ``k2`` names the key: a key ring holds
several, the first seals and every one opens, so keys rotate without touching stored scenarios.

AES-SIV (RFC 5297, the ``cryptography`` package): authenticated, and deterministic, so a replayed
registration (same Idempotency-Key) is recognised by comparing sealed URLs. The price: two cameras
with the same password show the same sealed value, which says nothing of the password itself.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import unquote_plus

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

from vap_common.redact import SECRET_QUERY_KEYS

KEY_BYTES = 64  # AES-256-SIV
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9-]{1,32}")
_PREFIX = "vapenc"
_SEALED = re.compile(rf"{_PREFIX}\.({KEY_ID_PATTERN.pattern})\.([A-Za-z0-9_-]+)")
_CONTEXT = b"vap camera credential v1"


class UnreadableCredentials(ValueError):
    """A sealed camera credential no key of the ring opens (the message names the key id, never the URL)."""


class NoSealingKey(ValueError):
    """A camera URL with credentials, and no key to seal them with: they are never stored in plain text."""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def generate_key(key_id: str) -> str:
    """A new ring entry ``<key_id>:<base64url key>`` for VAP_CAMERA_KEYS."""
    if not KEY_ID_PATTERN.fullmatch(key_id):
        raise ValueError("a camera key id is 1 to 32 letters, digits or '-'")
    return f"{key_id}:{_b64encode(AESSIV.generate_key(KEY_BYTES * 8))}"


def _replace_secrets(url: str, replace: Callable[[str], str]) -> str:
    """``url`` with ``replace`` applied to its password and to each secret query value, every other
    character as it was (no re-encoding: opening gives back exactly what was sealed)."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    authority_end = min((rest.find(mark) for mark in "/?#" if mark in rest), default=len(rest))
    authority, tail = rest[:authority_end], rest[authority_end:]
    if "@" in authority:
        userinfo, _, hostport = authority.rpartition("@")
        user, colon, password = userinfo.partition(":")
        if colon and password:
            authority = f"{user}:{replace(password)}@{hostport}"
    before_fragment, hash_mark, fragment = tail.partition("#")
    path, question_mark, query = before_fragment.partition("?")
    if query:
        fields = []
        for field in query.split("&"):
            key, equals, value = field.partition("=")
            if equals and value and unquote_plus(key).lower() in SECRET_QUERY_KEYS:
                field = f"{key}={replace(value)}"
            fields.append(field)
        query = "&".join(fields)
    return f"{scheme}://{authority}{path}{question_mark}{query}{hash_mark}{fragment}"


def key_ids(url: str) -> set[str]:
    """The ids of the keys that sealed ``url``'s credentials (none: nothing in it is sealed)."""
    found: set[str] = set()

    def note(value: str) -> str:
        if match := _SEALED.fullmatch(value):
            found.add(match.group(1))
        return value

    _replace_secrets(url, note)
    return found


class CameraKeyring:
    """Keys by id, the first one sealing. Parsed from ``id:base64url-key,id:base64url-key``."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        for key_id, key in keys.items():
            if not KEY_ID_PATTERN.fullmatch(key_id):
                raise ValueError(f"camera key id {key_id!r} must be 1 to 32 letters, digits or '-'")
            if len(key) != KEY_BYTES:
                raise ValueError(f"camera key {key_id!r} must be {KEY_BYTES} bytes (base64url), not {len(key)}")
        self._ciphers = {key_id: AESSIV(key) for key_id, key in keys.items()}
        self.sealing_key_id = next(iter(keys), None)

    @classmethod
    def parse(cls, entries: Iterable[str]) -> CameraKeyring:
        keys: dict[str, bytes] = {}
        for entry in entries:
            key_id, colon, encoded = entry.strip().partition(":")
            if not colon:
                raise ValueError("a camera key is written <id>:<base64url key> (vap-admin camera-keys generate)")
            if key_id in keys:
                raise ValueError(f"camera key id {key_id!r} appears twice")
            try:
                keys[key_id] = _b64decode(encoded.strip())
            except (binascii.Error, ValueError):
                raise ValueError(f"camera key {key_id!r} is not base64url") from None
        return cls(keys)

    def seal(self, url: str, *, key_id: str | None = None) -> str:
        """``url`` with its credentials sealed by ``key_id`` (the sealing key by default); NoSealingKey
        when it has credentials and the ring has no such key. A URL without credentials is unchanged."""
        chosen = key_id or self.sealing_key_id
        cipher = self._ciphers.get(chosen) if chosen else None

        def sealed(secret: str) -> str:
            if chosen is None or cipher is None:
                raise NoSealingKey("camera credentials are only stored encrypted, and no camera key is set")
            return f"{_PREFIX}.{chosen}.{_b64encode(cipher.encrypt(secret.encode(), [_CONTEXT, chosen.encode()]))}"

        return _replace_secrets(url, sealed)

    def open(self, url: str) -> str:
        """``url`` with every sealed credential opened; UnreadableCredentials when a key is missing or a
        value was altered. Values not sealed (stored before sealing existed) are kept as they are."""

        def opened(value: str) -> str:
            match = _SEALED.fullmatch(value)
            if match is None:
                return value
            key_id, data = match.groups()
            cipher = self._ciphers.get(key_id)
            if cipher is None:
                raise UnreadableCredentials(f"camera credentials were sealed with key {key_id!r}, which is not set")
            try:
                return cipher.decrypt(_b64decode(data), [_CONTEXT, key_id.encode()]).decode()
            except (InvalidTag, binascii.Error, ValueError, UnicodeDecodeError):
                raise UnreadableCredentials(f"camera credentials sealed with key {key_id!r} do not open") from None

        return _replace_secrets(url, opened)

    def same_camera(self, sealed: str, url: str) -> bool:
        """Whether the stored ``sealed`` URL is ``url`` (in plain text), whichever ring key sealed it."""
        if sealed == url:
            return True
        sealed_with = key_ids(sealed)
        if len(sealed_with) != 1 or next(iter(sealed_with)) not in self._ciphers:
            return False
        return self.seal(url, key_id=next(iter(sealed_with))) == sealed
