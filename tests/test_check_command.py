"""``python -m msal_wsgi check`` says whether a configuration works, before any user finds out."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support.apps import OFFLINE_ISSUER, TODO_READ, TODO_WRITE
from support.environment import EXAMPLES, msal_env


def check(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the command as a user would, with only ``env`` as MSAL_* configuration."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MSAL_")}
    return subprocess.run([sys.executable, "-m", "msal_wsgi", "check", *args], env={**base, **env},
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)


def test_good_environment_prints_a_summary(provider):
    result = check(msal_env(provider.issuer))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.startswith("msal_wsgi check OK (MSAL_* environment variables)")
    assert f"issuer:       {provider.issuer}" in out
    assert f"token:        {provider.metadata['token_endpoint']}" in out
    assert f"/todos  GET/HEAD/OPTIONS: {TODO_READ}; other methods: {TODO_WRITE}" in out


def test_ini_section_with_environment_overrides(provider):
    env = msal_env(provider.issuer, protect=None)  # protect from the ini
    result = check(env, "--ini", str(EXAMPLES / "pyramid.ini"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pyramid.ini [filter:msal]" in result.stdout and f"/todos  GET/HEAD/OPTIONS: {TODO_READ}" in result.stdout


def _assert_fails_naming(result: subprocess.CompletedProcess[str], named: str) -> None:
    assert result.returncode == 1
    assert result.stdout.startswith("msal_wsgi check FAILED") and named in result.stdout, result.stdout


@pytest.mark.parametrize(("change", "named"), [
    ({"MSAL_CLIENT_ID": ""}, "'client_id'"),
    ({"MSAL_REDIRECT_URI": "http://app.example/auth/callback"}, "'MSAL_REDIRECT_URI'"),
    ({"MSAL_PROTECT": "/todos api://todo/ToDoList.Read"}, "'MSAL_PROTECT'"),
    ({"MSAL_OIDC_AUTHORITY": "https://127.0.0.1:9/op"}, "'oidc_authority'"),
], ids=["missing-client-id", "http-redirect", "malformed-protect", "unreachable-authority"])
def test_bad_settings_fail_naming_the_setting(change, named):
    _assert_fails_naming(check({**msal_env(OFFLINE_ISSUER), **change}), named)  # before any provider answers


@pytest.mark.parametrize(("change", "named"), [
    ({"MSAL_CLIENT_SECRET": "not-the-secret"}, "client_credential"),
    ({"MSAL_CLIENT_ID": "nobody"}, "'client_id'"),
], ids=["wrong-secret", "unknown-client"])
def test_settings_the_provider_refuses_fail_naming_the_setting(provider, change, named):
    _assert_fails_naming(check({**msal_env(provider.issuer), **change}), named)


def test_wrong_authority_path_is_reported(provider):
    result = check(msal_env(provider.issuer + "/nope"))
    assert result.returncode == 1 and "'oidc_authority'" in result.stdout and "Discovery" in result.stdout


def test_nothing_configured_says_how_to_configure():
    result = check({})
    assert result.returncode == 1 and "no MSAL_* environment variables" in result.stdout


@pytest.mark.parametrize(("ini", "message"), [
    ("[filter:other]\nuse = egg:Beaker#beaker_session\n", "expected one section with 'use = egg:msal_wsgi'"),
    ("[filter:a]\nuse = egg:msal_wsgi\n[filter:b]\nuse = egg:msal_wsgi\n", "found [filter:a], [filter:b]"),
    ("not an ini file\n", "cannot read"),
], ids=["no-section", "two-sections", "malformed"])
def test_ini_problems_are_explained(tmp_path, ini, message):
    path = tmp_path / "app.ini"
    path.write_text(ini)
    result = check({}, "--ini", str(path))
    assert result.returncode == 1 and message in result.stdout, result.stdout


def test_ini_section_can_be_named(provider, tmp_path):
    path = tmp_path / "app.ini"
    path.write_text("[filter:a]\nuse = egg:msal_wsgi\nprompt = sometimes\n[filter:b]\nuse = egg:msal_wsgi\n")
    result = check(msal_env(provider.issuer), "--ini", f"{path}#a")
    assert result.returncode == 1 and "'prompt'" in result.stdout
    assert check(msal_env(provider.issuer), "--ini", f"{path}#b").returncode == 0
