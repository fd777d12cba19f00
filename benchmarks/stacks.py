"""The WSGI stacks compared, each serving the same tiny app behind Beaker sessions.

* ``bare``: the app alone;
* ``session_only``: the app behind Beaker, letting in sessions that hold a user;
* ``msal_wsgi``: the app behind MsalMiddleware behind Beaker;
* ``node_pattern``: Microsoft's Node.js web app sample (msal-node ``AuthProvider``)
  ported literally: per request a new ConfidentialClientApplication sharing one
  ``http_cache``, deserialize the session's cache, ``acquire_token_silent``,
  serialize it back (saved when it changed, like express-session with ``resave: false``);
* ``identity_web``: Microsoft's ``identity`` package, ``identity.web.Auth(...).get_token_for_user``
  (it builds an msal app per call too), with the session keys it reads.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Callable

import identity.web
import msal
from beaker.middleware import SessionMiddleware

from msal_wsgi import TOKEN, MsalMiddleware

from .fixtures import SESSION_USER, beaker_options, bench_settings

WSGIApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]
_OK = [("Content-Type", "text/plain"), ("Content-Length", "2")]
_DENIED = [("Content-Type", "application/json"), ("Content-Length", "2")]
#: The session keys of the Node sample and of ``identity``.
NODE_CACHE, NODE_ACCOUNT, NODE_TOKEN = "tokenCache", "account", "accessToken"
IDENTITY_CACHE, IDENTITY_USER = "_token_cache", "_logged_in_user"


def tiny_app(environ: dict, start_response: Callable[..., Any]) -> list[bytes]:
    """A cheap endpoint: it would call its API with the token it was handed."""
    start_response("200 OK", _OK)
    return [b"ok"]


def _denied(start_response: Callable[..., Any]) -> list[bytes]:
    start_response("401 Unauthorized", _DENIED)
    return [b"{}"]


def session_only(app: WSGIApp) -> WSGIApp:
    """Protection by session alone: a signed-in user is a session holding msal_wsgi's user record."""

    def gate(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ["beaker.session"].get(SESSION_USER) is None:
            return _denied(start_response)
        return app(environ, start_response)

    return gate


def node_pattern(app: WSGIApp, settings: dict[str, Any], scopes: list[str], http_cache: dict) -> WSGIApp:
    def protected(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        session = environ["beaker.session"]
        if not session.get(NODE_ACCOUNT):
            return _denied(start_response)
        cache = msal.SerializableTokenCache()
        cca = msal.ConfidentialClientApplication(
            settings["client_id"], client_credential=settings["client_credential"],
            oidc_authority=settings["oidc_authority"], token_cache=cache, http_cache=http_cache)
        stored = session[NODE_CACHE]
        cache.deserialize(stored)
        result = cca.acquire_token_silent(scopes, account=session[NODE_ACCOUNT])
        if not result or "access_token" not in result:
            return _denied(start_response)
        serialized = cache.serialize()
        if serialized != stored or session.get(NODE_TOKEN) != result["access_token"]:
            session[NODE_CACHE] = serialized
            session[NODE_TOKEN] = result["access_token"]
            session.save()
        environ[TOKEN] = result["access_token"]
        return app(environ, start_response)

    return protected


def identity_web(app: WSGIApp, settings: dict[str, Any], scopes: list[str], http_cache: dict) -> WSGIApp:
    def protected(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        session = environ["beaker.session"]
        before = session.get(IDENTITY_CACHE)
        auth = identity.web.Auth(
            session=session, client_id=settings["client_id"], client_credential=settings["client_credential"],
            oidc_authority=settings["oidc_authority"], http_cache=http_cache)
        result = auth.get_token_for_user(scopes)
        if "access_token" not in result:
            return _denied(start_response)
        if session.get(IDENTITY_CACHE) is not before:  # Flask would notice the change; Beaker needs save()
            session.save()
        environ[TOKEN] = result["access_token"]
        return app(environ, start_response)

    return protected


def build(kind: str, settings: dict[str, Any], beaker: dict[str, Any], scopes: list[str],
          http_cache: dict | None = None) -> WSGIApp:
    """The stack named ``kind`` (see the module docstring) around :func:`tiny_app`."""
    http_cache = {} if http_cache is None else http_cache
    if kind == "bare":
        return tiny_app
    if kind == "session_only":
        inner = session_only(tiny_app)
    elif kind == "msal_wsgi":
        inner = MsalMiddleware(tiny_app, **settings)
    elif kind == "node_pattern":
        inner = node_pattern(tiny_app, settings, scopes, http_cache)
    elif kind == "identity_web":
        inner = identity_web(tiny_app, settings, scopes, http_cache)
    else:
        raise ValueError(kind)
    return SessionMiddleware(inner, dict(beaker))


def by_prefix(routes: dict[str, WSGIApp], default: WSGIApp) -> WSGIApp:
    """Send each request to the app of the first path segment, else ``default``."""

    def dispatch(environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        return routes.get(path[: path.find("/", 1)] if path.count("/") > 1 else path, default)(
            environ, start_response)

    return dispatch


def load_app() -> WSGIApp:
    """The app gunicorn serves in ``benchmarks/load.py`` (configured by ``BENCH_*`` variables).

    ``/todos/...``: msal_wsgi; ``/session/...``: session only; anything else: public.
    """
    keys = os.environ.get("BENCH_SESSION_KEYS", "")
    settings = bench_settings(os.environ["BENCH_ISSUER"], session_keys=tuple(keys.split()))
    beaker = beaker_options("file", os.environ["BENCH_SESSION_DIR"], count=False)
    return by_prefix({"/todos": build("msal_wsgi", settings, beaker, []),
                      "/session": build("session_only", settings, beaker, [])}, tiny_app)
