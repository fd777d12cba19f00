"""Parallel requests of one user with an expired access token refresh it exactly once.

The provider's ``todo-web-rotating`` client rotates refresh tokens: a second refresh
with the same refresh token, or a cache written back with the old one, would sign the
user out. Its access tokens live 303 s, which msal treats as expired 3 s after issue.

Where requests run in several processes, the token endpoint is slowed down by the
fault-injecting proxy in front of the provider (support.faults; the request is
forwarded after the delay): every parallel request reaches the refresh while the
first one is still waiting for the provider, so without a lock spanning the
processes each would refresh. The Redis lock is tested against a real Redis server.
"""

from __future__ import annotations

import time

import pytest
import webtest
from support.apps import STALE_AFTER, TODO_READ, browser_of, echo_app, in_parallel, make_testapp, settings_for, sign_in
from support.environment import msal_env
from support.faults import Fault
from support.servers import Browser, GunicornServer, RedisServer, free_port

from msal_wsgi import MsalMiddleware, SessionUnavailable
from msal_wsgi.locks import RedisLock

N = 8
ROTATING = "todo-web-rotating"
#: How long the token endpoint takes to answer a refresh, in the tests of several processes.
SLOW_REFRESH = Fault(delay=1.5)


def test_parallel_threads_refresh_once_and_all_succeed(provider):
    app = make_testapp(provider, client_id=ROTATING)
    first = sign_in(app, provider).json["token"]["value"]
    time.sleep(STALE_AFTER)
    mark = provider.mark()
    answers = in_parallel(N, lambda: browser_of(app, sid=app.cookies["sid"]).get("/todos"))
    assert [a.status_int for a in answers] == [200] * N
    tokens = {a.json["token"]["value"] for a in answers}
    assert len(tokens) == 1 and first not in tokens
    assert len(provider.token_requests_since(mark)) == 1


def test_the_rotated_refresh_token_is_kept_for_the_next_refresh(provider):
    app = make_testapp(provider, client_id=ROTATING)
    sign_in(app, provider)
    time.sleep(STALE_AFTER)
    in_parallel(4, lambda: webtest.TestApp(app.app, cookiejar=app.cookiejar).get("/todos"))
    mark = provider.mark()
    # Another resource needs the refresh token now: had any request written back the
    # old (rotated, hence revoked) one, this would fail with invalid_grant.
    body = app.get("/todos", {"acquire": "api://r1/access"}).json
    assert body["acquired"]["scopes"] == ["api://r1/access"]
    assert len(provider.token_requests_since(mark)) == 1


def test_parallel_requests_across_gunicorn_workers_refresh_once(proxy, tmp_path):
    """Three workers of four threads, 24 requests at once, a refresh that takes 1.5 s: one refresh."""
    provider = proxy.provider
    port = free_port()
    env = msal_env(provider.issuer, ROTATING, redirect_uri=f"http://127.0.0.1:{port}/auth/callback",
                   protect=f"/todos = {TODO_READ}", SESSION_DIR=str(tmp_path / "sessions"))
    threads = ["--worker-class", "gthread", "--threads", "4"]
    with GunicornServer("tests.support.gunicorn_app:application", tmp_path, env=env, port=port, workers=3,
                        args=threads) as web:
        browser = Browser(provider)
        assert browser.sign_in(web.url + "/todos").json()["token"]["scopes"] == [TODO_READ]
        cookies = browser.session.cookies.get_dict()
        time.sleep(STALE_AFTER)
        proxy.fault = SLOW_REFRESH
        mark, seen = provider.mark(), len(web.access_log())

        def request():
            tab = Browser(provider)
            tab.session.cookies.update(cookies)
            response = tab.get(web.url + "/todos")
            return response.status_code, response.json()["token"]["value"] if response.status_code == 200 else None

        answers = in_parallel(3 * N, request)
        assert [status for status, _ in answers] == [200] * (3 * N)
        assert len({token for _, token in answers}) == 1
        assert len(provider.token_requests_since(mark)) == 1
        assert len({pid for pid, *_ in web.access_log(at_least=seen + 3 * N)[seen:]}) > 1  # several workers
        proxy.fault = None
        after = browser.get(web.url + "/todos", params={"acquire": "api://r1/access"}).json()
        assert after["acquired"]["scopes"] == ["api://r1/access"]


def test_two_app_instances_sharing_redis_sessions_and_lock_refresh_once(proxy, tmp_path):
    """Two middleware instances, as two servers: only the Redis lock serialises their refreshes."""
    provider = proxy.provider
    with RedisServer(tmp_path / "redis") as redis:
        options = {"type": "ext:redis", "url": redis.url, "key": "sid"}
        servers = [webtest.TestApp(MsalMiddleware(echo_app, **settings_for(
            provider, client_id=ROTATING, session_options=options, session_lock=redis.url)))
            for _ in range(2)]
        first = sign_in(servers[0], provider).json["token"]["value"]
        cookie = servers[0].cookies["sid"]
        time.sleep(STALE_AFTER)
        proxy.fault = SLOW_REFRESH
        mark = provider.mark()
        turn = iter(range(N))

        def request():
            tab = webtest.TestApp(servers[next(turn) % 2].app)
            tab.set_cookie("sid", cookie)
            return tab.get("/todos")

        answers = in_parallel(N, request)
        tokens = {a.json["token"]["value"] for a in answers}
        assert len(tokens) == 1 and first not in tokens
        assert len(provider.token_requests_since(mark)) == 1
        with redis.client() as client:
            assert client.keys("msal_wsgi.lock.*") == []  # all released


def test_the_redis_lock_is_released_when_the_refresh_fails(proxy, tmp_path):
    provider = proxy.provider
    with RedisServer(tmp_path / "redis") as redis, redis.client() as client:
        app = make_testapp(provider, client_id="todo-web-short", session_lock=RedisLock(redis.url, wait=2))
        sign_in(app, provider)
        time.sleep(STALE_AFTER)
        proxy.fault = Fault(hang_up=True)
        app.get("/todos", status=503)
        assert client.keys("msal_wsgi.lock.*") == []
        proxy.fault = None
        assert app.get("/todos").json["token"]["scopes"] == [TODO_READ]  # not a 503 after waiting 2 s


def test_a_redis_lock_left_by_a_dead_holder_expires_after_its_ttl(provider, tmp_path):
    ttl = 1.0
    with RedisServer(tmp_path / "redis") as redis:
        lock = RedisLock(redis.url, ttl=ttl)
        app = make_testapp(provider, client_id="todo-web-short", session_lock=lock)
        sign_in(app, provider)
        time.sleep(STALE_AFTER)
        mark, crashed_at = provider.mark(), time.time()
        crashed = RedisLock(redis.url, ttl=ttl)(app.cookies["sid"])
        crashed.__enter__()  # and never leaves: its process died holding the lock
        assert app.get("/todos").json["token"]["scopes"] == [TODO_READ]
        (refresh,) = provider.token_requests_since(mark)
        assert refresh["t"] >= crashed_at + ttl  # the refresh waited for the dead holder's lock to expire
        live_holder, waiter = RedisLock(redis.url, ttl=10)("held"), RedisLock(redis.url, wait=0.3)("held")
        with pytest.raises(SessionUnavailable, match="timed out"), live_holder, waiter:  # waits, then 503
            pass
        redis.stop()
        with pytest.raises(SessionUnavailable, match="unavailable"), lock("any"):
            pass
        del crashed
