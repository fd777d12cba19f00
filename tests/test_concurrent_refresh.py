"""Parallel requests of one user with an expired access token refresh it exactly once.

The provider's ``todo-web-rotating`` client rotates refresh tokens: a second refresh
with the same refresh token, or a cache written back with the old one, would sign the
user out. Its access tokens live 303 s, which msal treats as expired 3 s after issue.

The Redis lock is tested against a real Redis server; a failing refresh comes from
the fault-injecting proxy in front of the real provider (support.faults).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import webtest
from support.apps import SECRETS, TODO_READ, echo_app, make_testapp, settings_for, sign_in
from support.faults import Fault, FaultyProxy
from support.servers import Browser, GunicornServer, RedisServer, free_port

from msal_wsgi import MsalMiddleware, SessionUnavailable
from msal_wsgi.locks import RedisLock

N = 8
ROTATING = "todo-web-rotating"
EXPIRES_AFTER = 3.3  # seconds until msal's 300 s margin makes the access token stale


def _in_parallel(count: int, call):
    barrier = threading.Barrier(count)

    def one(_):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_parallel_threads_refresh_once_and_all_succeed(provider):
    app = make_testapp(provider, client_id=ROTATING)
    first = sign_in(app, provider).json["token"]["value"]
    time.sleep(EXPIRES_AFTER)
    mark = provider.mark()

    def request():
        browser_tab = webtest.TestApp(app.app)
        browser_tab.set_cookie("sid", app.cookies["sid"])
        return browser_tab.get("/todos")

    answers = _in_parallel(N, request)
    assert [a.status_int for a in answers] == [200] * N
    tokens = {a.json["token"]["value"] for a in answers}
    assert len(tokens) == 1 and first not in tokens
    assert len(provider.token_requests_since(mark)) == 1


def test_the_rotated_refresh_token_is_kept_for_the_next_refresh(provider):
    app = make_testapp(provider, client_id=ROTATING)
    sign_in(app, provider)
    time.sleep(EXPIRES_AFTER)
    _in_parallel(4, lambda: webtest.TestApp(app.app, cookiejar=app.cookiejar).get("/todos"))
    mark = provider.mark()
    # Another resource needs the refresh token now: had any request written back the
    # old (rotated, hence revoked) one, this would fail with invalid_grant.
    body = app.get("/todos", {"acquire": "api://r1/access"}).json
    assert body["acquired"]["scopes"] == ["api://r1/access"]
    assert len(provider.token_requests_since(mark)) == 1


def test_parallel_requests_across_gunicorn_workers_refresh_once(provider, tmp_path):
    port = free_port()
    env = {"MSAL_CLIENT_ID": ROTATING, "MSAL_CLIENT_SECRET": SECRETS[ROTATING],
           "MSAL_OIDC_AUTHORITY": provider.issuer, "MSAL_REDIRECT_URI": f"http://127.0.0.1:{port}/auth/callback",
           "MSAL_PROTECT": f"/todos = {TODO_READ}", "SESSION_DIR": str(tmp_path / "sessions")}
    with GunicornServer("tests.support.gunicorn_app:application", tmp_path, env=env, port=port, workers=3) as web:
        browser = Browser(provider)
        assert browser.sign_in(web.url + "/todos").json()["token"]["scopes"] == [TODO_READ]
        cookies = browser.session.cookies.get_dict()
        time.sleep(EXPIRES_AFTER)
        mark = provider.mark()

        def request():
            tab = Browser(provider)
            tab.session.cookies.update(cookies)
            response = tab.get(web.url + "/todos")
            return response.status_code, response.json()["token"]["value"] if response.status_code == 200 else None

        answers = _in_parallel(3 * N, request)
        assert [status for status, _ in answers] == [200] * (3 * N)
        assert len({token for _, token in answers}) == 1
        assert len(provider.token_requests_since(mark)) == 1
        assert len(web.worker_pids()) > 1
        after = browser.get(web.url + "/todos", params={"acquire": "api://r1/access"}).json()
        assert after["acquired"]["scopes"] == ["api://r1/access"]


def test_two_app_instances_sharing_redis_sessions_and_lock_refresh_once(provider, tmp_path):
    """Two middleware instances, as two servers: only the Redis lock serialises their refreshes."""
    with RedisServer(tmp_path / "redis") as redis:
        options = {"type": "ext:redis", "url": redis.url, "key": "sid"}
        servers = [webtest.TestApp(MsalMiddleware(echo_app, **settings_for(
            provider, client_id=ROTATING, session_options=options, session_lock=redis.url))) for _ in range(2)]
        first = sign_in(servers[0], provider).json["token"]["value"]
        cookie = servers[0].cookies["sid"]
        time.sleep(EXPIRES_AFTER)
        mark = provider.mark()
        turn = iter(range(N))

        def request():
            tab = webtest.TestApp(servers[next(turn) % 2].app)
            tab.set_cookie("sid", cookie)
            return tab.get("/todos")

        answers = _in_parallel(N, request)
        tokens = {a.json["token"]["value"] for a in answers}
        assert len(tokens) == 1 and first not in tokens
        assert len(provider.token_requests_since(mark)) == 1
        with redis.client() as client:
            assert client.keys("msal_wsgi.lock.*") == []  # all released


def test_the_redis_lock_is_released_when_the_refresh_fails(provider, tmp_path):
    with RedisServer(tmp_path / "redis") as redis, FaultyProxy(provider) as proxy, redis.client() as client:
        app = make_testapp(provider, client_id="todo-web-short", oidc_authority=proxy.issuer,
                           session_lock=RedisLock(redis.url, wait=2))
        sign_in(app, provider)
        time.sleep(EXPIRES_AFTER)
        proxy.fault = Fault(hang_up=True)
        app.get("/todos", status=503)
        assert client.keys("msal_wsgi.lock.*") == []
        proxy.fault = None
        assert app.get("/todos").json["token"]["scopes"] == [TODO_READ]  # not a 503 after waiting 2 s


def test_a_redis_lock_left_by_a_dead_holder_expires_after_its_ttl(provider, tmp_path):
    with RedisServer(tmp_path / "redis") as redis:
        lock = RedisLock(redis.url, ttl=1, wait=5)
        app = make_testapp(provider, client_id="todo-web-short", session_lock=lock)
        sign_in(app, provider)
        time.sleep(EXPIRES_AFTER)
        crashed = RedisLock(redis.url, ttl=1)(app.cookies["sid"])
        crashed.__enter__()  # and never leaves: its process died holding the lock
        started = time.monotonic()
        assert app.get("/todos").json["token"]["scopes"] == [TODO_READ]
        assert 0.8 < time.monotonic() - started < 2.5
        live_holder, waiter = RedisLock(redis.url, ttl=10)("held"), RedisLock(redis.url, wait=0.3)("held")
        with pytest.raises(SessionUnavailable, match="timed out"), live_holder, waiter:  # waits, then 503
            pass
        redis.stop()
        with pytest.raises(SessionUnavailable, match="unavailable"), lock("any"):
            pass
        del crashed
