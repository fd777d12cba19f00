"""Keep a form POST across a sign-in and re-submit it exactly once.

A browser form posted to a protected path that needs a sign-in, or more consent,
would lose what the user typed: the provider sends the browser back with a GET.
Instead (mod_auth_openidc's ``OIDCPreservePost``, with the body kept on the server,
never in the browser's storage):

1. :meth:`FormReplay.keep` takes the body (``application/x-www-form-urlencoded``, or
   ``multipart/form-data`` without files, at most ``max_replay_body`` bytes), its
   content type and its URL, to be kept with the pending sign-in in the session:
   bound to that sign-in's ``state``, bounded and expiring with it. Only a same-origin
   post is kept (``Sec-Fetch-Site``, else ``Origin``): a cross-site POST must not
   become an action done as the victim once they sign in. Anything else gets a page
   (:meth:`FormReplay.lost`) saying to sign in and do it again.
2. After the callback, :meth:`FormReplay.issue` moves the body to the session under a
   single-use replay token and answers a same-site page that POSTs only that token to
   the original URL by itself (a script allowed by a CSP nonce; a button without
   scripts).
3. :meth:`FormReplay.take` answers that POST: under the session lock, the body is
   taken out of the session and the session is written before the app runs; the
   original body, content type and length are put back in the environ. The token is
   then *used*: a second POST of it (reload, back button, a replayed callback) gets a
   303 to the URL's page, never the app; an unknown or expired token gets a page
   saying to do it again.
"""

from __future__ import annotations

import base64
import hashlib
import io
import secrets
import time
from typing import Any

from webob import Request, Response
from webob.exc import HTTPSeeOther

from ._session import SessionView
from .events import FORM_KEPT, FORM_NOT_KEPT, FORM_REPLAY_REFUSED, FORM_REPLAYED, Events
from .locks import SessionLock
from .redirects import same_origin
from .responses import error_page, repost_page

#: The one field of a re-submission: the replay token.
REPLAY_FIELD = "msal_wsgi_replay"
#: Seconds a kept body waits for its re-submission after the callback (a click, without scripts).
REPLAY_TTL = 300
#: Re-submissions remembered per session (used ones too, so a reload moves on); the oldest is dropped.
MAX_REPLAYS = 5
_FORM = "application/x-www-form-urlencoded"
_MULTIPART = "multipart/form-data"
#: ``msal_wsgi_replay=`` and a token of 43 characters, with room to spare.
_MAX_REPLAY_POST = 128
_PREFIX = (REPLAY_FIELD + "=").encode()


def _digest(token: str) -> str:
    """The session keeps the token's hash: a copy of the session store alone cannot re-submit."""
    return hashlib.sha256(token.encode()).hexdigest()


class FormReplay:
    """Keeps form bodies across sign-ins and re-submits each once.

    :param max_body: largest body kept, in bytes (0: none is kept).
    :param app_origin: this app's public origin (of ``redirect_uri``), for the same-origin check.
    :param lock: the per-session lock; a re-submission is taken out of the session under it.
    :param events: where ``form.*`` events are told.
    """

    def __init__(self, max_body: int, app_origin: str, lock: SessionLock, events: Events) -> None:
        self._max_body = max_body
        self._app_origin = app_origin
        self._lock = lock
        self._events = events

    # -- 1. before the sign-in ---------------------------------------------------

    def keep(self, request: Request) -> tuple[dict[str, Any] | None, str]:
        """``(what to keep of this POST with its pending sign-in, "")``, or ``(None, why it cannot be kept)``."""
        kept, why = self._keepable(request)
        path = request.path_info[:200]
        if kept is None:
            self._events(FORM_NOT_KEPT, path=path, why=why)
        else:
            self._events(FORM_KEPT, path=path, size=request.content_length)
        return kept, why

    def _keepable(self, request: Request) -> tuple[dict[str, Any] | None, str]:
        if not self._max_body:
            return None, "this application keeps no forms across sign-ins"
        if not self._same_origin(request):
            return None, "it came from another site"
        media = (request.content_type or "").lower()
        if media not in (_FORM, _MULTIPART):
            return None, "it is not a form"
        length = request.content_length
        if length is None or length > self._max_body:
            return None, f"it is larger than {self._max_body // 1024} KB"
        body = request.body
        if media == _MULTIPART:
            request.request_body_tempfile_limit = self._max_body  # type: ignore[misc]  # parse in memory
            try:
                values = list(request.POST.values())
            except (ValueError, LookupError, DeprecationWarning):  # a bad boundary, a charset WebOb refuses
                return None, "it is not a form that can be read"
            if any(getattr(value, "filename", None) for value in values):
                return None, "it holds a file"
        return {"body": base64.b64encode(body).decode("ascii"), "type": request.headers["Content-Type"],
                "url": request.path_qs}, ""

    def _same_origin(self, request: Request) -> bool:
        site = request.environ.get("HTTP_SEC_FETCH_SITE")
        if site is not None:
            return bool(site == "same-origin")
        origin = request.environ.get("HTTP_ORIGIN")
        return origin is not None and same_origin(origin, self._app_origin, request.host_url)

    @staticmethod
    def lost(why: str, sign_in_url: str) -> Response:
        """The page for a form that needs a sign-in and cannot be kept across it (``why``)."""
        response = error_page(401, "Sign in, then do this again",
                              "This needs you to sign in (or to allow this application more access), and what "
                              f"you sent cannot be kept across the sign-in: {why}. Sign in, then do it again.",
                              link=(sign_in_url, "Sign in"))
        response.headers["WWW-Authenticate"] = 'Session realm="msal_wsgi", error="interaction_required"'
        return response

    # -- 2. after the callback ----------------------------------------------------

    def issue(self, view: SessionView, kept: dict[str, Any]) -> Response:
        """Keep ``kept`` under a new single-use token; the page that re-submits it by itself."""
        token = secrets.token_urlsafe(32)
        view.add_replay(_digest(token), dict(kept, t=time.time()), limit=MAX_REPLAYS, ttl=REPLAY_TTL)
        return repost_page(kept["url"], {REPLAY_FIELD: token}, title="Sending your form",
                           button="Send what you entered before signing in")

    # -- 3. the re-submission -------------------------------------------------------

    @staticmethod
    def is_replay(request: Request) -> bool:
        """Whether this POST is a re-submission; only a small form POST has its body read for it."""
        length = request.content_length
        if not length or length > _MAX_REPLAY_POST or (request.content_type or "").lower() != _FORM:
            return False
        return request.body.startswith(_PREFIX)

    def take(self, request: Request, view: SessionView) -> Response | None:
        """Put the kept body back into the request (``None``: go on to the app), or answer."""
        values = request.POST.getall(REPLAY_FIELD)
        token = values[0] if len(values) == 1 and isinstance(values[0], str) else ""
        with self._lock(view.lock_key):
            view.reload()
            entry = view.take_replay(_digest(token), ttl=REPLAY_TTL) if token else None
        here = request.path_qs
        path = request.path_info[:200]
        if entry is None or entry["url"] != here:
            self._events(FORM_REPLAY_REFUSED, path=path, reason="unknown")
            return error_page(400, "Please do this again", "What you entered before signing in has expired or "
                              "was meant for another page, so it was not sent. Please do it again.",
                              link=(here, "Go back"), home=request.script_name + "/")
        if "body" not in entry:  # used: a reload, the back button, a replayed callback
            self._events(FORM_REPLAY_REFUSED, path=path, reason="used")
            return HTTPSeeOther(location=here)
        body = base64.b64decode(entry["body"])
        environ = request.environ
        for key in ("webob._parsed_post_vars", "webob._body_file"):  # WebOb's parse of the token's body
            environ.pop(key, None)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["webob.is_body_seekable"] = True
        environ["CONTENT_TYPE"] = entry["type"]
        environ["CONTENT_LENGTH"] = str(len(body))
        self._events(FORM_REPLAYED, path=path)
        return None
