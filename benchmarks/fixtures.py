"""What every benchmark starts from: a running DevProvider, users signed in
through it for real, and Beaker sessions whose writes are counted.

Sign-ins reuse the test suite's helpers (``tests/support/apps.py``): the echo
app behind MsalMiddleware behind Beaker memory sessions, driven by WebTest.
The session each sign-in leaves is then copied into the store of every
benchmarked stack (:func:`seed_session`), in the shape that stack expects:
msal_wsgi's values sealed again for the new session id (with :data:`SESSION_KEYS`,
the tests' key: encryption on, as in production; ``--plain`` empties it).
"""

from __future__ import annotations

import base64
import json
import pickle
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from beaker.container import FileNamespaceManager, MemoryNamespaceManager

from devprovider import DevProvider

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support import sessions  # found through the path set just above
from support.apps import TODO_READ, echo_app, make_testapp, settings_for, sign_in
from support.consent import FormBrowser
from support.servers import free_port, trusted_provider

from msal_wsgi import ACQUIRE_TOKEN
from msal_wsgi._msal import _cache_with
from msal_wsgi._session import _COMPRESSED, StoredUser
from msal_wsgi.crypto import codec_for

SESSION_CACHE, SESSION_USER = sessions.SESSION_CACHE, sessions.SESSION_USER
#: The keys msal_wsgi seals sessions with in the benchmarks (``--plain``: none).
SESSION_KEYS: tuple[str, ...] = sessions.TEST_SESSION_KEYS

__all__ = [
    "ROOT",
    "SESSION_CACHE",
    "SESSION_KEYS",
    "SESSION_USER",
    "TODO_READ",
    "SignedInUser",
    "beaker_options",
    "bench_settings",
    "consented_user",
    "counting",
    "free_port",
    "provider",
    "seed_session",
    "settings_for",
    "signed_in_user",
]

def extra_scope(n: int) -> str:
    """The scope of the n-th extra resource a user holds a token for (the scaling table)."""
    return f"api://r{n}/access"


class _CountsWrites:
    """Counts writes to a Beaker store: Beaker's ``Session.save`` is ``namespace['session'] = data``."""

    writes = 0

    def __setitem__(self, key: str, value: Any) -> None:
        type(self).writes += 1
        super().__setitem__(key, value)  # type: ignore[misc]

    def __delitem__(self, key: str) -> None:
        type(self).writes += 1
        super().__delitem__(key)  # type: ignore[misc]


class CountingMemory(_CountsWrites, MemoryNamespaceManager):
    writes = 0


class CountingFile(_CountsWrites, FileNamespaceManager):
    writes = 0


def counting(kind: str) -> type[CountingMemory | CountingFile]:
    return CountingMemory if kind == "memory" else CountingFile


def beaker_options(kind: str, data_dir: str | None = None, *, count: bool = True) -> dict[str, Any]:
    """The tests' server-side Beaker sessions (never rewritten unless changed), their writes counted if ``count``."""
    options = sessions.beaker_options(kind, data_dir if kind == "file" else None)
    if count:
        options["session.namespace_class"] = counting(kind)
    return options


#: Beaker's own bookkeeping in a session it loaded.
_BEAKER_KEYS = frozenset({"_id", "_creation_time", "_accessed_time", "_domain", "_path", "_expires"})


def bench_settings(dev: DevProvider | str, **overrides: Any) -> dict[str, Any]:
    """The msal_wsgi settings the benchmarks use: the tests', sealing with :data:`SESSION_KEYS`."""
    return settings_for(dev, **{"session_keys": SESSION_KEYS, **overrides})


def seed_session(options: dict[str, Any], data: dict[str, Any]) -> str:
    """Store ``data`` (msal_wsgi's values opened) as a new session, sealed for its id with
    :data:`SESSION_KEYS`, the user seen just now; returns its id (the ``sid`` cookie value)."""
    session = sessions.stored_session(None, options)
    codec = codec_for(SESSION_KEYS)
    for key, value in data.items():
        if key in _BEAKER_KEYS:
            continue
        if key == SESSION_USER:
            value = dict(value, seen=time.time(), t0=time.time(), chk=time.time())  # a burst inside the interval
        session[key] = codec.seal(key, str(session.id), value) if key in sessions.ALL_SESSION_KEYS else value
    session.save()
    return str(session.id)


def stored_bytes(data: dict[str, Any]) -> tuple[int, int]:
    """Bytes of the session, msal_wsgi's values sealed as msal_wsgi seals them: pickled (the measure of
    earlier figures), and as Beaker 1.14 stores it (pickle protocol 2, then base64)."""
    session = {k: v for k, v in data.items()}
    codec = codec_for(SESSION_KEYS)
    for key in sessions.ALL_SESSION_KEYS:
        if key in session:
            session[key] = codec.seal(key, "0" * 32, session[key], compress=key in _COMPRESSED)
    return len(pickle.dumps(session, pickle.HIGHEST_PROTOCOL)), len(base64.b64encode(pickle.dumps(session, 2)))


@dataclass
class SignedInUser:
    """A user signed in for real, holding access tokens for ``resources`` resources."""

    login: str
    resources: int
    session: dict[str, Any]  # the whole Beaker session after sign-in, msal_wsgi's values opened

    @property
    def cache(self) -> str:
        """The latest grant's msal cache as the session keeps it (no access tokens)."""
        return str(self.session[SESSION_CACHE])

    @property
    def record(self) -> dict[str, Any]:
        return dict(self.session[SESSION_USER])

    @property
    def full_cache(self) -> str:
        """The msal cache as msal itself serializes it, access tokens in: what other stacks keep."""
        user = StoredUser(self.record)
        return str(_cache_with(self.cache, user.account_id, "todo-web", user.indexed_tokens(time.time())).serialize())

    def msal_bytes(self) -> int:
        """Bytes of the msal caches the session stands for, as msal serializes them: every grant's, the
        latest with the access tokens (which the session keeps once, in its index)."""
        earlier = self.session.get(sessions.SESSION_GRANTS) or []
        return len(self.full_cache) + sum(len(json.dumps(json.loads(g["cache"]), indent=4)) for g in earlier)


@contextmanager
def provider(mode: str = "entra") -> Iterator[DevProvider]:
    """A DevProvider on loopback; REQUESTS_CA_BUNDLE points requests (and msal) at its CA."""
    with tempfile.TemporaryDirectory(prefix="msal-wsgi-bench-") as workdir, \
            trusted_provider(workdir, mode=mode) as running:
        yield running


def signed_in_user(dev: DevProvider, login: str, resources: int = 1) -> SignedInUser:
    """Sign ``login`` in through the provider's pages, then acquire tokens for ``resources - 1`` more APIs."""
    options = beaker_options("memory", count=False)
    testapp = make_testapp(dev, session=options, session_keys=SESSION_KEYS)
    sign_in(testapp, dev, "/todos", login=login)
    for n in range(1, resources):
        body = testapp.get("/todos", {"acquire": extra_scope(n)}).json
        assert "value" in body["acquired"], body
    return SignedInUser(login, resources, dict(sessions.session_of(testapp)))


def _acquiring_app(environ: dict[str, Any], start_response: Any) -> Any:
    """The echo app, except that ``?acquire=SCOPE`` lets ``InteractionRequired`` through: a consent."""
    query = environ.get("QUERY_STRING", "")
    if query.startswith("acquire="):
        environ[ACQUIRE_TOKEN]([query[len("acquire="):].replace("%3A", ":").replace("%2F", "/")])
    return echo_app(environ, start_response)


def consented_user(dev: DevProvider, login: str, resources: int = 1) -> SignedInUser:
    """Against a stock provider: sign in, then consent to ``resources - 1`` more APIs one at a time.

    Each consent is a sign-in of the same account, so the session holds a grant per resource.
    """
    options = beaker_options("memory", count=False)
    browser = FormBrowser(make_testapp(dev, session=options, app=_acquiring_app, session_keys=SESSION_KEYS), dev,
                          login=login)
    browser.get("/todos")
    for n in range(1, resources):
        assert browser.get("/todos", params={"acquire": extra_scope(n)}).status_int == 200
    session = dict(sessions.session_of(browser.app))
    assert 1 + len(session.get(sessions.SESSION_GRANTS) or []) == resources
    return SignedInUser(login, resources, session)
