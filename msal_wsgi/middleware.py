"""The WSGI middleware: sign-in, callback, sign-out and protected paths."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any, Callable, cast
from urllib.parse import urlencode, urlsplit

from webob import Request, Response
from webob.exc import HTTPFound

from . import _environ as K
from . import _events as E
from ._client import AccessToken, IdentityClient
from ._session import SessionView, SignedIn, User, scope_key
from .errors import CredentialRejected, InteractionRequired, ProviderUnavailable, SessionUnavailable
from .redirects import safe_next
from .responses import error_page, json_error, repost_page
from .routing import Router
from .settings import Protect, Settings

log = logging.getLogger("msal_wsgi")

#: A WSGI environ, and a WSGI application.
Environ = dict[str, Any]
WSGIApp = Callable[[Environ, Callable[..., Any]], Iterable[bytes]]

#: Parameters of the authorization response we read, and the longest value accepted for each.
_CALLBACK_LIMITS = {"code": 8192, "state": 512, "error": 128, "error_description": 2048,
                    "error_uri": 2048, "session_state": 512, "client_info": 4096, "iss": 2048}
#: Marks the same-site re-post of a ``form_post`` callback.
_REPOST_FIELD = "msal_wsgi_repost"
#: Largest callback form body read; all the parameters above fit in well under half of it.
_MAX_CALLBACK_BODY = 64 * 1024
_RETRY_AFTER = 30


class MsalMiddleware:
    """Sign users in with Microsoft Entra ID or any OpenID Connect provider, and hand
    the wrapped app an access token for the paths it protects.

    ::

        app = MsalMiddleware(app, client_id="...", client_credential="...",
                             oidc_authority="https://id.example/realm",
                             redirect_uri="https://app.example/auth/callback",
                             protect={"/todos": Protect(read=[READ], write=[READWRITE])})
        app = SessionMiddleware(app, {"session.type": "file", ...})

    :param app: the WSGI application to protect.
    :param settings: a ready :class:`Settings`; keyword options are applied on top of it.
    :param options: any :class:`Settings` field (see the configuration reference).

    The wrapped app finds ``msal_wsgi.token``, ``msal_wsgi.user``,
    ``msal_wsgi.acquire_token`` and ``REMOTE_USER`` in the environ of protected requests.
    """

    def __init__(self, app: WSGIApp, settings: Settings | None = None, **options: Any) -> None:
        if settings is None:
            settings = Settings(**options)
        elif options:
            settings = settings.with_changes(**options)
        self.app = app
        self.settings = settings
        self._router = Router(settings.protect)
        self._client = IdentityClient(settings)
        self._events = E.Events(settings.on_event)
        self._lock = settings.session_lock
        self._callback = settings.callback_path
        self._fingerprint = hashlib.sha256(
            f"{settings.client_id}|{settings.authority or settings.oidc_authority}".encode()).hexdigest()[:16]
        self._warned_no_session = False
        self._entry: WSGIApp = self._dispatch
        if settings.session_options is not None:
            from beaker.middleware import SessionMiddleware  # optional dependency

            # Beaker reads only "session."-prefixed keys from a config dict; settings hold them bare.
            options = {"session." + key: value for key, value in settings.session_options.items()}
            self._beaker: WSGIApp = SessionMiddleware(self._saving, options)
            self._entry = self._with_session

    def __call__(self, environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
        return self._entry(environ, start_response)

    # -- the Beaker msal_wsgi installs (session_options) ------------------------

    def _with_session(self, environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Beaker around :meth:`_dispatch`, answering 503 when it cannot save the session.

        Beaker writes the session when the response starts, after the store may have
        served the load: a store failing then (down, full, read-only) would be a 500.
        """
        started = False

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            nonlocal started
            started = True
            return start_response(status, headers, exc_info)

        try:
            return self._beaker(environ, start)
        except _SaveFailed as exc:
            failure = exc.__cause__
            assert failure is not None
            if started:  # Beaker saved; the server's start_response failed
                raise failure from None
            self._events(E.SESSION_UNAVAILABLE, logging.ERROR, "session store unavailable: the session could "
                         "not be saved: %s: %s", type(failure).__name__, failure, error=str(failure))
            answer = self._unavailable(environ, "The session store is unavailable.")
            return cast("Iterable[bytes]", answer(environ, start_response))

    def _saving(self, environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
        """:meth:`_dispatch`, with failures of Beaker's start_response (its save) marked for :meth:`_with_session`."""

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            try:
                return start_response(status, headers, exc_info)
            except Exception as exc:
                raise _SaveFailed() from exc

        return self._dispatch(environ, start)

    def _dispatch(self, environ: Environ, start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if environ.get("SCRIPT_NAME", "") + path == self._callback:
            handler = self._handle_callback
        elif path == self.settings.login_path:
            handler = self._handle_sign_in
        elif path == self.settings.logout_path:
            handler = self._handle_sign_out
        else:
            match = self._router.match(path)
            if match is None:
                return self.app(environ, start_response)
            return self._guarded(self._handle_protected, environ, start_response, match[1])
        return self._guarded(handler, environ, start_response)

    # -- the protected hot path ----------------------------------------------

    def _handle_protected(self, environ: Environ, start_response: Callable[..., Any], rule: Protect) -> Any:
        scopes = rule.scopes_for(environ.get("REQUEST_METHOD", "GET"))
        view = self._view(environ)
        signed_in = view.signed_in(self._fingerprint)
        if signed_in is None:
            return self._challenge(environ, view, scopes, "not signed in")
        token = None
        if scopes:
            try:
                token = self._token(view, signed_in, scopes)
            except InteractionRequired as exc:
                return self._challenge(environ, view, scopes, exc.reason, exc.claims_challenge)
        user = signed_in.user
        environ[K.USER] = user
        environ[K.TOKEN] = token
        environ[K.ROUTE] = rule
        environ[K.MIDDLEWARE] = self
        environ[K.ACQUIRE_TOKEN] = _Acquirer(self, view, signed_in)
        environ["REMOTE_USER"] = user.username
        return self.app(environ, start_response)

    def _token(self, view: SessionView, signed_in: SignedIn, scopes: tuple[str, ...],
               claims_challenge: str | None = None) -> AccessToken:
        """The token for ``scopes``: from the session's index, else from msal (and saved).

        A refresh happens under the session's lock, after re-reading the session from
        the store: parallel requests of one user refresh once, and none writes back a
        cache whose refresh token another request has already rotated.
        """
        key = scope_key(scopes)
        if claims_challenge is None:
            token = signed_in.cached_token(key, time.time())
            if token is not None:
                if self._events.hook is not None:
                    self._events.notify(E.TOKEN_CACHE_HIT, {"scopes": scopes})
                return token
        with self._lock(view.session_id or f"unkeyed:{id(view)}"):
            view.reload()
            current = view.signed_in(self._fingerprint)
            if current is None or current.record["id"] != signed_in.record["id"]:
                raise InteractionRequired("the session was signed out or changed user meanwhile")
            if claims_challenge is None:
                token = current.cached_token(key, time.time())
                if token is not None:
                    return token  # another request refreshed it while this one waited
            cache = view.token_cache()
            if cache is None:
                raise InteractionRequired("the session holds no token cache")
            token, new_cache = self._client.acquire_silent(
                cache, current.record["id"], scopes, claims_challenge=claims_challenge)
            view.store_token(current, token, new_cache)
            view.flush()
        if new_cache is not None:
            self._events(E.TOKEN_REFRESHED, logging.INFO, "token refreshed for %s (scopes %s)",
                         current.user.username, key, user=current.user.username, scopes=scopes)
        return token

    def _challenge(self, environ: Environ, view: SessionView, scopes: tuple[str, ...], reason: str,
                   claims_challenge: str | None = None) -> Response:
        """Interaction is required: a browser is sent to sign in, an API caller gets 401."""
        request = Request(environ)
        here = self._safe_next(request, request.path_qs)  # a raw path can look like //host or /\\host
        redirect = wants_redirect(environ)
        self._events(E.INTERACTION_REQUIRED, logging.DEBUG if redirect else logging.INFO,
                     "interaction required for %s %s (%s): %s", request.method, request.path_info[:200],
                     "sign-in redirect" if redirect else "401", reason,
                     reason=reason, path=request.path_info[:200], redirect=redirect)
        if not redirect:
            login_url = request.script_name + self.settings.login_path
            return json_error(401, "interaction_required", "Sign-in required: " + reason, login_url=login_url)
        return self._start_sign_in(request, view, scopes, here, claims_challenge=claims_challenge)

    # -- sign-in --------------------------------------------------------------

    def _handle_sign_in(self, environ: Environ, start_response: Callable[..., Any]) -> Response:
        request = Request(environ)
        next_url = self._safe_next(request, _single(request.GET, "next"))
        hints = {name: _single(request.GET, name, 256) for name in ("login_hint", "domain_hint")}
        app_path = next_url[len(request.script_name):] if next_url.startswith("/") else ""
        match = self._router.match(app_path.split("?", 1)[0]) if app_path else None
        scopes = match[1].read if match else self.settings.login_scopes
        return self._start_sign_in(request, self._view(environ), scopes, next_url, **hints)

    def _start_sign_in(self, request: Request, view: SessionView, scopes: tuple[str, ...], next_url: str,
                       *, claims_challenge: str | None = None, login_hint: str | None = None,
                       domain_hint: str | None = None) -> Response:
        flow = self._client.begin_sign_in(scopes, login_hint=login_hint, domain_hint=domain_hint,
                                          claims_challenge=claims_challenge)
        pending = {"flow": flow, "next": next_url, "scopes": list(scopes), "t": time.time()}
        view.add_flow(flow["state"], pending, limit=self.settings.max_pending_sign_ins,
                      ttl=self.settings.sign_in_timeout)
        self._events(E.SIGN_IN_STARTED, logging.INFO, "sign-in started (state %s…, %s) for %s", flow["state"][:6],
                     "with a claims challenge" if claims_challenge else "no claims challenge", next_url[:200],
                     scopes=scopes, claims_challenge=claims_challenge is not None, next=next_url[:200])
        return HTTPFound(location=flow["auth_uri"])

    def start_sign_in(self, environ: Environ, *, claims_challenge: str | None = None,
                      scopes: tuple[str, ...] | None = None) -> Response:
        """A response that signs the user in again and brings them back to this request's page.

        Use it when an API answers 401 with a claims challenge (conditional access):
        ``return middleware.start_sign_in(environ, claims_challenge=challenge)``. A browser is
        sent to sign in; an API or XHR caller gets the same 401 JSON as any protected request.
        """
        rule = environ.get(K.ROUTE)
        wanted = tuple(scopes) if scopes is not None else (
            rule.scopes_for(environ.get("REQUEST_METHOD", "GET")) if rule else self.settings.login_scopes)
        reason = "the API asked for more claims" if claims_challenge else "the application asked for a new sign-in"

        def challenge(environ: Environ) -> Response:
            return self._challenge(environ, self._view(environ), wanted, reason, claims_challenge)

        answer: Response = self._answer(challenge, environ)
        return answer

    # -- the callback ---------------------------------------------------------

    def _handle_callback(self, environ: Environ, start_response: Callable[..., Any]) -> Response:
        request = Request(environ)
        if request.method not in ("GET", "POST"):
            return error_page(405, "Method not allowed", "The sign-in callback accepts GET and POST.")
        if request.method == "POST":
            if (request.content_length or 0) > _MAX_CALLBACK_BODY:
                return self._restart_page(request, 413, "The sign-in response was too large.")
            request.request_body_tempfile_limit = _MAX_CALLBACK_BODY  # parse in memory: no temporary file
        source = request.POST if request.method == "POST" else request.GET
        params: dict[str, str] = {}
        for name, limit in _CALLBACK_LIMITS.items():
            values = source.getall(name)
            if len(values) > 1 or (values and (not isinstance(values[0], str) or len(values[0]) > limit)):
                self._events(E.SIGN_IN_FAILED, logging.WARNING, "callback rejected: repeated or oversized %r", name,
                             reason="malformed_response")
                return self._restart_page(request, 400, "The sign-in response was malformed.")
            if values:
                params[name] = values[0]
        if request.method == "POST" and source.get(_REPOST_FIELD) != "1":
            # A form_post arrives cross-site, without the SameSite=Lax session cookie:
            # send it on again from this site without touching the session.
            return repost_page(request.script_name + request.path_info, dict(params, **{_REPOST_FIELD: "1"}))
        view = self._view(environ)
        state = params.get("state", "")
        pending, expired_next = view.pop_flow(state, ttl=self.settings.sign_in_timeout) if state else (None, None)
        if "error" in params:
            self._events(E.SIGN_IN_FAILED, logging.WARNING, "sign-in failed at the provider: %r", params["error"],
                         reason="provider_error", error=params["error"])
            status = 403 if params["error"] in ("access_denied", "consent_required") else 400
            description = params.get("error_description") or params["error"]
            return self._restart_page(request, status, f"The identity provider said: {description}",
                                      next_url=pending["next"] if pending else None)
        if pending is None:
            return self._unknown_state(request, view, state, expired_next)
        if "code" not in params:
            self._events(E.SIGN_IN_FAILED, logging.WARNING, "callback without a code", reason="no_code")
            return self._restart_page(request, 400, "The sign-in response had no code.", next_url=pending["next"])
        try:
            result = self._client.redeem(pending["flow"], params, tuple(pending.get("scopes", ())))
        except InteractionRequired as exc:
            self._events(E.SIGN_IN_FAILED, logging.WARNING, "sign-in failed: the code was not redeemed: %s",
                         exc.reason, reason="code_rejected")
            return self._restart_page(request, 400, "The sign-in could not be completed.", next_url=pending["next"])
        view.sign_in(result.account_id, result.claims, result.cache, result.token,
                     self._fingerprint, state, pending["next"])
        username = User(result.account_id, result.claims).username
        self._events(E.SIGN_IN_COMPLETED, logging.INFO, "sign-in completed for %s", username, user=username)
        return HTTPFound(location=pending["next"])

    def _unknown_state(self, request: Request, view: SessionView, state: str, expired_next: str | None) -> Response:
        """A used-up or expired state: a signed-in user moves on (back button, a slow second tab)."""
        next_url = (view.completed(state) if state else None) or expired_next
        if next_url is not None and view.signed_in(self._fingerprint) is not None:
            log.info("callback for a completed or expired sign-in while signed in; moving on")
            return HTTPFound(location=next_url)
        self._events(E.SIGN_IN_FAILED, logging.WARNING, "callback with an unknown or expired state",
                     reason="unknown_state")
        return self._restart_page(request, 400, "This sign-in link has expired, was already used, or was "
                                                "started in another browser.")

    def _restart_page(self, request: Request, status: int, message: str, *, next_url: str | None = None) -> Response:
        login = request.script_name + self.settings.login_path
        if next_url:
            login += "?" + urlencode({"next": next_url})
        return error_page(status, "Sign-in did not complete", message, link=(login, "Sign in again"))

    # -- sign-out -------------------------------------------------------------

    def _handle_sign_out(self, environ: Environ, start_response: Callable[..., Any]) -> Response:
        request = Request(environ)
        signed_in = self._view(environ).sign_out()
        self._events(E.SIGN_OUT, logging.INFO if signed_in else logging.DEBUG,
                     "signed out" if signed_in else "sign-out without a signed-in user", signed_in=signed_in)
        end_session = None
        try:
            end_session = self._client.end_session_endpoint
        except ProviderUnavailable as exc:
            log.warning("provider sign-out skipped: %s", exc)
        if end_session:
            target = self.settings.post_logout_redirect_uri or _origin(self.settings.redirect_uri) + "/"
            query = urlencode({"post_logout_redirect_uri": target, "client_id": self.settings.client_id})
            return HTTPFound(location=end_session + ("&" if "?" in end_session else "?") + query)
        return HTTPFound(location=self._safe_next(request, _single(request.GET, "next")))

    # -- helpers --------------------------------------------------------------

    def _view(self, environ: Environ) -> SessionView:
        session = environ.get(self.settings.session_key)
        if session is None:
            raise _NoSession()
        if getattr(session, "__dict__", {}).get("_params", {}).get("type") == "cookie":
            raise _NoSession("cookie")
        return SessionView(session)

    def _safe_next(self, request: Request, value: str | None) -> str:
        return safe_next(value, script_name=request.script_name,
                         allowed_origins=self.settings.allowed_redirect_origins)

    def _guarded(self, handler: Callable[..., Any], environ: Environ, start_response: Callable[..., Any],
                 *args: Any) -> Iterable[bytes]:
        """Run a handler; turn failures into clear pages (JSON for API callers), never tracebacks."""
        response = self._answer(handler, environ, start_response, *args)
        if isinstance(response, Response):
            response = response(environ, start_response)
        return cast("Iterable[bytes]", response)

    def _answer(self, handler: Callable[..., Any], environ: Environ, *args: Any) -> Any:
        """``handler(environ, *args)``, or the error page for the failure it raised."""
        try:
            response = handler(environ, *args)
        except _NoSession as exc:
            response = self._no_session_page(str(exc))
        except UnicodeDecodeError:  # WebOb decodes query strings and forms as strict UTF-8
            log.warning("request to %s refused: parameters are not UTF-8", environ.get("PATH_INFO", "")[:200])
            response = error_page(400, "Bad request", "The request's parameters are not valid UTF-8.")
        except SessionUnavailable as exc:
            self._events(E.SESSION_UNAVAILABLE, logging.ERROR, "session store unavailable: %s", exc, error=str(exc))
            response = self._unavailable(environ, "The session store is unavailable.")
        except CredentialRejected as exc:
            self._events(E.PROVIDER_UNAVAILABLE, logging.ERROR,
                         "the identity provider rejected this application's credentials: %s", exc, error=str(exc))
            response = self._misconfigured(environ)
        except ProviderUnavailable as exc:
            self._events(E.PROVIDER_UNAVAILABLE, logging.ERROR, "identity provider unavailable: %s", exc,
                         error=str(exc))
            response = self._unavailable(environ, "The identity provider is unavailable.")
        return response

    def _unavailable(self, environ: Environ, message: str) -> Response:
        if not wants_redirect(environ):
            return json_error(503, "temporarily_unavailable", message, retry_after=_RETRY_AFTER)
        request = Request(environ)
        retry = self._safe_next(request, request.path_qs)
        if request.script_name + request.path_info == self._callback:
            retry = request.script_name + self.settings.login_path  # the code is single use, and secret
        return error_page(503, "Please try again shortly", message + " Nothing was lost; try again in a moment.",
                          retry_after=_RETRY_AFTER, link=(retry, "Try again"))

    def _misconfigured(self, environ: Environ) -> Response:
        """503 without Retry-After: sign-in stays unavailable until the administrator fixes the credential."""
        message = ("This application could not identify itself to the identity provider. "
                   "The administrator will find the details in the log.")
        if not wants_redirect(environ):
            return json_error(503, "server_error", message)
        return error_page(503, "Sign-in is unavailable", message)

    def _no_session_page(self, kind: str) -> Response:
        if not self._warned_no_session:
            self._warned_no_session = True
            if kind == "cookie":
                log.error("the session is cookie-only and cannot hold a token cache; "
                          "configure server-side session storage (session.type = file, ext:redis, ...)")
            else:
                log.error("no session at environ[%r]; wrap the app in session middleware, e.g. "
                          "beaker.middleware.SessionMiddleware(app, {...}), or set session_options",
                          self.settings.session_key)
        return error_page(500, "Server misconfigured", "Sign-in needs server-side sessions, and this "
                          "application has none configured. The administrator will find the fix in the log.")


class _NoSession(Exception):
    pass


class _SaveFailed(Exception):
    """Beaker's start_response raised (its ``__cause__``): not a SessionUnavailable, so that no
    handler answers it through that start_response again, which would retry the save."""


class _Acquirer:
    """``environ['msal_wsgi.acquire_token'](scopes, claims_challenge=None) -> AccessToken``.

    Raises :class:`~msal_wsgi.InteractionRequired` when the user must sign in or consent.
    """

    __slots__ = ("_middleware", "_signed_in", "_view")

    def __init__(self, middleware: MsalMiddleware, view: SessionView, signed_in: SignedIn) -> None:
        self._middleware = middleware
        self._view = view
        self._signed_in = signed_in

    def __call__(self, scopes: Iterable[str] | str, *, claims_challenge: str | None = None) -> AccessToken:
        wanted = tuple(scopes.split()) if isinstance(scopes, str) else tuple(scopes)
        token = self._middleware._token(self._view, self._signed_in, wanted, claims_challenge)
        refreshed = self._view.signed_in(self._middleware._fingerprint)
        if refreshed is not None:
            self._signed_in = refreshed
        return token


def wants_redirect(environ: Mapping[str, Any]) -> bool:
    """Whether the request is a browser navigation (sign-in redirect) rather than an API call (401)."""
    mode = environ.get("HTTP_SEC_FETCH_MODE")
    if mode and mode != "navigate":
        return False
    if environ.get("HTTP_X_REQUESTED_WITH"):
        return False
    accept = environ.get("HTTP_ACCEPT", "")
    return not ("json" in accept and "html" not in accept)


def _single(params: Any, name: str, limit: int = 4096) -> str | None:
    values = params.getall(name)
    if len(values) != 1 or not isinstance(values[0], str) or len(values[0]) > limit:
        return None
    return values[0]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
