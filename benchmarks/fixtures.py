"""What every benchmark starts from: a running DevProvider, users signed in
through it for real, and Beaker sessions whose writes are counted.

Sign-ins reuse the test suite's helpers (``tests/support/apps.py``): the echo
app behind MsalMiddleware behind Beaker memory sessions, driven by WebTest.
The session each sign-in leaves is then copied into the store of every
benchmarked stack (:func:`seed_session`), in the shape that stack expects.
"""

from __future__ import annotations

import sys
import tempfile
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

SESSION_CACHE, SESSION_USER = sessions.SESSION_CACHE, sessions.SESSION_USER

__all__ = [
    "ROOT",
    "SESSION_CACHE",
    "SESSION_USER",
    "TODO_READ",
    "SignedInUser",
    "beaker_options",
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


def seed_session(options: dict[str, Any], data: dict[str, Any]) -> str:
    """Store ``data`` as a new session; returns its id (the ``sid`` cookie value)."""
    session = sessions.stored_session(None, options)
    session.update({k: v for k, v in data.items() if k not in _BEAKER_KEYS})
    session.save()
    return str(session.id)


@dataclass
class SignedInUser:
    """A user signed in for real, holding access tokens for ``resources`` resources."""

    login: str
    resources: int
    session: dict[str, Any]  # the whole Beaker session after sign-in

    @property
    def cache(self) -> str:
        return str(self.session[SESSION_CACHE])

    @property
    def record(self) -> dict[str, Any]:
        return dict(self.session[SESSION_USER])


@contextmanager
def provider(mode: str = "entra") -> Iterator[DevProvider]:
    """A DevProvider on loopback; REQUESTS_CA_BUNDLE points requests (and msal) at its CA."""
    with tempfile.TemporaryDirectory(prefix="msal-wsgi-bench-") as workdir, \
            trusted_provider(workdir, mode=mode) as running:
        yield running


def signed_in_user(dev: DevProvider, login: str, resources: int = 1) -> SignedInUser:
    """Sign ``login`` in through the provider's pages, then acquire tokens for ``resources - 1`` more APIs."""
    options = beaker_options("memory", count=False)
    testapp = make_testapp(dev, session=options)
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
    browser = FormBrowser(make_testapp(dev, session=options, app=_acquiring_app), dev, login=login)
    browser.get("/todos")
    for n in range(1, resources):
        assert browser.get("/todos", params={"acquire": extra_scope(n)}).status_int == 200
    session = dict(sessions.session_of(browser.app))
    assert 1 + len(session.get(sessions.SESSION_GRANTS) or []) == resources
    return SignedInUser(login, resources, session)
