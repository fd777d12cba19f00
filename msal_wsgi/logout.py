"""Logouts the provider starts: OpenID Connect Back-Channel Logout 1.0 and Front-Channel Logout 1.0.

When a user signs out at the provider (or an administrator ends their sessions there), the
provider tells every application they signed in to:

- **back-channel** (:meth:`LogoutChannels.backchannel`): the provider POSTs a *logout token*, a
  JWT it signs, straight to ``backchannel_logout_path``. It is validated as an id token is (the
  provider's keys and algorithms, ``iss``, ``aud``, ``iat``, ``exp``) plus the Back-Channel Logout
  rules (§2.4, §2.6: the logout ``events`` claim, ``sid`` and/or ``sub``, no ``nonce``,
  ``typ`` ``logout+jwt`` when present), and its ``jti`` is remembered in the shared store until
  it expires, so a replayed token is refused. Its ``sid`` (else its ``sub``) names sessions in the
  logout index (:mod:`msal_wsgi._store`), and every one of them is deleted from the store, on
  whichever server they were signed in: the next request of that browser, on any server, signs
  in again. Answers per §2.8: 200 (``no-store``), 400 with a JSON error, 501 for a session store
  without an index, 503 when the provider's keys cannot be fetched.
- **front-channel** (:meth:`LogoutChannels.frontchannel`): the provider's logout page loads
  ``frontchannel_logout_path?iss=...&sid=...`` in an iframe (Entra ID does). The iframe is
  cross-site, so it usually carries no session cookie (``SameSite=Lax``, third-party cookies
  blocked): the ``sid`` names the sessions to end in the logout index, as the back-channel does.
  Without ``iss`` and ``sid``, the session of the request's cookie ends. The answer is a small page
  the provider may frame (``frame-ancestors`` its origin), never cached (§3).

A front-channel request is not signed: anyone who knows a user's provider session id can end
that user's sessions here, which is what the specification provides for (SECURITY.md).
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from typing import Any
from urllib.parse import parse_qsl

from webob import Request, Response

from . import jose
from ._msal import IdentityClient
from ._session import BACKCHANNEL_LOGOUT, FRONTCHANNEL_LOGOUT, Sessions
from ._store import Store, logout_keys
from .errors import ProviderUnavailable
from .events import LOGOUT_RECEIVED, LOGOUT_REFUSED, SESSION_ENDED, Events
from .redirects import origin_of
from .responses import json_error
from .settings import Settings

log = logging.getLogger("msal_wsgi")

#: Largest back-channel body read; a logout token is a few KB (jose.MAX_TOKEN_LENGTH bounds it anyway).
MAX_LOGOUT_BODY = 64 * 1024
#: A logout token without ``exp`` is accepted for this long after its ``iat`` (its jti remembered as long).
LOGOUT_TOKEN_WINDOW = 600
#: Longest ``iss`` and ``sid`` accepted from a front-channel request.
MAX_PARAMETER = 2048

_FRAMED_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Signed out</title></head>
<body><p>You are signed out of this application.</p></body></html>
"""


class LogoutChannels:
    """The back-channel and front-channel logout endpoints.

    :param settings: the validated settings (client id, clock skew, allowed tenants).
    :param client: the provider's keys, algorithms and issuer.
    :param sessions: the sessions, and the store behind them with its logout index.
    :param events: where ``logout.*`` and ``session.ended`` are told.
    """

    def __init__(self, settings: Settings, client: IdentityClient, sessions: Sessions, events: Events) -> None:
        self._settings = settings
        self._client = client
        self._sessions = sessions
        self._events = events

    # -- back-channel (Back-Channel Logout 1.0) ---------------------------------------------

    def backchannel(self, request: Request) -> Response:
        """The provider's POST of a logout token: end the sessions it names, on every server."""
        if request.method != "POST":
            answer = json_error(405, "invalid_request", "Back-channel logout takes a POST of a logout_token.")
            answer.headers["Allow"] = "POST"
            return answer
        token = self._logout_token(request)
        if token is None:
            return self._refused("malformed_request", "The request carries no single logout_token form field.")
        try:
            provider = self._client.provider
            claims = jose.validate_logout_token(token, provider.keys, issuer=provider.expected_issuer,
                                                client_id=self._settings.client_id, algorithms=provider.algorithms,
                                                leeway=self._settings.clock_skew)
        except jose.InvalidToken as exc:
            return self._refused(exc.reason, "The logout token is not valid.")
        except ProviderUnavailable as exc:  # the keys cannot be fetched: the provider may try again
            log.error("back-channel logout: the provider's keys are unavailable: %s", exc)
            return json_error(503, "temporarily_unavailable", "The provider's keys cannot be fetched.",
                              retry_after=30)
        now = time.time()
        if "exp" not in claims and claims["iat"] < now - LOGOUT_TOKEN_WINDOW - self._settings.clock_skew:
            return self._refused("too_old", "The logout token is too old.")
        allowed = self._settings.allowed_tenants
        if allowed and str(claims.get("tid", "")).lower() not in allowed:
            return self._refused("tenant_not_allowed", "The logout token is for another tenant.")
        store = self._sessions.store(request.environ)
        if store is None or not store.indexes:
            return self._unsupported("backchannel")
        remembered = max(float(claims.get("exp", 0)), float(claims["iat"]) + LOGOUT_TOKEN_WINDOW)
        jti = hashlib.sha256(f"{claims['iss']}\x00{claims['jti']}".encode()).hexdigest()[:40]
        if not store.first_use(jti, remembered + self._settings.clock_skew):
            return self._refused("replayed", "This logout token was already used.")
        by = "sid" if claims.get("sid") else "sub"
        keys = logout_keys(claims["iss"], **{by: claims[by]})
        ended = self._end(store, keys, BACKCHANNEL_LOGOUT)
        self._events(LOGOUT_RECEIVED, channel="backchannel", by=by, sessions=ended)
        answer = Response(status=200)
        answer.cache_control = "no-store"
        return answer

    @staticmethod
    def _logout_token(request: Request) -> str | None:
        if (request.content_type or "").lower() != "application/x-www-form-urlencoded":
            return None
        if (request.content_length or 0) > MAX_LOGOUT_BODY:
            return None
        body = request.body_file.read(MAX_LOGOUT_BODY + 1)
        if len(body) > MAX_LOGOUT_BODY:
            return None
        try:
            pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            return None
        values = [value for name, value in pairs if name == "logout_token"]
        return values[0] if len(values) == 1 and values[0] else None

    def _refused(self, reason: str, description: str) -> Response:
        self._events(LOGOUT_REFUSED, channel="backchannel", reason=reason)
        return json_error(400, "invalid_request", description)

    def _unsupported(self, channel: str) -> Response:
        self._events(LOGOUT_REFUSED, channel=channel, reason="no_index")
        log.error("%s logout needs Beaker memory, file or ext:redis sessions, whose store msal_wsgi indexes", channel)
        return json_error(501, "not_supported", "This application's session store cannot end sessions by "
                                                "the provider's session id.")

    def _end(self, store: Store, keys: list[str], reason: str) -> int:
        """Delete every session the index has under ``keys``; returns how many."""
        ended = 0
        for key in keys:
            for session_id in store.indexed(key):
                store.delete(session_id)
                store.unindex([key], session_id)  # its other key's entry expires, or goes with the sweep
                self._events(SESSION_ENDED, reason=reason, user=None)
                ended += 1
        return ended

    # -- front-channel (Front-Channel Logout 1.0) -------------------------------------------

    def frontchannel(self, request: Request) -> Response:
        """The provider's logout page, in an iframe: end the sessions of ``sid`` at ``iss`` (or of the cookie)."""
        if request.method not in ("GET", "HEAD"):
            answer = json_error(405, "invalid_request", "Front-channel logout is a GET.")
            answer.headers["Allow"] = "GET, HEAD"
            return answer
        iss, sid = _single(request, "iss"), _single(request, "sid")
        if (iss is None) != (sid is None):  # §2: iss and sid go together
            return self._frame_error("iss and sid must both be given, or neither.")
        if iss is not None and sid is not None:
            if not self._is_issuer(iss):
                self._events(LOGOUT_REFUSED, channel="frontchannel", reason="wrong_issuer")
                return self._frame_error("The issuer is not this application's identity provider.")
            store = self._sessions.store(request.environ)
            if store is None or not store.indexes:
                return self._unsupported("frontchannel")
            ended = self._end(store, logout_keys(iss, sid=sid), FRONTCHANNEL_LOGOUT)
            by = "sid"
        else:
            view = self._sessions.view(request.environ)
            signed_in = view.user()
            ended = int(view.end().signed_in)
            if signed_in is not None:
                self._events(SESSION_ENDED, reason=FRONTCHANNEL_LOGOUT, user=signed_in.user.username)
            by = "cookie"
        self._events(LOGOUT_RECEIVED, channel="frontchannel", by=by, sessions=ended)
        return self._framed(Response(_FRAMED_PAGE, content_type="text/html", charset="utf-8"))

    def _is_issuer(self, iss: str) -> bool:
        issuer = self._client.provider.issuer
        if "{tenantid}" not in issuer:
            return iss == issuer
        pattern = re.escape(issuer).replace(re.escape("{tenantid}"), "([0-9a-fA-F-]{36})")
        match = re.fullmatch(pattern, iss)
        allowed = self._settings.allowed_tenants
        return match is not None and (not allowed or match[1].lower() in allowed)

    def _frame_error(self, message: str) -> Response:
        return self._framed(Response(f"<!doctype html><p>{message}</p>", status=400, content_type="text/html",
                                     charset="utf-8"))

    def _framed(self, response: Response) -> Response:
        """A page the provider's logout page may frame, never cached (Front-Channel Logout §3)."""
        response.headers["Cache-Control"] = "no-cache, no-store"
        response.headers["Pragma"] = "no-cache"
        ancestors = "'self'"
        try:
            ancestors += " " + origin_of(self._client.provider.issuer)
        except ProviderUnavailable:
            pass
        response.headers["Content-Security-Policy"] = f"default-src 'none'; frame-ancestors {ancestors}"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response


def _single(request: Request, name: str) -> Any:
    values = request.GET.getall(name)
    if len(values) != 1 or not values[0] or len(values[0]) > MAX_PARAMETER:
        return None
    return values[0]
