"""The framework recipes in examples/ (shown verbatim in README) sign a user in and hand the view a token.

Each example reads the MSAL_* variables at import, as it would for a user; the test
sets them for the local provider and loads the file fresh.
"""

from __future__ import annotations

import importlib.metadata
import runpy
import shutil
import time
from typing import Any

import pytest
import webtest
from paste.deploy import loadapp
from support.apps import OFFLINE_ISSUER, TODO_READ, sign_in
from support.environment import EXAMPLES, ROOT, msal_env
from support.servers import Browser, CommandServer, free_port

from msal_wsgi import paste


def export_recipe_env(monkeypatch: pytest.MonkeyPatch, issuer: str, sessions: str) -> None:
    """The MSAL_* variables a recipe reads at import, for ``issuer``, and its SESSION_DIR."""
    for name, value in msal_env(issuer, SESSION_DIR=sessions).items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def recipe_env(provider, monkeypatch, tmp_path):
    export_recipe_env(monkeypatch, provider.issuer, str(tmp_path / "sessions"))


def load(filename: str, attribute: str) -> Any:
    return runpy.run_path(str(EXAMPLES / filename))[attribute]


def assert_view_sees_user_and_token(testapp: webtest.TestApp, provider) -> None:
    body = sign_in(testapp, provider, "/todos", login="carol").json
    assert body["user"] == "carol"
    assert body["scopes"] == [TODO_READ] and body["expires_on"] > time.time() + 3000


@pytest.mark.usefixtures("recipe_env")
@pytest.mark.parametrize(("filename", "attribute"), [
    ("flask_app.py", "app"),
    ("bottle_app.py", "application"),
    ("webob_app.py", "application"),
], ids=["flask", "bottle", "webob"])
def test_recipe_signs_in_and_the_view_gets_user_and_token(provider, filename, attribute):
    assert_view_sees_user_and_token(webtest.TestApp(load(filename, attribute)), provider)


def test_webob_recipe_leaves_public_pages_alone(monkeypatch, tmp_path):
    export_recipe_env(monkeypatch, OFFLINE_ISSUER, str(tmp_path / "sessions"))  # a public page needs no provider
    page = webtest.TestApp(load("webob_app.py", "application")).get("/")
    assert "Hello, visitor" in page.text and "Set-Cookie" not in page.headers


def test_package_registers_paste_entry_points():
    for group, factory in [("paste.filter_factory", paste.filter_factory),
                           ("paste.filter_app_factory", paste.filter_app_factory)]:
        # The distribution's own entry points: entry_points(group=...) selects only on Python 3.10+.
        (entry,) = [entry for entry in importlib.metadata.distribution("msal_wsgi").entry_points
                    if entry.group == group and entry.name == "main"]
        assert entry.load() is factory


def test_pyramid_recipe_through_paste_deploy(provider, recipe_env, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))  # as `PYTHONPATH=. pserve pyramid.ini` does
    ini = shutil.copy(EXAMPLES / "pyramid.ini", tmp_path)  # sessions go to %(here)s/sessions
    app = loadapp(f"config:{ini}")
    assert_view_sees_user_and_token(webtest.TestApp(app), provider)
    assert list((tmp_path / "sessions").rglob("*.cache")), "Beaker's file sessions live where the ini says"


def test_session_keys_in_the_msal_section_install_beaker(provider, recipe_env, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    ini = tmp_path / "app.ini"
    ini.write_text("[pipeline:main]\npipeline = msal todo\n\n"
                   "[filter:msal]\nuse = egg:msal_wsgi\nsession.type = file\nsession.data_dir = %(here)s/sessions\n"
                   "protect = /todos = api://todo/ToDoList.Read\n\n"
                   "[app:todo]\nuse = call:pyramid_app:main\n")
    assert_view_sees_user_and_token(webtest.TestApp(loadapp(f"config:{ini}")), provider)
    assert list((tmp_path / "sessions").rglob("*.cache"))


#: README's commands serving each recipe from examples/ against the sample's provider, on the port they document.
SERVE = {
    "flask": "flask --app flask_app run --port 5001",
    "bottle": "waitress-serve --listen=localhost:5001 bottle_app:application",
    "pyramid": "PYTHONPATH=. pserve pyramid.ini",
    "webob": "waitress-serve --listen=localhost:5001 webob_app:application",
}


@pytest.mark.parametrize("recipe", SERVE)
def test_readme_command_serves_the_recipe(provider, tmp_path, recipe):
    assert f"`{SERVE[recipe]}`" in (ROOT / "README.md").read_text()
    port = free_port()  # instead of 5001, which the test may not have
    command = SERVE[recipe].replace("5001", str(port))
    if recipe == "pyramid":  # its port is in the ini: a copy with this one
        ini = tmp_path / "pyramid.ini"
        ini.write_text((EXAMPLES / "pyramid.ini").read_text().replace("localhost:5001", f"localhost:{port}"))
        command = command.replace("pyramid.ini", str(ini))
    url = f"http://localhost:{port}"
    env = msal_env(provider.issuer, redirect_uri=url + "/auth/callback", SESSION_DIR=str(tmp_path / "sessions"))
    with CommandServer(f"cd examples && {command}", tmp_path, port=port, env=env):
        page = Browser(provider).sign_in(url + "/todos", login="dave")
    assert page.status_code == 200, page.text[:500]
    assert page.json()["user"] == "dave" and page.json()["scopes"] == [TODO_READ]


@pytest.mark.parametrize("filename", sorted(path.name for path in EXAMPLES.iterdir() if path.suffix in (".py", ".ini")))
def test_readme_shows_each_recipe_file_verbatim(filename):
    assert (EXAMPLES / filename).read_text() in (ROOT / "README.md").read_text()
