"""The sample's to-do list API as a service of its own, and the web app's calls to it.

The API (``todo_api.py``) is msal_wsgi's API mode in front of a small WSGI app, served here by
real gunicorn: it answers RFC 6750 by itself, and an ``Idempotency-Key`` makes a POST safe to
repeat. The web app (``sample_app.py``, in process, signed in for real) calls it at
``TODOLIST_ENDPOINT`` with a timeout: an API that is down or slow is a 503 page with
``Retry-After``, one that fails a 502 page, and a POST that timed out can be sent again from the
error page without adding the item twice.
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
import time
from collections.abc import Iterator
from socketserver import ThreadingMixIn
from typing import Any, Callable
from urllib.parse import urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from bs4 import BeautifulSoup
from support.api import app_token, user_token
from support.apps import SECRETS, TODO_WRITE, complete_sign_in
from support.servers import GunicornServer, free_port, todo_api_server
from webtest import TestApp

import sample_app
import todo_api
from devprovider import DevProvider


@pytest.fixture(scope="module")
def api_server(devprovider: DevProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GunicornServer]:
    with todo_api_server(devprovider, tmp_path_factory.mktemp("todo-api")) as server:
        yield server


@pytest.fixture(scope="module")
def tokens(devprovider: DevProvider) -> dict[str, str]:
    return {"read": user_token(devprovider, "svc-reader"), "write": user_token(devprovider, "svc-writer", TODO_WRITE),
            "app": app_token(devprovider)}


# -- the API, under gunicorn ---------------------------------------------------------------------------

def call(server: GunicornServer, method: str, headers: list[tuple[str, str]], body: Any = None,
         path: str = "/api/todolist") -> tuple[int, dict[str, str], Any]:
    """One raw HTTP request (headers may repeat), as a client would send it."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    data = json.dumps(body).encode() if body is not None else None
    connection.putrequest(method, path)
    for name, value in [*headers, *([("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
                                    if data is not None else [])]:
        connection.putheader(name, value)
    connection.endheaders(data)
    answer = connection.getresponse()
    text = answer.read()
    connection.close()
    return answer.status, dict(answer.getheaders()), json.loads(text) if text else None


def test_the_api_answers_rfc_6750_by_itself(api_server, tokens):
    status, headers, body = call(api_server, "GET", [])
    assert (status, headers["WWW-Authenticate"], body["error"]) == (401, 'Bearer realm="api://todo"', "missing_token")
    status, headers, body = call(api_server, "POST", [("Authorization", f"Bearer {tokens['read']}")],
                                 {"description": "x"})
    assert status == 403 and 'error="insufficient_scope"' in headers["WWW-Authenticate"]
    assert body["scope"] == TODO_WRITE
    assert call(api_server, "GET", [], path="/health")[0] == 200


def test_two_authorization_headers_reach_the_api_joined_and_are_400(api_server, tokens):
    status, headers, body = call(api_server, "GET", [("Authorization", f"Bearer {tokens['read']}"),
                                                     ("Authorization", f"Bearer {tokens['write']}")])
    assert status == 400 and body["error"] == "invalid_request"
    assert 'error="invalid_request"' in headers["WWW-Authenticate"]


def test_an_idempotency_key_adds_an_item_once(api_server, tokens):
    auth = ("Authorization", f"Bearer {tokens['write']}")
    first = call(api_server, "POST", [auth, ("Idempotency-Key", "k-once")], {"description": "Buy milk"})
    again = call(api_server, "POST", [auth, ("Idempotency-Key", "k-once")], {"description": "Buy milk"})
    assert first[0] == again[0] == 201 and first[2] == again[2]
    assert "Idempotent-Replayed" not in first[1] and again[1]["Idempotent-Replayed"] == "true"
    other = call(api_server, "POST", [auth, ("Idempotency-Key", "k-other")], {"description": "Buy milk"})
    assert other[2]["id"] != first[2]["id"]
    listed = call(api_server, "GET", [auth])[2]
    assert [item["description"] for item in listed].count("Buy milk") == 2


def test_a_key_is_per_caller_and_an_app_with_the_role_reads_everyones_items(api_server, tokens):
    mine = call(api_server, "POST", [("Authorization", f"Bearer {tokens['write']}"), ("Idempotency-Key", "shared")],
                {"description": "writer's"})[2]
    app = call(api_server, "POST", [("Authorization", f"Bearer {tokens['app']}"), ("Idempotency-Key", "shared")],
               {"description": "daemon's"})[2]
    assert app["id"] != mine["id"] and app["owner"] == "app:todo-daemon"
    everyone = call(api_server, "GET", [("Authorization", f"Bearer {tokens['app']}")])[2]
    assert {"svc-writer", "app:todo-daemon"} <= {item["owner"] for item in everyone}
    reader = call(api_server, "GET", [("Authorization", f"Bearer {tokens['read']}")])[2]
    assert reader == []  # a user sees their own items only


@pytest.mark.parametrize("key", ["", "has space", "x" * 65])
def test_a_malformed_idempotency_key_is_400(api_server, tokens, key):
    status, _, body = call(api_server, "POST", [("Authorization", f"Bearer {tokens['write']}"),
                                                ("Idempotency-Key", key)], {"description": "x"})
    assert status == 400 and "Idempotency-Key" in body["error_description"]


# -- the web app and an API that is down, slow or failing ------------------------------------------------

class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class Upstream:
    """A WSGI app served on loopback in a thread; ``behave`` replaces its answers (slow, failing...)."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.behave: Callable[..., Any] | None = None
        self.requests: list[dict[str, str]] = []
        self._server = make_server("127.0.0.1", 0, self._serve, server_class=_ThreadingServer, handler_class=_Quiet)
        self.url = f"http://127.0.0.1:{self._server.server_port}/api/todolist"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _serve(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.requests.append({"method": environ["REQUEST_METHOD"], "host": environ.get("HTTP_HOST", ""),
                              "key": environ.get("HTTP_IDEMPOTENCY_KEY", "")})
        behave, self.behave = self.behave, None  # once
        return (behave or self.app)(environ, start_response)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def answering(status: str, body: dict[str, Any], **headers: str) -> Callable[..., Any]:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(status, [("Content-Type", "application/json"), *headers.items()])
        return [json.dumps(body).encode()]
    return app


def slowly(app: Callable[..., Any], seconds: float) -> Callable[..., Any]:
    """``app``, answering after ``seconds``: it does its work first, as an overloaded API would."""
    def slow(environ: dict[str, Any], start_response: Any) -> Any:
        result = list(app(environ, start_response))
        time.sleep(seconds)
        return result
    return slow


@pytest.fixture
def upstream(provider: DevProvider, tmp_path: Any) -> Iterator[Upstream]:
    """The real to-do API (in process, validating the provider's tokens) behind a switchable front."""
    api = todo_api.make_app({"MSAL_CLIENT_ID": "todo-api", "MSAL_OIDC_AUTHORITY": provider.issuer,
                             "SAMPLE_DATA_DIR": str(tmp_path / "api")})
    server = Upstream(api)
    yield server
    server.close()


def web_for(provider: DevProvider, endpoint: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
            **env: str) -> TestApp:
    """The sample web app in process, signed in as a new user, calling the to-do API at ``endpoint``."""
    monkeypatch.setattr(sample_app, "DATA_DIR", tmp_path / "web")
    app = TestApp(sample_app.make_app({
        "MSAL_CLIENT_ID": "todo-web", "MSAL_CLIENT_SECRET": SECRETS["todo-web"],
        "MSAL_OIDC_AUTHORITY": provider.issuer, "MSAL_REDIRECT_URI": "http://localhost/auth/callback",
        "TODOLIST_ENDPOINT": endpoint, "TODOLIST_TIMEOUT": "1", **env}))
    back = complete_sign_in(app, provider, app.get("/auth/login?next=/"))
    assert back.status_int == 302, back
    return app


def test_the_web_app_lists_and_adds_through_the_api_service(provider, upstream, tmp_path, monkeypatch):
    web = web_for(provider, upstream.url, tmp_path, monkeypatch)
    form = web.get("/todos").forms["add"]
    form["description"] = "Call the API"
    assert form.submit().status_int == 303
    assert "<li>Call the API</li>" in web.get("/todos").text
    assert [r["method"] for r in upstream.requests] == ["GET", "POST", "GET"]


def test_the_api_url_is_configuration_never_a_request_header(provider, upstream, tmp_path, monkeypatch):
    web = web_for(provider, upstream.url, tmp_path, monkeypatch)
    cookie = f"msal_wsgi_sample={web.cookies['msal_wsgi_sample']}"  # the jar would keep it from another host
    assert web.get("/todos", headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example",
                                      "Cookie": cookie}).status_int == 200
    assert upstream.requests and all(r["host"] == urlsplit(upstream.url).netloc for r in upstream.requests)


def test_a_sample_without_todolist_endpoint_says_so():
    with pytest.raises(ValueError, match="TODOLIST_ENDPOINT"):
        sample_app.make_app({"MSAL_CLIENT_ID": "todo-web", "MSAL_CLIENT_SECRET": "s",
                             "MSAL_OIDC_AUTHORITY": "https://id.example/realm",
                             "MSAL_REDIRECT_URI": "http://localhost/auth/callback"})


def test_an_api_that_cannot_be_reached_is_a_503_page_with_retry_after(provider, tmp_path, monkeypatch):
    web = web_for(provider, f"http://127.0.0.1:{free_port()}/api/todolist", tmp_path, monkeypatch)
    page = web.get("/todos", status=503)
    assert page.headers["Retry-After"] == "10" and "cannot be reached" in page.text


def test_a_slow_api_is_a_503_page_within_the_timeout(provider, upstream, tmp_path, monkeypatch):
    web = web_for(provider, upstream.url, tmp_path, monkeypatch)
    upstream.behave = slowly(upstream.app, 3)
    started = time.monotonic()
    page = web.get("/todos", status=503)
    assert time.monotonic() - started < 2.5  # TODOLIST_TIMEOUT=1, not the API's 3 s
    assert page.headers["Retry-After"] == "10" and "did not answer in time" in page.text


@pytest.mark.parametrize(("answer", "status", "retry_after"), [
    (answering("500 Internal Server Error", {"error": "boom"}), 502, None),
    (answering("503 Service Unavailable", {"error": "busy"}, **{"Retry-After": "7"}), 503, "7"),
    (answering("401 Unauthorized", {"error": "invalid_token"}, **{"WWW-Authenticate": 'Bearer error="invalid_token"'}),
     502, None),
], ids=["api-500", "api-503-retry-after", "api-refuses-the-token"])
def test_a_failing_api_is_a_clear_page(provider, upstream, tmp_path, monkeypatch, answer, status, retry_after):
    web = web_for(provider, upstream.url, tmp_path, monkeypatch)
    upstream.behave = answer
    page = web.get("/todos", status=status)
    assert "To-do list unavailable" in page.text and page.headers.get("Retry-After") == retry_after


def test_a_claims_challenge_of_the_api_sends_the_user_to_sign_in_with_the_claims(provider, upstream, tmp_path,
                                                                                  monkeypatch):
    web = web_for(provider, upstream.url, tmp_path, monkeypatch)
    claims = base64.b64encode(b'{"access_token":{"acrs":{"essential":true,"value":"c1"}}}').decode()
    upstream.behave = answering("401 Unauthorized", {"error": "insufficient_claims"}, **{
        "WWW-Authenticate": f'Bearer realm="", error="insufficient_claims", claims="{claims}"'})
    answer = web.get("/todos", headers={"Accept": "text/html"}, status=302)
    assert answer.location.startswith(provider.issuer + "/auth?") and "claims=" in answer.location


def test_a_post_that_timed_out_is_sent_again_from_the_page_and_adds_the_item_once(provider, upstream, tmp_path,
                                                                                  monkeypatch):
    web = web_for(provider, upstream.url, tmp_path, monkeypatch)
    form = web.get("/todos").forms["add"]
    form["description"] = "Exactly once"
    upstream.behave = slowly(upstream.app, 2)  # the API adds the item, then answers too late
    page = form.submit(status=503)
    assert page.headers["Retry-After"] == "10" and "never adds the item twice" in page.text
    time.sleep(1.5)  # the slow answer is done
    retry = BeautifulSoup(page.text, "html.parser").find(id="retry").find_parent("form")
    fields = {i["name"]: i["value"] for i in retry.find_all("input")}
    assert web.post("/todos", fields).status_int == 303
    assert web.get("/todos").text.count("<li>Exactly once</li>") == 1
    posts = [r["key"] for r in upstream.requests if r["method"] == "POST"]
    assert len(posts) == 2 and posts[0] == posts[1] == fields["idempotency_key"]


def test_each_form_has_a_key_of_its_own(provider, upstream, tmp_path, monkeypatch):
    web = web_for(provider, upstream.url, tmp_path, monkeypatch)
    keys = {web.get("/todos").forms["add"]["idempotency_key"].value for _ in range(3)}
    assert len(keys) == 3


# -- the web app and hostile input (tests/test_hostile_input.py sends it at the whole sample) --------------

@pytest.mark.parametrize("path", ["/\xff\xfe", "/static/sample.css/\xc0\xaf", "/auth/logout\xff", "/nowhere"],
                         ids=["non-utf8", "overlong-utf8", "endpoint-and-non-utf8", "unknown"])
def test_a_path_the_sample_does_not_serve_is_a_404_page(provider, upstream, tmp_path, monkeypatch, path):
    web = TestApp(web_for(provider, upstream.url, tmp_path, monkeypatch).app)  # no cookies: WebTest's jar would
    page = web.get("/", extra_environ={"PATH_INFO": path}, expect_errors=True)  # rebuild the URL from the path
    assert page.status_int == 404 and "Not found" in page.text


def test_a_path_the_api_does_not_serve_is_a_404_json(provider, tmp_path):
    api = TestApp(todo_api.make_app({"MSAL_CLIENT_ID": "todo-api", "MSAL_OIDC_AUTHORITY": provider.issuer,
                                     "SAMPLE_DATA_DIR": str(tmp_path)}))
    answer = api.get("/", extra_environ={"PATH_INFO": "/api/todolist\xff"}, expect_errors=True)
    assert answer.status_int == 404 and answer.json["error"] == "not_found"


@pytest.mark.parametrize(("body", "content_type"), [
    ("description=caf\u00e9".encode("latin-1"), "application/x-www-form-urlencoded; charset=latin-1"),
    ("description=x".encode("utf-16"), "application/x-www-form-urlencoded; charset=utf-16"),
    (b"--abc\r\n\r\n", "multipart/form-data; boundary="),
    (b'{"description": "x"}', "application/json"),
], ids=["latin-1", "utf-16", "multipart-without-a-boundary", "json"])
def test_an_add_form_the_sample_cannot_read_is_a_400_page(provider, upstream, tmp_path, monkeypatch, body,
                                                           content_type):
    web = web_for(provider, upstream.url, tmp_path, monkeypatch)
    page = web.request("/todos", method="POST", body=body, headers={"Content-Type": content_type},
                       expect_errors=True)
    assert page.status_int == 400 and "could not be read" in page.text
    assert not [r for r in upstream.requests if r["method"] == "POST"]


def test_a_script_gets_the_list_and_the_failures_as_json(provider, upstream, tmp_path, monkeypatch):
    web = web_for(provider, upstream.url, tmp_path, monkeypatch)
    form = web.get("/todos").forms["add"]
    form["description"] = "From a script"
    form.submit()
    assert web.get("/todos", headers={"Accept": "application/json"}).json == [{"description": "From a script"}]
    upstream.behave = slowly(upstream.app, 3)
    failed = web.get("/todos", headers={"Accept": "application/json"}, status=503)
    assert failed.json == {"error": "To-do list unavailable"} and failed.headers["Retry-After"] == "10"


def test_after_adding_the_sample_redirects_to_its_configured_origin_whatever_the_host_header(
        provider, upstream, tmp_path, monkeypatch):
    web = web_for(provider, upstream.url, tmp_path, monkeypatch)
    cookie = f"msal_wsgi_sample={web.cookies['msal_wsgi_sample']}"
    answer = web.post("/todos", {"description": "x"}, headers={"Host": "evil.example", "Cookie": cookie})
    assert answer.status_int == 303 and answer.location == "http://localhost/todos"
