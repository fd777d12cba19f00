"""An app that writes its own keys into the Beaker session, or Beaker writing back the access time, never
writes back a refresh token another request has rotated meanwhile, nor a sign-in that ended meanwhile.

Beaker saves the whole session when the app called ``save()``: the keys msal_wsgi keeps there too, as
this request loaded them. A request that loaded the session, then waited (a slow page, an upload) while
another request of the same user refreshed, would restore the retired refresh token; against rotating
refresh tokens the provider then refuses the next refresh (``invalid_grant``: it was already used) and
the user signs in again. Beaker's default ``save_accessed_time = true`` writes back what it loaded on every
request, saved or not. The provider's ``todo-web-rotating`` client rotates refresh tokens on every use.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs

import pytest
import webtest
from support.apps import STALE_AFTER, browser_of, echo_app, make_testapp, settings_for, sign_in, sign_out
from support.servers import RedisServer
from support.sessions import session_of

from msal_wsgi import MsalMiddleware

ROTATING = "todo-web-rotating"


class HoldingApp:
    """echo_app, but ``?hold=1`` waits for :attr:`proceed` after the middleware handed over the user,
    then (``writes``) writes a key of its own into the session and asks Beaker to save it."""

    def __init__(self, *, writes: bool = True) -> None:
        self.entered = threading.Event()
        self.proceed = threading.Event()
        self.writes = writes

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if "hold" in parse_qs(environ.get("QUERY_STRING", "")):
            self.entered.set()
            assert self.proceed.wait(20)
            if self.writes:
                session = environ["beaker.session"]
                session["note"] = "written by the app"
                session.save()
        return echo_app(environ, start_response)


def _browser(app: webtest.TestApp) -> webtest.TestApp:
    return browser_of(app, sid=app.cookies["sid"])


@pytest.mark.parametrize("write", ["the app saves", "save_accessed_time"])
def test_a_write_back_keeps_the_refresh_token_a_parallel_request_rotated(provider, write):
    holding = HoldingApp(writes=write == "the app saves")
    app = make_testapp(provider, client_id=ROTATING, app=holding,
                       session={"session.save_accessed_time": write == "save_accessed_time"})
    sign_in(app, provider)
    time.sleep(STALE_AFTER)
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(_browser(app).get, "/todos", {"hold": "1"})  # refreshes, then waits in the app
        assert holding.entered.wait(20)
        mark = provider.mark()
        other = _browser(app).get("/todos", {"acquire": "api://r1/access"})  # rotates the refresh token again
        assert other.json["acquired"]["scopes"] == ["api://r1/access"]
        holding.proceed.set()
        assert held.result(20).status_int == 200
    again = _browser(app).get("/todos", {"acquire": "api://r2/access"})  # needs the newest refresh token
    assert again.json["acquired"]["scopes"] == ["api://r2/access"], again.json
    refused = [t for t in provider.token_requests_since(mark) if t["status"] != 200]
    assert refused == []
    if holding.writes:
        assert session_of(app)["note"] == "written by the app"  # and the app's own key is saved


def test_a_save_of_the_app_does_not_bring_back_a_sign_in_that_ended_meanwhile(provider):
    holding = HoldingApp()
    app = make_testapp(provider, app=holding)
    sign_in(app, provider)
    sid = app.cookies["sid"]
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(_browser(app).get, "/todos", {"hold": "1"})
        assert holding.entered.wait(20)
        other_tab = _browser(app)
        assert sign_out(other_tab).status_int == 303  # the session leaves the store
        holding.proceed.set()
        assert held.result(20).status_int == 200
    after = browser_of(app, sid=sid).get("/todos", status="*")  # the old session id, as the held tab holds it
    assert after.status_int == 302 and after.location.startswith(provider.issuer)
    assert session_of(app, sid)["note"] == "written by the app"



def test_a_store_that_stops_answering_at_the_write_back_is_a_503_and_the_user_stays_signed_in(provider, tmp_path,
                                                                                             caplog):
    """Redis (sessions and the refresh lock) paused as the app starts its response: the lock is not had, a
    WARNING says so, Beaker's own write meets the same store and msal_wsgi answers 503; then the same user."""
    with RedisServer(tmp_path / "redis") as redis:
        resumes: list[threading.Timer] = []

        def pausing_app(environ: dict[str, Any], start_response: Any) -> Any:
            if "pause" in parse_qs(environ.get("QUERY_STRING", "")):
                environ["beaker.session"]["note"] = "written by the app"
                environ["beaker.session"].save()
                redis.pause()
                resumes.append(threading.Timer(5.0, redis.resume))  # longer than the lock's and the save's 2 s waits
                resumes[-1].start()
            return echo_app(environ, start_response)

        app = webtest.TestApp(MsalMiddleware(pausing_app, **settings_for(provider, session_options={
            "type": "ext:redis", "url": redis.url, "key": "sid", "save_accessed_time": False})))
        token = sign_in(app, provider).json["token"]["value"]
        with caplog.at_level(logging.WARNING, logger="msal_wsgi"):
            answer = app.get("/todos", {"pause": "1"}, status="*")
        assert answer.status_int == 503 and answer.headers["Retry-After"]
        assert "could not be taken afresh before Beaker's write-back" in caplog.text
        resumes[0].join()
        assert app.get("/todos").json["token"]["value"] == token
