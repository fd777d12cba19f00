"""What every benchmark starts from: a running DevProvider, users signed in
through it for real, and Beaker sessions whose writes are counted.

Sign-ins reuse the test suite's helpers (``tests/support/apps.py``): the echo
app behind MsalMiddleware behind Beaker memory sessions, driven by WebTest.
The session each sign-in leaves is then copied into the store of every
benchmarked stack (:func:`seed_session`), in the shape that stack expects.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from beaker.container import FileNamespaceManager, MemoryNamespaceManager
from beaker.session import Session

from devprovider import DevProvider
from msal_wsgi import _environ as K

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.apps import TODO_READ, echo_app, make_testapp, settings_for, sign_in
from support.consent import FormBrowser

__all__ = [
    "TODO_READ",
    "SignedInUser",
    "beaker_options",
    "consented_user",
    "counting",
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
    """Server-side Beaker sessions that are never rewritten unless changed (``save_accessed_time=False``)."""
    options: dict[str, Any] = {"session.type": kind, "session.key": "sid", "session.save_accessed_time": False}
    if kind == "file":
        options["session.data_dir"] = options["session.lock_dir"] = data_dir
    if count:
        options["session.namespace_class"] = counting(kind)
    return options


#: Beaker's own bookkeeping in a session it loaded.
_BEAKER_KEYS = frozenset({"_id", "_creation_time", "_accessed_time", "_domain", "_path", "_expires"})


def _params(options: dict[str, Any]) -> dict[str, Any]:
    return {key.split(".", 1)[1]: value for key, value in options.items()}


def read_session(options: dict[str, Any], sid: str) -> dict[str, Any]:
    return dict(Session({}, id=sid, use_cookies=False, **_params(options)))


def seed_session(options: dict[str, Any], data: dict[str, Any]) -> str:
    """Store ``data`` as a new session; returns its id (the ``sid`` cookie value)."""
    session = Session({}, use_cookies=False, **_params(options))
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
        return str(self.session[K.SESSION_CACHE])

    @property
    def record(self) -> dict[str, Any]:
        return dict(self.session[K.SESSION_USER])


@contextmanager
def provider(mode: str = "entra") -> Iterator[DevProvider]:
    """A DevProvider on loopback; REQUESTS_CA_BUNDLE points requests (and msal) at its CA."""
    with tempfile.TemporaryDirectory(prefix="msal-wsgi-bench-") as workdir, \
            DevProvider().start(workdir, mode=mode) as running:
        previous = os.environ.get("REQUESTS_CA_BUNDLE")
        os.environ["REQUESTS_CA_BUNDLE"] = str(running.ca_path)
        try:
            yield running
        finally:
            if previous is None:
                os.environ.pop("REQUESTS_CA_BUNDLE", None)
            else:
                os.environ["REQUESTS_CA_BUNDLE"] = previous


def signed_in_user(dev: DevProvider, login: str, resources: int = 1) -> SignedInUser:
    """Sign ``login`` in through the provider's pages, then acquire tokens for ``resources - 1`` more APIs."""
    options = beaker_options("memory", count=False)
    testapp = make_testapp(dev, session=options)
    sign_in(testapp, dev, "/todos", login=login)
    for n in range(1, resources):
        body = testapp.get("/todos", {"acquire": extra_scope(n)}).json
        assert "value" in body["acquired"], body
    return SignedInUser(login, resources, read_session(options, testapp.cookies["sid"]))


def _acquiring_app(environ: dict[str, Any], start_response: Any) -> Any:
    """The echo app, except that ``?acquire=SCOPE`` lets ``InteractionRequired`` through: a consent."""
    query = environ.get("QUERY_STRING", "")
    if query.startswith("acquire="):
        environ[K.ACQUIRE_TOKEN]([query[len("acquire="):].replace("%3A", ":").replace("%2F", "/")])
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
    session = read_session(options, browser.app.cookies["sid"])
    assert 1 + len(session.get(K.SESSION_GRANTS) or []) == resources
    return SignedInUser(login, resources, session)
