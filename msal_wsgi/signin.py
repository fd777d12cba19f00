"""The sign-in flow: start a sign-in, redeem the callback, sign out.

A sign-in is an authorization code flow with PKCE (S256), ``state`` and ``nonce``,
kept in the session as a pending sign-in keyed by its state (bounded, expiring,
single use). Every way a callback can fail is a :class:`SignInFailure`: one row
of :data:`FAILURES` says its status, page text and log level; the callback
raises :class:`SignInFailed` and :meth:`SignInFlow.failure_page` renders it.

A sign-in asks for the scopes the request needs (least privilege): a prefix's
read scopes for safe methods, its write scopes otherwise, or the scopes an
``acquire_token`` call could not get silently. A sign-in of the account already
signed in adds to what the session holds (see :meth:`SessionView.sign_in`). A form
POST that needs a sign-in is kept with it and re-submitted after the callback
(:mod:`msal_wsgi.replay`).
"""

from __future__ import annotations

import hmac
import logging
import time
from enum import Enum
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit

from webob import Request, Response
from webob.exc import HTTPFound, HTTPSeeOther

from ._msal import IdentityClient
from ._session import SIGNED_OUT, Sessions, SessionView, StoredUser
from .errors import InteractionRequired, MsalWsgiError, ProviderUnavailable, ResponseRejected
from .events import (
    INTERACTION_REQUIRED,
    SESSION_ENDED,
    SIGN_IN_COMPLETED,
    SIGN_IN_FAILED,
    SIGN_IN_STARTED,
    SIGN_OUT,
    SIGN_OUT_REFUSED,
    Events,
)
from .redirects import origin_of, safe_next, same_origin
from .replay import FormReplay
from .responses import error_page, form_page, json_error, repost_page, wants_redirect
from .routing import Router
from .settings import Protect, Settings

log = logging.getLogger("msal_wsgi")

#: Parameters of the authorization response we read, and the longest value accepted for each.
CALLBACK_LIMITS = {"code": 8192, "state": 512, "error": 128, "error_description": 2048,
                   "error_uri": 2048, "session_state": 512, "client_info": 4096, "iss": 2048}
#: Marks the same-site re-post of a ``form_post`` callback.
REPOST_FIELD = "msal_wsgi_repost"
#: Largest callback form body read; all the parameters above fit in well under half of it.
MAX_CALLBACK_BODY = 64 * 1024
#: Provider errors that mean the user (or an administrator) said no.
_DENIALS = frozenset({"access_denied", "consent_required"})


class SignInFailure(str, Enum):
    """Why a callback did not sign the user in: the ``reason`` of the ``sign_in.failed`` event."""

    RESPONSE_TOO_LARGE = "response_too_large"
    MALFORMED_RESPONSE = "malformed_response"
    ACCESS_DENIED = "access_denied"
    PROVIDER_ERROR = "provider_error"
    UNKNOWN_STATE = "unknown_state"
    NO_CODE = "no_code"
    MISSING_ISS_PARAMETER = "missing_iss_parameter"
    WRONG_ISS_PARAMETER = "wrong_iss_parameter"
    CODE_REJECTED = "code_rejected"
    NONCE_MISMATCH = "nonce_mismatch"
    INVALID_ID_TOKEN = "invalid_id_token"
    UNSUPPORTED_TOKEN_TYPE = "unsupported_token_type"
    NO_ACCESS_TOKEN = "no_access_token"
    TENANT_NOT_ALLOWED = "tenant_not_allowed"

    def __str__(self) -> str:
        return self.value


class Failure(NamedTuple):
    """How a :class:`SignInFailure` is answered: status, page text (``{description}``: the provider's), log level."""

    status: int
    message: str
    level: int


_UNTRUSTED = "The identity provider's answer could not be verified, so you were not signed in."

FAILURES: dict[SignInFailure, Failure] = {
    SignInFailure.RESPONSE_TOO_LARGE: Failure(413, "The sign-in response was too large.", logging.WARNING),
    SignInFailure.MALFORMED_RESPONSE: Failure(400, "The sign-in response was malformed.", logging.WARNING),
    SignInFailure.ACCESS_DENIED: Failure(403, "The identity provider said: {description}", logging.WARNING),
    SignInFailure.PROVIDER_ERROR: Failure(400, "The identity provider said: {description}", logging.WARNING),
    SignInFailure.UNKNOWN_STATE: Failure(400, "This sign-in link has expired, was already used, or was started in "
                                              "another browser.", logging.WARNING),
    SignInFailure.NO_CODE: Failure(400, "The sign-in response had no code.", logging.WARNING),
    SignInFailure.MISSING_ISS_PARAMETER: Failure(400, _UNTRUSTED, logging.ERROR),
    SignInFailure.WRONG_ISS_PARAMETER: Failure(400, _UNTRUSTED, logging.ERROR),
    SignInFailure.CODE_REJECTED: Failure(400, "The sign-in could not be completed.", logging.WARNING),
    SignInFailure.NONCE_MISMATCH: Failure(400, _UNTRUSTED, logging.ERROR),
    SignInFailure.INVALID_ID_TOKEN: Failure(400, _UNTRUSTED, logging.ERROR),
    SignInFailure.UNSUPPORTED_TOKEN_TYPE: Failure(400, _UNTRUSTED, logging.ERROR),
    SignInFailure.NO_ACCESS_TOKEN: Failure(400, "The identity provider did not grant the access this page needs.",
                                           logging.WARNING),
    SignInFailure.TENANT_NOT_ALLOWED: Failure(403, "Accounts of your organization cannot sign in to this "
                                                   "application.", logging.WARNING),
}


class SignInFailed(MsalWsgiError):
    """A callback failed for ``reason``; ``next_url`` is the page the sign-in was for, if known.

    ``detail`` goes to the log and the hook; ``description`` (the provider's text) to the page.
    """

    def __init__(self, reason: SignInFailure, detail: str, *, next_url: str | None = None,
                 description: str = "", **facts: Any) -> None:
        self.reason = reason
        self.detail = detail
        self.next_url = next_url
        self.description = description
        self.facts = facts
        super().__init__(f"{reason}: {detail}")


class SignInFlow:
    """Sign-in, callback and sign-out handlers; each takes a :class:`~webob.Request` and returns a response.

    :param settings: the validated settings.
    :param client: msal, for starting sign-ins and redeeming codes.
    :param router: which prefix a ``next`` page falls under, for the scopes to ask.
    :param events: where sign-in events are told.
    :param sessions: finds each request's session.
    :param replay: keeps form POSTs across sign-ins.
    """

    def __init__(self, settings: Settings, client: IdentityClient, router: Router, events: Events,
                 sessions: Sessions, replay: FormReplay) -> None:
        self._settings = settings
        self._client = client
        self._router = router
        self._events = events
        self._sessions = sessions
        self._replay = replay
        #: The scopes a link to the sign-in endpoint may ask for (``?scope=``): the configured ones.
        self._known_scopes = frozenset(settings.login_scopes).union(
            *(rule.read + (rule.write or ()) for rule in settings.protect.values()))

    def view(self, request: Request) -> SessionView:
        """msal_wsgi's view of the request's session (:class:`~msal_wsgi._session.NoSession` without one)."""
        return self._sessions.view(request.environ)

    def safe_next(self, request: Request, value: str | None) -> str:
        """``value`` when it is safe to redirect to, else this app's root."""
        return safe_next(value, script_name=request.script_name,
                         allowed_origins=self._settings.allowed_redirect_origins)

    def login_url(self, request: Request, next_url: str | None = None, scopes: tuple[str, ...] = ()) -> str:
        """The sign-in endpoint, with ``next`` when given, and ``scope`` when ``next`` alone would ask for others."""
        url = request.script_name + self._settings.login_path
        query = {"next": next_url} if next_url else {}
        if scopes and set(scopes) != set(self._scopes_for_next(request, next_url or "")):
            query["scope"] = " ".join(scopes)
        return url + "?" + urlencode(query) if query else url

    def _scopes_for_next(self, request: Request, next_url: str) -> tuple[str, ...]:
        """What a sign-in for ``next`` asks by default: the read scopes of its prefix, else ``login_scopes``."""
        app_path = next_url[len(request.script_name):] if next_url.startswith("/") else ""
        match = self._router.match(app_path.split("?", 1)[0]) if app_path else None
        return match[1].read if match and isinstance(match[1], Protect) else self._settings.login_scopes

    def returning_page(self, request: Request) -> str:
        """Where to come back after a sign-in for this request: the same-origin page that made it
        (its ``Referer``: the page of a form or of a script), else this URL."""
        referer = request.referer or ""
        parts = urlsplit(referer)
        if referer and f"{parts.scheme}://{parts.netloc}".lower() == request.host_url.lower() and parts.path:
            return self.safe_next(request, parts.path + (f"?{parts.query}" if parts.query else ""))
        return self.safe_next(request, request.path_qs)  # a raw path can look like //host or /\\host

    # -- starting a sign-in ---------------------------------------------------

    def start(self, request: Request) -> Response:
        """The sign-in endpoint: ``?next=/page`` (and ``login_hint``, ``domain_hint``).

        ``scope`` (space-separated) asks for other configured scopes than ``next``'s prefix reads:
        the ``login_url`` a 401 gives an API caller carries it. Unconfigured scopes are ignored.
        """
        next_url = self.safe_next(request, _single(request.GET, "next"))
        asked = tuple(dict.fromkeys((_single(request.GET, "scope") or "").split()))
        if asked and set(asked) <= self._known_scopes:
            scopes = asked
        else:
            scopes = self._scopes_for_next(request, next_url)
        return self._redirect_to_provider(self.view(request), scopes, next_url,
                                          login_hint=_single(request.GET, "login_hint", 256),
                                          domain_hint=_single(request.GET, "domain_hint", 256))

    def challenge(self, request: Request, scopes: tuple[str, ...], reason: str,
                  claims_challenge: str | None = None) -> Response:
        """Interaction is required: a browser is sent to sign in, an API or XHR caller gets 401.

        A browser's form POST goes along with the sign-in, to be re-submitted after it; one
        that cannot be kept gets a page saying to sign in and do it again.
        """
        here = self.safe_next(request, request.path_qs)  # a raw path can look like //host or /\\host
        redirect = wants_redirect(request.environ)
        self._events(INTERACTION_REQUIRED, reason=reason, path=request.path_info[:200], redirect=redirect)
        if not redirect:
            return json_error(401, "interaction_required", "Sign-in required: " + reason,
                              login_url=self.login_url(request, self.returning_page(request), scopes))
        form = None
        if request.method == "POST":
            # Re-submissions are taken where they are posted: under a protected prefix.
            protected = self._router.match(request.path_info or "/") is not None
            form, why = self._replay.keep(request) if protected else (None, "this page is not protected")
            if form is None:
                return self._replay.lost(why, self.login_url(request, self.returning_page(request), scopes))
        return self._redirect_to_provider(self.view(request), scopes, here, claims_challenge=claims_challenge,
                                          form=form)

    def _redirect_to_provider(self, view: SessionView, scopes: tuple[str, ...], next_url: str, *,
                              claims_challenge: str | None = None, login_hint: str | None = None,
                              domain_hint: str | None = None, form: dict[str, Any] | None = None) -> Response:
        flow = self._client.begin_sign_in(scopes, login_hint=login_hint, domain_hint=domain_hint,
                                          claims_challenge=claims_challenge)
        pending = {"flow": flow, "next": next_url, "scopes": list(scopes), "t": time.time()}
        if form is not None:
            pending["form"] = form
        view.add_flow(flow["state"], pending, limit=self._settings.max_pending_sign_ins,
                      ttl=self._settings.sign_in_timeout)
        self._events(SIGN_IN_STARTED, scopes=scopes, claims_challenge=claims_challenge is not None,
                     next=next_url[:200])
        return HTTPFound(location=flow["auth_uri"])

    # -- the callback -----------------------------------------------------------

    def callback(self, request: Request) -> Response:
        """The redirect URI: check the state, redeem the code, sign the user in, send them on."""
        if request.method not in ("GET", "POST"):
            return error_page(405, "Method not allowed", "The sign-in callback accepts GET and POST.",
                              home=request.script_name + "/")
        params = self._response_parameters(request)
        if request.method == "POST" and params.pop(REPOST_FIELD, None) != "1":
            # A form_post arrives cross-site, without the SameSite=Lax session cookie:
            # send it on again from this site without touching the session.
            return repost_page(request.script_name + request.path_info, dict(params, **{REPOST_FIELD: "1"}))
        params.pop(REPOST_FIELD, None)
        view = self.view(request)
        state = params.get("state", "")
        pending, expired_next = view.pop_flow(state, ttl=self._settings.sign_in_timeout) if state else (None, None)
        next_url = pending["next"] if pending else None
        if "error" in params:
            error = params["error"]
            reason = SignInFailure.ACCESS_DENIED if error in _DENIALS else SignInFailure.PROVIDER_ERROR
            raise SignInFailed(reason, f"the provider answered {error!r}", next_url=next_url,
                               description=params.get("error_description") or error, error=error)
        if pending is None:
            moved_on = self._moved_on(view, state, expired_next)
            if moved_on is not None:
                return moved_on
            raise SignInFailed(SignInFailure.UNKNOWN_STATE, "callback with an unknown or expired state")
        if "code" not in params:
            raise SignInFailed(SignInFailure.NO_CODE, "callback without a code", next_url=next_url)
        try:
            redemption = self._client.redeem(pending["flow"], params, tuple(pending.get("scopes", ())))
        except InteractionRequired as exc:
            raise SignInFailed(SignInFailure.CODE_REJECTED, f"the code was not redeemed: {exc.reason}",
                               next_url=next_url) from None
        except ResponseRejected as exc:
            raise SignInFailed(SignInFailure(exc.rule), exc.detail, next_url=next_url) from None
        same_account = view.sign_in(redemption, state, pending["next"])
        self._events(SIGN_IN_COMPLETED, user=redemption.user.username, same_account=same_account,
                     scopes=tuple(pending.get("scopes", ())))
        form = pending.get("form")
        if isinstance(form, dict):
            return self._replay.issue(view, form)
        return HTTPFound(location=pending["next"])

    def _response_parameters(self, request: Request) -> dict[str, str]:
        """The authorization response's parameters: each at most once and within its length limit.

        A ``form_post`` response is an ``application/x-www-form-urlencoded`` body (OAuth 2.0 Form
        Post Response Mode §2); it is read here, at most :data:`MAX_CALLBACK_BODY` bytes whether or
        not it announces its length (chunked), and decoded as strict UTF-8: anything else is refused.
        """
        if request.method == "POST":
            if request.content_type != "application/x-www-form-urlencoded":
                raise SignInFailed(SignInFailure.MALFORMED_RESPONSE, "the callback body is not a form "
                                   f"({request.content_type[:100]!r})")
            if (request.content_length or 0) > MAX_CALLBACK_BODY:
                raise SignInFailed(SignInFailure.RESPONSE_TOO_LARGE, "callback body over the limit")
            body = request.body_file.read(MAX_CALLBACK_BODY + 1)
            if len(body) > MAX_CALLBACK_BODY:
                raise SignInFailed(SignInFailure.RESPONSE_TOO_LARGE, "callback body over the limit")
            encoded = body.decode("ascii")  # UnicodeDecodeError: a 400 (raw bytes in a form body)
        else:
            encoded = request.environ.get("QUERY_STRING", "")
        pairs = parse_qsl(encoded, keep_blank_values=True, encoding="utf-8", errors="strict")
        params: dict[str, str] = {}
        for name, value in pairs:
            if name not in CALLBACK_LIMITS and name != REPOST_FIELD:
                continue
            if name in params or len(value) > CALLBACK_LIMITS.get(name, 1):
                raise SignInFailed(SignInFailure.MALFORMED_RESPONSE, f"repeated or oversized {name!r}")
            params[name] = value
        return params

    def _moved_on(self, view: SessionView, state: str, expired_next: str | None) -> Response | None:
        """A used-up or expired state while signed in (back button, a slow second tab): go on to its page."""
        next_url = (view.completed(state) if state else None) or expired_next
        if next_url is not None and view.user() is not None:
            log.info("callback for a completed or expired sign-in while signed in; moving on")
            return HTTPFound(location=next_url)
        return None

    def failure_page(self, request: Request, failed: SignInFailed) -> Response:
        """The page for a failed callback, with a link that signs in again (back to its page when known)."""
        failure = FAILURES[failed.reason]
        self._events(SIGN_IN_FAILED, level=failure.level, reason=failed.reason, detail=failed.detail, **failed.facts)
        return error_page(failure.status, "Sign-in did not complete",
                          failure.message.format(description=failed.description),
                          link=(self.login_url(request, failed.next_url), "Sign in again"),
                          home=request.script_name + "/")

    # -- sign-out -----------------------------------------------------------------

    def sign_out(self, request: Request) -> Response:
        """The sign-out endpoint: a GET shows a page with the sign-out button and signs no one out;
        a POST from this app's pages (RP-Initiated Logout 1.0 §2, CSRF-checked) ends the session and
        sends the user to the provider's ``end_session_endpoint`` (or to ``next``)."""
        if request.method in ("GET", "HEAD"):
            return self._sign_out_page(request, 200)
        if request.method != "POST":
            answer = error_page(405, "Method not allowed", "Sign out with the button of the sign-out page.")
            answer.headers["Allow"] = "GET, HEAD, POST"
            return answer
        view = self.view(request)
        fields = _small_form(request)
        why = self._not_from_this_app(request, fields, view.user())
        if why is not None:
            self._events(SIGN_OUT_REFUSED, why=why)
            return self._sign_out_page(request, 403, refused=True)
        current = view.user()
        ended = view.end()
        self._events(SIGN_OUT, signed_in=ended.signed_in)
        if current is not None:
            self._events(SESSION_ENDED, reason=SIGNED_OUT, user=current.user.username)
        next_url = fields.get("next") or _single(request.GET, "next")
        end_session = None
        try:
            end_session = self._client.end_session_endpoint
        except ProviderUnavailable as exc:
            log.warning("provider sign-out skipped: %s", exc)
        if end_session:
            target = self._settings.post_logout_redirect_uri or origin_of(self._settings.redirect_uri) + "/"
            query = {"post_logout_redirect_uri": target, "client_id": self._settings.client_id}
            if ended.id_token:
                query["id_token_hint"] = ended.id_token  # RP-Initiated Logout §2: RECOMMENDED
            if ended.login_hint:
                query["logout_hint"] = ended.login_hint  # Entra's login_hint optional claim
            return HTTPSeeOther(location=end_session + ("&" if "?" in end_session else "?") + urlencode(query))
        return HTTPSeeOther(location=self.safe_next(request, next_url))

    def _not_from_this_app(self, request: Request, fields: dict[str, str], signed_in: StoredUser | None) -> str | None:
        """``None`` when the sign-out POST came from this app's pages, else why not: the session's token
        in the form, or else ``Sec-Fetch-Site: same-origin``, or without Fetch Metadata an ``Origin`` of this app."""
        token = fields.get("csrf")
        if token and signed_in is not None and signed_in.csrf and hmac.compare_digest(token, signed_in.csrf):
            return None
        site = request.environ.get("HTTP_SEC_FETCH_SITE")
        if site is not None:
            return None if site == "same-origin" else f"Sec-Fetch-Site is {site[:40]!r}, not same-origin"
        origin = request.environ.get("HTTP_ORIGIN")
        if origin is not None:
            same = same_origin(origin, self._settings.redirect_uri, request.host_url)
            return None if same else "its Origin is another site"
        return "neither Fetch Metadata, an Origin nor the sign-out form's token came with it"

    def _sign_out_page(self, request: Request, status: int, *, refused: bool = False) -> Response:
        signed_in = self.view(request).user()
        fields = {"csrf": signed_in.csrf} if signed_in is not None and signed_in.csrf else {}
        next_url = _single(request.GET, "next")
        if next_url:
            fields["next"] = self.safe_next(request, next_url)
        message = ("Your sign-out did not come from this application's pages, so you are still signed in. "
                   if refused else "") + ("Sign out of this application, and of your identity provider?"
                                          if signed_in is not None or refused else
                                          "You are not signed in here. Sign out of your identity provider too?")
        return form_page(status, "Sign out", message, request.script_name + request.path_info, fields, "Sign out",
                         home=request.script_name + "/")

def _small_form(request: Request, limit: int = 4096) -> dict[str, str]:
    """The fields of a small urlencoded POST body, each taken once; anything else: none."""
    if (request.content_type or "").lower() != "application/x-www-form-urlencoded" \
            or not 0 < (request.content_length or 0) <= limit:
        return {}
    try:
        pairs = parse_qsl(request.body_file.read(limit).decode("ascii"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return {}
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            return {}
        fields[name] = value
    return fields


def _single(params: Any, name: str, limit: int = 4096) -> str | None:
    values = params.getall(name)
    if len(values) != 1 or not isinstance(values[0], str) or len(values[0]) > limit:
        return None
    return values[0]
