"""The MSAL Node web-app sample's scenario, in Python: sign in, call a to-do list API, sign out.

Run it with ``./scripts/run-sample`` (a local identity provider included), or with
``gunicorn -c gunicorn.conf.py sample_app:app`` and your own MSAL_* settings
(``SAMPLE_SESSION_URL=redis://host:port/db`` keeps the sessions in Redis instead of
files, for several servers behind a load balancer):

* ``/``           public home page with sign-in and sign-out links;
* ``/todos``      protected: the user's to-do items, read from the to-do list API with
                  a ``TODOLIST_READ`` token; the form posts with a ``TODOLIST_READWRITE`` token;
* ``/api/todolist`` when ``TODOLIST_ENDPOINT`` is unset: the to-do list API itself, which
                  validates bearer tokens (JWKS signature, issuer, audience, scope) and keeps
                  items per user in SQLite.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from html import escape
from pathlib import Path
from typing import Any

import jwt
import requests
from beaker.middleware import SessionMiddleware
from webob import Request, Response
from webob.dec import wsgify
from webob.exc import HTTPBadRequest, HTTPForbidden, HTTPNotFound, HTTPSeeOther, HTTPUnauthorized

from msal_wsgi import TOKEN, USER, MsalMiddleware, Protect, Settings

TODOLIST_READ = os.environ.get("TODOLIST_READ", "api://todo/ToDoList.Read")
TODOLIST_READWRITE = os.environ.get("TODOLIST_READWRITE", "api://todo/ToDoList.ReadWrite")
TODOLIST_ENDPOINT = os.environ.get("TODOLIST_ENDPOINT")  # unset: this app serves /api/todolist
DATA_DIR = Path(os.environ.get("SAMPLE_DATA_DIR", ".sample-data"))

log = logging.getLogger("sample_app")

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}}
nav a{{margin-right:1rem}}</style></head><body>
<nav><a href="{root}/">Home</a><a href="{root}/todos">To-do list</a>
<a href="{root}/auth/login?next={root}/todos" id="sign-in">Sign in</a>
<a href="{root}/auth/logout" id="sign-out">Sign out</a></nav>
<h1>{title}</h1>{body}</body></html>"""


def page(request: Request, title: str, body: str, status: int = 200) -> Response:
    html = _PAGE.format(title=escape(title), body=body, root=escape(request.script_name))
    return Response(html, status=status, content_type="text/html", charset="utf-8")


# -- the web app ---------------------------------------------------------------

def todo_api_url(request: Request) -> str:
    return TODOLIST_ENDPOINT or request.host_url + request.script_name + "/api/todolist"


@wsgify
def web_app(request: Request) -> Response:
    if request.path_info == "/":
        return page(request, "msal_wsgi sample", "<p>Sign in to see your to-do list.</p>")
    if request.path_info == "/todos" and request.method == "GET":
        return show_todos(request)
    if request.path_info == "/todos" and request.method == "POST":
        return add_todo(request)
    if request.path_info.startswith("/api/todolist") and TODOLIST_ENDPOINT is None:
        return todo_api(request)
    raise HTTPNotFound()


def show_todos(request: Request) -> Response:
    user, token = request.environ[USER], request.environ[TOKEN]
    answer = requests.get(todo_api_url(request), headers={"Authorization": token.authorization}, timeout=10)
    if answer.status_code != 200:
        log.warning("to-do API answered %s", answer.status_code)
        return page(request, "To-do list unavailable", f"<p>The to-do list API answered {answer.status_code}.</p>", 502)
    items = "".join(f"<li>{escape(item['description'])}</li>" for item in answer.json())
    form = ('<form method="post"><input name="description" required maxlength="200" '
            'aria-label="New item"> <button type="submit">Add</button></form>')
    body = f'<p id="user">Signed in as <b>{escape(user.name)}</b></p><ul id="todos">{items}</ul>{form}'
    return page(request, "To-do list", body)


def add_todo(request: Request) -> Response:
    description = request.POST.get("description", "").strip()
    if not description or len(description) > 200:
        return page(request, "Not added", "<p>A to-do item needs 1 to 200 characters.</p>", 400)
    token = request.environ[TOKEN]
    answer = requests.post(todo_api_url(request), json={"description": description},
                           headers={"Authorization": token.authorization}, timeout=10)
    if answer.status_code != 201:
        return page(request, "Not added", f"<p>The to-do list API answered {answer.status_code}.</p>", 502)
    return HTTPSeeOther(location=request.script_name + "/todos")


# -- the to-do list API (used when TODOLIST_ENDPOINT is unset) --------------------

class TokenValidator:
    """Validates bearer tokens: RS256 signature from the provider's JWKS, issuer, audience, scope."""

    def __init__(self, metadata_url: str, audience: str) -> None:
        self._metadata_url = metadata_url
        self._audience = audience
        self._lock = threading.Lock()
        self._issuer: str | None = None
        self._keys: dict[str, Any] = {}

    def _refresh_keys(self) -> None:
        metadata = requests.get(self._metadata_url, timeout=10).json()
        jwks = requests.get(metadata["jwks_uri"], timeout=10).json()
        self._issuer = metadata["issuer"]
        self._keys = {k["kid"]: jwt.PyJWK(k).key for k in jwks["keys"] if k.get("use", "sig") == "sig"}

    def claims(self, authorization: str | None, needed: tuple[str, ...]) -> dict[str, Any]:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HTTPUnauthorized(headers={"WWW-Authenticate": "Bearer"})
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            with self._lock:
                if kid not in self._keys:  # first use, or the provider rotated its keys
                    self._refresh_keys()
            claims = jwt.decode(token, self._keys[kid], algorithms=["RS256"], audience=self._audience,
                                issuer=self._issuer, options={"require": ["exp", "iss", "aud"]})
        except (jwt.PyJWTError, KeyError) as exc:
            raise HTTPUnauthorized(headers={"WWW-Authenticate": f'Bearer error="invalid_token", '
                                                                f'error_description="{type(exc).__name__}"'})
        granted = set(str(claims.get("scp") or claims.get("scope") or "").split())
        if not any(s in granted or s.rsplit("/", 1)[-1] in granted for s in needed):
            raise HTTPForbidden(headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'})
        return claims


class TodoStore:
    """To-do items per user in SQLite, so every gunicorn worker sees the same list."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = str(path)
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS todo (id INTEGER PRIMARY KEY, owner TEXT, description TEXT)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self._path, timeout=10)

    def list(self, owner: str) -> list[dict[str, Any]]:
        with self._connect() as db:
            rows = db.execute("SELECT id, description FROM todo WHERE owner = ? ORDER BY id", (owner,))
            return [{"id": i, "description": d} for i, d in rows]

    def add(self, owner: str, description: str) -> dict[str, Any]:
        with self._connect() as db:
            cursor = db.execute("INSERT INTO todo (owner, description) VALUES (?, ?)", (owner, description))
            return {"id": cursor.lastrowid, "description": description}


def todo_api(request: Request) -> Response:
    if request.path_info != "/api/todolist":
        raise HTTPNotFound()
    if request.method == "GET":
        claims = VALIDATOR.claims(request.headers.get("Authorization"), (TODOLIST_READ, TODOLIST_READWRITE))
        return Response(json_body=STORE.list(claims.get("oid") or claims["sub"]))
    if request.method == "POST":
        claims = VALIDATOR.claims(request.headers.get("Authorization"), (TODOLIST_READWRITE,))
        try:
            description = str(request.json_body["description"])[:200]
        except (ValueError, KeyError, TypeError):
            raise HTTPBadRequest("expected {\"description\": \"...\"}")
        return Response(json_body=STORE.add(claims.get("oid") or claims["sub"], description), status=201)
    raise HTTPBadRequest("GET or POST")


# -- wiring --------------------------------------------------------------------

def _metadata_url(settings: Settings) -> str:
    if settings.oidc_authority:
        return settings.oidc_authority + "/.well-known/openid-configuration"
    return str(settings.authority).rstrip("/") + "/v2.0/.well-known/openid-configuration"


def session_store(url: str | None) -> tuple[dict[str, str], str]:
    """Beaker storage options, and the ``session_lock`` that spans the processes sharing them.

    ``SAMPLE_SESSION_URL=redis://host:port/db``: sessions and locks in Redis, for any
    number of servers behind a load balancer (no sticky sessions). Unset: files and
    file locks, for the workers of one host.
    """
    if not url:
        return {"session.type": "file", "session.data_dir": str(DATA_DIR / "sessions"),
                "session.lock_dir": str(DATA_DIR / "locks")}, f"file:{DATA_DIR / 'refresh-locks'}"
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"SAMPLE_SESSION_URL={url!r}: expected redis://HOST:PORT/DB (or rediss://, unix://)")
    return {"session.type": "ext:redis", "session.url": url}, url


def make_app(env: dict[str, str] | None = None) -> Any:
    """The sample behind msal_wsgi behind Beaker sessions (files, or Redis), configured from ``env``."""
    global VALIDATOR, STORE
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    env = dict(os.environ if env is None else env)
    store, lock = session_store(env.get("SAMPLE_SESSION_URL"))
    defaults: dict[str, Any] = {}  # what the environment does not set itself
    if "MSAL_PROTECT" not in env:
        defaults["protect"] = {"/todos": Protect(read=[TODOLIST_READ], write=[TODOLIST_READWRITE])}
    if "MSAL_SESSION_LOCK" not in env:
        defaults["session_lock"] = lock
    settings = Settings.from_env(env, **defaults)
    VALIDATOR = TokenValidator(_metadata_url(settings),
                               os.environ.get("TODOLIST_AUDIENCE", TODOLIST_READ.rsplit("/", 1)[0]))
    STORE = TodoStore(DATA_DIR / "todos.sqlite3")
    protected = MsalMiddleware(web_app, settings)
    return SessionMiddleware(protected, {
        **store,
        "session.key": "msal_wsgi_sample",
        "session.httponly": True,
        "session.samesite": "Lax",
        "session.secure": settings.redirect_uri.startswith("https://"),
        "session.save_accessed_time": False,
    })


VALIDATOR: TokenValidator
STORE: TodoStore


def __getattr__(name: str) -> Any:
    """``sample_app:app`` is built on first use, so a configuration error names the setting then."""
    if name == "app":
        globals()["app"] = make_app()
        return globals()["app"]
    raise AttributeError(name)
