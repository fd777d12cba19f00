"""Settings are declared once, frozen after validation, and name what the user wrote when wrong.

No provider is needed: nothing here reaches the network.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from msal_wsgi import ConfigurationError, MsalMiddleware, Protect, Settings
from msal_wsgi.settings import ENV_VARS

INI = {"client_id": "id", "client_secret": "secret", "oidc_authority": "https://id.example/realm",
       "redirect_uri": "https://app.example/auth/callback"}
GOOD: dict[str, Any] = dict(INI)


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


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
def test_mappings_are_frozen_after_validation(tmp_path, field):
    settings = Settings(**GOOD, protect={"/todos": Protect()}, session_options={"type": "memory"})
    value = getattr(settings, field)
    if field == "client_credential":  # a certificate credential is a mapping too
        settings = Settings(**{**GOOD, "client_secret": None},
                            client_credential={"private_key": "k", "thumbprint": "t"})
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


def test_a_middleware_without_client_id_names_it():
    with pytest.raises(ConfigurationError) as raised:
        MsalMiddleware(app)
    assert raised.value.setting == "client_id"


def test_client_secret_works_as_a_keyword():
    assert Settings(**GOOD).client_credential == "secret"


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
