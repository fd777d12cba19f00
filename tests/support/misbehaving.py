"""An OpenID Connect provider that gets things wrong on demand, for relying-party validation tests.

:class:`MisbehavingProvider` is a provider written for tests, not a proxy: discovery, JWKS,
authorize, token and logout endpoints over TLS on a free loopback port, one client, one user
and no login page. By default it answers as OpenID Connect Core and RFC 6749/7636 say; each
defect of the OpenID Foundation's RP certification tests is one knob away::

    with MisbehavingProvider(cert, key, ca) as rogue:
        rogue.configure(id_token=IdTokenDefects(alg="none"), iss_parameter="correct")
        result = rogue.sign_in(authorize_url)   # a devprovider.SignInResult
        rogue.reset()                           # every knob back to correct

Knobs live in one frozen :class:`Knobs` value that a request reads once, so a test that
changes knobs meanwhile never gets a half-changed answer.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import html
import itertools
import json
import logging
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union
from urllib.parse import parse_qs, unquote_plus, urlencode, urljoin, urlsplit

import jwt
import requests
from bs4 import BeautifulSoup
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from devprovider import DevProvider, DevProviderError, SignInResult

if TYPE_CHECKING:  # typing.Self is Python 3.11+
    from typing_extensions import Self

__all__ = ["AUTH_METHODS", "ID_TOKEN_ALGS", "UNKNOWN_KID", "IdTokenDefects", "Knobs", "MisbehavingProvider"]

_log = logging.getLogger(__name__)
#: Client authentication methods of the token endpoint, in the order discovery lists them.
AUTH_METHODS = ("client_secret_post", "client_secret_basic")
#: What ``IdTokenDefects.alg`` and ``sign(alg=)`` accept.
ID_TOKEN_ALGS = ("RS256", "ES256", "none", "HS256-with-public-key")
ACCESS_TOKEN_AUDIENCE = "api://rogue"
LIFETIME = 3600
CODE_LIFETIME = 600
#: The kid that ``kid="unknown"`` puts in a header: no key of the JWKS has it.
UNKNOWN_KID = "not-in-jwks"
_MAX_BODY = 1 << 20
_PrivateKey = Union[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]


@dataclass(frozen=True)
class IdTokenDefects:
    """How the id token differs from a correct one.

    :param claims_overrides: claims replaced or added; a value of None removes the claim.
    :param alg: ``RS256``, ``ES256`` (needs ``add_key("ES256")``), ``none`` (unsigned), or
        ``HS256-with-public-key`` (HMAC keyed with the PEM of the RSA public key: key confusion).
    :param sign_with: ``current`` (a key of the JWKS) or ``foreign`` (a key the JWKS does not hold).
    :param kid: ``current`` (the signing key's; none for alg none), None (no kid header),
        ``unknown`` (:data:`UNKNOWN_KID`), or any other string, put in the header as it is.
    """

    claims_overrides: Mapping[str, Any] = field(default_factory=dict)
    alg: str = "RS256"
    sign_with: str = "current"
    kid: str | None = "current"

    def __post_init__(self) -> None:
        _check_choice("alg", self.alg, ID_TOKEN_ALGS)
        _check_choice("sign_with", self.sign_with, ("current", "foreign"))


@dataclass(frozen=True)
class Knobs:
    """Everything a test may change; the defaults make a correct provider. Set with ``configure()``.

    :param discovery_overrides: discovery fields replaced or added; None removes the field.
    :param iss_parameter: the authorization response's ``iss`` (RFC 9207): None (not sent),
        ``correct`` (the issuer) or any other string, sent as it is.
    :param error: answer authorization requests with this ``error`` instead of a code.
    :param user_sub: the ``sub`` of the user every sign-in signs in.
    :param user_claims: more id token claims (tid, oid...); by default name and preferred_username.
    :param accept_auth_methods: client authentication methods the token endpoint accepts.
    :param token_type: the token response's ``token_type``.
    :param omit_access_token: leave ``access_token`` out of token responses.
    :param omit_id_token: leave ``id_token`` out of token responses.
    :param id_token_on_refresh: answer refresh token grants with a new id token too.
    :param token_response_overrides: token response fields replaced or added; None removes.
    :param id_token: the id token's defects.
    """

    discovery_overrides: Mapping[str, Any] = field(default_factory=dict)
    iss_parameter: str | None = None
    error: str | None = None
    user_sub: str = "rogue-user"
    user_claims: Mapping[str, Any] = field(
        default_factory=lambda: {"name": "Rogue User", "preferred_username": "rogue-user"})
    accept_auth_methods: frozenset[str] = frozenset(AUTH_METHODS)
    token_type: str = "Bearer"
    omit_access_token: bool = False
    omit_id_token: bool = False
    id_token_on_refresh: bool = True
    token_response_overrides: Mapping[str, Any] = field(default_factory=dict)
    id_token: IdTokenDefects = field(default_factory=IdTokenDefects)

    def __post_init__(self) -> None:
        object.__setattr__(self, "accept_auth_methods", frozenset(self.accept_auth_methods))
        for method in self.accept_auth_methods:
            _check_choice("accept_auth_methods", method, AUTH_METHODS)


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}")


@dataclass(frozen=True)
class _Key:
    kid: str
    alg: str  # RS256 or ES256: the key type
    private: _PrivateKey

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        jwk = (RSAAlgorithm.to_jwk(public, as_dict=True) if isinstance(public, rsa.RSAPublicKey)
               else ECAlgorithm.to_jwk(public, as_dict=True))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.alg}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _generate_key(alg: str, kid: str) -> _Key:
    private: _PrivateKey = (rsa.generate_private_key(public_exponent=65537, key_size=2048) if alg == "RS256"
                            else ec.generate_private_key(ec.SECP256R1()))
    return _Key(kid, alg, private)


@dataclass(frozen=True)
class _Grant:
    """What a code or refresh token stands for."""

    sub: str
    scope: str
    nonce: str | None = None
    redirect_uri: str = ""
    code_challenge: str = ""
    issued: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


class _Refusal(Exception):
    """An OAuth error answer (RFC 6749 §5.2 shape), raised where the request is found wanting."""

    def __init__(self, status: int, error: str, description: str, *headers: tuple[str, str]) -> None:
        super().__init__(description)
        self.answer = _json(status, {"error": error, "error_description": description}, *headers)


def _json(status: int, document: Mapping[str, Any], *headers: tuple[str, str]) -> _Answer:
    return _Answer(status, json.dumps(document).encode(), headers=headers)


def _merged(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``overrides``, whose None values remove the key."""
    return {key: value for key, value in {**base, **overrides}.items() if value is not None}


def _single_values(encoded: str) -> dict[str, str]:
    """Form or query parameters; each may appear once (RFC 6749 §3.1, §3.2)."""
    try:
        values = parse_qs(encoded, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise _Refusal(400, "invalid_request", "parameters are not UTF-8 form-urlencoded") from None
    repeated = sorted(name for name, items in values.items() if len(items) > 1)
    if repeated:
        raise _Refusal(400, "invalid_request", f"repeated parameters: {', '.join(repeated)}")
    return {name: items[0] for name, items in values.items()}


def _require(checks: list[tuple[bool, str]], error: str = "invalid_request") -> None:
    for ok, description in checks:
        if not ok:
            raise _Refusal(400, error, description)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _with_params(url: str, params: Mapping[str, str]) -> str:
    return url + ("&" if urlsplit(url).query else "?") + urlencode(params) if params else url


def _auto_submit(action: str, params: Mapping[str, str]) -> _Answer:
    """The form_post response mode (OAuth 2.0 Form Post Response Mode): a page that posts itself."""
    inputs = "".join(f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
                     for name, value in params.items())
    page = (f'<!DOCTYPE html><html><head><title>Submit</title></head><body>'
            f'<form method="post" action="{html.escape(action)}">{inputs}'
            f'<noscript><button type="submit">Continue</button></noscript></form>'
            f'<script>document.forms[0].submit()</script></body></html>')
    return _Answer(200, page.encode(), "text/html; charset=utf-8", (("Cache-Control", "no-store"),))


class MisbehavingProvider:
    """An OpenID Connect provider on ``https://127.0.0.1:PORT{path}`` whose defects tests switch on.

    :param cert_path: PEM certificate chain of the TLS server (valid for 127.0.0.1).
    :param key_path: its PEM private key.
    :param ca_path: the CA that signed it, which :meth:`sign_in` trusts.
    :param client_id: the one registered client.
    :param client_secret: its secret, for client_secret_post and client_secret_basic.
    :param path: the issuer's path.

    Attributes tests read: ``issuer``, ``client_id``, ``client_secret``, ``knobs``, ``jwks_requests``
    (``time.monotonic()`` of each JWKS fetch) and ``token_requests`` (``grant_type``, ``auth_method``
    and ``status`` of each token request, in order).
    """

    def __init__(self, cert_path: Path | str, key_path: Path | str, ca_path: Path | str, *,
                 client_id: str = "rp-client", client_secret: str = "rp-secret", path: str = "/rogue") -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.ca_path = Path(ca_path)
        self.knobs = Knobs()
        self._lock = threading.Lock()
        self._serial = itertools.count(1)
        self._initial = self._new_key("RS256")
        self._foreign = {alg: _generate_key(alg, f"foreign-{alg.lower()}") for alg in ("RS256", "ES256")}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        # The handshake happens in the request's thread (see _handler), not in the accepting one.
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True,
                                                  do_handshake_on_connect=False)
        self.issuer = f"https://127.0.0.1:{self._server.server_address[1]}{path.rstrip('/')}"
        self._path = urlsplit(self.issuer).path
        self._routes: dict[str, tuple[str, Callable[[dict[str, str], Message, bytes], _Answer]]] = {
            "/.well-known/openid-configuration": ("GET", self._discovery),
            "/jwks": ("GET", self._jwks),
            "/authorize": ("GET", self._authorize),
            "/token": ("POST", self._token),
            "/logout": ("GET", self._logout),
        }
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.reset()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive():  # shutdown() waits for serve_forever, which may never have run
            self._server.shutdown()
        self._server.server_close()

    # -- test controls -------------------------------------------------------

    def configure(self, **knobs: Any) -> None:
        """Change the named :class:`Knobs` fields (an unknown name raises TypeError)."""
        with self._lock:
            self.knobs = dataclasses.replace(self.knobs, **knobs)

    def reset(self) -> None:
        """Default knobs, the initial key alone in the JWKS, no codes, tokens or recorded requests."""
        with self._lock:
            self.knobs = Knobs()
            self._keys: list[_Key] = [self._initial]
            self._signing: dict[str, _Key] = {"RS256": self._initial}
            self._codes: dict[str, _Grant] = {}
            self._refresh_tokens: dict[str, _Grant] = {}
            self.jwks_requests: list[float] = []
            self.token_requests: list[dict[str, Any]] = []

    def add_key(self, alg: str = "RS256") -> str:
        """Publish a new ``RS256`` or ``ES256`` key; it signs only if it is the first of its type. Returns its kid."""
        _check_choice("alg", alg, ("RS256", "ES256"))
        key = self._new_key(alg)
        with self._lock:
            self._keys = [*self._keys, key]
            self._signing.setdefault(alg, key)
        return key.kid

    def rotate_keys(self, alg: str = "RS256") -> str:
        """A new signing key of type ``alg`` replaces the current one in the JWKS. Returns its kid."""
        _check_choice("alg", alg, ("RS256", "ES256"))
        key = self._new_key(alg)
        with self._lock:
            old = self._signing.get(alg)
            self._keys = [k for k in self._keys if k is not old] + [key]
            self._signing[alg] = key
        return key.kid

    def public_jwks(self) -> dict[str, Any]:
        """The JWK Set the provider serves now."""
        with self._lock:
            return {"keys": [key.jwk() for key in self._keys]}

    def sign(self, claims: Mapping[str, Any], *, alg: str = "RS256", kid: str | None = "current",
             headers: Mapping[str, Any] | None = None, sign_with: str = "current") -> str:
        """A compact JWS of ``claims``; ``alg``, ``kid`` and ``sign_with`` as in :class:`IdTokenDefects`.

        ``none`` and ``HS256-with-public-key`` tokens are assembled here by hand: they are attack
        data that PyJWT rightly refuses to produce. ``headers`` are added to the JOSE header last.
        """
        _check_choice("alg", alg, ID_TOKEN_ALGS)
        _check_choice("sign_with", sign_with, ("current", "foreign"))
        key = None if alg == "none" else self._key(alg if alg == "ES256" else "RS256", sign_with)
        if kid == "current":
            kid = key.kid if key is not None else None
        elif kid == "unknown":
            kid = UNKNOWN_KID
        extra = {**({"kid": kid} if kid else {}), **(headers or {})}
        if key is not None and alg != "HS256-with-public-key":
            return jwt.encode(dict(claims), key.private, algorithm=alg, headers=extra)
        header = {"alg": "none", **extra} if key is None else {"alg": "HS256", "typ": "JWT", **extra}
        signing_input = ".".join(_b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, dict(claims)))
        if key is None:
            return signing_input + "."
        mac = hmac.new(key.public_pem(), signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64url(mac)}"

    def discovery(self) -> dict[str, Any]:
        """The discovery document as served now (``discovery_overrides`` applied)."""
        knobs = self.knobs
        document = {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "end_session_endpoint": f"{self.issuer}/logout",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query", "form_post"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": [m for m in AUTH_METHODS if m in knobs.accept_auth_methods],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
        }
        return _merged(document, knobs.discovery_overrides)

    def sign_in(self, authorize_url: str) -> SignInResult:
        """Open ``authorize_url`` as a browser and return where the answer goes (no login page here).

        The browser trusts ``ca_path`` alone and no environment variable. Raises
        :class:`~devprovider.DevProviderError` for an answer that is neither a redirect nor a form
        (a refused authorization request: its JSON error is in the message).
        """
        browser = requests.Session()
        browser.trust_env, browser.verify = False, str(self.ca_path)
        response = browser.get(authorize_url, allow_redirects=False, timeout=30)
        if response.is_redirect:
            return SignInResult(url=urljoin(authorize_url, response.headers["Location"]), form=None, session=browser)
        form = BeautifulSoup(response.text, "html.parser").find("form") if response.status_code == 200 else None
        if form is None:
            raise DevProviderError(f"authorization request answered {response.status_code}: {response.text[:500]}")
        fields = {str(i["name"]): str(i.get("value", "")) for i in form.find_all("input") if i.get("name")}
        return SignInResult(url=str(form["action"]), form=fields, session=browser)

    # -- HTTP ----------------------------------------------------------------

    def respond(self, method: str, target: str, headers: Message, body: bytes) -> _Answer:
        """The answer to one HTTP request (what the server thread sends); never raises."""
        parts = urlsplit(target)
        route = self._routes.get(parts.path[len(self._path):]) if parts.path.startswith(self._path) else None
        if route is None:
            return _json(404, {"error": "not_found", "error_description": f"no endpoint at {parts.path}"})
        allowed, endpoint = route
        if method != allowed:
            return _json(405, {"error": "invalid_request", "error_description": f"use {allowed}"}, ("Allow", allowed))
        try:
            return endpoint(_single_values(parts.query), headers, body)
        except _Refusal as refusal:
            return refusal.answer
        except Exception as exc:  # noqa: BLE001 - a bug or a misconfiguration answers 500, not a dead connection
            _log.exception("%s %s failed", method, parts.path)  # the path only: queries hold codes
            return _json(500, {"error": "server_error", "error_description": f"{type(exc).__name__}: {exc}"})

    def _discovery(self, query: dict[str, str], headers: Message, body: bytes) -> _Answer:
        return _json(200, self.discovery())

    def _jwks(self, query: dict[str, str], headers: Message, body: bytes) -> _Answer:
        with self._lock:
            self.jwks_requests.append(time.monotonic())
        return _json(200, self.public_jwks())

    def _authorize(self, query: dict[str, str], headers: Message, body: bytes) -> _Answer:
        knobs, redirect_uri, mode = self.knobs, query.get("redirect_uri", ""), query.get("response_mode", "query")
        # Refused here, not redirected: the redirect_uri is not trusted yet (RFC 6749 §4.1.2.1).
        _require([
            (query.get("client_id") == self.client_id, "unknown client_id"),
            (urlsplit(redirect_uri).scheme in ("http", "https") and "#" not in redirect_uri,
             "redirect_uri must be an http(s) URL without a fragment (RFC 6749 §3.1.2)"),
            (query.get("response_type") == "code", "response_type must be code"),
            (mode in ("query", "form_post"), "response_mode must be query or form_post"),
            ("openid" in query.get("scope", "").split(), "scope must include openid"),
            (bool(query.get("code_challenge")), "code_challenge is required (PKCE)"),
            (query.get("code_challenge_method") == "S256", "code_challenge_method must be S256"),
        ])
        params = {"error": knobs.error, "error_description": "the test asked for this error"} if knobs.error else {}
        if not knobs.error:
            params["code"] = code = secrets.token_urlsafe(32)
            grant = _Grant(knobs.user_sub, query["scope"], query.get("nonce"), redirect_uri, query["code_challenge"])
            with self._lock:
                self._codes[code] = grant
        if "state" in query:
            params["state"] = query["state"]
        iss = self.issuer if knobs.iss_parameter == "correct" else knobs.iss_parameter
        if iss is not None:
            params["iss"] = iss
        if mode == "form_post":
            return _auto_submit(redirect_uri, params)
        return _Answer(302, b"", "text/plain", (("Location", _with_params(redirect_uri, params)),))

    def _token(self, query: dict[str, str], headers: Message, body: bytes) -> _Answer:
        record: dict[str, Any] = {"grant_type": None, "auth_method": None}
        try:
            answer = self._redeem(headers, body, record)
        except _Refusal as refusal:
            answer = refusal.answer
        record["status"] = answer.status
        with self._lock:
            self.token_requests.append(record)
        return answer

    def _redeem(self, headers: Message, body: bytes, record: dict[str, Any]) -> _Answer:
        knobs = self.knobs
        _require([(headers.get_content_type() == "application/x-www-form-urlencoded",
                   "the body must be application/x-www-form-urlencoded")])
        form = _single_values(body.decode("utf-8", errors="replace"))
        record["grant_type"] = form.get("grant_type")
        method, client_id, secret = self._client_credentials(headers.get("Authorization"), form)
        record["auth_method"] = method
        if (method not in knobs.accept_auth_methods or client_id != self.client_id
                or not hmac.compare_digest((secret or "").encode(), self.client_secret.encode())):
            raise _Refusal(401, "invalid_client", "client authentication failed",
                           ("WWW-Authenticate", 'Basic realm="rogue"'))
        if form.get("grant_type") == "authorization_code":
            with self._lock:
                grant = self._codes.pop(form.get("code", ""), None)  # single use, even when refused below
            if grant is None:
                raise _Refusal(400, "invalid_grant", "unknown or already used code")
            verifier = form.get("code_verifier", "").encode()
            _require([
                (time.monotonic() - grant.issued < CODE_LIFETIME, "code expired"),
                (form.get("redirect_uri") == grant.redirect_uri, "redirect_uri differs from the authorization's"),
                (hmac.compare_digest(_b64url(hashlib.sha256(verifier).digest()), grant.code_challenge),
                 "code_verifier does not match the code_challenge"),
            ], "invalid_grant")
            tokens = self._tokens(grant, grant.scope, knobs, id_token=True)
        elif form.get("grant_type") == "refresh_token":
            with self._lock:
                grant = self._refresh_tokens.get(form.get("refresh_token", ""))
            if grant is None:
                raise _Refusal(400, "invalid_grant", "unknown refresh_token")
            tokens = self._tokens(grant, form.get("scope") or grant.scope, knobs, id_token=knobs.id_token_on_refresh)
        else:
            raise _Refusal(400, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token")
        return _json(200, tokens, ("Cache-Control", "no-store"))

    @staticmethod
    def _client_credentials(authorization: str | None, form: Mapping[str, str]) -> tuple[str | None, str | None, str | None]:
        """(method, client_id, secret) as the client sent them; RFC 6749 §2.3.1 for the Basic scheme."""
        if authorization is None:
            method = "client_secret_post" if "client_secret" in form else None
            return method, form.get("client_id"), form.get("client_secret")
        scheme, _, encoded = authorization.partition(" ")
        try:
            user, colon, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, colon, password = "", "", ""
        client_id = unquote_plus(user)
        _require([
            (scheme.lower() == "basic" and bool(colon), "malformed Basic Authorization header"),
            ("client_secret" not in form, "use one client authentication method, not two"),
            (form.get("client_id", client_id) == client_id, "client_id differs from the Authorization header's"),
        ])
        return "client_secret_basic", client_id, unquote_plus(password)

    def _tokens(self, grant: _Grant, scope: str, knobs: Knobs, *, id_token: bool) -> dict[str, Any]:
        now, refresh_token = int(time.time()), secrets.token_urlsafe(32)
        with self._lock:
            self._refresh_tokens[refresh_token] = _Grant(grant.sub, grant.scope)
        access = {"iss": self.issuer, "aud": ACCESS_TOKEN_AUDIENCE, "sub": grant.sub, "azp": self.client_id,
                  "scp": scope, "scope": scope, "iat": now, "exp": now + LIFETIME}
        response: dict[str, Any] = {"access_token": None if knobs.omit_access_token else self.sign(access),
                                    "token_type": knobs.token_type, "expires_in": LIFETIME,
                                    "refresh_token": refresh_token, "scope": scope}
        if id_token and not knobs.omit_id_token:
            # A refreshed id token carries no nonce: there was no authorization request (OIDC Core §12.2).
            claims = {**knobs.user_claims, "iss": self.issuer, "sub": grant.sub, "aud": self.client_id,
                      "exp": now + LIFETIME, "iat": now, "nonce": grant.nonce}
            defects = knobs.id_token
            response["id_token"] = self.sign(_merged(claims, defects.claims_overrides), alg=defects.alg,
                                             kid=defects.kid, sign_with=defects.sign_with)
        return _merged(response, knobs.token_response_overrides)

    def _logout(self, query: dict[str, str], headers: Message, body: bytes) -> _Answer:
        target = query.get("post_logout_redirect_uri")
        if target is None:
            return _Answer(200, b"<!DOCTYPE html><p>Signed out.</p>", "text/html; charset=utf-8")
        state = {"state": query["state"]} if "state" in query else {}
        return _Answer(302, b"", "text/plain", (("Location", _with_params(target, state)),))

    def _key(self, alg: str, sign_with: str) -> _Key:
        if sign_with == "foreign":
            return self._foreign[alg]
        with self._lock:
            key = self._signing.get(alg)
        if key is None:
            raise ValueError(f"no {alg} key in the JWKS: call add_key({alg!r}) first")
        return key

    def _new_key(self, alg: str) -> _Key:
        return _generate_key(alg, f"{alg.lower()}-{next(self._serial)}")


def _handler(provider: MisbehavingProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 30  # a client that connects and says nothing frees its thread
        # What http.server answers itself (a garbled request line, an unknown method) is JSON too.
        error_content_type = "application/json"
        error_message_format = '{"error": "invalid_request", "error_description": "HTTP %(code)d"}'

        def handle(self) -> None:
            try:
                self.connection.do_handshake()
            except OSError:
                return  # not a TLS client, or one that gave up
            super().handle()

        def do_GET(self) -> None:
            length = self.headers.get("Content-Length", "0")
            try:
                answer = (provider.respond(self.command, self.path, self.headers, self.rfile.read(int(length)))
                          if length.isdigit() and int(length) <= _MAX_BODY else
                          _json(400, {"error": "invalid_request", "error_description": "bad Content-Length"}))
                self.send_response(answer.status)
                for name, value in (("Content-Type", answer.content_type),
                                    ("Content-Length", str(len(answer.body))), *answer.headers):
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(answer.body)
            except OSError:
                pass  # the client went away

        do_POST = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass  # request lines carry codes and states

    return Handler


def beside(devprovider: DevProvider, **options: Any) -> MisbehavingProvider:
    """A MisbehavingProvider on devprovider's TLS certificate and CA, which REQUESTS_CA_BUNDLE already trusts."""
    assert devprovider.workdir is not None and devprovider.ca_path is not None
    return MisbehavingProvider(devprovider.workdir / "server-cert.pem", devprovider.workdir / "server-key.pem",
                               devprovider.ca_path, **options)
