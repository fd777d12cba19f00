"""The sample's whole scenario against a second, independent provider: django-oauth-toolkit.

DOT (PyPI ``django-oauth-toolkit``, OpenID Connect on) runs under gunicorn over TLS on
loopback (:mod:`support.dot`); the sample app under gunicorn signs in there, lists
the to-do items, adds one (DOT's refresh tokens cover only the scopes of the sign-in
that issued them, so adding needs a consent to write first: the form survives it),
and signs out through DOT's RP-initiated logout. DOT's access tokens are RS256 JWTs
signed with its OpenID Connect key, which the sample's to-do API validates against
DOT's JWKS like any provider's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from bs4 import BeautifulSoup
from support.dot import DOT_AUDIENCE, DOT_READ, DOT_WRITE, DotProvider
from support.servers import SAMPLE_CONFIG, GunicornServer, free_port

from devprovider import DevProvider

CLIENT_ID, SECRET = "todo-web-dot", "todo-web-dot-secret"
USER, PASSWORD = "dora", "dora-password-1"


@pytest.fixture(scope="module")
def dot(devprovider: DevProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DotProvider]:
    with DotProvider(tmp_path_factory.mktemp("dot"), devprovider) as provider:
        provider.add_user(USER, PASSWORD)
        yield provider


def test_dot_announces_what_msal_wsgi_needs(dot):
    discovery = dot.discovery
    assert discovery["issuer"] == dot.issuer and "RS256" in discovery["id_token_signing_alg_values_supported"]
    assert discovery["end_session_endpoint"] == dot.issuer + "/logout/"
    assert "S256" in discovery["code_challenge_methods_supported"]


def test_sign_in_list_add_an_item_and_sign_out_against_dot(dot, tmp_path):
    port = free_port()
    app = f"http://127.0.0.1:{port}"
    dot.add_client(CLIENT_ID, SECRET, redirect_uri=app + "/auth/callback", post_logout_redirect_uri=app + "/")
    # The sample's to-do API, its own service, as registered at DOT: the audience and the scopes of its tokens.
    api = GunicornServer("todo_api:app", tmp_path / "api", workers=2, config=SAMPLE_CONFIG, env={
        "MSAL_CLIENT_ID": DOT_AUDIENCE, "MSAL_OIDC_AUTHORITY": dot.issuer, "MSAL_API_AUDIENCE": DOT_AUDIENCE,
        "TODOLIST_READ": DOT_READ, "TODOLIST_READWRITE": DOT_WRITE, "REQUESTS_CA_BUNDLE": str(dot.ca_path),
        "SAMPLE_DATA_DIR": str(tmp_path / "api-data")})
    env = {
        "MSAL_CLIENT_ID": CLIENT_ID, "MSAL_CLIENT_SECRET": SECRET, "MSAL_OIDC_AUTHORITY": dot.issuer,
        "MSAL_REDIRECT_URI": app + "/auth/callback", "MSAL_POST_LOGOUT_REDIRECT_URI": app + "/",
        "MSAL_RESPONSE_MODE": "query",  # DOT answers in the query whatever response_mode asks
        "REQUESTS_CA_BUNDLE": str(dot.ca_path), "SAMPLE_BIND": f"127.0.0.1:{port}",
        "SAMPLE_DATA_DIR": str(tmp_path / "data"),
        # The scopes the web app asks for the API, and where the API is.
        "TODOLIST_READ": DOT_READ, "TODOLIST_READWRITE": DOT_WRITE, "TODOLIST_ENDPOINT": f"{api.url}/api/todolist",
    }
    with api, GunicornServer("sample_app:app", tmp_path / "web", env=env, port=port, workers=2,
                             config=SAMPLE_CONFIG) as web:
        browser = requests.Session()
        browser.headers["Accept"] = "text/html"
        at_dot = dot.browser()  # the browser's cookies at DOT: signed in there after the first login

        def go(answer: requests.Response) -> requests.Response:
            """Follow redirects, signing in at DOT and submitting a re-submission page on the way."""
            for _ in range(8):
                if answer.is_redirect:
                    target = urljoin(answer.url, answer.headers["location"])
                    if target.startswith(dot.issuer):
                        target = dot.sign_in(target, USER, PASSWORD, session=at_dot).url
                        signed_in.append(target)
                    answer = browser.get(target, allow_redirects=False, timeout=30)
                elif 'name="msal_wsgi_replay"' in answer.text:
                    form = BeautifulSoup(answer.text, "html.parser").find("form", id="f")
                    fields = {i["name"]: i["value"] for i in form.find_all("input")}
                    answer = browser.post(urljoin(answer.url, form["action"]), data=fields, allow_redirects=False,
                                          headers={"Origin": app}, timeout=30)
                else:
                    return answer
            raise AssertionError("too many steps")

        signed_in: list[str] = []
        page = go(browser.get(app + "/todos", allow_redirects=False, timeout=30))
        assert page.status_code == 200 and f"Signed in as <b>{USER}</b>" in page.text
        assert re.findall(r"<li>(.*?)</li>", page.text) == []
        assert len(signed_in) == 1

        added = go(browser.post(app + "/todos", data={"description": "Run against DOT"}, headers={"Origin": app},
                                allow_redirects=False, timeout=30))
        assert re.findall(r"<li>(.*?)</li>", added.text) == ["Run against DOT"]
        assert len(signed_in) == 2  # DOT's read refresh token does not cover todo.write: one consent to write
        assert parse_qs(urlsplit(signed_in[1]).query).keys() >= {"code", "state"}

        mark = len(dot.access_log())
        again = go(browser.post(app + "/todos", data={"description": "And again"}, headers={"Origin": app},
                                allow_redirects=False, timeout=30))
        listed = go(browser.get(app + "/todos", allow_redirects=False, timeout=30))
        assert re.findall(r"<li>(.*?)</li>", listed.text) == ["Run against DOT", "And again"] == \
            re.findall(r"<li>(.*?)</li>", again.text)
        assert len(signed_in) == 2 and dot.token_requests_since(mark) == []  # both grants' tokens still valid

        # The sample's Sign out button: a form POST from its own page.
        out = browser.post(app + "/auth/logout", data={}, headers={"Origin": app}, allow_redirects=False, timeout=30)
        assert out.status_code == 303 and out.headers["location"].startswith(dot.issuer + "/logout/?")
        assert "id_token_hint=" in out.headers["location"]
        assert dot.end_session(out.headers["location"], session=at_dot) == app + "/"
        after = browser.get(app + "/todos", allow_redirects=False, timeout=30)
        assert after.is_redirect and after.headers["location"].startswith(dot.issuer + "/authorize/")
        statuses = [status for method, path, status in dot.access_log() if (method, path) == ("POST", "/o/token/")]
        assert statuses == [200, 400, 200]  # code, refused refresh for todo.write (invalid_scope), code
        assert web.access_log()
