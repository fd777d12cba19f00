"""What id_token validation adds to a sign-in's callback, with the provider's keys already cached.

The id_token is a real one, from a user signed in through the DevProvider; the keys are
its JWKS, fetched once before timing (a warm cache, as on every sign-in after the first).
Beside it, PyJWT's own ``jwt.decode`` of the same token with the same key: the floor.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any, Callable

import jwt
import requests

from devprovider import DevProvider
from msal_wsgi import jose

from .fixtures import SignedInUser


def _median_us(run: Callable[[], Any], rounds: int = 7, per_round: int = 300) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(per_round):
            run()
        times.append((time.perf_counter() - started) / per_round * 1e6)
    return statistics.median(times)


def table(dev: DevProvider, user: SignedInUser) -> str:
    """Median µs per validation, msal_wsgi's rules against PyJWT's decode alone."""
    cache = json.loads(user.cache)
    id_token = next(iter(cache["IdToken"].values()))["secret"]
    claims = jwt.decode(id_token, options={"verify_signature": False})
    jwks = requests.get(dev.metadata["jwks_uri"], timeout=10).json()
    keys = jose.KeySet(lambda: jwks)
    header = jwt.get_unverified_header(id_token)
    key = keys.candidates(header)[0]  # warm
    now = float(claims["iat"]) + 1

    def ours() -> dict[str, Any]:
        return jose.validate_id_token(id_token, keys, issuer=dev.issuer, client_id="todo-web",
                                      algorithms=("RS256",), nonce=claims.get("nonce"), now=now)

    def pyjwt_alone() -> dict[str, Any]:
        return jwt.decode(id_token, key, algorithms=["RS256"], audience="todo-web",
                          options={"verify_exp": False, "verify_iat": False})

    ours()
    ours_us, floor_us = _median_us(ours), _median_us(pyjwt_alone)
    return "\n".join([
        f"a real id_token ({len(id_token)} bytes, {header.get('alg')}), JWKS cached",
        f"{'':28}{'median us':>10}",
        f"{'msal_wsgi validate_id_token':28}{ours_us:10.1f}",
        f"{'PyJWT jwt.decode alone':28}{floor_us:10.1f}",
        f"  added to each sign-in's callback: {ours_us:.0f} us ({ours_us / floor_us:.2f} x PyJWT's decode)",
    ])
