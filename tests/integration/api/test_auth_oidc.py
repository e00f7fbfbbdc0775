"""OIDC access tokens: the real app checks JWTs against the signing keys a real HTTP server on
loopback publishes as the issuer's JWKS (keys made here with `cryptography`)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from jwt.algorithms import RSAAlgorithm
from sqlalchemy.orm import Session, sessionmaker

from tests.integration.api.api_test_support import bearer, issue_key
from vap_api.main import create_app
from vap_api.settings import ApiSettings, AuthOptions, OidcOptions

ISSUER = "https://id.example/realms/vap"
AUDIENCE = "vap-api"


@dataclass
class Issuer:
    """An identity provider's signing keys, published at ``jwks_url`` (keys can be rotated)."""

    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    jwks_url: str = ""
    requests: int = 0

    def add_key(self) -> str:
        kid = uuid.uuid4().hex[:8]
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return kid

    def jwks(self) -> dict[str, Any]:
        return {
            "keys": [
                {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig", "alg": "RS256"}
                for kid, key in self.keys.items()
            ]
        }

    def token(self, kid: str | None = None, **claims: Any) -> str:
        kid = kid or next(iter(self.keys))
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "iat": now, "exp": now + 300, "tenant": "acme"}
        body.update(claims)
        body = {name: value for name, value in body.items() if value is not None}
        return jwt.encode(body, self.keys[kid], algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    published = Issuer()
    published.add_key()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            published.requests += 1
            body = json.dumps(published.jwks()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    published.jwks_url = f"http://127.0.0.1:{server.server_port}/jwks"
    yield published
    server.shutdown()
    server.server_close()


@pytest.fixture
def oidc_client(api_settings: ApiSettings, issuer: Issuer) -> Iterator[Callable[..., Any]]:
    """``call(method, path, token)`` on the app that accepts the issuer's tokens (and API keys)."""
    oidc = OidcOptions(
        issuer=ISSUER, audience=AUDIENCE, jwks_url=issuer.jwks_url, leeway_seconds=0, jwks_refresh_cooldown_seconds=0
    )
    settings = api_settings.model_copy(update={"auth": AuthOptions(oidc=oidc)})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield lambda method, path, token, body=None: client.request(method, path, json=body, headers=bearer(token))


def test_a_valid_token_acts_for_its_tenant_with_its_scopes(oidc_client: Callable[..., Any], issuer: Issuer) -> None:
    writer = issuer.token(scope="openid scenarios:read scenarios:write")
    created = oidc_client("POST", "/api/v1/scenario/init", writer, {"camera_url": "rtsp://cam.example/a"})
    assert created.status_code == 201, created.text
    scenario = created.json()["scenario_uuid"]
    assert oidc_client("GET", f"/api/v1/scenario/{scenario}", writer).status_code == 200
    other_tenant = issuer.token(tenant="globex", scope="scenarios:read")
    assert oidc_client("GET", f"/api/v1/scenario/{scenario}", other_tenant).status_code == 404
    as_list = issuer.token(scope=["scenarios:read"])  # a list claim works too (e.g. scope_claim="scp")
    assert [item["scenario_uuid"] for item in oidc_client("GET", "/api/v1/scenarios", as_list).json()["items"]] == [
        scenario
    ]
    read_only = issuer.token(scope="scenarios:read")
    refused = oidc_client("POST", f"/api/v1/scenario/{scenario}/shutdown", read_only)
    assert refused.status_code == 403 and "scenarios:write" in refused.json()["detail"]


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": int(time.time()) - 10}, "expired"),
        ({"aud": "someone-else"}, "audience"),
        ({"iss": "https://evil.example"}, "issuer"),
        ({"tenant": None}, "tenant claim"),
        ({"tenant": "Not A Label"}, "tenant claim"),
        ({"sub": None}, "sub"),
    ],
    ids=["expired", "wrong audience", "wrong issuer", "no tenant", "bad tenant", "no subject"],
)
def test_a_token_that_is_not_for_this_api_now_is_refused_with_401(
    oidc_client: Callable[..., Any], issuer: Issuer, claims: dict[str, Any], reason: str
) -> None:
    token = issuer.token(scope="scenarios:read", **claims)
    response = oidc_client("GET", "/api/v1/scenarios", token)
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert reason in response.json()["detail"].lower(), response.json()


def test_a_token_signed_by_a_key_the_issuer_does_not_publish_is_refused(
    oidc_client: Callable[..., Any], issuer: Issuer
) -> None:
    stranger = Issuer()
    forged = stranger.token(stranger.add_key(), scope="scenarios:read")
    assert oidc_client("GET", "/api/v1/scenarios", forged).status_code == 401
    # Same key id as the issuer's, another private key: the signature does not verify.
    kid = next(iter(issuer.keys))
    stranger.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert oidc_client("GET", "/api/v1/scenarios", stranger.token(kid, scope="scenarios:read")).status_code == 401
    unsigned = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "tenant": "acme"}, None, algorithm="none")
    assert oidc_client("GET", "/api/v1/scenarios", unsigned).status_code == 401


def test_a_rotated_signing_key_is_fetched_when_a_token_names_it(
    oidc_client: Callable[..., Any], issuer: Issuer
) -> None:
    assert oidc_client("GET", "/api/v1/scenarios", issuer.token(scope="scenarios:read")).status_code == 200
    fetched = issuer.requests
    assert oidc_client("GET", "/api/v1/scenarios", issuer.token(scope="scenarios:read")).status_code == 200
    assert issuer.requests == fetched  # cached
    rotated = issuer.add_key()
    assert oidc_client("GET", "/api/v1/scenarios", issuer.token(rotated, scope="scenarios:read")).status_code == 200
    assert issuer.requests == fetched + 1
    forged = Issuer()
    forged.add_key()
    for _ in range(3):  # unknown key ids: one fetch each here (cooldown 0); at most one per cooldown by default
        assert oidc_client("GET", "/api/v1/scenarios", forged.token(scope="scenarios:read")).status_code == 401
    assert issuer.requests == fetched + 4


def test_api_keys_still_work_beside_tokens(
    oidc_client: Callable[..., Any], session_factory: sessionmaker[Session]
) -> None:
    assert oidc_client("GET", "/api/v1/scenarios", issue_key(session_factory)).status_code == 200


def test_an_unreachable_issuer_is_a_503_not_a_refusal(api_settings: ApiSettings, issuer: Issuer) -> None:
    oidc = OidcOptions(issuer=ISSUER, audience=AUDIENCE, jwks_url="http://127.0.0.1:1/jwks")
    settings = api_settings.model_copy(update={"auth": AuthOptions(oidc=oidc)})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.get("/api/v1/scenarios", headers=bearer(issuer.token(scope="scenarios:read")))
    assert response.status_code == 503 and response.headers["retry-after"] == "5", response.text
