"""JWT validation and the JWKS cache, offline: keys made here, tokens signed here with PyJWT.

Each rule of msal_wsgi.jose is one table row asserting its ``reason``; time rules are tested on
both sides of their boundary, so that ``<`` for ``<=`` is caught.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import threading
import time
import traceback
from collections.abc import Mapping
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from msal_wsgi.errors import MsalWsgiError
from msal_wsgi.jose import (
    BACKCHANNEL_LOGOUT_EVENT,
    MAX_TOKEN_LENGTH,
    Expectations,
    InvalidToken,
    KeySet,
    tenant_issuer,
    validate_access_token,
    validate_id_token,
    validate_jwt,
    validate_logout_token,
)

NOW = 1_700_000_000
LEEWAY = 120
ISSUER = "https://op.example"
CLIENT_ID = "client-1"
NONCE = "n-0S6_WzA2Mj"
API = "api://todo"
MISSING = object()  # a claim or header to leave out
NOT_UTF8_HEADER = b'{"alg": "RS256", "kid": "rsa-1"}' + bytes([0xFF])

RSA_1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # in no JWKS
EC_1 = ec.generate_private_key(ec.SECP256R1())
EC_384 = ec.generate_private_key(ec.SECP384R1())  # in no JWKS


def jwk(private_key: Any, kid: str | None, **members: Any) -> dict[str, Any]:
    algorithm = RSAAlgorithm if isinstance(private_key, rsa.RSAPrivateKey) else ECAlgorithm
    document: dict[str, Any] = algorithm.to_jwk(private_key.public_key(), as_dict=True)
    document.update({"kid": kid, "use": "sig"} if kid else {"use": "sig"}, **members)
    return {name: value for name, value in document.items() if value is not MISSING}


JWKS = {"keys": [jwk(RSA_1, "rsa-1"), jwk(RSA_2, "rsa-2"), jwk(EC_1, "ec-1")]}


def b64(data: bytes | str | Mapping[str, Any] | list[Any]) -> str:
    raw = data if isinstance(data, bytes) else (data if isinstance(data, str) else json.dumps(data)).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sign(claims: Mapping[str, Any], *, key: Any = RSA_1, alg: str = "RS256", **header: Any) -> str:
    """A token signed by PyJWT; header members set to MISSING are left out (kid defaults to the key's)."""
    header.setdefault("kid", {id(RSA_1): "rsa-1", id(RSA_2): "rsa-2", id(EC_1): "ec-1"}.get(id(key), "other"))
    header.setdefault("typ", "JWT")
    header = {name: (None if value is MISSING else value) for name, value in header.items()}
    if header["kid"] is None:
        del header["kid"]
    return jwt.encode(dict(claims), key, algorithm=alg, headers=header)


def hand_built(header: Mapping[str, Any], claims: Mapping[str, Any], signature: bytes = b"") -> str:
    return f"{b64(header)}.{b64(claims)}.{b64(signature)}"


def id_claims(**changes: Any) -> dict[str, Any]:
    claims = {"iss": ISSUER, "aud": CLIENT_ID, "sub": "user-1", "iat": NOW, "exp": NOW + 600, "nonce": NONCE}
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not MISSING}


def rs256_hand_signed(header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
    """A header PyJWT's encoder would not write as given, signed for real with rsa-1."""
    signing_input = f"{b64(header)}.{b64(claims)}"
    return f"{signing_input}.{b64(RSA_1.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()))}"


def hs256_with_public_pem(claims: Mapping[str, Any]) -> str:
    """The key-confusion attack: HMAC keyed with the provider's public key, which anyone can get."""
    pem = RSA_1.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT', 'kid': 'rsa-1'})}.{b64(claims)}"
    return f"{signing_input}.{b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())}"


def tampered(token: str) -> str:
    header, _, signature = token.split(".")
    return f"{header}.{b64(id_claims(sub='admin'))}.{signature}"


class CountingFetch:
    """A fetch_jwks that serves ``document`` as parsed from the provider's JSON, counts its calls, and can be
    slow or fail."""

    def __init__(self, document: Any = JWKS, *, delay: float = 0.0) -> None:
        self.document, self.delay, self.calls, self.error = document, delay, 0, None
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return json.loads(json.dumps(self.document))  # fresh strings, as a fetched document has


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keys() -> KeySet:
    return KeySet(CountingFetch())


def validate_id(token: str, keys: KeySet, **options: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {"issuer": ISSUER, "client_id": CLIENT_ID, "algorithms": ["RS256", "ES256"],
                                 "nonce": NONCE, "leeway": LEEWAY, "now": NOW}
    return validate_id_token(token, keys, **{**arguments, **options})


def reason_of(call: Any) -> str:
    with pytest.raises(InvalidToken) as caught:
        call()
    return caught.value.reason


# ---------------------------------------------------------------- id tokens

ID_TOKEN_PASSES = [
    pytest.param(sign(id_claims()), {}, id="correct"),
    pytest.param(sign(id_claims(), key=EC_1, alg="ES256"), {}, id="ec-key"),
    pytest.param(sign(id_claims(), kid=MISSING), {}, id="no-kid-rsa"),
    pytest.param(sign(id_claims(), key=RSA_2, kid=MISSING), {}, id="no-kid-second-rsa-key-verifies"),
    pytest.param(sign(id_claims(), key=EC_1, alg="ES256", kid=MISSING), {}, id="no-kid-ec"),
    pytest.param(sign(id_claims(), typ=MISSING), {}, id="no-typ"),
    pytest.param(sign(id_claims(aud=[CLIENT_ID, "other"], azp=CLIENT_ID)), {}, id="several-aud-azp-is-client"),
    pytest.param(sign(id_claims(azp=CLIENT_ID)), {}, id="one-aud-azp-is-client"),
    pytest.param(sign(id_claims(aud=[CLIENT_ID])), {}, id="aud-list-of-one-needs-no-azp"),
    pytest.param(sign(id_claims(exp=NOW - LEEWAY + 1)), {}, id="exp-last-second-of-leeway"),
    pytest.param(sign(id_claims(nbf=NOW + LEEWAY)), {}, id="nbf-at-leeway"),
    pytest.param(sign(id_claims(iat=NOW + LEEWAY)), {}, id="iat-at-leeway"),
    pytest.param(sign(id_claims(exp=NOW + 1.5, iat=NOW - 0.5)), {}, id="float-times"),
    pytest.param(sign(id_claims(nonce=MISSING)), {"nonce": None}, id="refresh-without-nonce"),
    pytest.param(sign(id_claims(nonce="whatever")), {"nonce": None}, id="refresh-ignores-nonce"),
    pytest.param(sign(id_claims(), alg="PS256"), {"algorithms": ["PS256"]}, id="ps256-with-alg-less-rsa-jwk"),
]


@pytest.mark.parametrize(("token", "options"), ID_TOKEN_PASSES)
def test_valid_id_token_passes(keys, token, options):
    assert validate_id(token, keys, **options)["sub"] == "user-1"


ID_TOKEN_FAILURES = [
    # shape
    pytest.param("not-a-jwt", {}, "malformed", id="one-segment"),
    pytest.param("a.b", {}, "malformed", id="two-segments"),
    pytest.param("###.###.###", {}, "malformed", id="not-base64url"),
    pytest.param(f"{b64({'alg': 'RSA-OAEP', 'enc': 'A256GCM'})}.a.b.c.d", {}, "malformed", id="jwe"),
    pytest.param(sign(id_claims(padding="x" * 16 * 1024)), {}, "malformed", id="over-16kb"),
    pytest.param(hand_built([1], id_claims()), {}, "malformed", id="header-not-object"),
    pytest.param(hand_built("not json", id_claims()), {}, "malformed", id="header-not-json"),
    pytest.param(f"{b64(b'{}')[:1]}.{b64(id_claims())}.", {}, "malformed", id="header-one-character"),
    pytest.param(f"{b64(NOT_UTF8_HEADER)}.{b64(id_claims())}.", {}, "malformed",
                 id="header-not-utf8"),
    pytest.param(hand_built("[" * 5000 + "]" * 5000, id_claims()), {}, "malformed", id="header-nested-too-deep"),
    pytest.param(jwt.api_jws.encode(b"[1]", RSA_1, "RS256", headers={"kid": "rsa-1"}), {}, "malformed",
                 id="payload-not-object"),
    pytest.param(hand_built({"alg": "RS256", "kid": 7}, id_claims()), {}, "bad_header", id="kid-not-string"),
    pytest.param(rs256_hand_signed({"alg": "RS256", "kid": "rsa-1", "crit": ["exp"], "exp": 1}, id_claims()), {},
                 "bad_header", id="crit-unknown"),
    pytest.param(rs256_hand_signed({"alg": "RS256", "kid": "rsa-1", "crit": ["b64"], "b64": True}, id_claims()), {},
                 "bad_header", id="crit-b64"),
    # algorithm
    pytest.param(hand_built({"alg": "none", "typ": "JWT"}, id_claims()), {"algorithms": ["RS256", "none"]},
                 "alg_not_allowed", id="alg-none-even-if-allowed"),
    pytest.param(hs256_with_public_pem(id_claims()), {"algorithms": ["RS256", "HS256"]}, "alg_not_allowed",
                 id="hs256-keyed-with-public-pem"),
    pytest.param(sign(id_claims(), alg="RS384"), {"algorithms": ["RS256"]}, "alg_not_allowed", id="alg-not-listed"),
    pytest.param(hand_built({"kid": "rsa-1"}, id_claims()), {}, "alg_not_allowed", id="alg-missing"),
    pytest.param(hand_built({"alg": ["RS256"], "kid": "rsa-1"}, id_claims()), {}, "alg_not_allowed",
                 id="alg-not-string"),
    # key and signature
    pytest.param(sign(id_claims(), kid="unknown"), {}, "unknown_key", id="unknown-kid"),
    pytest.param(sign(id_claims(), key=EC_384, alg="ES384", kid=MISSING), {"algorithms": ["ES384"]}, "unknown_key",
                 id="no-key-fits-alg"),
    pytest.param(sign(id_claims(), kid="ec-1"), {}, "unknown_key", id="kid-of-other-key-type"),
    pytest.param(sign(id_claims(), key=RSA_OTHER, kid="rsa-1"), {}, "bad_signature", id="signed-by-other-key"),
    pytest.param(sign(id_claims(), key=RSA_OTHER, kid=MISSING), {}, "bad_signature", id="no-kid-no-key-verifies"),
    pytest.param(tampered(sign(id_claims())), {}, "bad_signature", id="payload-changed"),
    # required claims
    *(pytest.param(sign(id_claims(**{name: MISSING})), {}, f"missing_claim:{name}", id=f"no-{name}")
      for name in ("iss", "aud", "exp", "iat", "sub")),
    pytest.param(sign(id_claims(iat=None)), {}, "missing_claim:iat", id="iat-null"),
    pytest.param(sign(id_claims(sub="")), {}, "invalid_claim:sub", id="sub-empty"),
    pytest.param(sign(id_claims(sub=42)), {}, "invalid_claim:sub", id="sub-number"),
    pytest.param(rs256_hand_signed({"alg": "RS256", "kid": "rsa-1"}, id_claims(iss=7)), {}, "invalid_claim:iss",
                 id="iss-number"),
    pytest.param(sign(id_claims(jti="")), {}, "invalid_claim:jti", id="jti-empty"),
    pytest.param(sign(id_claims(jti=7)), {}, "invalid_claim:jti", id="jti-number"),
    pytest.param(sign(id_claims(sid=["s"])), {}, "invalid_claim:sid", id="sid-list"),
    pytest.param(sign(id_claims(azp="")), {}, "invalid_claim:azp", id="azp-empty"),
    pytest.param(sign(id_claims(exp="tomorrow")), {}, "invalid_claim:exp", id="exp-string"),
    pytest.param(sign(id_claims(exp=True)), {}, "invalid_claim:exp", id="exp-bool"),
    pytest.param(sign(id_claims(exp=float("nan"))), {}, "invalid_claim:exp", id="exp-nan"),
    pytest.param(sign(id_claims(exp=float("inf"))), {}, "invalid_claim:exp", id="exp-infinity"),
    pytest.param(sign(id_claims(nbf=float("nan"))), {}, "invalid_claim:nbf", id="nbf-nan"),
    pytest.param(sign(id_claims(aud=7)), {}, "invalid_claim:aud", id="aud-number"),
    pytest.param(sign(id_claims(aud=[CLIENT_ID, 7])), {}, "invalid_claim:aud", id="aud-list-with-number"),
    # issuer and audience
    pytest.param(sign(id_claims(iss="https://evil.example")), {}, "wrong_issuer", id="other-issuer"),
    pytest.param(sign(id_claims(iss=ISSUER + "/")), {}, "wrong_issuer", id="issuer-trailing-slash"),
    pytest.param(sign(id_claims(aud="other")), {}, "wrong_audience", id="other-audience"),
    pytest.param(sign(id_claims(aud=[])), {}, "wrong_audience", id="empty-audience"),
    pytest.param(sign(id_claims(aud=[CLIENT_ID, "other"])), {}, "missing_claim:azp", id="several-aud-no-azp"),
    pytest.param(sign(id_claims(aud=[CLIENT_ID, "other"], azp="other")), {}, "wrong_azp", id="several-aud-azp-other"),
    pytest.param(sign(id_claims(azp="other")), {}, "wrong_azp", id="one-aud-azp-other"),
    pytest.param(sign(id_claims(azp="a-client")), {}, "wrong_azp", id="one-aud-azp-sorting-before-client-id"),
    # time
    pytest.param(sign(id_claims(exp=NOW - LEEWAY)), {}, "expired", id="exp-at-leeway"),
    pytest.param(sign(id_claims(exp=NOW - LEEWAY - 1)), {}, "expired", id="exp-past-leeway"),
    pytest.param(sign(id_claims(nbf=NOW + LEEWAY + 1)), {}, "not_yet_valid", id="nbf-past-leeway"),
    pytest.param(sign(id_claims(iat=NOW + LEEWAY + 1)), {}, "issued_in_future", id="iat-past-leeway"),
    # nonce
    pytest.param(sign(id_claims(nonce=MISSING)), {}, "missing_claim:nonce", id="nonce-missing"),
    pytest.param(sign(id_claims(nonce="other")), {}, "nonce_mismatch", id="nonce-other"),
    pytest.param(sign(id_claims(nonce="é-non-ascii")), {}, "nonce_mismatch", id="nonce-non-ascii"),
    pytest.param(sign(id_claims(nonce=[NONCE])), {}, "nonce_mismatch", id="nonce-not-string"),
]


@pytest.mark.parametrize(("token", "options", "reason"), ID_TOKEN_FAILURES)
def test_invalid_id_token_is_refused(keys, token, options, reason):
    assert reason_of(lambda: validate_id(token, keys, **options)) == reason


def token_of_length(length: int) -> str:
    """A valid id token exactly ``length`` characters long: base64url skips lengths that are 1 mod 4,
    so a header member of 0-3 characters moves the total over the gap."""
    for extra in ("", "x", "xx", "xxx"):
        short = len(sign(id_claims(padding=""), x=extra))
        for size in range((length - short) * 3 // 4 - 3, (length - short) * 3 // 4 + 3):
            token = sign(id_claims(padding="x" * size), x=extra)
            if len(token) == length:
                return token
    raise AssertionError(f"no token of length {length}")


def test_token_length_cap_is_16_kib(keys):
    assert MAX_TOKEN_LENGTH == 16 * 1024
    assert validate_id(token_of_length(MAX_TOKEN_LENGTH), keys)["sub"].startswith("user-1")
    assert reason_of(lambda: validate_id(token_of_length(MAX_TOKEN_LENGTH + 1), keys)) == "malformed"


def test_refusal_says_the_reason_only():
    token = sign(id_claims(nonce="the-token-nonce"))
    with pytest.raises(InvalidToken) as caught:
        validate_id(token, KeySet(CountingFetch()), nonce="the-expected-nonce")
    error = caught.value
    assert isinstance(error, MsalWsgiError)
    assert str(error) == "invalid token: nonce_mismatch"
    assert error.__cause__ is None and error.__suppress_context__ is False and error.__context__ is None
    for secret in ("the-token-nonce", "the-expected-nonce", token, token.split(".")[2]):
        assert secret not in str(error) and secret not in repr(error)


@pytest.mark.parametrize("token", [
    pytest.param(tampered(sign(id_claims())), id="bad-signature"),
    pytest.param(jwt.api_jws.encode(b"[1]", RSA_1, "RS256", headers={"kid": "rsa-1"}), id="payload-not-object"),
    pytest.param("###.###.###", id="not-base64url"),
    pytest.param(hand_built({"alg": "RS256", "kid": 7}, id_claims()), id="kid-not-string"),
])
def test_traceback_shows_no_pyjwt_error(token):
    with pytest.raises(InvalidToken) as caught:
        validate_id(token, KeySet(CountingFetch()))
    printed = "".join(traceback.format_exception(caught.type, caught.value, caught.tb))
    assert "jwt.exceptions" not in printed and "During handling" not in printed


# Times a year ahead of the wall clock: PyJWT checks the signature only, the time rules use ``now``.
AHEAD = int(time.time()) + 365 * 24 * 3600


def test_times_are_checked_at_now_not_at_the_wall_clock(keys):
    token = sign(id_claims(iat=AHEAD, nbf=AHEAD, exp=AHEAD + 600))
    assert validate_id(token, keys, now=AHEAD)["sub"] == "user-1"


# A now and a leeway that are not round in binary, so that now | leeway or now ^ leeway is not now + leeway.
ODD_NOW, ODD_LEEWAY = NOW + 7, 45


@pytest.mark.parametrize(("times", "reason"), [
    pytest.param({"exp": ODD_NOW - ODD_LEEWAY + 1}, None, id="exp-last-second-of-leeway"),
    pytest.param({"exp": ODD_NOW - ODD_LEEWAY}, "expired", id="exp-at-leeway"),
    pytest.param({"nbf": ODD_NOW - 1}, None, id="nbf-past"),
    pytest.param({"nbf": ODD_NOW + ODD_LEEWAY}, None, id="nbf-at-leeway"),
    pytest.param({"nbf": ODD_NOW + ODD_LEEWAY + 1}, "not_yet_valid", id="nbf-past-leeway"),
    pytest.param({"iat": ODD_NOW + ODD_LEEWAY}, None, id="iat-at-leeway"),
    pytest.param({"iat": ODD_NOW + ODD_LEEWAY + 1}, "issued_in_future", id="iat-past-leeway"),
])
def test_leeway_boundaries_at_any_now(keys, times, reason):
    def call() -> dict[str, Any]:
        return validate_id(sign(id_claims(**times)), keys, now=ODD_NOW, leeway=ODD_LEEWAY)
    if reason is None:
        assert call()["sub"] == "user-1"
    else:
        assert reason_of(call) == reason


def test_wall_clock_is_the_default_time():
    now = time.time()
    token = sign(id_claims(iat=int(now), exp=int(now) + 600))
    assert validate_id(token, KeySet(CountingFetch()), now=None)["sub"] == "user-1"
    expired = sign(id_claims(iat=int(now) - 3600, exp=int(now) - LEEWAY - 1))
    assert reason_of(lambda: validate_id(expired, KeySet(CountingFetch()), now=None)) == "expired"


def test_validate_jwt_takes_other_profiles():
    expect = Expectations(issuer=ISSUER, audience=("x", CLIENT_ID), algorithms=("RS256",), required=("iss", "aud"))
    assert validate_jwt(sign({"iss": ISSUER, "aud": CLIENT_ID}), KeySet(CountingFetch()), expect, now=NOW)


def test_expectations_cannot_be_changed():
    expect = Expectations(issuer=ISSUER, audience=CLIENT_ID, algorithms=("RS256",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        expect.leeway = 3600  # type: ignore[misc]


POSITIONAL_OPTIONS = {
    "validate_jwt": lambda token, keys: validate_jwt(token, keys, Expectations(ISSUER, CLIENT_ID, ["RS256"]), NOW),
    "validate_id_token": lambda token, keys: validate_id_token(token, keys, ISSUER, CLIENT_ID, ["RS256"], None),
    "validate_logout_token": lambda token, keys: validate_logout_token(token, keys, ISSUER, CLIENT_ID, ["RS256"]),
    "validate_access_token": lambda token, keys: validate_access_token(token, keys, ISSUER, CLIENT_ID, ["RS256"]),
    "tenant_issuer": lambda token, keys: tenant_issuer("https://login.microsoftonline.com/{tenantid}/v2.0", {TENANT}),
    "KeySet": lambda token, keys: KeySet(CountingFetch(), 60.0),
}


@pytest.mark.parametrize("call", POSITIONAL_OPTIONS.values(), ids=POSITIONAL_OPTIONS)
def test_options_are_keyword_only(keys, call):
    with pytest.raises(TypeError):
        call(sign(id_claims(jti="j")), keys)


DEFAULT_LEEWAY_CALLS = {
    "validate_jwt": lambda token, keys: validate_jwt(token, keys, Expectations(ISSUER, CLIENT_ID, ["RS256"]), now=NOW),
    "validate_id_token": lambda token, keys: validate_id_token(token, keys, issuer=ISSUER, client_id=CLIENT_ID,
                                                               algorithms=["RS256"], nonce=None, now=NOW),
    "validate_logout_token": lambda token, keys: validate_logout_token(token, keys, issuer=ISSUER,
                                                                       client_id=CLIENT_ID, algorithms=["RS256"],
                                                                       now=NOW),
    "validate_access_token": lambda token, keys: validate_access_token(token, keys, issuer=ISSUER,
                                                                       audiences=CLIENT_ID, algorithms=["RS256"],
                                                                       now=NOW),
}


@pytest.mark.parametrize("call", DEFAULT_LEEWAY_CALLS.values(), ids=DEFAULT_LEEWAY_CALLS)
def test_the_default_leeway_is_120_seconds(keys, call):
    claims = {**id_claims(nonce=MISSING), "jti": "j", "events": {BACKCHANNEL_LOGOUT_EVENT: {}}}
    assert call(sign({**claims, "exp": NOW - 119, "iat": NOW + 120}), keys)["sub"] == "user-1"
    assert reason_of(lambda: call(sign({**claims, "exp": NOW - 120}), keys)) == "expired"
    assert reason_of(lambda: call(sign({**claims, "iat": NOW + 121}), keys)) == "issued_in_future"


# ---------------------------------------------------------------- logout tokens

def logout_claims(**changes: Any) -> dict[str, Any]:
    claims = {"iss": ISSUER, "aud": CLIENT_ID, "iat": NOW, "exp": NOW + 120, "jti": "jti-1", "sid": "sid-1",
              "sub": "user-1", "events": {BACKCHANNEL_LOGOUT_EVENT: {}}}
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not MISSING}


def validate_logout(token: str, keys: KeySet) -> dict[str, Any]:
    return validate_logout_token(token, keys, issuer=ISSUER, client_id=CLIENT_ID, algorithms=["RS256"],
                                 leeway=LEEWAY, now=NOW)


@pytest.mark.parametrize("token", [
    pytest.param(sign(logout_claims(), typ="logout+jwt"), id="valid"),
    pytest.param(sign(logout_claims(), typ="application/logout+jwt"), id="typ-with-application-prefix"),
    pytest.param(sign(logout_claims(), typ=MISSING), id="no-typ"),
    pytest.param(sign(logout_claims(), typ="JWT"), id="typ-jwt-as-ory-hydra-sends"),
    pytest.param(sign(logout_claims(sub=MISSING), typ="logout+jwt"), id="sid-only"),
    pytest.param(sign(logout_claims(sid=MISSING), typ="logout+jwt"), id="sub-only"),
    pytest.param(sign(logout_claims(exp=MISSING), typ="logout+jwt"), id="no-exp"),
])
def test_valid_logout_token_passes(keys, token):
    assert validate_logout(token, keys)["jti"] == "jti-1"


@pytest.mark.parametrize(("token", "reason"), [
    pytest.param(sign(logout_claims(events=MISSING)), "missing_claim:events", id="no-events"),
    pytest.param(sign(logout_claims(events={BACKCHANNEL_LOGOUT_EVENT: "yes"})), "invalid_claim:events",
                 id="event-not-object"),
    pytest.param(sign(logout_claims(events={"http://other/event": {}})), "invalid_claim:events", id="other-event"),
    pytest.param(sign(logout_claims(events=[BACKCHANNEL_LOGOUT_EVENT])), "invalid_claim:events",
                 id="events-not-object"),
    pytest.param(sign(logout_claims(nonce=NONCE)), "unexpected_claim:nonce", id="nonce-present"),
    pytest.param(sign(logout_claims(sub=MISSING, sid=MISSING)), "missing_claim:sub_or_sid", id="neither-sub-nor-sid"),
    pytest.param(sign(logout_claims(jti=MISSING)), "missing_claim:jti", id="no-jti"),
    pytest.param(sign(logout_claims(iat=MISSING)), "missing_claim:iat", id="no-iat"),
    pytest.param(sign(logout_claims(), typ="at+jwt"), "wrong_typ", id="typ-access-token"),
    pytest.param(sign(logout_claims(), typ=7), "wrong_typ", id="typ-not-string"),
    pytest.param(sign(logout_claims(exp=NOW - LEEWAY)), "expired", id="expired"),
    pytest.param(sign(logout_claims(aud="other")), "wrong_audience", id="other-audience"),
    pytest.param(hand_built({"alg": "none"}, logout_claims()), "alg_not_allowed", id="alg-none"),
])
def test_invalid_logout_token_is_refused(keys, token, reason):
    assert reason_of(lambda: validate_logout(token, keys)) == reason


def test_id_token_is_not_a_logout_token(keys):
    assert reason_of(lambda: validate_logout(sign(id_claims()), keys)) == "missing_claim:jti"
    assert reason_of(lambda: validate_logout(sign(id_claims(jti="j")), keys)) == "missing_claim:events"


# ---------------------------------------------------------------- access tokens

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ENTRA = tenant_issuer("https://login.microsoftonline.com/{tenantid}/v2.0")


def access_claims(**changes: Any) -> dict[str, Any]:
    claims = {"iss": ISSUER, "aud": API, "exp": NOW + 600, "scp": "read"}
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not MISSING}


def entra_claims(**changes: Any) -> dict[str, Any]:
    return access_claims(**{"iss": f"https://login.microsoftonline.com/{TENANT}/v2.0", "tid": TENANT, **changes})


def validate_access(token: str, keys: KeySet, **options: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {"issuer": ISSUER, "audiences": ["api://other", API], "algorithms": ["RS256"],
                                 "leeway": LEEWAY, "now": NOW}
    return validate_access_token(token, keys, **{**arguments, **options})


@pytest.mark.parametrize(("token", "options"), [
    pytest.param(sign(access_claims(), typ="at+jwt"), {}, id="valid-at-jwt"),
    pytest.param(sign(access_claims(), typ="application/AT+JWT"), {}, id="typ-media-type-any-case"),
    pytest.param(sign(access_claims()), {}, id="typ-jwt-as-entra-sends"),
    pytest.param(sign(access_claims(), typ=MISSING), {}, id="no-typ"),
    pytest.param(sign(access_claims(iat=NOW - 60, nbf=NOW + LEEWAY)), {}, id="iat-and-nbf-at-leeway"),
    pytest.param(sign(entra_claims()), {"issuer": ENTRA}, id="issuer-from-tid"),
    pytest.param(sign(entra_claims()), {"issuer": tenant_issuer(
        "https://login.microsoftonline.com/{tenantid}/v2.0", tenants={TENANT})}, id="tenant-allowed"),
    pytest.param(sign(entra_claims(iss=f"https://sts.windows.net/{TENANT}/")),
                 {"issuer": tenant_issuer("https://sts.windows.net/{tenantid}/")}, id="entra-v1-issuer"),
])
def test_valid_access_token_passes(keys, token, options):
    assert validate_access(token, keys, **options)["scp"] == "read"


@pytest.mark.parametrize(("token", "options", "reason"), [
    pytest.param(sign(access_claims(aud="api://someone-else")), {}, "wrong_audience", id="wrong-aud"),
    pytest.param(sign(access_claims(aud="a")), {"audiences": "abc"}, "wrong_audience", id="audience-str-not-chars"),
    pytest.param(sign(access_claims(exp=NOW - LEEWAY)), {}, "expired", id="expired"),
    pytest.param(sign(access_claims(exp=MISSING)), {}, "missing_claim:exp", id="no-exp"),
    pytest.param(sign(access_claims(nbf=NOW + LEEWAY + 1)), {}, "not_yet_valid", id="nbf-in-future"),
    pytest.param(sign(access_claims(iat=NOW + LEEWAY + 1)), {}, "issued_in_future", id="iat-in-future"),
    pytest.param(sign(access_claims(), typ="logout+jwt"), {}, "wrong_typ", id="typ-logout-token"),
    pytest.param(sign(entra_claims(iss="https://login.microsoftonline.com/another-tenant/v2.0")),
                 {"issuer": ENTRA}, "wrong_issuer", id="iss-of-other-tenant-than-tid"),
    pytest.param(sign(entra_claims(tid=MISSING)), {"issuer": ENTRA}, "missing_claim:tid", id="no-tid"),
    pytest.param(sign(entra_claims(tid="")), {"issuer": ENTRA}, "missing_claim:tid", id="tid-empty"),
    pytest.param(sign(entra_claims(tid=7)), {"issuer": ENTRA}, "missing_claim:tid", id="tid-number"),
    pytest.param(sign(entra_claims()), {"issuer": tenant_issuer(
        "https://login.microsoftonline.com/{tenantid}/v2.0", tenants={"another-tenant"})}, "wrong_tenant",
        id="tenant-not-allowed"),
])
def test_invalid_access_token_is_refused(keys, token, options, reason):
    assert reason_of(lambda: validate_access(token, keys, **options)) == reason


# ---------------------------------------------------------------- the key set

def rs256(kid: str | None) -> dict[str, Any]:
    return {"alg": "RS256", "kid": kid} if kid else {"alg": "RS256"}


def test_jwks_is_fetched_on_first_use_only():
    fetch = CountingFetch()
    keys = KeySet(fetch)
    assert fetch.calls == 0
    assert [key.key_id for key in keys.candidates(rs256("rsa-1"))] == ["rsa-1"]
    assert [key.key_id for key in keys.candidates(rs256("rsa-2"))] == ["rsa-2"]
    assert [key.key_id for key in keys.candidates(rs256(None))] == ["rsa-1", "rsa-2"]  # no kid: nothing to look up
    assert fetch.calls == 1


def test_unknown_kid_refetches_once_per_interval():
    fetch, clock = CountingFetch(), FakeClock()
    keys = KeySet(fetch, min_refetch_interval=60, clock=clock)
    keys.candidates(rs256("rsa-1"))
    clock.now += 60
    assert keys.candidates(rs256("unknown")) == []
    assert fetch.calls == 2
    clock.now += 59
    for number in range(100):
        assert keys.candidates(rs256(f"made-up-{number}")) == []
    assert fetch.calls == 2
    clock.now += 1
    keys.candidates(rs256("unknown"))
    assert fetch.calls == 3


def test_the_default_refetch_interval_is_60_seconds():
    fetch, clock = CountingFetch(), FakeClock()
    keys = KeySet(fetch, clock=clock)
    keys.candidates(rs256("unknown"))  # the first fetch, then the re-fetch that starts the interval
    clock.now += 59
    keys.candidates(rs256("unknown"))
    assert fetch.calls == 2
    clock.now += 1
    keys.candidates(rs256("unknown"))
    assert fetch.calls == 3


def test_an_unknown_kid_on_first_use_costs_the_first_fetch_and_one_re_fetch():
    fetch, clock = CountingFetch(), FakeClock()
    keys = KeySet(fetch, clock=clock)
    assert keys.candidates(rs256("unknown")) == []
    assert fetch.calls == 2
    assert keys.candidates(rs256("unknown-too")) == []
    assert fetch.calls == 2  # the re-fetch started the interval


# A monotonic clock's reference point is undefined: it may read below zero.
@pytest.mark.parametrize("start", [1000.0, -1000.0], ids=["clock-above-zero", "clock-below-zero"])
def test_a_rotation_right_after_the_first_fetch_is_seen(start):
    fetch, clock = CountingFetch(), FakeClock(start)
    keys = KeySet(fetch, clock=clock)
    keys.candidates(rs256("rsa-1"))
    fetch.document = {"keys": [jwk(RSA_OTHER, "rsa-new")]}
    token = sign(id_claims(), key=RSA_OTHER, kid="rsa-new")
    assert validate_id(token, keys)["sub"] == "user-1"
    assert fetch.calls == 2


def test_rotated_key_is_found_after_one_fetch():
    fetch, clock = CountingFetch(), FakeClock()
    keys = KeySet(fetch, clock=clock)
    keys.candidates(rs256("rsa-1"))
    fetch.document = {"keys": [jwk(RSA_2, "rsa-2"), jwk(RSA_OTHER, "rsa-new")]}
    clock.now += 60
    token = sign(id_claims(), key=RSA_OTHER, kid="rsa-new")
    assert validate_id(token, keys)["sub"] == "user-1"
    assert fetch.calls == 2
    assert reason_of(lambda: validate_id(sign(id_claims()), keys)) == "unknown_key"  # rsa-1 retired


def test_without_kid_every_key_of_the_algorithms_type_is_a_candidate(keys):
    assert [key.key_id for key in keys.candidates(rs256(None))] == ["rsa-1", "rsa-2"]
    assert [key.key_id for key in keys.candidates({"alg": "ES256"})] == ["ec-1"]
    assert keys.candidates({"alg": "ES384"}) == []
    assert keys.candidates({"alg": "HS256"}) == []
    assert keys.candidates({"alg": "none"}) == []


@pytest.mark.parametrize(("warm", "interval", "fetches"), [
    pytest.param(False, 60, 2, id="cold-first-fetch-then-one-re-fetch"),
    pytest.param(True, 60, 2, id="warm"),
    pytest.param(True, 0, 2, id="warm-no-interval-waiters-use-the-fetch"),
])
def test_concurrent_unknown_kids_cause_one_fetch(warm, interval, fetches):
    fetch, clock = CountingFetch(delay=0.2), FakeClock()
    keys = KeySet(fetch, min_refetch_interval=interval, clock=clock)
    if warm:
        fetch.delay = 0
        keys.candidates(rs256("rsa-1"))
        clock.now += 60
        fetch.delay = 0.2
    start, results = threading.Barrier(8), []

    def ask(number: int) -> None:
        start.wait()
        results.append(keys.candidates(rs256(f"unknown-{number}")))

    threads = [threading.Thread(target=ask, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [[]] * 8
    assert fetch.calls == fetches


def test_fetch_errors_reach_the_caller_unchanged():
    fetch = CountingFetch()
    fetch.error = ConnectionError("provider down")
    keys = KeySet(fetch)
    with pytest.raises(ConnectionError) as caught:
        keys.candidates(rs256("rsa-1"))
    assert caught.value is fetch.error
    fetch.error = None
    assert keys.candidates(rs256("rsa-1"))  # no document yet: the next use tries again
    assert fetch.calls == 2


def test_failed_refetch_counts_against_the_interval():
    fetch, clock = CountingFetch(), FakeClock()
    keys = KeySet(fetch, clock=clock)
    keys.candidates(rs256("rsa-1"))
    clock.now += 60
    fetch.error = ConnectionError("provider down")
    with pytest.raises(ConnectionError):
        keys.candidates(rs256("unknown"))
    assert keys.candidates(rs256("unknown")) == []
    assert keys.candidates(rs256("rsa-1"))  # the cached keys still serve
    assert fetch.calls == 2


@pytest.mark.parametrize("document", [
    pytest.param({}, id="no-keys-member"),
    pytest.param({"keys": []}, id="empty"),
    pytest.param({"keys": "rsa-1"}, id="keys-not-list"),
    pytest.param(["not", "an", "object"], id="not-object"),
    pytest.param({"keys": [{"kty": "oct", "k": b64(b"secret"), "kid": "hmac"}]}, id="hmac-key-only"),
    pytest.param({"keys": [jwk(RSA_1, "rsa-1", use="enc")]}, id="encryption-key-only"),
    pytest.param({"keys": [jwk(RSA_1, "rsa-1", use="verify")]}, id="key-of-unknown-use-only"),
    pytest.param({"keys": [jwk(RSA_1, "rsa-1", alg="RSA-OAEP")]}, id="key-for-other-alg-only"),
])
def test_jwks_without_usable_signing_key_is_refused(document):
    assert reason_of(lambda: KeySet(CountingFetch(document)).candidates(rs256("rsa-1"))) == "jwks_unusable"


def test_unusable_keys_are_skipped():
    document = {"keys": [
        "not-a-key",
        {"kty": "XYZ", "kid": "strange"},
        {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
        {"kty": "EC", "crv": "P-256", "kid": "short", "x": "AA", "y": "AA"},
        {"kty": "EC", "crv": ["P-256"], "kid": "crv-list"},
        {"kty": "oct", "kid": "hmac", "k": b64(b"secret")},
        jwk(RSA_2, "encrypts", use="enc"),
        jwk(RSA_1, "rsa-1"),
    ]}
    keys = KeySet(CountingFetch(document))
    assert [key.key_id for key in keys.candidates(rs256(None))] == ["rsa-1"]
    assert keys.candidates({"alg": "HS256", "kid": "hmac"}) == []


@pytest.mark.parametrize("header", [{"alg": 7, "kid": "rsa-1"}, {"alg": "RS256", "kid": 7}, {"kid": "rsa-1"}],
                         ids=["alg-not-string", "kid-not-string", "no-alg"])
def test_a_header_that_names_no_key_finds_none_and_fetches_nothing_more(header):
    fetch = CountingFetch()
    keys = KeySet(fetch)
    keys.candidates(rs256("rsa-1"))
    assert keys.candidates(header) == []
    assert fetch.calls == 1


@pytest.mark.parametrize("named", ["RS256", "PS512"])
def test_jwk_naming_its_alg_serves_only_that_alg(named):
    keys = KeySet(CountingFetch({"keys": [jwk(RSA_1, "rsa-1", alg=named)]}))
    served = [alg for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
              if keys.candidates({"alg": alg, "kid": "rsa-1"})]
    assert served == [named]


def test_repr_shows_kids_only(keys):
    assert repr(keys) == "KeySet(not fetched)"
    keys.candidates(rs256("rsa-1"))
    assert repr(keys) == "KeySet(kids=['ec-1', 'rsa-1', 'rsa-2'])"
