"""Faults end in a 503 with Retry-After (JSON for API calls), keeping the session; never a 500.

The provider is stopped for real. Corrupt session data is written into the real store.
"""

from __future__ import annotations

import logging

import pytest
from beaker.session import Session
from support.apps import make_testapp, sign_in

from devprovider import DevProvider
from msal_wsgi import _environ as K

SHORT = "todo-web-short"


def test_provider_down_during_refresh_is_a_503_and_keeps_the_session(tmp_path, caplog, monkeypatch):
    own = DevProvider().start(tmp_path / "op")  # a provider of its own, to stop
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(own.ca_path))
    try:
        app = make_testapp(own, client_id=SHORT, http_timeout=2)
        sign_in(app, own)
    finally:
        own.stop()
    import time

    time.sleep(3.3)  # the access token is now stale; refreshing needs the (stopped) provider
    with caplog.at_level(logging.ERROR, logger="msal_wsgi"):
        page = app.get("/todos", status=503)
    assert page.headers["Retry-After"] and page.content_type == "text/html"
    assert "identity provider" in caplog.text
    api = app.get("/todos", headers={"Accept": "application/json"}, status=503)
    assert api.json["error"] == "temporarily_unavailable" and api.headers["Retry-After"]
    stored = Session({}, id=app.cookies["sid"], type="memory", use_cookies=False)
    assert stored[K.SESSION_USER]["claims"]["sub"] == "alice" and "RefreshToken" in stored[K.SESSION_CACHE]


@pytest.mark.parametrize("garbage", [
    {K.SESSION_USER: "not a record"}, {K.SESSION_USER: {"id": 1, "claims": [], "tokens": None, "fp": 3}},
    {K.SESSION_CACHE: b"\xff\xfe", K.SESSION_USER: {}}, {K.SESSION_FLOWS: ["x"], K.SESSION_DONE: 7},
    {K.SESSION_FLOWS: {"s": {"flow": "x", "t": "yesterday"}}},
], ids=["string", "wrong-types", "bytes", "lists", "bad-flow"])
def test_corrupt_session_data_reads_as_signed_out(provider, garbage):
    app = make_testapp(provider)
    app.get("/public")
    app.get("/todos")  # creates the session cookie
    stored = Session({}, id=app.cookies["sid"], type="memory", use_cookies=False)
    stored.update(garbage)
    stored.save()
    assert app.get("/todos", headers={"Accept": "application/json"}, status=401).json["error"]
    assert app.get("/auth/callback", {"state": "s", "code": "c"}, status=400)
    assert app.get("/auth/logout").status_int == 302
