"""Bad configuration fails at construction, naming the setting."""

from __future__ import annotations

import dataclasses
import logging

import pytest
import webtest
from beaker.middleware import SessionMiddleware
from support.apps import OFFLINE_ISSUER
from support.environment import ini_settings

from msal_wsgi import ConfigurationError, MsalMiddleware, Protect, Settings
from msal_wsgi.settings import ENV_VARS, parse_protect

GOOD = {"client_id": "id", "client_credential": "secret", "oidc_authority": OFFLINE_ISSUER,
        "redirect_uri": "https://app.example/auth/callback"}


INI = ini_settings(OFFLINE_ISSUER)


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
    # the URL checks, each rule on its own
    ({"oidc_authority": "https://user@id.example/realm"}, "oidc_authority"),
    ({"oidc_authority": "https://user:pw@id.example/realm"}, "oidc_authority"),
    ({"oidc_authority": "https://id.example/realm#frag"}, "oidc_authority"),
    ({"oidc_authority": "https:///realm"}, "oidc_authority"),
    ({"oidc_authority": "wss://id.example/realm"}, "oidc_authority"),
    ({"oidc_authority": "ftp://id.example/realm"}, "oidc_authority"),
    ({"oidc_authority": "http://localhost/realm"}, "oidc_authority"),  # no loopback exception for authorities
    ({"redirect_uri": ""}, "redirect_uri"),
    ({"redirect_uri": "http://127.0.0.2/auth/callback"}, "redirect_uri"),
    ({"redirect_uri": "https://app.example/auth/callback#x"}, "redirect_uri"),
    ({"post_logout_redirect_uri": "http://app.example/"}, "post_logout_redirect_uri"),
    # scopes and rules
    ({"protect": {"/todos": [""]}}, "protect.read"),
    ({"protect": {"/todos": ["two words"]}}, "protect.read"),
    ({"protect": {"/todos": [42]}}, "protect.read"),
    ({"protect": {"/todos": {"write": ["offline_access"]}}}, "protect.write"),
    ({"protect": {"/todos": 42}}, "protect"),
    ({"protect": ["/todos"]}, "protect"),
    ({"protect": {"/to%64os": Protect()}}, "protect"),
    ({"protect": {"/todos/.": Protect()}}, "protect"),
    ({"login_scopes": ["profile"]}, "login_scopes"),
    # the other values
    ({"client_credential": 42}, "client_credential"),
    ({"sign_in_timeout": 100_001}, "sign_in_timeout"),
    ({"max_pending_sign_ins": True}, "max_pending_sign_ins"),
    ({"http_timeout": 301}, "http_timeout"),
    ({"clock_skew": 601}, "clock_skew"),
    ({"remote_user_claim": " "}, "remote_user_claim"),
    ({"session_key": ""}, "session_key"),
    ({"on_event": "not callable"}, "on_event"),
    ({"session_lock": "memcached://x"}, "session_lock"),
    ({"session_lock": 42}, "session_lock"),
    ({"login_path": "/"}, "login_path"),
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


def test_every_setting_has_a_doc_and_every_env_variable_is_derived_from_its_name():
    rows = list(Settings.reference())
    assert [name for name, *_ in rows] == [f.name for f in dataclasses.fields(Settings)]
    assert all(doc for *_, doc in rows)
    assert ENV_VARS == {var: name for name, var, _, _ in rows if var is not None}
    assert all(var == "MSAL_" + name.upper() for name, var, _, _ in rows if var is not None)
    assert ENV_VARS["MSAL_CLIENT_SECRET"] == "client_secret"
    assert "MSAL_ON_EVENT" not in ENV_VARS and "MSAL_CLIENT_CREDENTIAL" not in ENV_VARS


def test_settings_are_hashable_and_equal_by_value():
    one = Settings(**GOOD, protect={"/todos": Protect(read=["r"], write=["w"])}, session_options={"type": "memory"})
    two = Settings(**GOOD, protect={"/todos": {"read": "r", "write": ["w"]}}, session_options={"type": "memory"})
    assert one == two and hash(one) == hash(two)
    assert hash(one) != hash(Settings(**GOOD))


@pytest.mark.parametrize("field", ["protect", "session_options", "client_credential"])
def test_mappings_are_frozen_after_validation(field):
    settings = Settings(**GOOD, protect={"/todos": Protect()}, session_options={"type": "memory"})
    value = getattr(settings, field)
    if field == "client_credential":  # a certificate credential is a mapping too
        settings = Settings(**{**GOOD, "client_credential": {"private_key": "k", "thumbprint": "t"}})
        value = settings.client_credential
    with pytest.raises(TypeError):
        value["/new"] = Protect()  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.protect = {}  # type: ignore[misc]


def test_the_caller_s_dict_cannot_change_the_rules_afterwards():
    rules = {"/todos": Protect(read=["r"])}
    settings = Settings(**GOOD, protect=rules)
    rules["/admin"] = Protect()
    assert list(settings.protect) == ["/todos"]


def test_a_middleware_without_any_settings_names_client_id():
    with pytest.raises(ConfigurationError) as raised:
        MsalMiddleware(app)
    assert raised.value.setting == "client_id"


def test_client_secret_works_as_a_keyword():
    assert Settings(**{**GOOD, "client_credential": None, "client_secret": "s"}).client_credential == "s"


@pytest.mark.parametrize(("options", "setting"), [
    ({"session.timeout": "soon"}, "session_options"),
    ({"session.timeout": "60", "session.save_accessed_time": "false"}, "session_options"),
    ({"session.type": "cookie"}, "session.type"),
], ids=["timeout-not-a-number", "timeout-without-accessed-time", "cookie-only"])
def test_bad_beaker_options_from_an_ini_file_are_configuration_errors(options, setting):
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_mapping({**INI, **options})
    assert raised.value.setting == setting


def test_good_beaker_options_from_an_ini_file_are_kept_as_strings_for_beaker():
    settings = Settings.from_mapping({**INI, "session.type": "file", "session.data_dir": "/tmp/s"})
    assert dict(settings.session_options or {}) == {"type": "file", "data_dir": "/tmp/s"}


@pytest.mark.parametrize(("env", "named"), [
    ({"MSAL_REDIRECT_URI": "http://app.example/cb"}, "MSAL_REDIRECT_URI"),
    ({"MSAL_HTTP_TIMEOUT": "soon"}, "MSAL_HTTP_TIMEOUT"),
    ({"MSAL_PROTECT": "/todos = a | b | c"}, "MSAL_PROTECT"),
    ({"MSAL_PROTECT": "/todos = a, /admin = b"}, "MSAL_PROTECT"),
    ({"MSAL_ALLOWED_TENANTS": "contoso.com"}, "MSAL_ALLOWED_TENANTS"),
    ({"MSAL_CLOCK_SKEW": "-1"}, "MSAL_CLOCK_SKEW"),
    ({"MSAL_TOKEN_ENDPOINT_AUTH_METHOD": "private_key_jwt"}, "MSAL_TOKEN_ENDPOINT_AUTH_METHOD"),
], ids=["http-redirect", "timeout-not-a-number", "protect-two-bars", "protect-comma-separated",
        "tenant-not-a-guid", "negative-skew", "auth-method"])
def test_errors_name_the_environment_variable_the_user_set(env, named):
    base = {"MSAL_CLIENT_ID": "id", "MSAL_CLIENT_SECRET": "s", "MSAL_OIDC_AUTHORITY": "https://id.example/realm",
            "MSAL_REDIRECT_URI": "https://app.example/auth/callback"}
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env({**base, **env})
    assert raised.value.setting == named


def test_errors_name_the_ini_key_and_suggest_the_nearest_setting():
    with pytest.raises(ConfigurationError, match="did you mean 'client_id'") as raised:
        Settings.from_mapping({**INI, "client_idd": "x"})
    assert raised.value.setting == "client_idd"


@pytest.mark.parametrize(("text", "rules"), [
    ("/todos = r | w", {"/todos": Protect("r", "w")}),
    ("/todos = r1 r2\n/admin = a", {"/todos": Protect("r1 r2"), "/admin": Protect("a")}),
    ("/todos = r; /profile =", {"/todos": Protect("r"), "/profile": Protect()}),
    ("/todos = r |", {"/todos": Protect("r", ())}),
], ids=["read-write", "two-lines", "semicolon-and-no-scopes", "empty-write"])
def test_the_protect_text_form(text, rules):
    assert dict(Settings.from_mapping({**INI, "protect": text}).protect) == rules


@pytest.mark.parametrize(("good", "value"), [
    ({"redirect_uri": "http://localhost:5000/auth/callback"}, "http://localhost:5000/auth/callback"),
    ({"redirect_uri": "http://127.0.0.1/auth/callback"}, "http://127.0.0.1/auth/callback"),
    ({"redirect_uri": "http://[::1]:8000/auth/callback"}, "http://[::1]:8000/auth/callback"),
], ids=["localhost", "ipv4-loopback", "ipv6-loopback"])
def test_http_is_allowed_for_loopback_redirect_uris(good, value):
    assert Settings(**{**GOOD, **good}).redirect_uri == value


@pytest.mark.parametrize(("key", "text", "named"), [
    ("http_timeout", "soon", "http_timeout"),
    ("sign_in_timeout", "ten", "sign_in_timeout"),
    ("on_event", "", None),
], ids=["seconds", "whole-number", "empty-hook-is-none"])
def test_ini_strings_are_coerced_or_named(key, text, named):
    if named is None:
        assert Settings.from_mapping({**INI, key: text}).on_event is None
        return
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_mapping({**INI, key: text})
    assert raised.value.setting == named


def test_with_changes_replaces_a_credential_whatever_form_either_takes():
    settings = Settings(**GOOD)
    assert settings.with_changes(client_secret="new").client_credential == "new"
    certificate = {"private_key": "k", "thumbprint": "t"}
    assert dict(settings.with_changes(client_credential=certificate).client_credential) == certificate
    assert settings.with_changes(prompt="login").client_credential == "secret"
