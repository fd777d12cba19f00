"""Beaker sessions that survive a failing store: :class:`CheckedSession` and the options msal_wsgi installs Beaker with.

Needs Beaker (``pip install msal_wsgi[beaker]``). msal_wsgi uses all of this itself when it installs
Beaker (the ``session_options`` setting, or ``session.*`` keys in its ini section); an app that wraps
Beaker's ``SessionMiddleware`` itself gets the same with :func:`beaker_config`::

    from beaker.middleware import SessionMiddleware
    from msal_wsgi.beaker_sessions import beaker_config

    app = SessionMiddleware(MsalMiddleware(app, settings), beaker_config({
        "type": "ext:redis", "url": "redis://redis.internal:6379/0", "save_accessed_time": False, ...}))

What changes from Beaker's own defaults, where the options do not say otherwise (:data:`DEFAULTS`):
``invalidate_corrupt`` is off, so a store that fails for a moment is a 503 instead of a new,
empty session (everyone it touched signed out); :class:`CheckedSession` tells a store that
fails from data no one can decode, which still starts a new session, and takes only session
ids Beaker issued; an ``ext:redis`` URL becomes a client with bounded waits
(:func:`~msal_wsgi.redis_client`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from beaker.session import Session
from beaker.util import JsonSerializer, PickleSerializer

from ._redis import redis_client

__all__ = ["DEFAULTS", "CheckedSession", "beaker_config"]

log = logging.getLogger("msal_wsgi")
#: What Beaker 1.12+ issues as a session id: ``uuid.uuid4().hex``.
_ISSUED_ID = re.compile(r"[0-9a-f]{32}")


class _Undecodable(Exception):
    """The session's data was read from the store but cannot be decoded (its ``__cause__`` says why)."""


class _Decoder:
    """Beaker's serializer (``pickle``, ``json`` or the app's own object), its failures to decode marked as such."""

    def __init__(self, serializer: Any) -> None:
        if serializer == "pickle":
            serializer = PickleSerializer()
        elif serializer == "json":
            serializer = JsonSerializer()
        self._serializer = serializer

    def dumps(self, data: Any) -> Any:
        return self._serializer.dumps(data)

    def loads(self, data: Any) -> Any:
        try:
            return self._serializer.loads(data)
        except Exception as exc:  # pickle raises nearly anything on foreign data
            raise _Undecodable(f"{type(exc).__name__}: {exc}") from exc


class CheckedSession(Session):  # type: ignore[misc]  # Beaker has no type hints
    """Beaker's server-side ``Session``, for ``session.session_class``: it takes only session ids Beaker
    could have issued, and data it cannot decode reads as a new session; a store that fails still raises.

    Beaker uses any cookie value as a session id: with ``file`` storage one too long for a file
    name fails at the save, after the app answered, and ``x/<id>`` names the file of ``<id>``. An
    id of another shape starts a new session here, under a new id. Data that cannot be decoded
    (a class that is no longer importable, a truncated pickle) would, with
    ``invalidate_corrupt = false``, fail every request of that session: it starts a new session
    too, and a WARNING is logged. Anything else that fails while loading (the store) raises, and
    with ``invalidate_corrupt = false`` msal_wsgi answers 503 and the session is kept.
    """

    def __init__(self, request: Any, *args: Any, data_serializer: Any = "pickle", **params: Any) -> None:
        super().__init__(request, *args, data_serializer=_Decoder(data_serializer), **params)

    def load(self) -> None:
        if not isinstance(self.id, str) or not _ISSUED_ID.fullmatch(self.id):
            self.invalidate()  # a new id, then load() again
            return
        try:
            super().load()
        except _Undecodable as exc:
            log.warning("session data that cannot be decoded (%s) was replaced by a new session", exc)
            self.invalidate()


#: Beaker options set where the options do not say otherwise: see the module.
DEFAULTS: Mapping[str, Any] = {"invalidate_corrupt": False, "session_class": CheckedSession}


def beaker_config(options: Mapping[str, Any]) -> dict[str, Any]:
    """``SessionMiddleware``'s config (``session.``-prefixed keys) for Beaker ``options`` (without the prefix),
    with :data:`DEFAULTS` where they say nothing, and an ``ext:redis`` URL made a client with bounded waits."""
    config = {**DEFAULTS, **options}
    if config.get("type") == "ext:redis" and isinstance(config.get("url"), str):
        config["url"] = redis_client(config["url"])
    return {"session." + key: value for key, value in config.items()}
