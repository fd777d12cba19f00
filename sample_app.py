"""The MSAL Node web-app sample's scenario, in Python: sign in, call a to-do list API, sign out.

Run it with ``./scripts/run-sample`` (a local identity provider and the to-do API included), or
with ``gunicorn -c gunicorn.conf.py sample_app:app`` and your own MSAL_* settings
(``SAMPLE_SESSION_URL=redis://host:port/db`` keeps the sessions in Redis instead of
files, for several servers behind a load balancer):

* ``/``           public home page; every page's nav says who is signed in (with a Sign out button,
                  a form POST) or offers Sign in;
* ``/todos``      protected: the user's to-do items, read from the to-do list API with
                  a ``TODOLIST_READ`` token; the form posts with a ``TODOLIST_READWRITE`` token.

The to-do list API is a service of its own (``todo_api.py``, protected by msal_wsgi's API mode) at
``TODOLIST_ENDPOINT``, which is configuration: its URL is never made from a request's headers.
Calls to it time out after ``TODOLIST_TIMEOUT`` seconds (default 5, well under gunicorn's 30): an
API that is down or slow is a 503 page with ``Retry-After``, one that fails a 502 page, never a
dropped connection. The add form carries an idempotency key, sent as ``Idempotency-Key``: a POST
whose outcome was unknown (a timeout) can be sent again from the error page and adds the item once.
A script (``fetch`` with ``Accept: application/json``) gets the list, and every failure, as JSON.

Beaker is configured by :func:`msal_wsgi.beaker_sessions.beaker_config`: a session store that fails
for a moment is a 503 page with ``Retry-After`` and signs no one out (``invalidate_corrupt = false``,
Redis waits bounded by :func:`msal_wsgi.redis_client`), and only session ids Beaker issued are used.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from beaker.middleware import SessionMiddleware
from webob import Request, Response
from webob.dec import wsgify
from webob.exc import HTTPSeeOther

from msal_wsgi import CURRENT_USER, MIDDLEWARE, TOKEN, USER, MsalMiddleware, Protect, Settings, claims_challenge
from msal_wsgi.beaker_sessions import beaker_config

TODOLIST_READ = os.environ.get("TODOLIST_READ", "api://todo/ToDoList.Read")
TODOLIST_READWRITE = os.environ.get("TODOLIST_READWRITE", "api://todo/ToDoList.ReadWrite")
DATA_DIR = Path(os.environ.get("SAMPLE_DATA_DIR", ".sample-data"))
#: Seconds a browser is told to wait before retrying when the to-do API is down or slow.
RETRY_AFTER = 10
_KEY = re.compile(r"^[A-Za-z0-9_\-]{16,64}$")

log = logging.getLogger("sample_app")

STYLESHEET = Path(__file__).resolve().parent / "static" / "sample.css"
#: Every answer of the sample: its own stylesheet only, no script, no framing (clickjacking of the add form).
#: No form-action: a form POST that needs a sign-in is redirected to the provider, which form-action would block.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title} · msal_wsgi sample</title>
<link rel="stylesheet" href="{root}/static/sample.css"></head><body>
<header><nav><a href="{root}/">Home</a><a href="{root}/todos">To-do list</a>{who}</nav></header>
<main><h1>{title}</h1>{body}</main></body></html>"""


def wants_json(request: Request) -> bool:
    """Whether a script asked (``Accept: application/json``, not HTML): it gets JSON, errors included."""
    accept = request.headers.get("Accept", "")
    return "json" in accept and "html" not in accept


def page(request: Request, title: str, body: str, status: int = 200, retry_after: int | None = None) -> Response:
    """A page of the sample: the nav says who is signed in, with Sign out, or offers Sign in.

    A script gets ``{"error": title}`` instead, with the same status and ``Retry-After``.
    """
    if wants_json(request):
        response = Response(json_body={"error": title}, status=status)
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response
    root = escape(request.script_name)
    user = request.environ[CURRENT_USER]()
    if user is None:
        who = f'<span class="who"><a href="{root}/auth/login?next={root}/todos" id="sign-in">Sign in</a></span>'
    else:
        who = (f'<span class="who"><span id="signed-in-as">{escape(user.name)}</span>'
               f'<form method="post" action="{root}/auth/logout" class="inline">'
               f'<button type="submit" id="sign-out">Sign out</button></form></span>')
    html = _PAGE.format(title=escape(title), body=body, root=root, who=who)
    response = Response(html, status=status, content_type="text/html", charset="utf-8")
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def add_form(description: str = "", button: str = "Add") -> str:
    """The add form, with a new idempotency key: the API adds one item per key, however often it is sent."""
    return (f'<form method="post" class="add" id="add"><label for="description">New item</label>'
            f'<input type="text" id="description" name="description" required maxlength="200" '
            f'value="{escape(description)}">'
            f'<input type="hidden" name="idempotency_key" value="{secrets.token_urlsafe(16)}">'
            f'<button type="submit">{escape(button)}</button></form>')


def secure_headers(app: Any) -> Any:
    """``app`` with :data:`SECURITY_HEADERS` on every answer that does not set them itself (msal_wsgi's pages do)."""

    def with_headers(environ: dict[str, Any], start_response: Any) -> Any:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            present = {name.lower() for name, _ in headers}
            headers = headers + [(n, v) for n, v in SECURITY_HEADERS.items() if n.lower() not in present]
            return start_response(status, headers, exc_info)

        return app(environ, start)

    return with_headers


class TodoApi:
    """The web app's client of the to-do list API at ``endpoint`` (configuration, never a request's header)."""

    def __init__(self, endpoint: str, timeout: float) -> None:
        self.endpoint = endpoint
        self.timeout = timeout

    def call(self, method: str, token: Any, **options: Any) -> requests.Response:
        """One request with the user's token; :class:`ApiUnavailable` when the API cannot answer in time."""
        headers = {"Authorization": token.authorization, **options.pop("headers", {})}
        try:
            return requests.request(method, self.endpoint, headers=headers, timeout=self.timeout,
                                    allow_redirects=False, **options)
        except requests.Timeout:
            raise ApiUnavailable("did not answer in time") from None
        except requests.ConnectionError:
            raise ApiUnavailable("cannot be reached") from None


class ApiUnavailable(Exception):
    """The to-do API is down or too slow: the user may try again shortly."""


# -- the web app ---------------------------------------------------------------

def make_web_app(api: TodoApi, origin: str) -> Any:
    """The sample's pages; ``origin`` (of the configured redirect URI) is where its redirects point."""

    @wsgify
    def web_app(request: Request) -> Response:
        path = request.environ.get("PATH_INFO") or "/"  # as the server decoded it: path_info raises on non-UTF-8
        if path == "/":
            return home(request)
        if path == "/static/sample.css":
            return Response(STYLESHEET.read_bytes(), content_type="text/css", charset="utf-8",
                            cache_control="public, max-age=3600")
        if path == "/todos" and request.method in ("GET", "HEAD"):
            return show_todos(request, api)
        if path == "/todos" and request.method == "POST":
            return add_todo(request, api, origin)
        if path == "/todos":
            return page(request, "Not allowed", "<p>The to-do list takes GET and POST.</p>", 405)
        return page(request, "Not found", "<p>There is no such page.</p>", 404)

    return web_app


def home(request: Request) -> Response:
    user = request.environ[CURRENT_USER]()
    root = escape(request.script_name)
    if user is None:
        body = (f'<p>A to-do list kept by a web API that only you can read and write.</p>'
                f'<p><a class="button" href="{root}/auth/login?next={root}/todos">Sign in to see your to-do list</a></p>')
    else:
        body = (f'<p>Welcome back, <b>{escape(user.name)}</b>.</p>'
                f'<p><a class="button" href="{root}/todos">Open your to-do list</a></p>')
    return page(request, "msal_wsgi sample", body)


def form_fields(request: Request, *names: str) -> dict[str, str] | None:
    """The named fields of a form POST, or ``None`` for a body that is not a UTF-8 form (WebOb raises on
    other charsets, bad multipart boundaries and non-UTF-8 bytes)."""
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return None
    try:
        values = {name: request.POST.get(name, "") for name in names}
    except (ValueError, LookupError, DeprecationWarning):  # UnicodeDecodeError is a ValueError
        return None
    return values if all(isinstance(value, str) for value in values.values()) else None  # no files


def api_failed(request: Request, answer: requests.Response) -> Response:
    """The to-do API answered, but not with what was asked: a claims challenge, or a 502 page."""
    challenge = claims_challenge(answer)
    if challenge:  # conditional access: sign in again, satisfying these claims
        return request.environ[MIDDLEWARE].start_sign_in(request.environ, claims_challenge=challenge)
    log.warning("to-do API answered %s", answer.status_code)
    retry = answer.headers.get("Retry-After") if answer.status_code == 503 else None
    return page(request, "To-do list unavailable", f"<p>The to-do list API answered {answer.status_code}. "
                "Please try again later.</p>", 503 if retry else 502, int(retry) if retry and retry.isdigit() else None)


def unavailable(request: Request, why: ApiUnavailable, retry_form: str = "") -> Response:
    log.warning("to-do API %s", why)
    return page(request, "To-do list unavailable", f"<p>The to-do list API {why}. Please try again in a few "
                f"seconds.</p>{retry_form}", 503, RETRY_AFTER)


def show_todos(request: Request, api: TodoApi) -> Response:
    user, token = request.environ[USER], request.environ[TOKEN]
    try:
        answer = api.call("GET", token)
    except ApiUnavailable as exc:
        return unavailable(request, exc)
    if answer.status_code != 200:
        return api_failed(request, answer)
    if wants_json(request):
        return Response(json_body=[{"description": item["description"]} for item in answer.json()])
    items = "".join(f"<li>{escape(item['description'])}</li>" for item in answer.json())
    listed = f'<ul id="todos">{items}</ul>' if items else '<p class="empty" id="empty">Nothing to do yet: add your first item below.</p>'
    body = f'<p id="user">Signed in as <b>{escape(user.name)}</b></p>{listed}{add_form()}'
    return page(request, "To-do list", body)


def add_todo(request: Request, api: TodoApi, origin: str) -> Response:
    fields = form_fields(request, "description", "idempotency_key")
    if fields is None:
        return page(request, "Not added", "<p>The form could not be read: send it from the to-do list.</p>", 400)
    description = fields["description"].strip()
    if not description or len(description) > 200:
        return page(request, "Not added", "<p>A to-do item needs 1 to 200 characters.</p>", 400)
    key = fields["idempotency_key"]
    if not _KEY.match(key):  # a form of another page, or a hand-made POST: this one is sent once
        key = secrets.token_urlsafe(16)
    try:
        answer = api.call("POST", request.environ[TOKEN], json={"description": description},
                          headers={"Idempotency-Key": key})
    except ApiUnavailable as exc:
        # The item may or may not have been added: the same key lets the user send it again safely.
        retry = (f'<form method="post"><input type="hidden" name="description" '
                 f'value="{escape(description)}"><input type="hidden" name="idempotency_key" value="{escape(key)}">'
                 '<button type="submit" id="retry">Try again</button></form>'
                 '<p>Trying again never adds the item twice.</p>')
        return unavailable(request, exc, retry)
    if answer.status_code != 201:
        return api_failed(request, answer)
    # Absolute from configuration: WebOb would complete a relative Location with the request's Host header.
    return HTTPSeeOther(location=origin + request.script_name + "/todos")


# -- wiring --------------------------------------------------------------------

def session_store(url: str | None) -> tuple[dict[str, str], str]:
    """Beaker storage options, and the ``session_lock`` that spans the processes sharing them.

    ``SAMPLE_SESSION_URL=redis://host:port/db``: sessions and locks in Redis, for any
    number of servers behind a load balancer (no sticky sessions). Unset: files and
    file locks, for the workers of one host.
    """
    if not url:
        return {"type": "file", "data_dir": str(DATA_DIR / "sessions"),
                "lock_dir": str(DATA_DIR / "locks")}, f"file:{DATA_DIR / 'refresh-locks'}"
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"SAMPLE_SESSION_URL={url!r}: expected redis://HOST:PORT/DB (or rediss://, unix://)")
    return {"type": "ext:redis", "url": url}, url


# -- sessions (issue 11) ---------------------------------------------------------

def dev_session_key(data_dir: Path) -> str:
    """The sample's session key: made once in ``data_dir/session-key`` (readable by its owner only), then
    reused, so sessions survive restarts. In production, set ``MSAL_SESSION_KEYS`` from a secret store."""
    from msal_wsgi.crypto import make_key

    path = data_dir / "session-key"
    data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        draft = data_dir / f"session-key.{os.getpid()}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(make_key() + "\n")
        try:
            os.link(draft, path)  # atomic, and only once: the workers starting together agree on one key
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()

# -- end of sessions


def make_app(env: dict[str, str] | None = None) -> Any:
    """The sample behind msal_wsgi behind Beaker sessions (files, or Redis), configured from ``env``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    env = dict(os.environ if env is None else env)
    store, lock = session_store(env.get("SAMPLE_SESSION_URL"))
    defaults: dict[str, Any] = {}  # what the environment does not set itself
    if "MSAL_PROTECT" not in env:
        defaults["protect"] = {"/todos": Protect(read=[TODOLIST_READ], write=[TODOLIST_READWRITE])}
    if "MSAL_SESSION_LOCK" not in env:
        defaults["session_lock"] = lock
    # -- sessions (issue 11): sealed with a development key made once, unless MSAL_SESSION_KEYS sets keys
    if "MSAL_SESSION_KEYS" not in env:
        defaults["session_keys"] = [dev_session_key(Path(env.get("SAMPLE_DATA_DIR", DATA_DIR)))]
    # -- end of sessions
    settings = Settings.from_env(env, **defaults)
    endpoint = env.get("TODOLIST_ENDPOINT")
    if not endpoint or not endpoint.startswith(("http://", "https://")):
        raise ValueError("TODOLIST_ENDPOINT must be the URL of the to-do list API, for example "
                         "http://127.0.0.1:5001/api/todolist (./scripts/run-sample starts it there)")
    timeout = float(env.get("TODOLIST_TIMEOUT", "5"))
    parts = urlsplit(settings.redirect_uri)
    web_app = make_web_app(TodoApi(endpoint, timeout), f"{parts.scheme}://{parts.netloc}")
    # Beaker wrapped here, as most apps do: beaker_config() adds what makes a failing store a 503, not a sign-out.
    return secure_headers(SessionMiddleware(MsalMiddleware(web_app, settings), beaker_config({
        **store,
        "key": "msal_wsgi_sample",
        "httponly": True,
        "samesite": "Lax",
        "secure": settings.redirect_uri.startswith("https://"),
        "save_accessed_time": False,  # msal_wsgi writes what it changes itself; Beaker writes only what the app does
    })))


def __getattr__(name: str) -> Any:
    """``sample_app:app`` is built on first use, so a configuration error names the setting then."""
    if name == "app":
        globals()["app"] = make_app()
        return globals()["app"]
    raise AttributeError(name)
