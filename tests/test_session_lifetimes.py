"""A sign-in ends by itself: after ``idle_timeout`` without requests, ``max_session_lifetime`` after it
happened, or when the provider no longer vouches for the account (``account_recheck_interval``).

msal_wsgi enforces the lifetimes itself, from the user record, with Beaker's
``save_accessed_time = false``: "last seen" is written at most once per ``session_activity_interval``.
A browser whose sign-in ended signs in again and comes back to its page; an API caller gets 401; the
session leaves the store.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from beaker.container import MemoryNamespaceManager
from support.apps import JSON, SECRETS, complete_sign_in, make_testapp, sign_in
from support.environment import ini_settings, msal_env
from support.sessions import SESSION_USER, cache_secrets, session_of, stored_session

from msal_wsgi import ConfigurationError, Settings

pytestmark = pytest.mark.both_provider_modes  # Entra-like and stock provider (issue 10)


class CountingMemory(MemoryNamespaceManager):
    """Beaker's memory store, its writes counted."""

    writes = 0

    def __setitem__(self, key: str, value: Any) -> None:
        type(self).writes += 1
        super().__setitem__(key, value)


def lasting(provider: Any, **settings: Any) -> Any:
    return make_testapp(provider, session={"session.namespace_class": CountingMemory}, **settings)


def test_an_idle_sign_in_ends_and_the_browser_signs_in_again_back_to_its_page(provider):
    app = lasting(provider, idle_timeout=2, session_activity_interval=1)
    sign_in(app, provider, "/todos?page=2")
    for _ in range(3):  # in use: each request within the idle timeout keeps it going
        time.sleep(0.9)
        assert app.get("/todos?page=2").status_int == 200
    old = app.cookies["sid"]
    time.sleep(2.05)
    again = app.get("/todos?page=2")
    assert again.status_int == 302 and again.location.startswith(provider.issuer + "/auth?")
    assert stored_session(old, app.session_options).is_new  # the ended session left the store
    back = complete_sign_in(app, provider, again)
    assert back.location == "http://localhost/todos?page=2"


def test_an_api_caller_whose_sign_in_ended_gets_401(provider):
    app = lasting(provider, idle_timeout=2, session_activity_interval=1)
    sign_in(app, provider)
    time.sleep(2.05)
    answer = app.get("/todos", headers=JSON, status=401)
    assert answer.json["error"] == "interaction_required" and "idle_timeout" in answer.json["error_description"]
    assert answer.headers["WWW-Authenticate"].startswith('Session realm="msal_wsgi"')


def test_a_sign_in_ends_at_its_max_lifetime_however_active(provider):
    app = lasting(provider, max_session_lifetime=2, idle_timeout=0)
    sign_in(app, provider)
    started = time.time()
    while time.time() - started < 1.8:
        assert app.get("/todos").status_int == 200
        time.sleep(0.3)
    time.sleep(max(0.0, 2.05 - (time.time() - started)))
    answer = app.get("/todos", headers=JSON, status=401)
    assert "max_session_lifetime" in answer.json["error_description"]


def test_last_seen_is_written_at_most_once_per_interval(provider):
    app = lasting(provider, idle_timeout=8, session_activity_interval=2)
    sign_in(app, provider)
    CountingMemory.writes = 0
    for _ in range(200):  # a burst inside the interval
        assert app.get("/todos").status_int == 200
    assert CountingMemory.writes == 0
    time.sleep(2.05)
    for _ in range(50):
        assert app.get("/todos").status_int == 200
    assert CountingMemory.writes == 1  # the first request after the interval
    seen = session_of(app)[SESSION_USER]["seen"]
    assert time.time() - 2 < seen <= time.time()


def test_current_user_is_none_once_the_sign_in_ended_and_public_pages_write_nothing(provider):
    def public(environ: dict, start_response: Any) -> list[bytes]:
        user = environ["msal_wsgi.current_user"]()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [(user.username if user else "nobody").encode()]

    app = lasting(provider, app=public, idle_timeout=2, session_activity_interval=1)
    complete_sign_in(app, provider, app.get("/todos"))
    assert app.get("/").text == "alice"
    CountingMemory.writes = 0
    time.sleep(2.05)
    assert app.get("/").text == "nobody"
    assert CountingMemory.writes == 0


def test_lifetimes_are_settings_in_python_ini_and_environment():
    issuer = "https://id.example/realm"
    ini = Settings.from_mapping(ini_settings(issuer, idle_timeout="600", max_session_lifetime="3600",
                                             session_activity_interval="60", account_recheck_interval="120"))
    env = Settings.from_env(msal_env(issuer, MSAL_IDLE_TIMEOUT="600", MSAL_MAX_SESSION_LIFETIME="3600",
                                     MSAL_SESSION_ACTIVITY_INTERVAL="60", MSAL_ACCOUNT_RECHECK_INTERVAL="120"))
    python = Settings(**{k: v for k, v in ini_settings(issuer).items() if k != "protect"},
                      idle_timeout=600, max_session_lifetime=3600, session_activity_interval=60,
                      account_recheck_interval=120)
    for settings in (ini, env, python):
        assert (settings.idle_timeout, settings.max_session_lifetime, settings.session_activity_interval,
                settings.account_recheck_interval) == (600, 3600, 60, 120)
    defaults = Settings.from_mapping(ini_settings(issuer))
    assert (defaults.idle_timeout, defaults.max_session_lifetime, defaults.account_recheck_interval) == \
        (7200, 86400, 900)


@pytest.mark.parametrize(("setting", "named"), [
    ({"MSAL_IDLE_TIMEOUT": "-1"}, "MSAL_IDLE_TIMEOUT"),
    ({"MSAL_MAX_SESSION_LIFETIME": "soon"}, "MSAL_MAX_SESSION_LIFETIME"),
    ({"MSAL_IDLE_TIMEOUT": "600", "MSAL_SESSION_ACTIVITY_INTERVAL": "301"}, "MSAL_SESSION_ACTIVITY_INTERVAL"),
    ({"MSAL_SESSION_ACTIVITY_INTERVAL": "0"}, "MSAL_SESSION_ACTIVITY_INTERVAL"),
    ({"MSAL_BACKCHANNEL_LOGOUT_PATH": "/auth/logout"}, "MSAL_BACKCHANNEL_LOGOUT_PATH"),
], ids=["negative-idle", "not-a-number", "interval-over-half-the-idle-timeout", "no-interval",
        "logout-channel-on-the-sign-out-path"])
def test_bad_lifetimes_are_refused_naming_the_setting(setting, named):
    with pytest.raises(ConfigurationError, match=named):
        Settings.from_env(msal_env("https://id.example/realm", **setting))


# -- the account, re-checked with the provider (prefixes without scopes) ---------------------------

def test_a_prefix_without_scopes_rechecks_the_account_and_a_revoked_grant_loses_access(provider):
    app = make_testapp(provider, account_recheck_interval=2)
    sign_in(app, provider, "/profile")  # /profile: a signed-in user, no access token
    mark = provider.mark()
    for _ in range(5):
        assert app.get("/profile").status_int == 200
    assert provider.token_requests_since(mark) == []  # within the interval: nobody asks the provider
    time.sleep(2.05)
    assert app.get("/profile").status_int == 200
    assert len(provider.token_requests_since(mark)) == 1  # a refresh of the sign-in: still allowed
    assert app.get("/profile").status_int == 200
    assert len(provider.token_requests_since(mark)) == 1

    (refresh_token,) = cache_secrets(session_of(app), "RefreshToken")
    provider.revoke(refresh_token, "todo-web", SECRETS["todo-web"])  # the provider withdraws the grant
    assert app.get("/profile").status_int == 200  # until the next re-check...
    time.sleep(2.05)
    old = app.cookies["sid"]
    answer = app.get("/profile", headers=JSON, status=401)  # ...within the interval, access is lost
    assert answer.json["error"] == "interaction_required"
    assert stored_session(old).is_new  # and the session is gone
    again = app.get("/profile")
    assert again.status_int == 302 and again.location.startswith(provider.issuer + "/auth?")


def test_parallel_requests_recheck_once(provider):
    import threading

    app = make_testapp(provider, account_recheck_interval=1)
    sign_in(app, provider, "/profile")
    time.sleep(1.05)
    mark = provider.mark()
    statuses: list[int] = []
    threads = [threading.Thread(target=lambda: statuses.append(app.get("/profile").status_int)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 6
    assert len(provider.token_requests_since(mark)) == 1
