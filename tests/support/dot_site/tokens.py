"""JWT access tokens, and the id_token's profile claims, for the test provider.

DOT's access tokens are opaque by default; the to-do API validates JWT bearer
tokens, so DOT mints RS256 JWTs here, signed with its OpenID Connect key and naming
that key's JWKS ``kid``: issuer, audience, subject (the id_token's ``sub``), scope,
client id, issue and expiry times.
"""

from __future__ import annotations

import time
import uuid
from functools import lru_cache
from typing import Any

import jwt
from django.conf import settings
from jwcrypto import jwk
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.settings import oauth2_settings


@lru_cache(maxsize=1)
def _key() -> tuple[str, str]:
    pem = oauth2_settings.OIDC_RSA_PRIVATE_KEY
    return pem, jwk.JWK.from_pem(pem.encode("utf8")).thumbprint()  # the kid DOT's JWKS publishes


def signed_access_token(request: Any, refresh_token: bool = False) -> str:
    """oauthlib's token generator: an RS256 JWT for the request's user, client and scopes."""
    pem, kid = _key()
    now = int(time.time())
    claims = {
        "iss": settings.ISSUER,
        "aud": settings.API_AUDIENCE,
        "sub": str(request.user.pk),
        "client_id": request.client_id,
        "scope": " ".join(request.scopes),
        "iat": now,
        "exp": now + oauth2_settings.ACCESS_TOKEN_EXPIRE_SECONDS,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, pem, algorithm="RS256", headers={"kid": kid})


class Validator(OAuth2Validator):
    """DOT's validator, with the user's name in the id_token (DOT's default has only ``sub``)."""

    def get_additional_claims(self, request: Any) -> dict[str, Any]:
        return {"preferred_username": request.user.username, "name": request.user.get_full_name() or
                request.user.username}
