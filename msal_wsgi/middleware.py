"""The WSGI middleware: its ``__call__`` is the routing table, each branch one handler."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Iterable
from functools import partial
from typing import Any, Callable

from webob import Request, Response

from . import authz
from ._beaker import INSTALLED, InstalledSessions
from ._environ import ACQUIRE_TOKEN, CALLER, CURRENT_USER, MIDDLEWARE, ROUTE, TOKEN, USER
from ._input import UnreadableBody, guard_input
from ._msal import IdentityClient
from ._session import ACCOUNT_REFUSED, Lifetimes, NoSession, Sessions, SessionView, StoredUser
from ._wsgi import StartResponse, WSGIApplication, WSGIEnvironment
from .bearer import BearerGuard
from .crypto import codec_for
from .errors import (
    CredentialRejected,
    InteractionRequired,
    ProviderMisconfigured,
    ProviderUnavailable,
    SessionUnavailable,
)
from .events import (
    AUTHZ_DENIED,
    CREDENTIAL_REJECTED,
    PROVIDER_MISCONFIGURED,
    PROVIDER_UNAVAILABLE,
    SESSION_ENDED,
    SESSION_UNAVAILABLE,
    SESSION_UNREADABLE,
    Events,
)
from .identity import User
from .logout import LogoutChannels
from .redirects import origin_of
from .replay import FormReplay
from .responses import error_page, forbidden, json_error, wants_redirect
from .routing import Router
from .settings import Protect, ProtectApi, Settings
from .signin import SignInFailed, SignInFlow
from .tokens import Acquirer, OnBehalfAcquirer, OnBehalfOf, TokenSource

log = logging.getLogger("msal_wsgi")

#: Seconds an API caller or browser is told to wait after a passing outage.
RETRY_AFTER = 30
#: A handler takes the request (and what routing found) and answers with a WSGI app: a Response,
#: or the wrapped app itself.
Handler = Callable[..., WSGIApplication]
#: The failures answered with a page or JSON (see ``_failure``).
_HANDLED = (SignInFailed, InteractionRequired, NoSession, UnicodeDecodeError, UnreadableBody, SessionUnavailable,
            ProviderUnavailable)
#: Those the wrapped app may raise through msal_wsgi's environ (acquire_token, current_user): its own errors are its own.
_OURS_FROM_THE_APP = (InteractionRequired, NoSession, UnreadableBody, SessionUnavailable, ProviderUnavailable)


class MsalMiddleware:
    """Sign users in with Microsoft Entra ID or any OpenID Connect provider, and hand
    the wrapped app an access token for the paths it protects.

    ::

        app = MsalMiddleware(app, client_id="...", client_secret="...",
                             oidc_authority="https://id.example/realm",
                             redirect_uri="https://app.example/auth/callback",
                             protect={"/todos": Protect(read=[READ], write=[READWRITE])})
        app = SessionMiddleware(app, {"session.type": "file", ...})

    :param app: the WSGI application to protect.
    :param settings: a ready :class:`Settings`; keyword options are applied on top of it.
    :param options: any :class:`Settings` field (see the configuration reference).

    The wrapped app finds ``msal_wsgi.token``, ``msal_wsgi.user``,
    ``msal_wsgi.acquire_token`` and ``REMOTE_USER`` in the environ of protected requests,
    and ``msal_wsgi.current_user`` on every web path; under a :class:`ProtectApi` prefix,
    ``msal_wsgi.caller`` (and for a user's token ``msal_wsgi.user``, ``REMOTE_USER`` and, with a
    credential, ``msal_wsgi.acquire_token`` on behalf of the caller).
    """

    def __init__(self, app: WSGIApplication, settings: Settings | None = None, **options: Any) -> None:
        if settings is None:
            settings = Settings(**options)
        elif options:
            settings = settings.with_changes(**options)
        self.app = app
        self.settings = settings
        self._events = Events(settings.on_event)
        self._client = IdentityClient(settings)
        self._router = Router(settings.protect)
        # Users signed in under another client, authority or tenant list read as signed out.
        fingerprint = hashlib.sha256(f"{settings.client_id}|{settings.authority or settings.oidc_authority}|"
                                     f"{' '.join(settings.allowed_tenants)}".encode()).hexdigest()[:16]
        self._lifetimes = Lifetimes(settings.idle_timeout, settings.max_session_lifetime,
                                    settings.session_activity_interval, settings.account_recheck_interval,
                                    settings.sign_in_timeout)
        codec = codec_for(settings.session_keys,
                          lambda reason, field: self._events(SESSION_UNREADABLE, reason=reason, field=field))
        self._sessions = Sessions(settings.session_key, fingerprint, codec, self._lifetimes)
        self._logout = LogoutChannels(settings, self._client, self._sessions, self._events)
        # Sweeps run where users sign in, and only when sessions end by themselves (a lifetime is set).
        sweeps = bool(settings.redirect_uri) and self._lifetimes.unused_for is not None
        self._next_sweep = time.monotonic() + settings.session_activity_interval if sweeps else float("inf")
        self._sweeping = threading.Lock()
        if settings.unencrypted_deployment:
            log.warning("sessions are stored unencrypted, refresh tokens included: set session_keys "
                        "(MSAL_SESSION_KEYS; make a key with 'python -m msal_wsgi make-key')")
        self._replay = FormReplay(settings.max_replay_body, origin_of(settings.redirect_uri), settings.session_lock,
                                  self._events)
        self._sign_in = SignInFlow(settings, self._client, self._router, self._events, self._sessions,
                                   self._replay)
        self._tokens = TokenSource(self._client, settings.session_lock, self._events)
        self._bearer = BearerGuard(settings, self._client, self._events)
        self._on_behalf = OnBehalfOf(self._client, self._events) if self._client.can_act_on_behalf else None
        # Without a redirect_uri (an API-only app) no one signs in here: no sign-in endpoints.
        self._callback_path = settings.callback_path
        self._login_path = settings.login_path if settings.redirect_uri else None
        self._logout_path = settings.logout_path if settings.redirect_uri else None
        self._backchannel_path = settings.backchannel_logout_path if settings.redirect_uri else None
        self._frontchannel_path = settings.frontchannel_logout_path if settings.redirect_uri else None
        self._remote_user_claim = settings.remote_user_claim
        self._beaker = None if settings.session_options is None else InstalledSessions(
            self, settings.session_options, self._session_not_saved)
        self._warned_no_session = False

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self._beaker is not None and INSTALLED not in environ:
            return self._beaker(environ, start_response)  # Beaker, which calls back here
        guard_input(environ)  # a body the server cannot read is a 400, not a closed connection
        path = environ.get("PATH_INFO") or "/"  # as the server decoded it; WebOb's would raise on non-UTF-8
        args: tuple[Any, ...] = ()
        if environ.get("SCRIPT_NAME", "") + path == self._callback_path:
            handler: Handler = self._sign_in.callback
        elif path == self._login_path:
            handler = self._sign_in.start
        elif path == self._logout_path:
            handler = self._sign_in.sign_out
        elif path == self._backchannel_path:
            handler = self._logout.backchannel
        elif path == self._frontchannel_path:
            handler = self._logout.frontchannel
        else:
            match = self._router.match(path)
            if match is None:  # public: passed through, the session untouched unless the app asks
                environ[CURRENT_USER] = partial(self._current_user, environ)
                return self._run(self.app, environ, start_response)
            rule = match[1]
            handler, args = (self._api if isinstance(rule, ProtectApi) else self._protected), (rule,)
        request = Request(environ)
        if not args:  # sign-in, sign-out, the logout channels: a sweep may be due (not on the hot path)
            self._maybe_sweep(environ)
        return self._run(self._answer(handler, request, *args), environ, start_response)

    def _api(self, request: Request, rule: ProtectApi) -> WSGIApplication:
        """An API prefix: the app with the caller in the environ, or an RFC 6750 answer (JSON, never a
        redirect); the session is never touched."""
        environ = request.environ
        environ[ROUTE] = rule  # failures from here on are answered as an API answers them
        answer = self._bearer.check(request, rule)
        if isinstance(answer, Response):
            return answer
        token, caller = answer
        if rule.require:
            denied = self._denied(request, rule.require, caller.claims, caller.id)
            if denied is not None:
                return denied
        environ[CALLER] = caller
        environ[MIDDLEWARE] = self
        user = caller.user
        if user is not None:
            environ[USER] = user
            environ["REMOTE_USER"] = user.remote_user(self._remote_user_claim)
            if self._on_behalf is not None:
                environ[ACQUIRE_TOKEN] = OnBehalfAcquirer(self._on_behalf, token, caller.id)
        return self.app

    def _protected(self, request: Request, rule: Protect) -> WSGIApplication:
        """A protected path: the app with the user and a token in the environ, or a sign-in challenge."""
        scopes = rule.scopes_for(request.method)
        view = self._sessions.view(request.environ)
        if request.method == "POST" and self._replay.is_replay(request):
            answer = self._replay.take(request, view)
            if answer is not None:
                return answer  # a used or unknown replay token: the app never sees it
        user = view.user()
        if user is None:
            return self._sign_in.challenge(request, scopes, "not signed in")
        now = time.time()
        ended, seen_due = self._lifetimes.check(user.record, now)
        if ended is not None:  # a browser signs in again and comes back here; an API caller gets 401
            self._end(view, user, ended)
            return self._sign_in.challenge(request, scopes, f"the sign-in ended ({ended})")
        if rule.require:
            denied = self._denied(request, rule.require, user.user.claims, user.user.id)
            if denied is not None:
                return denied
        token = None
        try:
            if scopes:
                token = self._tokens.get(view, user, scopes)
            elif self._lifetimes.recheck_due(user.record, now):
                self._tokens.recheck(view, user)  # is the account still allowed at the provider?
        except InteractionRequired as exc:
            if not scopes:
                self._end(view, user, ACCOUNT_REFUSED)
            return self._sign_in.challenge(request, scopes, exc.reason, exc.claims_challenge)
        if seen_due:
            current = view.user()  # as this request last saved it (a refresh notes the activity itself)
            if current is not None and self._lifetimes.activity_due(current.record, now):
                view.touch(current, now)
                self._maybe_sweep(request.environ)
        environ = request.environ
        environ[USER] = user.user
        environ[TOKEN] = token
        environ[ROUTE] = rule
        environ[MIDDLEWARE] = self
        environ[ACQUIRE_TOKEN] = Acquirer(self._tokens, view, user)
        environ[CURRENT_USER] = partial(self._current_user, environ)
        environ["REMOTE_USER"] = user.user.remote_user(self._remote_user_claim)
        return self.app

    def _end(self, view: SessionView, user: StoredUser, reason: str) -> None:
        """End the sign-in of ``view`` for ``reason``: its session leaves the store."""
        view.end()
        self._events(SESSION_ENDED, reason=reason, user=user.user.username)

    def sweep_sessions(self, environ: WSGIEnvironment | None = None) -> int:
        """Delete the sessions of the store that ended without anyone coming back (idle, or past their
        lifetime); returns how many. msal_wsgi runs it by itself, in a thread, at most once per
        ``session_activity_interval`` per process; call it from a scheduled job if you like.

        The store is the one behind the sessions of ``environ``, or of the requests seen so far.
        """
        store = self._sessions.store(environ or {})
        unused_for = self._lifetimes.unused_for
        if store is None or not store.sweeps or unused_for is None:
            return 0
        swept = store.sweep(time.time(), unused_for)
        if swept:
            log.info("%d ended sessions removed from the session store", swept)
        return swept

    def _maybe_sweep(self, environ: WSGIEnvironment) -> None:
        """Start a sweep in a thread of its own when one is due: no request waits for it."""
        now = time.monotonic()
        if now < self._next_sweep or not self._sweeping.acquire(blocking=False):
            return
        self._next_sweep = now + self.settings.session_activity_interval
        try:
            self._sessions.store(environ)  # learnt here, in the request, before the thread needs it
        except (SessionUnavailable, NoSession):
            self._sweeping.release()
            return

        def sweep() -> None:
            try:
                self.sweep_sessions()
            except SessionUnavailable as exc:
                log.warning("sweeping ended sessions failed: %s", exc)
            finally:
                self._sweeping.release()

        threading.Thread(target=sweep, name="msal_wsgi-sweep", daemon=True).start()

    def start_sign_in(self, environ: WSGIEnvironment, *, claims_challenge: str | None = None,
                      scopes: tuple[str, ...] | None = None) -> Response:
        """A response that signs the user in again and brings them back to this request's page.

        Use it when an API answers 401 with a claims challenge (conditional access):
        ``return middleware.start_sign_in(environ, claims_challenge=challenge)``. A browser is
        sent to sign in; an API or XHR caller gets the same 401 JSON as any protected request.
        """
        request = Request(environ)
        rule = environ.get(ROUTE)
        reason = "the API asked for more claims" if claims_challenge else "the application asked for a new sign-in"
        if isinstance(rule, ProtectApi):  # the caller signs in at its client, not here
            return self._bearer.interaction_required(
                request, InteractionRequired(reason, claims_challenge=claims_challenge))
        wanted = tuple(scopes) if scopes is not None else (
            rule.scopes_for(request.method) if rule else self.settings.login_scopes)
        try:
            return self._sign_in.challenge(request, wanted, reason, claims_challenge)
        except _HANDLED as exc:
            return self._failure(request, exc)

    # -- failures ------------------------------------------------------------------

    def _answer(self, handler: Handler, request: Request, *args: Any) -> WSGIApplication:
        """``handler(request, *args)``, or the answer to the failure it raised: never a traceback."""
        try:
            return handler(request, *args)
        except _HANDLED as exc:
            return self._failure(request, exc)

    def _current_user(self, environ: WSGIEnvironment) -> User | None:
        stored = self._sessions.view(environ).user()
        if stored is None or self._lifetimes.ended(stored.record, time.time()) is not None:
            return None  # ended: the next protected request ends the session and signs in again
        return stored.user

    def _run(self, answer: WSGIApplication, environ: WSGIEnvironment, start_response: StartResponse
             ) -> Iterable[bytes]:
        """Call ``answer`` (a Response, or the wrapped app); a failure of ours it raises before it
        starts the response (``acquire_token`` in the app, say) is answered like a handler's."""
        started = False

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            nonlocal started
            started = True
            if answer is self.app and exc_info is None:
                return self._start_with_current_keys(environ, start_response, status, headers)
            return start_response(status, headers, exc_info)

        try:
            return answer(environ, start)
        except _OURS_FROM_THE_APP as exc:
            if started:
                raise
            return self._failure(Request(environ), exc)(environ, start_response)

    def _start_with_current_keys(self, environ: WSGIEnvironment, start_response: StartResponse, status: str,
                                 headers: list[tuple[str, str]]) -> Any:
        """The app's ``start_response``. When Beaker will write the session back as this request holds it (the
        app saved it, or ``save_accessed_time``), it does so when the response starts (in ``start_response``,
        outside this middleware): msal_wsgi's keys are first taken afresh from the store, and the write happens
        under the session's lock, so that it cannot bring back a refresh token another request rotated
        meanwhile, a kept form's used token, or a sign-in ended elsewhere. If the store or the lock fails
        here, Beaker's own write decides."""
        try:
            view = self._sessions.written_back(environ)
        except (SessionUnavailable, NoSession):
            view = None  # Beaker's own write meets the same store
        if view is None:
            return start_response(status, headers)
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(self.settings.session_lock(view.lock_key))
                view.take_current_keys()
            except SessionUnavailable as exc:
                log.warning("msal_wsgi's session keys could not be taken afresh before Beaker's write-back: %s", exc)
            return start_response(status, headers)

    def _failure(self, request: Request, exc: Exception) -> Response:
        """The answer to one of the failures in ``_HANDLED``; others are not ours to answer.

        Answering may need the request's path or query decoded (a sign-in's ``next``, a 503's retry link):
        when they are not UTF-8, the answer is the 400 of a request that is not UTF-8.
        """
        try:
            return self._answer_failure(request, exc)
        except UnicodeDecodeError as undecodable:
            return self._answer_failure(request, undecodable)

    def _answer_failure(self, request: Request, exc: Exception) -> Response:
        if isinstance(exc, SignInFailed):
            return self._sign_in.failure_page(request, exc)
        if isinstance(exc, InteractionRequired):  # raised by the app: acquire_token needs the user
            rule = request.environ.get(ROUTE)
            if isinstance(rule, ProtectApi):
                return self._bearer.interaction_required(request, exc)
            scopes = exc.scopes if exc.scopes is not None else (
                rule.scopes_for(request.method) if isinstance(rule, Protect) else self.settings.login_scopes)
            return self._sign_in.challenge(request, scopes, exc.reason, exc.claims_challenge)
        if isinstance(exc, NoSession):
            return self._no_session_page(exc)
        if isinstance(exc, UnreadableBody):
            log.warning("request to %r refused: %s", request.environ.get("PATH_INFO", "")[:200], exc)
            if isinstance(request.environ.get(ROUTE), ProtectApi):
                return json_error(400, "invalid_request", "The request's body could not be read.")
            return error_page(400, "Bad request", "The request's body could not be read.",
                              home=request.script_name + "/")
        if isinstance(exc, UnicodeDecodeError):  # WebOb decodes query strings and forms as strict UTF-8
            log.warning("request to %r refused: its path or parameters are not UTF-8",
                        request.environ.get("PATH_INFO", "")[:200])  # raw: WebOb's path_info would raise again
            if isinstance(request.environ.get(ROUTE), ProtectApi):
                return json_error(400, "invalid_request", "The request's path or parameters are not valid UTF-8.")
            return error_page(400, "Bad request", "The request's path or parameters are not valid UTF-8.",
                              home=request.script_name + "/")
        if isinstance(exc, SessionUnavailable):
            self._events(SESSION_UNAVAILABLE, error=str(exc))
            return self._unavailable(request, "The session store is unavailable.")
        if isinstance(exc, CredentialRejected):
            self._events(CREDENTIAL_REJECTED, error=str(exc))
            return self._misconfigured(request)
        if isinstance(exc, ProviderMisconfigured):
            self._events(PROVIDER_MISCONFIGURED, error=str(exc))
            return self._misconfigured(request)
        if isinstance(exc, ProviderUnavailable):
            self._events(PROVIDER_UNAVAILABLE, error=str(exc))
            return self._unavailable(request, "The identity provider is unavailable.")
        raise exc

    def _session_not_saved(self, request: Request, error: Exception) -> Response:
        self._events(SESSION_UNAVAILABLE, error=f"the session could not be saved: {type(error).__name__}: {error}")
        return self._unavailable(request, "The session store is unavailable.")

    def _page_wanted(self, request: Request) -> bool:
        """Whether to answer with a page: a browser navigation, and not under an API prefix."""
        return wants_redirect(request.environ) and not isinstance(request.environ.get(ROUTE), ProtectApi)

    def _denied(self, request: Request, rules: tuple[authz.Require, ...], claims: Any, who: str) -> Response | None:
        """403 when ``claims`` fail one of the prefix's authorization ``rules``, told as ``authz.denied``."""
        denial = authz.denial(rules, claims)
        if denial is None:
            return None
        self._events(AUTHZ_DENIED, path=request.path_info[:200], caller=who, requirement=denial.requirement,
                     needed=denial.needed)
        return forbidden(denial.message, denial.requirement, denial.needed, page=self._page_wanted(request))

    def _unavailable(self, request: Request, message: str) -> Response:
        """503 with Retry-After: a passing outage; nothing was lost."""
        if not self._page_wanted(request):
            return json_error(503, "temporarily_unavailable", message, retry_after=RETRY_AFTER)
        retry = self._sign_in.safe_next(request, request.path_qs)
        if request.script_name + request.path_info == self._callback_path:
            retry = self._sign_in.login_url(request)  # the code is single use, and secret
        return error_page(503, "Please try again shortly", message + " Nothing was lost; try again in a moment.",
                          retry_after=RETRY_AFTER, link=(retry, "Try again"), home=request.script_name + "/")

    def _misconfigured(self, request: Request) -> Response:
        """503 without Retry-After: sign-in stays unavailable until the administrator fixes the credential."""
        message = ("This application and its identity provider are not set up to work together. "
                   "The administrator will find the details in the log.")
        if not self._page_wanted(request):
            return json_error(503, "server_error", message)
        return error_page(503, "Sign-in is unavailable", message, home=request.script_name + "/")

    def _no_session_page(self, missing: NoSession) -> Response:
        if not self._warned_no_session:
            self._warned_no_session = True
            if missing.cookie_only:
                log.error("the session is cookie-only and cannot hold a token cache; "
                          "configure server-side session storage (session.type = file, ext:redis, ...)")
            else:
                log.error("no session at environ[%r]; wrap the app in session middleware, e.g. "
                          "beaker.middleware.SessionMiddleware(app, {...}), or set session_options",
                          self.settings.session_key)
        return error_page(500, "Server misconfigured", "Sign-in needs server-side sessions, and this "
                          "application has none configured. The administrator will find the fix in the log.")
