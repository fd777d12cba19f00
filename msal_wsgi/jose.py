"""Verify the JWTs an OpenID Connect provider signs: id tokens, logout tokens, API access tokens.

msal decodes id tokens but verifies neither their signature nor their claims; this module does.
PyJWT does the JOSE work (parsing, signatures); this module keeps the provider's keys and applies
each profile's claim rules:

- ID tokens: OpenID Connect Core 1.0 §3.1.3.7 steps 2-3 and 6-11, claims as in §2;
- logout tokens: OpenID Connect Back-Channel Logout 1.0 §2.4 and §2.6;
- access tokens: RFC 9068 §4 for an API receiving bearer tokens (RFC 6750), Entra v1/v2 included;
- keys: the JWKS (RFC 7517), re-fetched on an unknown ``kid`` as Core §10.1.1 describes rotation;
- always (RFC 8725 §2.1, §3.1): an allow-list of asymmetric algorithms, never ``none`` or HMAC;
  a ``crit`` header is refused (RFC 7515 §4.1.11: we implement no JWS extension); keys come only
  from the JWKS, never from the token's own ``jwk``, ``jku``, ``x5u`` or ``x5c`` headers.

No HTTP here: :class:`KeySet` calls a function that returns the JWKS document. Every failure is
an :class:`InvalidToken` whose ``reason`` is a short code; no message holds a token, a signature or a
claim's value.
"""

from __future__ import annotations

import base64
import hmac
import json
import math
import re
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Union

import jwt

from .errors import MsalWsgiError

MAX_TOKEN_LENGTH = 16 * 1024
#: RFC 7515 §7.1 compact serialization: three base64url segments (padding tolerated, as PyJWT does).
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+={0,2}\.[A-Za-z0-9_-]*={0,2}\.[A-Za-z0-9_-]*={0,2}")
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"

# The algorithms each key type can verify. No "oct" (HMAC) and no "none": with those, a provider's
# public key would serve as a shared secret, the classic key-confusion attack.
_ALGORITHMS_FOR_KEY: Mapping[tuple[str, str | None], tuple[str, ...]] = {
    ("RSA", None): ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    ("EC", "P-256"): ("ES256",),
    ("EC", "P-384"): ("ES384",),
    ("EC", "P-521"): ("ES512",),
    ("OKP", "Ed25519"): ("EdDSA",),
    ("OKP", "Ed448"): ("EdDSA",),
}
ASYMMETRIC_ALGORITHMS = frozenset(alg for algs in _ALGORITHMS_FOR_KEY.values() for alg in algs)

_STRING_CLAIMS = ("iss", "sub", "jti", "sid", "azp")
_TIME_CLAIMS = ("exp", "nbf", "iat")

# PyJWT checks the signature only: jwt.decode reads the wall clock itself (no way to pass ``now``)
# and its claim errors are not the stable reasons callers need, so the claim rules are ours.
_SIGNATURE_ONLY = jwt.PyJWT({"verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_aud": False,
                             "verify_iss": False, "verify_sub": False, "verify_jti": False})

Claims = Mapping[str, Any]
Issuer = Union[str, Callable[[Claims], str]]


class InvalidToken(MsalWsgiError):
    """A JWT failed validation; ``reason`` is a short stable code for logs and tests.

    The message is the reason and nothing else: never the token, its signature or a claim value.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid token: {reason}")


@dataclass(frozen=True)
class _Keys:
    """One parsed JWKS document: verification keys by algorithm, and the kids it names."""

    by_alg: Mapping[str, tuple[jwt.PyJWK, ...]]
    kids: frozenset[str]

    @classmethod
    def parse(cls, document: object) -> _Keys:
        entries = document.get("keys") if isinstance(document, Mapping) else None
        by_alg: dict[str, list[jwt.PyJWK]] = {}
        for jwk in entries if isinstance(entries, list) else ():
            if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
                continue
            family = (jwk.get("kty"), jwk.get("crv"))
            for alg in next((algs for key, algs in _ALGORITHMS_FOR_KEY.items() if key == family), ()):
                if jwk.get("alg", alg) != alg:  # a key that names its algorithm serves that one only
                    continue
                try:
                    # One PyJWK per algorithm: PyJWT binds a PyJWK to one (RS256 for an alg-less RSA key).
                    key = jwt.PyJWK(jwk, alg)
                except jwt.PyJWTError:  # bad key data: skip the key, keep the others
                    break  # the other algorithms of its type would read the same data
                by_alg.setdefault(alg, []).append(key)
        if not by_alg:
            raise InvalidToken("jwks_unusable")
        kids = {key.key_id for keys in by_alg.values() for key in keys}
        return cls({alg: tuple(keys) for alg, keys in by_alg.items()}, frozenset(k for k in kids if isinstance(k, str)))

    def find(self, alg: str, kid: str | None) -> list[jwt.PyJWK]:
        return [key for key in self.by_alg.get(alg, ()) if kid is None or key.key_id == kid]


class KeySet:
    """The provider's signing keys (JWKS), cached per process and shared by all threads.

    The JWKS is fetched on first use, then again only when a token names a ``kid`` the cached
    document lacks (the provider has rotated its keys), at most once per ``min_refetch_interval``
    seconds, failed re-fetches included: a flood of made-up kids costs the provider one request per
    interval, and a rotation right after the first fetch is still seen. Threads that wait for
    another's fetch use its result. Until a first fetch succeeds, each use tries again.

    - ``fetch_jwks``: returns the parsed JWKS document; it does the HTTP (the caller's session,
      CA bundle and timeouts), and its exceptions reach the caller of :meth:`candidates` unchanged.
    - ``min_refetch_interval``: seconds between two re-fetches.
    - ``clock``: monotonic seconds; tests pass a fake.

    A document without a usable signing key raises ``InvalidToken("jwks_unusable")``; unusable keys
    (``use`` other than ``sig``, an unknown ``kty`` or curve, bad key data) are skipped.
    """

    def __init__(self, fetch_jwks: Callable[[], Mapping[str, Any]], *, min_refetch_interval: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch_jwks = fetch_jwks
        self._min_refetch_interval = min_refetch_interval
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: _Keys | None = None
        self._next_fetch = -math.inf

    def __repr__(self) -> str:
        keys = self._keys
        return f"KeySet(kids={sorted(keys.kids)!r})" if keys else "KeySet(not fetched)"

    def candidates(self, header: Mapping[str, Any]) -> list[jwt.PyJWK]:
        """Keys that may have signed a token with this header.

        With a ``kid``: the key(s) of that kid that serve the header's ``alg``, after one re-fetch
        when the kid is unknown. Without a ``kid``: every key whose type serves the ``alg`` (RSA for
        RS*/PS*, EC of the matching curve for ES*, OKP for EdDSA). Never an HMAC key.
        """
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or not isinstance(kid, (str, type(None))):
            return []
        keys = self._keys or self._refresh(None)
        if kid is not None and kid not in keys.kids:
            keys = self._refresh(keys)
        return keys.find(alg, kid)

    def _refresh(self, stale: _Keys | None) -> _Keys:
        with self._lock:
            current = self._keys
            if current is not None and (current is not stale or self._clock() < self._next_fetch):
                return current  # another thread fetched while this one waited, or too soon to fetch
            if stale is not None:  # a re-fetch for an unknown kid; the first fetch does not count
                self._next_fetch = self._clock() + self._min_refetch_interval
            self._keys = _Keys.parse(self._fetch_jwks())
            return self._keys


@dataclass(frozen=True)
class Expectations:
    """What a valid token of one kind satisfies, for :func:`validate_jwt`.

    - ``issuer``: ``iss`` exactly, or a function of the verified claims that returns it (or raises
      :class:`InvalidToken`); see :func:`tenant_issuer`.
    - ``audience``: a value, or values, at least one of which ``aud`` must contain.
    - ``algorithms``: allowed ``alg`` values; ``none`` and HMAC are refused whatever this says.
    - ``leeway``: seconds of clock skew allowed on ``exp``, ``nbf`` and ``iat``.
    - ``required``: claims that must be present and not null.
    - ``typ``: allowed ``typ`` header values, compared case-insensitively and without
      ``application/``; a token without ``typ`` always passes; None allows any.
    """

    issuer: Issuer
    audience: str | Sequence[str]
    algorithms: Collection[str]
    leeway: float = 120
    required: Collection[str] = ("iss", "aud", "exp", "iat", "sub")
    typ: Collection[str] | None = None


def validate_jwt(token: str, keys: KeySet, expect: Expectations, *, now: float | None = None) -> dict[str, Any]:
    """Verified claims, or InvalidToken: signature first, then the claims, with ``now`` (default: the
    wall clock) as the time. ``exp`` must be after ``now - leeway``; ``nbf`` and ``iat`` must not be
    after ``now + leeway``; ``iss``, ``sub``, ``jti``, ``sid`` and ``azp``, when present, must be
    non-empty strings, and times finite numbers.
    """
    header = _header(token)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ASYMMETRIC_ALGORITHMS or alg not in expect.algorithms:
        raise InvalidToken("alg_not_allowed")
    typ = header.get("typ")
    if typ is not None and expect.typ is not None and _media_type(typ) not in map(_media_type, expect.typ):
        raise InvalidToken("wrong_typ")
    claims = _verified_claims(token, alg, keys.candidates(header))
    _check_claims(claims, expect, time.time() if now is None else now)
    return claims


def validate_id_token(token: str, keys: KeySet, *, issuer: Issuer, client_id: str, algorithms: Collection[str],
                      nonce: str | None, leeway: float = 120, now: float | None = None) -> dict[str, Any]:
    """An id token's verified claims (OpenID Connect Core §3.1.3.7), or InvalidToken.

    ``aud`` must contain ``client_id``; ``azp``, when present, must equal it, and must be present
    when ``aud`` has several values. ``iss``, ``aud``, ``exp``, ``iat`` and ``sub`` are required.
    With ``nonce`` (sign-in), the ``nonce`` claim must equal it; with None (refresh), it is ignored.
    """
    claims = validate_jwt(token, keys, Expectations(issuer, client_id, algorithms, leeway), now=now)
    if "azp" in claims:
        if claims["azp"] != client_id:
            raise InvalidToken("wrong_azp")
    elif isinstance(claims["aud"], list) and len(claims["aud"]) > 1:
        raise InvalidToken("missing_claim:azp")
    if nonce is not None:
        if claims.get("nonce") is None:
            raise InvalidToken("missing_claim:nonce")
        value = claims["nonce"]
        if not isinstance(value, str) or not hmac.compare_digest(value.encode(), nonce.encode()):
            raise InvalidToken("nonce_mismatch")
    return claims


def validate_logout_token(token: str, keys: KeySet, *, issuer: Issuer, client_id: str, algorithms: Collection[str],
                          leeway: float = 120, now: float | None = None) -> dict[str, Any]:
    """A logout token's verified claims (Back-Channel Logout 1.0 §2.4, §2.6), or InvalidToken.

    ``iss``, ``aud`` (containing ``client_id``), ``iat``, ``jti`` and ``events`` are required,
    ``exp`` is checked when present. ``events`` must map the back-channel logout event to a JSON
    object; ``sub`` or ``sid`` (or both) must be present; ``nonce`` must not. ``typ``, when present,
    must be ``logout+jwt`` or ``JWT``. Replays are the caller's to refuse: remember each ``jti``
    until the token's ``exp`` (or ``iat``) plus ``leeway`` has passed.
    """
    expect = Expectations(issuer, client_id, algorithms, leeway, ("iss", "aud", "iat", "jti", "events"),
                          ("logout+jwt", "jwt"))
    claims = validate_jwt(token, keys, expect, now=now)
    events = claims["events"]
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT), dict):
        raise InvalidToken("invalid_claim:events")
    if claims.get("sub") is None and claims.get("sid") is None:
        raise InvalidToken("missing_claim:sub_or_sid")
    if "nonce" in claims:
        raise InvalidToken("unexpected_claim:nonce")
    return claims


def validate_access_token(token: str, keys: KeySet, *, issuer: Issuer, audiences: str | Sequence[str],
                          algorithms: Collection[str], leeway: float = 120, now: float | None = None) -> dict[str, Any]:
    """A bearer access token's verified claims (RFC 9068 §4), or InvalidToken.

    ``iss``, ``aud`` (containing one of ``audiences``) and ``exp`` are required; ``nbf`` and ``iat``
    are checked when present. ``typ``, when present, must be ``at+jwt`` or ``JWT`` (Entra's).
    Scopes and roles are the caller's to check.
    """
    expect = Expectations(issuer, audiences, algorithms, leeway, ("iss", "aud", "exp"), ("at+jwt", "jwt"))
    return validate_jwt(token, keys, expect, now=now)


def tenant_issuer(template: str, *, tenants: Collection[str] | None = None) -> Callable[[Claims], str]:
    """The issuer of a multi-tenant Entra authority: ``template`` with ``{tenantid}`` replaced by the
    token's ``tid``, as Entra's discovery for ``/common`` and ``/organizations`` announces it
    (``https://login.microsoftonline.com/{tenantid}/v2.0``). ``tenants``, when given, lists the
    tenant ids allowed (reason ``wrong_tenant`` for the others).
    """
    def issuer(claims: Claims) -> str:
        tid = claims.get("tid")
        if not isinstance(tid, str) or not tid:
            raise InvalidToken("missing_claim:tid")
        if tenants is not None and tid not in tenants:
            raise InvalidToken("wrong_tenant")
        return template.replace("{tenantid}", tid)
    return issuer


def _header(token: str) -> dict[str, Any]:
    # Three segments only (five is a JWE, which we do not decrypt); the length cap bounds the work
    # done before the signature check. The header alone is decoded here: PyJWT's
    # get_unverified_header would decode (and check character by character, in Python) the whole
    # token, which its decode() then does again: a third of an API token's validation time.
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or not _COMPACT_JWS.fullmatch(token):
        raise InvalidToken("malformed")
    encoded = token[:token.index(".")].rstrip("=")
    try:
        header = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, RecursionError):  # not base64url (binascii.Error is a ValueError), not UTF-8, not JSON
        raise InvalidToken("malformed") from None
    if not isinstance(header, dict):
        raise InvalidToken("malformed")
    # A kid that is not a string; crit: PyJWT accepts ["b64"], and a JWT has no use for it (RFC 7797 §7).
    if not isinstance(header.get("kid", ""), str) or "crit" in header:
        raise InvalidToken("bad_header")
    return header


def _verified_claims(token: str, alg: str, candidates: list[jwt.PyJWK]) -> dict[str, Any]:
    for key in candidates:
        try:
            # The raw key, which every PyJWT 2.x decode() takes; by_alg has already paired it with alg.
            return _SIGNATURE_ONLY.decode(token, key.key, algorithms=[alg])
        except jwt.InvalidSignatureError:
            continue  # without a kid, the next key may be the one
        except jwt.InvalidTokenError:  # the payload is not a JSON object
            raise InvalidToken("malformed") from None
    raise InvalidToken("bad_signature" if candidates else "unknown_key")


def _check_claims(claims: Claims, expect: Expectations, now: float) -> None:
    for name in expect.required:
        if claims.get(name) is None:
            raise InvalidToken(f"missing_claim:{name}")
    for name in _STRING_CLAIMS:
        if name in claims and not (isinstance(claims[name], str) and claims[name]):
            raise InvalidToken(f"invalid_claim:{name}")
    for name in _TIME_CLAIMS:
        if name in claims and not _is_time(claims[name]):
            raise InvalidToken(f"invalid_claim:{name}")
    issuer = expect.issuer if isinstance(expect.issuer, str) else expect.issuer(claims)
    if claims.get("iss") != issuer:
        raise InvalidToken("wrong_issuer")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not all(isinstance(value, str) for value in audiences):
        raise InvalidToken("invalid_claim:aud")
    wanted = [expect.audience] if isinstance(expect.audience, str) else expect.audience
    if not any(value in audiences for value in wanted):
        raise InvalidToken("wrong_audience")
    if "exp" in claims and claims["exp"] <= now - expect.leeway:
        raise InvalidToken("expired")
    if "nbf" in claims and claims["nbf"] > now + expect.leeway:
        raise InvalidToken("not_yet_valid")
    if "iat" in claims and claims["iat"] > now + expect.leeway:
        raise InvalidToken("issued_in_future")


def _is_time(value: object) -> bool:
    # bool is an int; NaN passes every comparison (Python's json reads NaN and Infinity).
    return not isinstance(value, bool) and (isinstance(value, int) or isinstance(value, float) and math.isfinite(value))


def _media_type(typ: object) -> str:
    return typ.lower().removeprefix("application/") if isinstance(typ, str) else ""
