"""Bad configuration fails at construction, naming the setting."""

from __future__ import annotations

import logging

import pytest
import webtest
from beaker.middleware import SessionMiddleware
from support.apps import OFFLINE_ISSUER
from support.environment import ini_settings

from msal_wsgi import ConfigurationError, MsalMiddleware, Protect, Settings
from msal_wsgi.settings import parse_protect

GOOD = {"client_id": "id", "client_credential": "secret", "oidc_authority": OFFLINE_ISSUER,
        "redirect_uri": "https://app.example/auth/callback"}


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


@pytest.mark.parametrize("changes,setting", [
    ({"client_id": ""}, "client_id"),
    ({"client_credential": None}, "client_secret"),
    ({"client_secret": "also"}, "client_secret"),
    ({"oidc_authority": None}, "authority"),
    ({"authority": "https://login.microsoftonline.com/t"}, "authority"),
    ({"oidc_authority": "http://id.example/realm"}, "oidc_authority"),
    ({"oidc_authority": "https://id.example"}, "oidc_authority"),
    ({"redirect_uri": "/auth/callback"}, "redirect_uri"),
    ({"redirect_uri": "http://app.example/auth/callback"}, "redirect_uri"),
    ({"redirect_uri": "https://app.example/cb?x=1"}, "redirect_uri"),
    ({"protect": {"todos": Protect()}}, "protect"),
    ({"protect": {"/todos/": Protect()}}, "protect"),
    ({"protect": {"/a//b": Protect()}}, "protect"),
    ({"protect": {"/a/../b": Protect()}}, "protect"),
    ({"protect": {"/auth": Protect()}}, "protect"),
    ({"protect": {"/": Protect()}}, "protect"),
    ({"protect": {"/todos": ["openid"]}}, "protect.read"),
    ({"protect": {"/todos": {"read": ["a"], "delete": ["b"]}}}, "protect"),
    ({"response_mode": "fragment"}, "response_mode"),
    ({"prompt": "always"}, "prompt"),
    ({"max_pending_sign_ins": 0}, "max_pending_sign_ins"),
    ({"http_timeout": 0}, "http_timeout"),
    ({"login_path": "login"}, "login_path"),
    ({"logout_path": "/auth/login"}, "logout_path"),
    ({"session_options": {"type": "cookie"}}, "session.type"),
    ({"allowed_redirect_origins": ("https://ok.example/path",)}, "allowed_redirect_origins"),
])
def test_bad_setting_is_named(changes, setting):
    with pytest.raises(ConfigurationError) as raised:
        MsalMiddleware(app, **dict(GOOD, **changes))
    assert raised.value.setting == setting
    assert isinstance(raised.value, ValueError)


def test_protect_shorthands():
    s = Settings(**GOOD, protect={"/a": ["x"], "/b": {"read": "r1 r2", "write": ["w"]}, "/c": Protect()})
    assert s.protect["/a"] == Protect(["x"]) and s.protect["/b"].scopes_for("PUT") == ("w",)
    assert s.protect["/b"].read == ("r1", "r2") and s.protect["/c"].read == ()


def test_ini_and_env_feed_the_same_settings():
    ini = {"client_id": "from-ini", "client_secret": "s", "oidc_authority": OFFLINE_ISSUER + "/",
           "redirect_uri": "https://app.example/auth/callback", "http_timeout": "2.5",
           "protect": "/todos = api://todo/R | api://todo/RW\n/me =", "session.type": "file"}
    s = Settings.from_mapping(ini, env={"MSAL_CLIENT_ID": "from-env"})
    assert s.client_id == "from-env" and s.oidc_authority == OFFLINE_ISSUER
    assert s.http_timeout == 2.5 and s.session_options == {"type": "file"}
    assert s.protect == {"/todos": Protect(["api://todo/R"], ["api://todo/RW"]), "/me": Protect()}
    e = Settings.from_env({"MSAL_CLIENT_ID": "i", "MSAL_CLIENT_SECRET": "s", "MSAL_AUTHORITY":
                           "https://login.microsoftonline.com/contoso", "MSAL_REDIRECT_URI":
                           "http://localhost:5000/auth/callback", "MSAL_PROTECT": "/todos=a;/x=b|c"})
    assert e.protect["/x"].scopes_for("POST") == ("c",) and e.client_credential == "s"


@pytest.mark.parametrize("ini,setting", [
    ({"client_secretx": "s"}, "client_secretx"),
    ({"http_timeout": "soon"}, "http_timeout"),
    ({"protect": "/todos api://x"}, "protect"),
    ({"protect": "/a = x\n/a = y"}, "protect"),
    ({"client_secret": "s", "client_certificate": "/c.pem"}, "client_certificate"),
    ({"client_certificate": "/does/not/exist.pem"}, "client_certificate"),
])
def test_bad_ini_values_are_named(ini, setting):
    base = ini_settings(OFFLINE_ISSUER, protect=None)
    if "client_certificate" in ini and "client_secret" not in ini:
        base.pop("client_secret")
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_mapping({**base, **ini})
    assert raised.value.setting == setting


def test_parse_protect_reads_lines_and_semicolons():
    assert parse_protect("/a = x y | z;\n /b = ") == {"/a": Protect(["x", "y"], ["z"]), "/b": Protect()}


def test_secret_never_in_repr():
    assert "secret" not in repr(Settings(**GOOD))


def test_no_session_middleware_is_a_clear_500_logged_once(caplog):
    test = webtest.TestApp(MsalMiddleware(app, **GOOD, protect={"/todos": Protect()}))
    with caplog.at_level(logging.ERROR, logger="msal_wsgi"):
        first = test.get("/todos", status=500)
        test.get("/todos", status=500)
    assert "Server misconfigured" in first.text and "Traceback" not in first.text
    assert len([r for r in caplog.records if "SessionMiddleware" in r.getMessage()]) == 1
    assert test.get("/public").text == "ok"


def test_cookie_only_beaker_session_is_refused_at_request_time(caplog):
    inner = MsalMiddleware(app, **GOOD, protect={"/todos": Protect()})
    test = webtest.TestApp(SessionMiddleware(inner, {"session.type": "cookie", "session.validate_key": "k" * 32}))
    with caplog.at_level(logging.ERROR, logger="msal_wsgi"):
        test.get("/todos", status=500)
    assert "cookie-only" in caplog.text


def test_session_options_install_beaker_in_front():
    settings = dict(GOOD, oidc_authority="https://127.0.0.1:9/realm")  # nothing listens on port 9
    test = webtest.TestApp(MsalMiddleware(app, **settings, protect={"/todos": Protect()},
                                          session_options={"type": "memory"}))
    assert test.get("/public").text == "ok"
    unavailable = test.get("/todos", status=503)  # a session was there; the provider was not
    assert unavailable.headers["Retry-After"] == "30"
