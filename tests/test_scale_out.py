"""Two gunicorn servers sharing sessions in Redis, as behind a load balancer without sticky sessions.

Both servers have the same configuration, as they would behind one public URL:
their redirect_uri is server A's callback, and they share the session key. Each keeps its to-do store in a data
directory of its own, so Redis is the only thing they share: the sessions, and
the sample's default session_lock, under which one server refreshes for all.
"""

from __future__ import annotations

import time

from support.apps import STALE_AFTER
from support.servers import Browser, RedisServer, sample_server
from support.sessions import TEST_SESSION_KEYS

SHORT = "todo-web-short"
#: The servers share the session key, as they share the store (alone, the sample makes a key of its own).
KEY = {"MSAL_SESSION_KEYS": TEST_SESSION_KEYS[0]}


def test_sign_in_on_one_server_refresh_on_the_other_sign_out_on_either(provider, tmp_path):
    with RedisServer(tmp_path / "redis") as redis, \
            sample_server(provider, tmp_path / "a", client_id=SHORT, SAMPLE_SESSION_URL=redis.url, **KEY) as a, \
            sample_server(provider, tmp_path / "b", client_id=SHORT, SAMPLE_SESSION_URL=redis.url, **KEY,
                          MSAL_REDIRECT_URI=a.url + "/auth/callback") as b:
        browser = Browser(provider)

        # Server B starts the sign-in; the provider answers at A's callback, which finishes it.
        authorize = browser.get(b.url + "/todos")
        assert f"redirect_uri=http%3A%2F%2F127.0.0.1%3A{a.port}%2Fauth%2Fcallback" in authorize.headers["location"]
        back = browser.complete_sign_in(authorize, login="scaled-out")
        assert back.status_code == 302 and back.url.startswith(a.url)
        assert "Signed in as <b>scaled-out</b>" in browser.follow(back).text

        # B serves the user from the session A wrote: the token is in it, nothing to redeem.
        mark = provider.mark()
        assert "Signed in as <b>scaled-out</b>" in browser.get(b.url + "/todos").text
        assert provider.token_requests_since(mark) == []

        # The access token expires: B refreshes it once, and A uses what B saved.
        time.sleep(STALE_AFTER)
        mark = provider.mark()
        assert "Signed in as" in browser.get(b.url + "/todos").text
        assert len(provider.token_requests_since(mark)) == 1
        assert "Signed in as" in browser.get(a.url + "/todos").text
        assert len(provider.token_requests_since(mark)) == 1

        with redis.client() as client:
            assert client.keys("beaker_cache:*:session")
        assert not (tmp_path / "a" / "data" / "sessions").exists()

        # Signing out on A signs the user out on B as well.
        end_session = browser.sign_out(a.url + "/auth/logout")
        assert end_session.startswith(provider.metadata["end_session_endpoint"] + "?")
        assert browser.get(b.url + "/todos").headers["location"].startswith(provider.issuer + "/auth?")
