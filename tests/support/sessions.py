"""Beaker sessions as the server stores them: options, and reading one by its id.

The ``SESSION_*`` keys are where msal_wsgi keeps its data in a session (the
token cache, the signed-in user, pending and completed sign-ins); tests read
them here, from the one module of the package that defines them. The apps of
the tests seal them with :data:`TEST_SESSION_KEYS` (``session_keys``), so a
session read by :func:`session_of` is opened with the same keys: an
:class:`Opened` mapping shows msal_wsgi's values as msal_wsgi sees them, and
seals what a test puts in it (``raw`` is the stored session itself).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, MutableMapping
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
from msal_wsgi.crypto import Codec, codec_for

__all__ = [
    "ALL_SESSION_KEYS",
    "MEMORY_SESSIONS",
    "SESSION_CACHE",
    "SESSION_DONE",
    "SESSION_FLOWS",
    "SESSION_GRANTS",
    "SESSION_REPLAYS",
    "SESSION_USER",
    "TEST_SESSION_KEYS",
    "Opened",
    "beaker_options",
    "cache_secrets",
    "codec_of",
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
#: The ``session_keys`` of the tests' apps: what msal_wsgi keeps in their sessions is sealed (AES-256-GCM).
TEST_SESSION_KEYS = ("dGVzdC1zZXNzaW9uLWtleS0wMDAwMDAwMDAwMDAwMDA",)


def codec_of(testapp: Any) -> Codec:
    """What seals and opens the values of ``testapp``'s sessions (its ``session_keys``)."""
    return codec_for(getattr(testapp, "session_keys", TEST_SESSION_KEYS))


class Opened(MutableMapping[str, Any]):
    """A stored session with msal_wsgi's values opened as msal_wsgi reads them (a value that does not
    open reads as absent), sealed again when a test sets one. ``save()`` writes the session back."""

    def __init__(self, raw: Session, codec: Codec) -> None:
        self.raw = raw
        self._codec = codec

    @property
    def id(self) -> str:
        return str(self.raw.id)

    def __getitem__(self, key: str) -> Any:
        value = self.raw[key]
        if key in ALL_SESSION_KEYS:
            from msal_wsgi.crypto import Unreadable

            try:
                return self._codec.open(key, self.id, value)
            except Unreadable:
                raise KeyError(key) from None
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        self.raw[key] = self._codec.seal(key, self.id, value) if key in ALL_SESSION_KEYS else value

    def __delitem__(self, key: str) -> None:
        del self.raw[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.raw.keys()))

    def __len__(self) -> int:
        return len(self.raw)

    def save(self) -> None:
        self.raw.save()


def stored_session(sid: str | None, options: Mapping[str, Any] = MEMORY_SESSIONS) -> Session:
    """The session stored under ``sid``, read from the store SessionMiddleware ``options`` name.

    Changes are written back by its ``save()``. An id the store does not hold reads as an
    empty session; ``None`` is a new session under a fresh id.
    """
    params = {key.split(".", 1)[1]: value for key, value in options.items()}
    return Session({}, id=sid, use_cookies=False, **params)


def session_of(testapp: Any, sid: str | None = None) -> Opened:
    """The session behind the test browser's cookie (or ``sid``), as the server stores it, opened."""
    options = getattr(testapp, "session_options", MEMORY_SESSIONS)
    return Opened(stored_session(sid if sid is not None else testapp.cookies["sid"], options), codec_of(testapp))


def msal_cache(session: Mapping[str, Any]) -> dict[str, Any]:
    """msal's token cache in ``session``: its JSON, with ``RefreshToken``, ``IdToken``, ``Account``... sections
    (no ``AccessToken``: the user record's index holds them)."""
    return json.loads(session[SESSION_CACHE])


def cache_secrets(session: Mapping[str, Any], *sections: str) -> list[str]:
    """The ``secret`` of every entry in these sections (default: the tokens) of the session's msal cache;
    ``AccessToken`` secrets are those of the user record's index."""
    cache = msal_cache(session)
    secrets = []
    for section in sections or ("AccessToken", "RefreshToken", "IdToken"):
        secrets += [entry["secret"] for entry in cache.get(section, {}).values()]
        if section == "AccessToken" and SESSION_USER in session:
            secrets += [entry[0] for entry in session[SESSION_USER]["tokens"].values()]
    return secrets
