"""Parallel requests of one user with an expired access token refresh it exactly once.

The provider's ``todo-web-rotating`` client rotates refresh tokens: a second refresh
with the same refresh token, or a cache written back with the old one, would sign the
user out. Its access tokens live 303 s, which msal treats as expired 3 s after issue.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import webtest
from support.apps import SECRETS, TODO_READ, make_testapp, sign_in
from support.servers import Browser, GunicornServer, free_port

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
