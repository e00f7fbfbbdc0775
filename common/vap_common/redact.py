"""One place that masks credentials in camera URLs before they reach a log line or a response."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"

# Query parameters that commonly carry credentials in camera URLs (vendor RTSP/HTTP APIs).
SECRET_QUERY_KEYS = frozenset(
    {
        "password",
        "passwd",
        "pass",
        "pwd",
        "token",
        "access_token",
        "auth",
        "key",
        "api_key",
        "apikey",
        "secret",
        "signature",
        "sig",
    }
)

# scheme://anything-up-to-whitespace-or-quote; used to find URLs inside free text.
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>]+")


def redact_url(url: str) -> str:
    """Return ``url`` with any password in the userinfo and any secret query value replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, sep, _password = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{hostport}" if sep else f"{userinfo}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(key.lower() in SECRET_QUERY_KEYS for key, _ in pairs):
            query = urlencode(
                [(key, MASK if key.lower() in SECRET_QUERY_KEYS else value) for key, value in pairs], safe="*"
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Mask credentials of every URL that appears anywhere in ``text``."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)


def has_credentials(url: str) -> bool:
    """True when ``url`` carries a password or a secret query value."""
    return redact_url(url) != url
