"""``python -m msal_wsgi check`` finds what would fail only in production: sessions, redirect URI, Python apps."""

from __future__ import annotations

import io
import sys
import textwrap
from pathlib import Path

import pytest

from msal_wsgi.check import main

MSAL = """
[filter:msal]
use = egg:msal_wsgi
protect = /todos = api://todo/ToDoList.Read
"""


def env_for(provider, **more: str) -> dict[str, str]:
    return {"MSAL_CLIENT_ID": "todo-web", "MSAL_CLIENT_SECRET": "todo-web-secret",
            "MSAL_OIDC_AUTHORITY": provider.issuer, "MSAL_REDIRECT_URI": "http://localhost/auth/callback", **more}


def run(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    out = io.StringIO()
    return main(argv, env=env, out=out), out.getvalue()


def ini(tmp_path: Path, sessions: str, pipeline: str = "session msal todo") -> str:
    """An ini file: the pipeline, a Beaker filter with ``sessions`` options, msal_wsgi, the app."""
    path = tmp_path / "app.ini"
    path.write_text(f"[pipeline:main]\npipeline = {pipeline}\n\n[filter:session]\n"
                    f"use = egg:Beaker#beaker_session\n{textwrap.dedent(sessions)}\n{MSAL}\n"
                    "[app:todo]\nuse = call:pyramid_app:main\n")
    return str(path)


@pytest.mark.parametrize(("pipeline", "sessions", "complaint"), [
    ("msal todo", "", "no session filter before msal_wsgi"),
    ("session msal todo", "session.type = cookie", "session.type = cookie cannot hold a token cache"),
    ("msal session todo", "session.type = file", "no session filter before msal_wsgi"),
], ids=["no-session-filter", "cookie-sessions", "sessions-after-msal"])
def test_an_ini_pipeline_without_server_side_sessions_in_front_fails(provider, tmp_path, pipeline, sessions, complaint):
    path = ini(tmp_path, sessions, pipeline)
    code, report = run(["check", "--ini", path], env_for(provider))
    assert code == 1 and complaint in report, report


def test_an_ini_pipeline_with_file_sessions_in_front_passes(provider, tmp_path):
    path = ini(tmp_path, """
        session.type = file
        session.data_dir = %(here)s/sessions
        """)
    code, report = run(["check", "--ini", path], env_for(provider))
    assert code == 0, report


def test_a_redirect_uri_the_provider_does_not_know_fails_naming_it(provider):
    # devprovider accepts loopback redirect URIs ending in /callback only
    code, report = run(["check"], env_for(provider, MSAL_REDIRECT_URI="http://localhost/auth/return"))
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
    result, report = run(["check", f"{module}:app"], {})
    assert result == code and complaint in report, report


def test_an_app_that_cannot_be_imported_is_reported(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, report = run(["check", "no_such_module:app"], {})
    assert code == 1 and "cannot load 'no_such_module:app'" in report
