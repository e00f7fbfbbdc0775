"""OpenID Connect access tokens: JWTs signed with one of the issuer's published keys (its JWKS),
checked by PyJWT; the tenant and the scopes come from claims (AuthOptions.oidc)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jwt

from vap_api.auth.keys import Principal, known_scopes
from vap_api.errors import IdentityProviderUnavailable, NotAuthenticated
from vap_common.tenants import is_valid_tenant

if TYPE_CHECKING:
    from vap_api.settings import OidcOptions


class OidcVerifier:
    """Checks signature, issuer, audience and expiry; the signing keys are fetched once and again
    when a token names a key id not seen yet (the issuer rotated its keys)."""

    def __init__(self, options: OidcOptions) -> None:
        self._options = options
        self._keys = jwt.PyJWKClient(
            options.jwks_url,
            cache_keys=True,
            lifespan=int(options.jwks_cache_seconds),
            timeout=5,
            cooldown_duration=options.jwks_refresh_cooldown_seconds,
        )

    def principal(self, token: str) -> Principal:
        """The caller ``token`` stands for; NotAuthenticated, or IdentityProviderUnavailable when the
        issuer's keys cannot be fetched."""
        options = self._options
        try:
            signing_key = self._keys.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                signing_key.key,
                algorithms=options.algorithms,
                audience=options.audience,
                issuer=options.issuer,
                leeway=options.leeway_seconds,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWKClientConnectionError as error:
            raise IdentityProviderUnavailable(f"the identity provider's keys cannot be fetched: {error}") from None
        except jwt.PyJWTError as error:
            raise NotAuthenticated(f"the access token is not valid: {error}") from None
        tenant = claims.get(options.tenant_claim)
        if not isinstance(tenant, str) or not is_valid_tenant(tenant):
            raise NotAuthenticated(f"the access token has no valid tenant claim {options.tenant_claim!r}")
        granted = claims.get(options.scope_claim)
        values = granted.split() if isinstance(granted, str) else granted if isinstance(granted, list) else []
        return Principal(tenant, known_scopes(values), key_id=f"oidc:{claims['sub']}")
