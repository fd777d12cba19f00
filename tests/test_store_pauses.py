"""A session store that pauses signs no one out: 503s with Retry-After while it does not answer, then the
same user, with the same tokens; and data no one can decode, or a session id Beaker never issued, starts
a new session instead of failing every request.

The store is a real ``redis-server``, paused with SIGSTOP (its connections stay open, unanswered) and
continued with SIGCONT. Beaker is installed by msal_wsgi (``session_options``), or wrapped by the app
with :func:`msal_wsgi.beaker_sessions.beaker_config`; a control shows what Beaker's own defaults do.
"""

from __future__ import annotations

import base64
import logging
import pickle
import threading
import time

import pytest
import webtest
from beaker.middleware import SessionMiddleware
from support.apps import JSON, STALE_AFTER, echo_app, settings_for, sign_in
from support.faults import Fault
from support.servers import RedisServer

from msal_wsgi import MsalMiddleware, redis_client
from msal_wsgi._redis import STORE_TIMEOUT
from msal_wsgi.beaker_sessions import beaker_config

REDIS_OPTIONS = {"type": "ext:redis", "key": "sid", "save_accessed_time": False}


@pytest.fixture
def redis(tmp_path):
    with RedisServer(tmp_path / "redis") as server:
        yield server
        server.resume()  # in case a test failed while it was paused


def installed(provider, redis, **overrides):
    """echo_app behind msal_wsgi, which installs Beaker with Redis sessions (session_options)."""
    return webtest.TestApp(MsalMiddleware(echo_app, **settings_for(
        provider, session_options={**REDIS_OPTIONS, "url": redis.url}, **overrides)))


def wrapped(provider, redis, **overrides):
    """echo_app behind msal_wsgi behind the app's own SessionMiddleware, configured by beaker_config()."""
    app = MsalMiddleware(echo_app, **settings_for(provider, **overrides))
    return webtest.TestApp(SessionMiddleware(app, beaker_config({**REDIS_OPTIONS, "url": redis.url})))


@pytest.mark.parametrize("build", [installed, wrapped], ids=["msal_wsgi-installs-beaker", "app-wraps-beaker"])
def test_a_paused_store_is_a_503_within_the_store_timeout_then_the_same_user(provider, redis, build, caplog):
    app = build(provider, redis)
    token = sign_in(app, provider).json["token"]["value"]
    cookie = app.cookies["sid"]
    redis.pause()
    try:
        started = time.monotonic()
        with caplog.at_level(logging.ERROR, logger="msal_wsgi"):
            page = app.get("/todos", status=503)
            api = app.get("/todos", headers=JSON, status=503)
        took = time.monotonic() - started
    finally:
        redis.resume()
    assert took < 2 * (STORE_TIMEOUT + 1)  # each answered within the store timeout: no retry of a timeout
    assert page.headers["Retry-After"] and "try again" in page.text
    assert api.json["error"] == "temporarily_unavailable" and api.headers["Retry-After"]
    assert "TimeoutError" in caplog.text
    answer = app.get("/todos")
    assert answer.json["token"]["value"] == token and app.cookies["sid"] == cookie  # nobody signed out


def test_control_beakers_own_defaults_sign_the_user_out_when_a_load_times_out(provider, redis):
    """Why beaker_config() turns invalidate_corrupt off: Beaker's SessionMiddleware defaults it on, and a
    load that times out, followed by one that works (the store answers again), is a new, empty session."""
    app = webtest.TestApp(SessionMiddleware(MsalMiddleware(echo_app, **settings_for(provider)), {
        "session.type": "ext:redis", "session.url": redis_client(redis.url), "session.key": "sid",
        "session.save_accessed_time": False}))
    sign_in(app, provider)
    cookie = app.cookies["sid"]
    redis.pause()
    resume = threading.Timer(STORE_TIMEOUT + 0.3, redis.resume)  # after the first load gave up
    resume.start()
    try:
        with pytest.warns(Warning, match="Invalidating corrupt session"):
            answer = app.get("/todos", headers=JSON, status=401)  # signed out, under a new session
    finally:
        resume.join()
    assert answer.json["error"] and app.cookies["sid"] != cookie


@pytest.mark.parametrize("build", [installed, wrapped], ids=["msal_wsgi-installs-beaker", "app-wraps-beaker"])
def test_a_store_that_answers_again_after_one_timeout_keeps_the_user(provider, redis, build):
    """The control's timing, with beaker_config(): one 503, then the same user."""
    app = build(provider, redis)
    token = sign_in(app, provider).json["token"]["value"]
    cookie = app.cookies["sid"]
    redis.pause()
    resume = threading.Timer(STORE_TIMEOUT + 0.3, redis.resume)
    resume.start()
    try:
        app.get("/todos", headers=JSON, status=503)
    finally:
        resume.join()
    assert app.get("/todos").json["token"]["value"] == token and app.cookies["sid"] == cookie


def test_a_refresh_whose_save_meets_a_pause_is_saved_once_the_store_answers(proxy, redis):
    """With rotating refresh tokens the provider retires the old one as it answers: a refreshed cache that
    is not saved would sign the user out at the next refresh. Its save is tried again, under the lock."""
    provider = proxy.provider
    app = installed(provider, redis, client_id="todo-web-rotating", session_lock=redis.url)
    first = sign_in(app, provider).json["token"]["value"]
    time.sleep(STALE_AFTER)
    proxy.fault = Fault(delay=1.0)  # the refresh takes a second, during which the store pauses
    pause = threading.Timer(0.5, redis.pause)
    pause.start()
    resume = threading.Timer(3.5, redis.resume)
    resume.start()
    try:
        started = time.monotonic()
        answer = app.get("/todos", headers=JSON)  # loaded before the pause; refreshed; saved after it
        took = time.monotonic() - started
    finally:
        pause.join()
        resume.join()
        proxy.fault = None
    assert answer.status_int == 200 and answer.json["token"]["value"] != first
    assert 3.0 < took < 8.0  # it waited for the store instead of giving up at its first timeout
    time.sleep(STALE_AFTER)
    mark = provider.mark()
    assert app.get("/todos", headers=JSON).json["token"]["value"] != answer.json["token"]["value"]
    assert [t["status"] for t in provider.token_requests_since(mark)] == [200]  # the rotated one was kept


def _stored_raw(redis, sid, data: bytes) -> None:
    """Store ``data`` as the Beaker-encoded body of session ``sid`` (base64 of the serializer's bytes)."""
    with redis.client() as client:
        client.set(f"beaker_cache:{sid}:session", pickle.dumps(base64.b64encode(data).decode("ascii")))


class Gone:
    """Stands for a class of the app that a new release removed: its pickles name a module that is gone."""


def _pickle_of_a_removed_class() -> bytes:
    data = pickle.dumps({"msal_wsgi.user": Gone()})
    return data.replace(Gone.__module__.encode(), b"x" * len(Gone.__module__))  # same length: framing intact


@pytest.mark.parametrize("data", [_pickle_of_a_removed_class(), pickle.dumps({"a": 1})[:-5], b"not a pickle at all"],
                         ids=["a-class-no-longer-importable", "truncated", "garbage"])
def test_session_data_no_one_can_decode_starts_a_new_session(provider, redis, data, caplog):
    app = installed(provider, redis)
    sign_in(app, provider)
    sid = app.cookies["sid"]
    _stored_raw(redis, sid, data)
    with caplog.at_level(logging.WARNING, logger="msal_wsgi"):
        answer = app.get("/todos", headers=JSON, status=401)
    assert answer.json["error"] and app.cookies["sid"] != sid
    assert "cannot be decoded" in caplog.text
    assert app.get("/auth/login", {"next": "/todos"}).status_int == 302  # and signing in works again


@pytest.mark.parametrize("cookie", ["x" * 300, "../../../../etc/passwd", "{sid}x", "a/{sid}", "{sid_upper}", ""],
                         ids=["too-long-for-a-file-name", "a-path", "longer", "a-path-to-a-real-id", "upper-case",
                              "empty"])
def test_a_session_id_beaker_did_not_issue_starts_a_new_session(provider, tmp_path, cookie):
    """With file storage Beaker names the file after the id: one too long failed at the save (after the
    app answered), and ``a/<id>`` named ``<id>``'s file."""
    options = {"type": "file", "data_dir": str(tmp_path / "sessions"), "key": "sid", "save_accessed_time": False}
    app = webtest.TestApp(MsalMiddleware(echo_app, **settings_for(provider, session_options=options)))
    sign_in(app, provider)
    sid = app.cookies["sid"]
    other = webtest.TestApp(app.app)
    other.set_cookie("sid", cookie.format(sid=sid, sid_upper=sid.upper()))
    sign_in_page = other.get("/todos")  # not signed in as the owner of sid: a new session, which is saved
    assert sign_in_page.status_int == 302 and other.cookies["sid"] not in (sid, cookie)
    assert all(len(f.name) < 64 for f in (tmp_path / "sessions").rglob("*"))
    assert app.get("/todos").json["user"]["sub"] == "alice"  # the owner is still signed in
