"""Beaker sessions installed by msal_wsgi itself (the ``session_options`` setting).

Beaker saves the session when the response starts, after the store may have
served the load: a store failing then (down, full, read-only) would otherwise
be a 500, or, when the app answers with a generator that starts the response
lazily, an exception escaping to the server. Here the application runs until
its response has started (WebOb's ``call_application``), and a failed save is
answered by ``on_save_failure`` instead.

Beaker is configured by :func:`msal_wsgi.beaker_sessions.beaker_config`: a failing store is a 503
and signs no one out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Callable

from webob import Request, Response

from ._wsgi import StartResponse, WSGIApplication, WSGIEnvironment

#: Set in the environ of requests that already passed through these sessions.
INSTALLED = "msal_wsgi.sessions_installed"


class _SaveFailed(Exception):
    """Beaker's start_response raised (its ``__cause__``) while saving the session."""


class InstalledSessions:
    """Beaker's ``SessionMiddleware`` around ``app``; a failed save becomes ``on_save_failure(request, error)``.

    :param app: the WSGI application the sessions are for.
    :param options: Beaker options without their ``session.`` prefix, as the settings hold them.
    :param on_save_failure: the response for a request whose session could not be saved.
    """

    def __init__(self, app: WSGIApplication, options: Mapping[str, Any],
                 on_save_failure: Callable[[Request, Exception], Response]) -> None:
        from beaker.middleware import SessionMiddleware  # optional dependency

        from .beaker_sessions import beaker_config

        self._beaker = SessionMiddleware(self._saving, beaker_config(options))
        self._app = app
        self._on_save_failure = on_save_failure

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ[INSTALLED] = True
        request = Request(environ)
        try:
            status, headers, body, exc_info = request.call_application(self._beaker, catch_exc_info=True)
        except _SaveFailed as failed:
            assert isinstance(failed.__cause__, Exception)
            answer: Iterable[bytes] = self._on_save_failure(request, failed.__cause__)(environ, start_response)
            return answer
        start_response(status, headers, exc_info)
        return body

    def _saving(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """The app, with failures of Beaker's start_response (its save) marked as such."""

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            try:
                return start_response(status, headers, exc_info)
            except Exception as exc:
                raise _SaveFailed() from exc

        return self._app(environ, start)
