"""API prefixes: a bearer access token (RFC 6750) on every request, validated as a JWT (RFC 9068 §4),
with the scopes or app roles its method needs.

A request under a :class:`~msal_wsgi.ProtectApi` prefix carries exactly one ``Authorization: Bearer
<token>`` header (§2.1: the scheme in any case, one token68, at most ``jose.MAX_TOKEN_LENGTH``
characters). The token is verified with the provider's signing keys, the same
:class:`~msal_wsgi.jose.KeySet` that verifies id tokens (one JWKS cache per process), with the
algorithms discovery announces: ``iss`` (Entra's ``{tenantid}`` template and its v1 issuer
included, and ``allowed_tenants``), ``aud`` in ``api_audience``, ``exp`` and ``nbf`` within
``clock_skew``. Then the method's delegated scopes (``scp``/``scope``) or, for an app-only token,
app roles (``roles``), any one of them.

Answers (§3, §3.1), each with ``WWW-Authenticate: Bearer realm="<api_audience>", ...`` and a JSON
body, never a redirect, and no session is ever read or written:

- no token, or another scheme (``Basic``): 401 without an error code;
- a header that is not ``Bearer <token68>``, several credentials (two headers arrive joined by a
  comma), a token in the query string: 400 ``invalid_request``;
- a token that is malformed, too long, encrypted (JWE), badly signed, expired, not yet valid, of
  another issuer, tenant or audience: 401 ``invalid_token``;
- a valid token without the scope or app role the method needs: 403 ``insufficient_scope``, with
  the ``scope`` the request needs.

Validated tokens are remembered (``api_token_cache`` of them, each until it expires), so a client
that sends the same token again costs a dictionary lookup instead of a signature check; the
method's scopes and the prefix's rules are still checked on every request.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Collection, Mapping
from typing import Any, NamedTuple

from webob import Request, Response

from . import jose
from ._msal import IdentityClient, Provider
from .errors import InteractionRequired, ProviderMisconfigured
from .events import API_TOKEN_ACCEPTED, API_TOKEN_REJECTED, Events
from .identity import Caller
from .responses import bearer_error
from .settings import ProtectApi, Settings

#: RFC 6750 §2.1: ``b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="``.
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
#: §2.3: a token in the URI, which we refuse (it ends up in logs and Referer headers).
_QUERY_TOKEN = re.compile(r"(?:^|[&;])access_token=")
_MAX_HEADER = len("Bearer ") + jose.MAX_TOKEN_LENGTH

#: ``InvalidToken.reason`` (the part before ``:``) -> the ``error_description`` of the 401.
DESCRIPTIONS: Mapping[str, str] = {
    "malformed": "The token is not a signed JWT (encrypted and opaque tokens are not accepted).",
    "too_long": f"The token is longer than {jose.MAX_TOKEN_LENGTH} characters.",
    "bad_header": "The token's JOSE header is not acceptable.",
    "alg_not_allowed": "The token is signed with an algorithm this API does not accept.",
    "wrong_typ": "The token is not an access token (its typ header says otherwise).",
    "unknown_key": "The token is signed with a key the identity provider does not publish.",
    "bad_signature": "The token's signature does not verify.",
    "expired": "The token has expired.",
    "not_yet_valid": "The token is not valid yet.",
    "issued_in_future": "The token is issued in the future.",
    "wrong_issuer": "The token was issued by another issuer.",
    "wrong_tenant": "The token's tenant is not allowed to call this API.",
    "wrong_audience": "The token is for another audience than this API.",
    "missing_claim": "The token lacks a required claim.",
    "invalid_claim": "The token has a claim of the wrong type.",
}


class Refused(Exception):
    """A request this API does not serve: its status, RFC 6750 error code, reason (for the log) and text."""

    def __init__(self, status: int, error: str | None, reason: str, description: str, *,
                 scope: str | None = None, body: Mapping[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.status, self.error, self.reason, self.description = status, error, reason, description
        self.scope, self.body = scope, body


class Authenticated(NamedTuple):
    """A request whose bearer token passed: the token as sent, and who sent it."""

    token: str
    caller: Caller


def _no_token_in_query(environ: Mapping[str, Any]) -> None:
    query = environ.get("QUERY_STRING")
    if query and _QUERY_TOKEN.search(query):
        raise Refused(400, "invalid_request", "token_in_query", "Send the access token in the Authorization "
                      "header (RFC 6750 section 2.1), not in the URL.")


def bearer_token(environ: Mapping[str, Any]) -> str:
    """The token of the request's one ``Authorization: Bearer`` header, or :class:`Refused`."""
    _no_token_in_query(environ)
    value = environ.get("HTTP_AUTHORIZATION")
    if not value:
        raise Refused(401, None, "no_token", "This API needs an Authorization: Bearer <access token> header.")
    if "," in value:  # a WSGI server joins repeated headers with commas; no credential holds one
        raise Refused(400, "invalid_request", "several_credentials", "The request carries more than one "
                      "Authorization header or credential; send exactly one Bearer token.")
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() != "bearer":
        raise Refused(401, None, "other_scheme", "This API takes Bearer access tokens (RFC 6750), "
                      "not another authentication scheme.")
    if len(value) > _MAX_HEADER:
        raise Refused(401, "invalid_token", "too_long", DESCRIPTIONS["too_long"])
    token: str = credentials.lstrip(" ")
    if not _TOKEN68.fullmatch(token):
        raise Refused(400, "invalid_request", "malformed_header", "The Authorization header must read "
                      "'Bearer <token>', the token in base64url (RFC 6750 section 2.1).")
    return token


class _Validated:
    """Recently validated requests, by their ``Authorization`` header exactly as sent, each until its
    token expires: bounded, the oldest out first. A header seen before passed every check that
    only depends on it (syntax, signature, claims); the method's scopes are checked each time.

    Lookups take no lock (a dict read is atomic); insertions, on the slow path, do.
    """

    __slots__ = ("_entries", "_lock", "_size")

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: dict[str, tuple[Authenticated, float]] = {}
        self._lock = threading.Lock()

    def get(self, header: str, now: float) -> Authenticated | None:
        entry = self._entries.get(header)
        return entry[0] if entry is not None and now < entry[1] else None

    def put(self, header: str, authenticated: Authenticated, until: float) -> None:
        if not self._size:
            return
        with self._lock:
            while len(self._entries) >= self._size:
                del self._entries[next(iter(self._entries))]
            self._entries[header] = (authenticated, until)


class BearerGuard:
    """Authenticates the requests of API prefixes: :meth:`check` returns who called, or the answer.

    :param settings: ``api_audience``, ``allowed_tenants``, ``clock_skew``, ``api_token_cache``.
    :param client: the provider's issuer, algorithms and signing keys (``IdentityClient.provider``).
    :param events: where ``api.token_rejected`` and ``api.token_accepted`` are told.
    """

    def __init__(self, settings: Settings, client: IdentityClient, events: Events) -> None:
        self._client = client
        self._events = events
        self._audiences = settings.api_audience
        self._realm = settings.api_audience[0] if settings.api_audience else "msal_wsgi"
        self._tenants = settings.allowed_tenants
        self._leeway = settings.clock_skew
        self._validated = _Validated(settings.api_token_cache)
        self._issuer: tuple[Provider, jose.Issuer] | None = None

    def check(self, request: Request, rule: ProtectApi) -> Authenticated | Response:
        """The request's token and caller, when the token is valid and grants what ``rule`` needs for
        this method; else the RFC 6750 answer. :class:`~msal_wsgi.ProviderUnavailable` when the
        provider's discovery or keys cannot be had."""
        environ = request.environ
        try:
            _no_token_in_query(environ)
            now = time.time()
            header = environ.get("HTTP_AUTHORIZATION")
            authenticated = self._validated.get(header, now) if header else None
            cached = authenticated is not None
            if authenticated is None:
                token = bearer_token(environ)
                caller, until = self._validate(token, now)
                authenticated = Authenticated(token, caller)
                self._validated.put(str(header), authenticated, until)
            caller = authenticated.caller
            granted = caller.roles if caller.app_only else caller.scopes
            if not rule.accepts(request.method, app_only=caller.app_only, granted=granted):
                raise _insufficient(rule, request.method, caller.app_only)
        except Refused as refused:
            return self.refuse(request, refused)
        self._events(API_TOKEN_ACCEPTED, app_only=caller.app_only, cached=cached)
        return authenticated

    def refuse(self, request: Request, refused: Refused) -> Response:
        """The answer to a refused request, told as ``api.token_rejected``."""
        self._events(API_TOKEN_REJECTED, status=refused.status, error=refused.error or "none",
                     reason=refused.reason, path=request.path_info[:200])
        return bearer_error(refused.status, self._realm, refused.error, refused.description,
                            scope=refused.scope, body=refused.body)

    def interaction_required(self, request: Request, exc: InteractionRequired) -> Response:
        """The app needed a token on behalf of the caller that only the user can unlock (consent, a
        conditional access policy): 401 ``insufficient_claims`` with the claims challenge for the
        client to satisfy (Entra's convention), else 403 ``interaction_required``."""
        if exc.claims_challenge:
            claims = base64.urlsafe_b64encode(exc.claims_challenge.encode()).decode("ascii")
            return bearer_error(401, self._realm, "insufficient_claims", "The user must satisfy more claims at "
                                "the client: " + exc.reason[:200], claims=claims)
        return bearer_error(403, self._realm, "interaction_required", "The user must sign in again or consent at "
                            "the client: " + exc.reason[:200])

    def _validate(self, token: str, now: float) -> tuple[Caller, float]:
        """The caller of a valid token, and until when it stays valid; :class:`Refused` otherwise."""
        provider = self._client.provider
        try:
            claims = jose.validate_access_token(token, provider.keys, issuer=self._issuer_of(provider),
                                                audiences=self._audiences, algorithms=provider.algorithms,
                                                leeway=self._leeway, now=now)
        except jose.InvalidToken as exc:
            if exc.reason == "jwks_unusable":
                raise ProviderMisconfigured("the provider's JWKS has no key msal_wsgi can verify with") from None
            raise Refused(401, "invalid_token", exc.reason,
                          DESCRIPTIONS.get(exc.reason.partition(":")[0], "The token is not valid.")) from None
        return caller_of(claims, self._audiences), float(claims["exp"]) + self._leeway

    def _issuer_of(self, provider: Provider) -> jose.Issuer:
        if self._issuer is None or self._issuer[0] is not provider:
            self._issuer = provider, access_token_issuer(provider, self._tenants)
        return self._issuer[1]


def access_token_issuer(provider: Provider, tenants: Collection[str]) -> jose.Issuer:
    """What ``iss`` of an access token must be: the discovery issuer (Entra's ``{tenantid}`` filled
    with the token's ``tid``) or, for Entra, the v1 issuer of the same tenant; with ``tenants``,
    the ``tid`` must be one of them (reason ``wrong_tenant``)."""
    templates = (provider.issuer,) + ((provider.v1_issuer,) if provider.v1_issuer else ())
    if not tenants and len(templates) == 1 and "{tenantid}" not in provider.issuer:
        return provider.issuer

    def issuer(claims: Mapping[str, Any]) -> str:
        tid = claims.get("tid")
        if tenants and (not isinstance(tid, str) or tid.lower() not in tenants):
            raise jose.InvalidToken("wrong_tenant")
        expected = [_filled(template, tid) for template in templates]
        return next((iss for iss in expected if iss == claims.get("iss")), expected[0])

    return issuer


def _filled(template: str, tid: object) -> str:
    if "{tenantid}" not in template:
        return template
    if not isinstance(tid, str) or not tid:
        raise jose.InvalidToken("missing_claim:tid")
    return template.replace("{tenantid}", tid)


def caller_of(claims: Mapping[str, Any], audiences: Collection[str]) -> Caller:
    """The :class:`Caller` of validated claims.

    App-only: ``idtyp`` is ``app`` or, without ``idtyp``, there is neither ``scp`` nor ``scope``.
    Scopes are kept short (``ToDoList.Read``); one written in full counts only if its resource is
    one of ``audiences`` (a token for several audiences may hold other APIs' scopes).
    """
    idtyp = claims.get("idtyp")
    raw = claims.get("scp", claims.get("scope"))
    app_only = idtyp == "app" if idtyp in ("app", "user") else raw is None
    names = raw.split() if isinstance(raw, str) else [s for s in raw if isinstance(s, str)] \
        if isinstance(raw, list) else []
    scopes = set()
    for name in names:
        resource, _, short = name.rpartition("/")
        if "://" not in name:
            scopes.add(name)
        elif resource in audiences:
            scopes.add(short)
    roles = claims.get("roles")
    return Caller(claims, app_only, frozenset(scopes),
                  frozenset(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else frozenset())


def _insufficient(rule: ProtectApi, method: str, app_only: bool) -> Refused:
    if app_only:
        roles = rule.roles_for(method)
        text = (f"The application's token has none of the app roles this request needs: {' '.join(roles)}."
                if roles else "This API does not accept app-only tokens for this method.")
        return Refused(403, "insufficient_scope", "insufficient_role", text, body={"roles": list(roles)})
    scopes = rule.scopes_for(method)
    text = (f"The token grants none of the scopes this request needs: {' '.join(scopes)}." if scopes
            else "This API accepts only app-only tokens for this method.")
    return Refused(403, "insufficient_scope", "insufficient_scope", text, scope=" ".join(scopes) or None)
