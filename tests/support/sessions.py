"""Beaker sessions as the server stores them: options, and reading one by its id.

The ``SESSION_*`` keys are where msal_wsgi keeps its data in a session (the
token cache, the signed-in user, pending and completed sign-ins); tests read
them here, from the one module of the package that defines them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from beaker.session import Session

from msal_wsgi._environ import (
    ALL_SESSION_KEYS,
    SESSION_CACHE,
    SESSION_DONE,
    SESSION_FLOWS,
    SESSION_GRANTS,
    SESSION_REPLAYS,
    SESSION_USER,
)

__all__ = [
    "ALL_SESSION_KEYS",
    "MEMORY_SESSIONS",
    "SESSION_CACHE",
    "SESSION_DONE",
    "SESSION_FLOWS",
    "SESSION_GRANTS",
    "SESSION_REPLAYS",
    "SESSION_USER",
    "beaker_options",
    "cache_secrets",
    "msal_cache",
    "session_of",
    "stored_session",
]


def beaker_options(kind: str = "memory", data_dir: str | None = None) -> dict[str, Any]:
    """SessionMiddleware options: server-side sessions in cookie ``sid``, never rewritten unless changed."""
    options: dict[str, Any] = {"session.type": kind, "session.key": "sid", "session.save_accessed_time": False}
    if data_dir is not None:
        options["session.data_dir"] = options["session.lock_dir"] = data_dir
    return options


#: What :func:`support.apps.make_testapp` gives Beaker: memory sessions, shared by every app of the process.
MEMORY_SESSIONS = beaker_options("memory")


def stored_session(sid: str | None, options: Mapping[str, Any] = MEMORY_SESSIONS) -> Session:
    """The session stored under ``sid``, read from the store SessionMiddleware ``options`` name.

    Changes are written back by its ``save()``. An id the store does not hold reads as an
    empty session; ``None`` is a new session under a fresh id.
    """
    params = {key.split(".", 1)[1]: value for key, value in options.items()}
    return Session({}, id=sid, use_cookies=False, **params)


def session_of(testapp: Any, sid: str | None = None) -> Session:
    """The session behind the test browser's cookie (or ``sid``), as the server stores it."""
    options = getattr(testapp, "session_options", MEMORY_SESSIONS)
    return stored_session(sid if sid is not None else testapp.cookies["sid"], options)


def msal_cache(session: Mapping[str, Any]) -> dict[str, Any]:
    """msal's token cache in ``session``: its JSON, with ``AccessToken``, ``RefreshToken``, ``IdToken``... sections."""
    return json.loads(session[SESSION_CACHE])


def cache_secrets(session: Mapping[str, Any], *sections: str) -> list[str]:
    """The ``secret`` of every entry in these sections (default: the tokens) of the session's msal cache."""
    cache = msal_cache(session)
    return [entry["secret"] for section in sections or ("AccessToken", "RefreshToken", "IdToken")
            for entry in cache.get(section, {}).values()]
