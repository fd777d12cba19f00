"""``python -m msal_wsgi check`` says whether a configuration works, before any user finds out."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support.apps import OFFLINE_ISSUER, TODO_READ, TODO_WRITE
from support.environment import EXAMPLES, msal_env

from msal_wsgi.check import main


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


# -- what would fail only in production: sessions in front of msal_wsgi, the redirect URI, Python apps.

_MSAL_SECTION = """
[filter:msal]
use = egg:msal_wsgi
protect = /todos = api://todo/ToDoList.Read
"""


def env_for(provider, **more: str) -> dict[str, str]:
    return msal_env(provider.issuer, protect=None, **more)


def check_in_process(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """``python -m msal_wsgi check`` run in this process: its exit code and report."""
    out = io.StringIO()
    return main(argv, env=env, out=out), out.getvalue()


def ini(tmp_path: Path, sessions: str, pipeline: str = "session msal todo") -> str:
    """An ini file: the pipeline, a Beaker filter with ``sessions`` options, msal_wsgi, the app."""
    path = tmp_path / "app.ini"
    path.write_text(f"[pipeline:main]\npipeline = {pipeline}\n\n[filter:session]\n"
                    f"use = egg:Beaker#beaker_session\n{textwrap.dedent(sessions)}\n{_MSAL_SECTION}\n"
                    "[app:todo]\nuse = call:pyramid_app:main\n")
    return str(path)


@pytest.mark.parametrize(("pipeline", "sessions", "complaint"), [
    ("msal todo", "", "no session filter before msal_wsgi"),
    ("session msal todo", "session.type = cookie", "session.type = cookie cannot hold a token cache"),
    ("msal session todo", "session.type = file", "no session filter before msal_wsgi"),
], ids=["no-session-filter", "cookie-sessions", "sessions-after-msal"])
def test_an_ini_pipeline_without_server_side_sessions_in_front_fails(provider, tmp_path, pipeline, sessions, complaint):
    path = ini(tmp_path, sessions, pipeline)
    code, report = check_in_process(["check", "--ini", path], env_for(provider))
    assert code == 1 and complaint in report, report


def test_an_ini_pipeline_with_file_sessions_in_front_passes(provider, tmp_path):
    path = ini(tmp_path, """
        session.type = file
        session.data_dir = %(here)s/sessions
        """)
    code, report = check_in_process(["check", "--ini", path], env_for(provider))
    assert code == 0, report


def test_a_redirect_uri_the_provider_does_not_know_fails_naming_it(provider):
    # devprovider accepts loopback redirect URIs ending in /callback only
    code, report = check_in_process(["check"], env_for(provider, MSAL_REDIRECT_URI="http://localhost/auth/return"))
    assert code == 1 and "'redirect_uri'" in report and "http://localhost/auth/return" in report, report


APP = """
from beaker.middleware import SessionMiddleware
from msal_wsgi import MsalMiddleware, Protect

def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]

inner = MsalMiddleware(hello, client_id="todo-web", client_secret="todo-web-secret", oidc_authority={issuer!r},
                       redirect_uri="http://localhost/auth/callback", protect={{"/todos": Protect()}})
app = {wrapped}
"""


@pytest.mark.parametrize(("wrapped", "code", "complaint"), [
    ("SessionMiddleware(inner, {'session.type': 'memory'})", 0, "OK"),
    ("SessionMiddleware(inner, {'session.type': 'cookie', 'session.validate_key': 'k'})", 1, "cookies"),
    ("inner", 1, "no Beaker SessionMiddleware"),
    ("hello", 1, "holds no MsalMiddleware"),
], ids=["memory-sessions", "cookie-sessions", "no-sessions", "no-msal-wsgi"])
def test_an_app_configured_in_python_is_checked_with_its_sessions(provider, tmp_path, monkeypatch,
                                                                   wrapped, code, complaint):
    module = f"checked_app_{abs(hash(wrapped))}"
    (tmp_path / f"{module}.py").write_text(APP.format(issuer=provider.issuer, wrapped=wrapped))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    result, report = check_in_process(["check", f"{module}:app"], {})
    assert result == code and complaint in report, report


def test_an_app_that_cannot_be_imported_is_reported(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, report = check_in_process(["check", "no_such_module:app"], {})
    assert code == 1 and "cannot load 'no_such_module:app'" in report
