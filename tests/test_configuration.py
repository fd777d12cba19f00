"""Bad configuration fails at construction, naming the setting."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest
import redis
import requests
import webtest
from beaker.middleware import SessionMiddleware
from support.apps import OFFLINE_ISSUER
from support.environment import ini_settings
from support.sessions import TEST_SESSION_KEYS

from msal_wsgi import ConfigurationError, MsalMiddleware, Protect, ProtectApi, Require, Settings
from msal_wsgi.locks import ThreadLock
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
    ({"http_session": "https://proxy.example:3128"}, "http_session"),
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
    # each bound and type of the numbers, one step outside
    ({"client_id": "  "}, "client_id"),
    ({"max_pending_sign_ins": 100_001}, "max_pending_sign_ins"),
    ({"sign_in_timeout": 0}, "sign_in_timeout"),
    ({"sign_in_timeout": "600"}, "sign_in_timeout"),
    ({"max_replay_body": -1}, "max_replay_body"),
    ({"max_replay_body": 1024 * 1024 + 1}, "max_replay_body"),
    ({"max_replay_body": True}, "max_replay_body"),
    ({"max_replay_body": "0"}, "max_replay_body"),
    ({"clock_skew": -1}, "clock_skew"),
    ({"clock_skew": True}, "clock_skew"),
    ({"clock_skew": 6.5}, "clock_skew"),
    ({"http_timeout": -1}, "http_timeout"),
    ({"http_timeout": "10"}, "http_timeout"),
    ({"api_token_cache": -1}, "api_token_cache"),
    ({"api_token_cache": 1_000_001}, "api_token_cache"),
    ({"api_token_cache": False}, "api_token_cache"),
    ({"api_token_cache": "5"}, "api_token_cache"),
    ({"remote_user_claim": 42}, "remote_user_claim"),
    ({"allowed_tenants": [42]}, "allowed_tenants"),
    ({"allowed_redirect_origins": ("https://ok.example?x=1",)}, "allowed_redirect_origins"),
    ({"allowed_redirect_origins": ("http://ok.example",)}, "allowed_redirect_origins"),
    ({"allowed_redirect_origins": ("https://ok.example:99999",)}, "allowed_redirect_origins"),
    # http only for loopback, and then only http: no other scheme rides on the exception
    ({"redirect_uri": "ftp://localhost/auth/callback"}, "redirect_uri"),
    ({"redirect_uri": "wss://localhost/auth/callback"}, "redirect_uri"),
    # scopes with a quote or a backslash could not be written into a header
    ({"protect": {"/todos": ['a"b']}}, "protect.read"),
    ({"protect": {"/todos": ["a\\b"]}}, "protect.read"),
    # the sign-in endpoints themselves (built at run time: not the same string objects as the defaults)
    ({"protect": {"/auth/" + "login": Protect()}}, "protect"),
    ({"protect": {"/auth/" + "logout": Protect()}}, "protect"),
    # which credential is missing, for a web app and for an API-only one
    ({"client_credential": None, "redirect_uri": ""}, "client_secret"),
    ({"client_credential": None, "protect": {"/api": ProtectApi("r")}, "api_audience": "api://todo"},
     "client_secret"),
    # API rules need the API's audience, and a full scope must be one of its
    ({"protect": {"/api": ProtectApi("r")}}, "api_audience"),
    ({"protect": {"/api": ProtectApi("api://other/R")}, "api_audience": "api://todo"}, "protect"),
    ({"protect": {"/api": ProtectApi("api://todo/R", "api://other/W")}, "api_audience": "api://todo"}, "protect"),
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
    ({"http_session": "requests:Session"}, "http_session"),  # Python only
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


API = {"api_audience": "api://todo"}
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


@pytest.mark.parametrize(("changes", "field", "value"), [
    ({"max_pending_sign_ins": 1}, "max_pending_sign_ins", 1),
    ({"max_pending_sign_ins": 100_000}, "max_pending_sign_ins", 100_000),
    ({"sign_in_timeout": 1}, "sign_in_timeout", 1),
    ({"sign_in_timeout": 100_000}, "sign_in_timeout", 100_000),
    ({"max_replay_body": 0}, "max_replay_body", 0),
    ({"max_replay_body": 1024 * 1024}, "max_replay_body", 1024 * 1024),
    ({"clock_skew": 0}, "clock_skew", 0),
    ({"clock_skew": 600}, "clock_skew", 600),
    ({"http_timeout": 0.5}, "http_timeout", 0.5),
    ({"http_timeout": 300}, "http_timeout", 300),
    ({"api_token_cache": 0}, "api_token_cache", 0),
    ({"api_token_cache": 1_000_000}, "api_token_cache", 1_000_000),
    ({"remote_user_claim": "preferred_username"}, "remote_user_claim", "preferred_username"),
    ({"login_path": "/auth/signin", "logout_path": "/auth/out"}, "logout_path", "/auth/out"),
    ({"post_logout_redirect_uri": "http://localhost:5000/"}, "post_logout_redirect_uri", "http://localhost:5000/"),
    ({"allowed_redirect_origins": ("http://localhost:3000", "https://Other.Example/", "https://third.example:443")},
     "allowed_redirect_origins", ("http://localhost:3000", "https://other.example", "https://third.example")),
    ({"allowed_tenants": TENANT.upper()}, "allowed_tenants", (TENANT,)),
    ({"oidc_authority": "https://id.example/realm/"}, "oidc_authority", "https://id.example/realm"),
], ids=["pending-1", "pending-100000", "timeout-1", "timeout-100000", "replay-0", "replay-1mb", "skew-0",
        "skew-600", "http-timeout-half-second", "http-timeout-300", "api-cache-0", "api-cache-1000000",
        "remote-user-claim", "logout-path-sorting-before-login-path", "loopback-post-logout-uri",
        "origins-normalised", "tenant-lowercased", "authority-without-trailing-slash"])
def test_values_within_the_bounds_are_kept(changes, field, value):
    assert getattr(Settings(**{**GOOD, **changes}), field) == value


def test_the_defaults_are_those_of_the_configuration_reference():
    settings = Settings(**GOOD)
    assert (settings.api_token_cache, settings.max_pending_sign_ins, settings.sign_in_timeout,
            settings.max_replay_body, settings.http_timeout, settings.clock_skew) == (1024, 5, 600, 65536, 10.0, 60)
    assert (settings.login_path, settings.logout_path, settings.response_mode) == (
        "/auth/login", "/auth/logout", "form_post")


def test_an_api_only_app_needs_no_redirect_uri_and_no_credential():
    settings = Settings(client_id="id", oidc_authority=OFFLINE_ISSUER, protect={"/api": ProtectApi("r")}, **API)
    assert settings.api_only and settings.client_credential is None and settings.callback_path is None


@pytest.mark.parametrize(("redirect_uri", "path"), [
    ("https://app.example/auth/callback", "/auth/callback"),
    ("https://app.example", "/"),
], ids=["its-path", "root"])
def test_the_callback_path_is_the_path_of_the_redirect_uri(redirect_uri, path):
    assert Settings(**{**GOOD, "redirect_uri": redirect_uri}).callback_path == path


def test_rules_whose_full_scopes_belong_to_the_api_are_kept():
    rule = ProtectApi("api://todo/R", "api://todo/W")
    assert Settings(**GOOD, protect={"/api": rule}, **API).protect["/api"] == rule


def test_settings_with_other_rules_are_not_equal():
    one = Settings(**GOOD, protect={"/todos": Protect("r")})
    assert one != Settings(**GOOD, protect={"/todos": Protect("w")})
    assert one != Settings(**GOOD, protect={"/other": Protect("r")})
    assert one.protect != {"/todos": Protect("w")} and one.protect != [("/todos", Protect("r"))]


def test_the_event_hook_the_lock_and_the_http_session_do_not_make_settings_differ():
    assert Settings(**GOOD, on_event=print) == Settings(**GOOD, on_event=None)
    assert Settings(**GOOD, session_lock="thread") == Settings(**GOOD)
    session = requests.Session()
    with_session = Settings(**GOOD, http_session=session)
    assert with_session == Settings(**GOOD) and hash(with_session) == hash(Settings(**GOOD))
    assert with_session.http_session is session and Settings(**GOOD).http_session is None


def test_the_http_session_has_no_environment_variable():
    assert "MSAL_HTTP_SESSION" not in ENV_VARS
    with pytest.raises(ConfigurationError, match="not a msal_wsgi environment variable") as raised:
        Settings.from_env({"MSAL_HTTP_SESSION": "x"})
    assert raised.value.setting == "MSAL_HTTP_SESSION"


def test_repr_shows_the_settings_but_no_secret():
    text = repr(Settings(**{**GOOD, "client_credential": None, "client_secret": "s3cr3t"},
                         client_certificate_password="pa55word", session_keys=TEST_SESSION_KEYS))
    assert "client_id='id'" in text and "redirect_uri='https://app.example/auth/callback'" in text
    assert "s3cr3t" not in text and "pa55word" not in text and TEST_SESSION_KEYS[0] not in text


def test_session_options_have_no_environment_variable():
    assert "MSAL_SESSION_OPTIONS" not in ENV_VARS


# -- Protect and ProtectApi: what each method needs, and the line `check` prints

@pytest.mark.parametrize(("rule", "method", "scopes"), [
    (Protect("r"), "GET", ("r",)),
    (Protect("r"), "POST", ("r",)),
    (Protect("r", "w"), "GET", ("r",)),
    (Protect("r", "w"), "HEAD", ("r",)),
    (Protect("r", "w"), "DELETE", ("w",)),
    (Protect("r", ()), "POST", ()),
    (ProtectApi("r"), "POST", ("r",)),
    (ProtectApi("r", "w"), "OPTIONS", ("r",)),
    (ProtectApi("r", "w"), "PUT", ("w",)),
], ids=["web-get", "web-post-defaults-to-read", "web-get-with-write", "web-head", "web-delete-writes",
        "web-post-needs-none", "api-post-defaults-to-read", "api-options", "api-put-writes"])
def test_the_scopes_a_method_needs(rule, method, scopes):
    assert rule.scopes_for(method) == scopes


@pytest.mark.parametrize(("rule", "method", "roles"), [
    (ProtectApi(app_read="a"), "GET", ("a",)),
    (ProtectApi(app_read="a"), "POST", ("a",)),
    (ProtectApi(app_read="a", app_write="b"), "GET", ("a",)),
    (ProtectApi(app_read="a", app_write="b"), "PATCH", ("b",)),
    (ProtectApi("r"), "GET", ()),
], ids=["get", "post-defaults-to-read", "get-with-write", "patch-writes", "none"])
def test_the_app_roles_a_method_needs(rule, method, roles):
    assert rule.roles_for(method) == roles


FULL = ProtectApi("api://todo/Read", "api://todo/Write", app_read="Reader", app_write="Writer")


@pytest.mark.parametrize(("rule", "method", "app_only", "granted", "accepted"), [
    (FULL, "GET", False, {"Read"}, True),
    (FULL, "GET", False, {"Write"}, False),
    (FULL, "POST", False, {"Write"}, True),
    (FULL, "POST", False, {"Read"}, False),
    (FULL, "GET", False, {"api://todo/Read"}, False),
    (FULL, "GET", False, {"Reader"}, False),
    (FULL, "GET", True, {"Reader"}, True),
    (FULL, "GET", True, {"Read"}, False),
    (FULL, "PUT", True, {"Writer"}, True),
    (FULL, "PUT", True, {"Reader"}, False),
    (ProtectApi("Read"), "DELETE", False, {"Read"}, True),
    (ProtectApi(app_read="Reader"), "DELETE", True, {"Reader"}, True),
    (ProtectApi("Read"), "GET", True, {"Read"}, False),
    (FULL, "GET", False, set(), False),
], ids=["read-scope-reads", "write-scope-does-not-read", "write-scope-writes", "read-scope-does-not-write",
        "scp-holds-short-names", "a-role-is-not-a-scope", "read-role-reads", "a-scope-is-not-a-role",
        "write-role-writes", "read-role-does-not-write", "write-defaults-to-read", "app-write-defaults-to-app-read",
        "no-app-roles-no-app-only-tokens", "nothing-granted"])
def test_what_a_token_may_do(rule, method, app_only, granted, accepted):
    assert rule.accepts(method, app_only=app_only, granted=frozenset(granted)) is accepted


@pytest.mark.parametrize("rule", [
    lambda: ProtectApi(read="r", write="w", app_read="a", app_write="b", require=Require(roles="X")),
    lambda: ProtectApi(write="w"),
    lambda: ProtectApi(app_read="a"),
    lambda: ProtectApi(app_write="b"),
], ids=["every-keyword", "write-only", "app-read-only", "app-write-only"])
def test_an_api_rule_naming_some_scopes_or_roles_is_taken(rule):
    assert rule().describe().startswith("API: ")


@pytest.mark.parametrize("make", [
    lambda: ProtectApi(),
    lambda: ProtectApi((), ()),
    lambda: ProtectApi("r", None, "a"),
    lambda: ProtectApi("r").accepts("GET", False, frozenset()),
], ids=["nothing", "empty-lists", "app-roles-by-position", "accepts-by-position"])
def test_an_api_rule_needs_scopes_or_roles_and_takes_the_others_by_keyword(make):
    with pytest.raises((ConfigurationError, TypeError)) as raised:
        make()
    assert raised.type is TypeError or raised.value.setting == "protect"


def test_an_api_rule_is_a_frozen_value():
    rule = ProtectApi("r", "w", app_read="a")
    assert rule == ProtectApi(["r"], ["w"], app_read=["a"]) and hash(rule) == hash(ProtectApi("r", "w", app_read="a"))
    assert rule != ProtectApi("r", app_read="a") and rule.write == ("w",) and ProtectApi("r").write is None
    assert ProtectApi(app_read="a", app_write="b").app_write == ("b",) and ProtectApi(app_read="a").app_write is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.read = ("x",)  # type: ignore[misc]


@pytest.mark.parametrize(("rule", "line"), [
    (Protect(), "GET/HEAD/OPTIONS: (signed-in user, no token)"),
    (Protect("r1 r2"), "GET/HEAD/OPTIONS: r1 r2"),
    (Protect("r", "w"), "GET/HEAD/OPTIONS: r; other methods: w"),
    (Protect(require=Require(roles=["Admin"])), "GET/HEAD/OPTIONS: (signed-in user, no token); requires roles Admin"),
    (Protect("r", require=[Require(roles=["A", "B"], groups=["g"], tenants=[TENANT]),
                           Require(claims=lambda claims: True, description="step-up")]),
     f"GET/HEAD/OPTIONS: r; requires roles A B, groups g, tenants {TENANT} and step-up"),
    (Protect(require=Require(roles="A", claims=lambda claims: True, description="mfa")),
     "GET/HEAD/OPTIONS: (signed-in user, no token); requires roles A, mfa"),
    (ProtectApi("r"), "API: GET/HEAD/OPTIONS: r"),
    (ProtectApi("r", "w"), "API: GET/HEAD/OPTIONS: r; other methods: w"),
    (ProtectApi(app_read="role"), "API: GET/HEAD/OPTIONS: (no delegated tokens); app-only: role"),
    (ProtectApi("r", app_read="a", app_write="b"), "API: GET/HEAD/OPTIONS: r; app-only: a | b"),
    (ProtectApi(app_write="b"), "API: GET/HEAD/OPTIONS: (no delegated tokens); app-only: (none) | b"),
    (ProtectApi("r", require=Require(groups="G")), "API: GET/HEAD/OPTIONS: r; requires groups G"),
], ids=["signed-in-only", "read-scopes", "read-and-write", "a-role", "two-rules", "role-and-claims", "api-read",
        "api-read-and-write", "api-app-role", "api-app-read-and-write", "api-app-write-only", "api-require"])
def test_each_rule_is_described_in_one_line(rule, line):
    assert rule.describe() == line


# -- the ini/env text form of protect

@pytest.mark.parametrize(("text", "rules"), [
    ("/api = api: r | w roles: a | b", {"/api": ProtectApi("r", "w", app_read="a", app_write="b")}),
    ("/api = api: r", {"/api": ProtectApi("r")}),
    ("/api = api: roles: a", {"/api": ProtectApi(app_read="a")}),
    ("/api = api: r1 r2 roles: a1 a2", {"/api": ProtectApi("r1 r2", app_read="a1 a2")}),
    ("/api = api: r\n/todos = t", {"/api": ProtectApi("r"), "/todos": Protect("t")}),
], ids=["read-write-roles", "read-only", "roles-only", "several-of-each", "api-and-web"])
def test_the_api_text_form(text, rules):
    assert dict(Settings.from_mapping({**INI, **API, "protect": text}).protect) == rules


@pytest.mark.parametrize(("text", "problem"), [
    ("/todos = r roles: a", "rule 1 '/todos = r roles: a' 'roles:' may appear once, in an API rule"),
    ("/api = api: r roles: a roles: b", "'roles:' may appear once"),
    ("/api = api: r api: s", "'api:' only first"),
    ("/todos = r api:", "'api:' only first"),
    ("/a = x\n/b = y | z | w", "rule 2 '/b = y | z | w' has more than one '|'"),
    ("/a = x; /b = y; /c = x, /d", "rule 3 '/c = x, /d' '/d' looks like a prefix"),
    ("/a = x\n/a = y", "prefix '/a' is listed twice"),
], ids=["roles-in-a-web-rule", "roles-twice", "api-twice", "api-not-first", "two-bars-named-by-line",
        "comma-separated-rules", "prefix-twice"])
def test_a_bad_protect_line_is_named_with_its_number(text, problem):
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_mapping({**INI, **API, "protect": text})
    assert raised.value.setting == "protect" and problem in raised.value.problem


def test_protecting_the_root_is_refused_for_what_it_is():
    with pytest.raises(ConfigurationError, match="would protect the sign-in endpoints too"):
        Settings(**GOOD, protect={"/": Protect()})


# -- ini and environment strings

def test_an_ini_hook_names_a_function():
    assert Settings.from_mapping({**INI, "on_event": "json:dumps"}).on_event is json.dumps
    assert Settings.from_mapping({**INI, "on_event": "logging:Logger.info"}).on_event is logging.Logger.info


@pytest.mark.parametrize("spec", ["no_such_module_here:f", "json:no_such_function", ":dumps", "json"],
                         ids=["no-module", "no-function", "no-module-name", "a-module"])
def test_an_ini_hook_that_is_not_a_function_is_named(spec):
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_mapping({**INI, "on_event": spec})
    assert raised.value.setting == "on_event"


def test_session_keys_anywhere_in_an_ini_section(tmp_path):
    settings = Settings.from_mapping({"session.type": "file", "session.data_dir": str(tmp_path), **INI})
    assert settings.client_id == INI["client_id"] and settings.session_options == {"type": "file",
                                                                                   "data_dir": str(tmp_path)}


ENV = {"MSAL_CLIENT_ID": "id", "MSAL_CLIENT_SECRET": "s", "MSAL_OIDC_AUTHORITY": OFFLINE_ISSUER,
       "MSAL_REDIRECT_URI": "https://app.example/auth/callback"}


def test_a_keyword_override_is_named_as_the_keyword():
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env({**ENV, "MSAL_HTTP_TIMEOUT": "5"}, http_timeout=0)
    assert raised.value.setting == "http_timeout"


def test_an_unknown_msal_variable_is_named_with_the_nearest_known_one():
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_env({**ENV, "MSAL_CLIENTID": "x"})
    assert raised.value.setting == "MSAL_CLIENTID"
    assert raised.value.problem == "is not a msal_wsgi environment variable; did you mean 'MSAL_CLIENT_ID'?"


def test_other_variables_and_msal_s_own_are_left_alone():
    assert Settings.from_env({**ENV, "PATH": "/bin", "MSAL_FORCE_REGION": "westus"}).client_id == "id"


def test_the_environment_of_from_mapping_is_keyword_only():
    with pytest.raises(TypeError):
        Settings.from_mapping(INI, {})  # type: ignore[misc]


# -- session lifetimes and sealing (issue 11)

DAY = 86400


def test_the_session_defaults_are_those_of_the_configuration_reference():
    settings = Settings(**GOOD)
    assert (settings.idle_timeout, settings.max_session_lifetime, settings.session_activity_interval,
            settings.account_recheck_interval, settings.session_keys) == (7200, DAY, 300, 900, ())


@pytest.mark.parametrize("changes", [
    {"idle_timeout": 0},
    {"idle_timeout": 366 * DAY},
    {"max_session_lifetime": 0},
    {"max_session_lifetime": 3660 * DAY},
    {"account_recheck_interval": 0},
    {"account_recheck_interval": 366 * DAY},
    {"session_activity_interval": 1},
    {"session_activity_interval": 3600, "idle_timeout": 7200},
    {"session_activity_interval": DAY, "idle_timeout": 0},
], ids=["idle-0-no-limit", "idle-366-days", "lifetime-0-no-limit", "lifetime-3660-days", "recheck-0-never",
        "recheck-366-days", "activity-1", "activity-half-of-idle", "activity-a-day-without-idle-limit"])
def test_session_times_within_the_bounds_are_kept(changes):
    settings = Settings(**GOOD, **changes)
    assert {name: getattr(settings, name) for name in changes} == changes


@pytest.mark.parametrize(("changes", "setting", "problem"), [
    ({"idle_timeout": -1}, "idle_timeout", "must be a whole number of seconds from 0 to 31622400"),
    ({"idle_timeout": 366 * DAY + 1}, "idle_timeout", "must be a whole number of seconds from 0 to 31622400"),
    ({"idle_timeout": True}, "idle_timeout", "must be a whole number of seconds from 0 to 31622400"),
    ({"max_session_lifetime": 3660 * DAY + 1}, "max_session_lifetime",
     "must be a whole number of seconds from 0 to 316224000"),
    ({"account_recheck_interval": 366 * DAY + 1}, "account_recheck_interval",
     "must be a whole number of seconds from 0 to 31622400"),
    ({"session_activity_interval": 0}, "session_activity_interval",
     "must be a whole number of seconds from 1 to 86400"),
    ({"session_activity_interval": DAY + 1, "idle_timeout": 0}, "session_activity_interval",
     "must be a whole number of seconds from 1 to 86400"),
    ({"session_keys": "dGVzdA"}, "session_keys",
     "key 1 is not 32 bytes of base64url; make one with 'python -m msal_wsgi make-key'"),
    ({"session_activity_interval": 3601, "idle_timeout": 7200}, "session_activity_interval",
     ("must be at most half of idle_timeout (7200 s): a session ends between idle_timeout minus this interval "
      "and idle_timeout after the last request")),
], ids=["idle-negative", "idle-past-366-days", "idle-bool", "lifetime-past-3660-days", "recheck-past-366-days",
        "activity-0", "activity-past-a-day", "short-session-key", "activity-past-half-of-idle"])
def test_session_settings_out_of_bounds_are_named(changes, setting, problem):
    with pytest.raises(ConfigurationError) as raised:
        Settings(**GOOD, **changes)
    assert (raised.value.setting, raised.value.problem) == (setting, problem)


@pytest.mark.parametrize(("changes", "unencrypted"), [
    ({}, True),
    ({"session_keys": TEST_SESSION_KEYS}, False),
    ({"redirect_uri": "http://localhost:5000/auth/callback"}, False),
    ({"redirect_uri": "http://[::1]:5000/auth/callback"}, False),
    ({"redirect_uri": None, "client_credential": None, "protect": {"/api": ProtectApi("r")}, **API}, False),
], ids=["users-elsewhere-unsealed", "sealed", "localhost", "ipv6-loopback", "api-only-no-sign-in"])
def test_an_unencrypted_deployment_is_one_where_users_sign_in_from_elsewhere_to_unsealed_sessions(
        changes, unencrypted):
    assert Settings(**{**GOOD, **changes}).unencrypted_deployment is unencrypted


# -- the session lock follows Beaker's file sessions

@pytest.mark.parametrize(("options", "lock_dir"), [
    ({"type": "file", "data_dir": "{tmp}/data"}, "{tmp}/data/msal_wsgi"),
    ({"type": "file", "lock_dir": "{tmp}/locks"}, "{tmp}/locks/msal_wsgi"),
    ({"type": "file", "data_dir": "{tmp}/data", "lock_dir": "{tmp}/locks"}, "{tmp}/locks/msal_wsgi"),
    ({"type": "memory", "data_dir": "{tmp}/data"}, None),
    ({"type": "file"}, None),
], ids=["file-data-dir", "file-lock-dir", "lock-dir-first", "memory", "file-without-a-directory"])
def test_file_sessions_lock_across_the_processes_of_the_host(tmp_path, options, lock_dir):
    options = {key: value.format(tmp=tmp_path) for key, value in options.items()}
    settings = Settings(**GOOD, session_options=options)
    with settings.session_lock("sid"):
        made = sorted(str(path.parent) for path in tmp_path.rglob("*.lock"))
    assert made == ([lock_dir.format(tmp=tmp_path)] if lock_dir else [])


def test_redis_sessions_lock_in_that_redis(redis_server):
    settings = Settings(**GOOD, session_options={"type": "ext:redis", "url": redis_server.url})
    client = redis.Redis.from_url(redis_server.url)
    with settings.session_lock("sid"):
        held = client.keys("msal_wsgi.lock.*")
    assert len(held) == 1 and client.keys("msal_wsgi.lock.*") == []


def test_redis_sessions_given_as_host_and_port_keep_the_thread_lock():
    settings = Settings(**GOOD, session_options={"type": "ext:redis", "url": "127.0.0.1:6379"})
    assert isinstance(settings.session_lock, ThreadLock)


def test_a_lock_given_wins_over_file_sessions(tmp_path):
    settings = Settings(**GOOD, session_lock="thread", session_options={"type": "file", "data_dir": str(tmp_path)})
    with settings.session_lock("sid"):
        assert list(tmp_path.rglob("*.lock")) == []


def test_a_lock_given_wins_over_redis_sessions():
    settings = Settings(**GOOD, session_lock="thread",
                        session_options={"type": "ext:redis", "url": "redis://127.0.0.1:6379/0"})
    assert isinstance(settings.session_lock, ThreadLock)


@pytest.mark.parametrize(("changes", "setting", "problem"), [
    ({"redirect_uri": "http://app.example/auth/callback"}, "redirect_uri",
     "'http://app.example/auth/callback' must be an absolute https:// URL (http is allowed only for localhost)"),
    ({"oidc_authority": "http://localhost/realm"}, "oidc_authority",
     "'http://localhost/realm' must be an absolute https:// URL"),
    ({"session_options": {"type": "abc"}}, "session.type",
     "'abc' is not a Beaker storage type, such as 'file', 'ext:redis' or 'ext:database'"),
], ids=["http-redirect-uri-names-the-loopback-exception", "http-authority-has-none", "unknown-beaker-storage"])
def test_the_problem_says_what_would_do(changes, setting, problem):
    with pytest.raises(ConfigurationError) as raised:
        Settings(**{**GOOD, **changes})
    assert (raised.value.setting, raised.value.problem) == (setting, problem)
