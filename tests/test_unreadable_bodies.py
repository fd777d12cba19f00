"""A request body the server cannot read (broken chunked framing, a client gone mid-body) gets a 400,
never a closed connection: gunicorn closes the connection without an answer when an ``OSError``
(its ``InvalidChunkSize``, ``ChunkMissingTerminator``, ``NoMoreData`` up to gunicorn 23, the newest
for Python 3.9) escapes the app, so msal_wsgi reads ``wsgi.input`` through ``GuardedInput``."""

from __future__ import annotations

import logging
import socket
import textwrap

import pytest
import webtest
from support.api import bearer, make_api, user_token
from support.apps import OFFLINE_ISSUER, SAME_ORIGIN, TODO_WRITE, make_testapp
from support.servers import GunicornServer, free_port
from support.sessions import TEST_SESSION_KEYS

from msal_wsgi._input import GuardedInput, UnreadableBody, guard_input

APP = """
    from msal_wsgi import MsalMiddleware, Protect, ProtectApi

    def reads_its_body(environ, start_response):
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"read %d bytes" % len(body)]

    app = MsalMiddleware(reads_its_body, client_id="todo-web", client_credential="secret",
                         oidc_authority={issuer!r}, redirect_uri="http://127.0.0.1:{port}/auth/callback",
                         api_audience="api://todo", protect={{"/todos": Protect(), "/api": ProtectApi(read=["api://todo/read"])}},
                         session_options={{"type": "memory"}}, session_keys={keys!r})
"""

#: Chunked bodies no server can read: a negative size, a chunk without its CRLF.
BROKEN = [b"-1\r\n\r\n", b"3\r\nabcXY0\r\n\r\n"]
#: Where the body is read, and what is answered: the sign-out reads only a small form of a known length, and
#: without Origin or Fetch Metadata a POST is refused before that.
PATHS = {"/auth/callback": 400, "/auth/backchannel-logout": 400, "/public": 400, "/auth/logout": 403}


def _send(port: int, path: str, chunk: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
                           "Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n"
                           "\r\n".encode() + chunk)
        answer = b""
        while True:
            data = connection.recv(65536)
            if not data:
                return answer
            answer += data


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("unreadable")
    port = free_port()
    (workdir / "unreadable_app.py").write_text(textwrap.dedent(APP).format(
        issuer=OFFLINE_ISSUER, port=port, keys=",".join(TEST_SESSION_KEYS)))
    with GunicornServer("unreadable_app:app", workdir, port=port, workers=1, chdir=workdir,
                        args=["--worker-class", "gthread", "--threads", "2"]) as server:
        yield server


@pytest.mark.parametrize("chunk", BROKEN, ids=["negative-size", "no-crlf"])
@pytest.mark.parametrize("path", PATHS)
def test_gunicorn_answers_a_body_it_cannot_read(gunicorn, path, chunk):
    answer = _send(gunicorn.port, path, chunk)
    assert answer.startswith(b"HTTP/1.1 %d " % PATHS[path]), answer[:300] or "no answer: the connection was closed"


def test_a_readable_chunked_body_still_reaches_the_app(gunicorn):
    answer = _send(gunicorn.port, "/public", b"5\r\nhello\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ") and b"read 5 bytes" in answer, answer[:300]


# In-process: a stream that raises OSError stands in for the servers that raise it (gunicorn 23, or a
# client gone); the gunicorn installed for newer Pythons answers broken framing itself.

class _Broken:
    def read(self, *size: int) -> bytes:
        raise ConnectionResetError("the client went away")

    readline = read

    def readlines(self, *hint: int) -> list[bytes]:
        raise ConnectionResetError("the client went away")


def _reads_its_body(environ, start_response):
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"read"]


def _post(app: webtest.TestApp, path: str, **kwargs) -> webtest.TestResponse:
    """POST a form whose body the server then fails to read (WebTest sets wsgi.input: replaced after it)."""
    inner = app.app

    def server_failing_to_read(environ, start_response):
        environ["wsgi.input"] = _Broken()
        return inner(environ, start_response)

    app.app = server_failing_to_read
    try:
        return app.post(path, b"x=1", content_type="application/x-www-form-urlencoded", expect_errors=True, **kwargs)
    finally:
        app.app = inner


@pytest.mark.parametrize("path", ["/auth/callback", "/auth/backchannel-logout", "/public"])
def test_a_body_that_cannot_be_read_is_a_400_page_and_a_log_line(path, caplog):
    app = make_testapp(OFFLINE_ISSUER, app=_reads_its_body)
    with caplog.at_level(logging.WARNING, logger="msal_wsgi"):
        answer = _post(app, path)
    assert answer.status_int == 400 and "body could not be read." in answer.text, answer
    assert "Traceback" not in answer.text
    assert any("the client went away" in record.getMessage() and path in record.getMessage()
               for record in caplog.records)


def test_an_api_caller_gets_json(devprovider):
    api = make_api(devprovider.issuer, app=_reads_its_body)
    answer = _post(api, "/api/todolist", headers=bearer(user_token(devprovider, "dana", TODO_WRITE)))
    assert answer.status_int == 400 and answer.json == {
        "error": "invalid_request", "error_description": "The request's body could not be read."}


def test_sign_out_with_a_body_that_cannot_be_read_still_answers():
    app = make_testapp(OFFLINE_ISSUER)
    answer = _post(app, "/auth/logout", headers=SAME_ORIGIN)
    assert answer.status_int < 500, answer


def test_the_guard_wraps_only_requests_with_a_body_and_reads_them_unchanged():
    body = webtest.TestRequest.blank("/", POST={"a": "1"}).environ
    guard_input(body)
    assert isinstance(body["wsgi.input"], GuardedInput) and body["wsgi.input"].read() == b"a=1"
    body["wsgi.input"].seek(0)  # what else the server's stream has is still there (WebOb seeks a copied body)
    assert body["wsgi.input"].read() == b"a=1"
    get = webtest.TestRequest.blank("/").environ
    stream = get["wsgi.input"]
    guard_input(get)
    assert get["wsgi.input"] is stream
    with pytest.raises(UnreadableBody):
        GuardedInput(_Broken()).readline()
    assert isinstance(UnreadableBody("x"), ValueError)  # what refuses a malformed body refuses this one too
