"""The to-do list web API of the sample, as its own service (the MSAL Node sample's TodoListAPI).

msal_wsgi protects it (a :class:`~msal_wsgi.ProtectApi` prefix): every request carries a bearer
token for ``api://todo``, and the app only reads who called from ``environ['msal_wsgi.caller']``.
Run it with ``gunicorn -c gunicorn.conf.py todo_api:app`` (``./scripts/run-sample`` does, on port
5010, SAMPLE_API_PORT), configured by ``MSAL_*`` variables of its own: ``MSAL_CLIENT_ID`` (the API's registration),
``MSAL_AUTHORITY`` or ``MSAL_OIDC_AUTHORITY``; ``MSAL_API_AUDIENCE`` and ``MSAL_PROTECT`` default to
the rule below. It needs no redirect URI and no secret.

* ``GET /api/todolist``: the caller's items (an app-only caller with ``ToDoList.Read.All``: everyone's);
* ``POST /api/todolist`` with ``{"description": "..."}``: adds an item, ``201``. An ``Idempotency-Key``
  header makes the POST safe to repeat: a key already used by the same caller answers the item it
  added the first time (with ``Idempotent-Replayed: true``) and adds nothing;
* ``GET /health``: public, ``200`` (for load balancers and the run script).

Items are kept per user in SQLite, so every gunicorn worker sees the same list.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from webob import Request, Response
from webob.dec import wsgify
from webob.exc import HTTPMethodNotAllowed

from msal_wsgi import CALLER, MsalMiddleware, ProtectApi, Settings

TODOLIST_READ = os.environ.get("TODOLIST_READ", "api://todo/ToDoList.Read")
TODOLIST_READWRITE = os.environ.get("TODOLIST_READWRITE", "api://todo/ToDoList.ReadWrite")
APP_READ, APP_READWRITE = "ToDoList.Read.All", "ToDoList.ReadWrite.All"
#: Delegated scopes for the user's own items, app roles (application permissions) for everyone's.
RULE = ProtectApi(read=[TODOLIST_READ, TODOLIST_READWRITE], write=[TODOLIST_READWRITE],
                  app_read=[APP_READ, APP_READWRITE], app_write=[APP_READWRITE])
PATH = "/api/todolist"
MAX_DESCRIPTION = 200
_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")

log = logging.getLogger("todo_api")


class TodoStore:
    """To-do items per owner in SQLite; an idempotency key is unique per owner."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = str(path)
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS item (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, "
                       "description TEXT NOT NULL, idempotency_key TEXT, UNIQUE (owner, idempotency_key))")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in a transaction, closed after it (sqlite3's own ``with`` only commits)."""
        db = sqlite3.connect(self._path, timeout=10)
        try:
            with db:
                yield db
        finally:
            db.close()

    def list(self, owner: str | None) -> list[dict[str, Any]]:
        """The items of ``owner``, or everyone's for None."""
        with self._connect() as db:
            rows = (db.execute("SELECT id, owner, description FROM item ORDER BY id") if owner is None else
                    db.execute("SELECT id, owner, description FROM item WHERE owner = ? ORDER BY id", (owner,)))
            return [{"id": i, "owner": o, "description": d} for i, o, d in rows]

    def add(self, owner: str, description: str, key: str | None) -> tuple[dict[str, Any], bool]:
        """The item added, and whether it was there already (the same ``key`` from the same owner)."""
        with self._connect() as db:
            cursor = db.execute("INSERT INTO item (owner, description, idempotency_key) VALUES (?, ?, ?) "
                                "ON CONFLICT (owner, idempotency_key) DO NOTHING", (owner, description, key))
            if cursor.rowcount == 1:
                return {"id": cursor.lastrowid, "owner": owner, "description": description}, False
            row = db.execute("SELECT id, description FROM item WHERE owner = ? AND idempotency_key = ?",
                             (owner, key)).fetchone()
            return {"id": row[0], "owner": owner, "description": row[1]}, True


def problem(status: int, error: str, description: str) -> Response:
    return Response(json_body={"error": error, "error_description": description}, status=status)


def make_api(store: TodoStore) -> Any:
    """The WSGI app behind msal_wsgi: it trusts ``environ['msal_wsgi.caller']`` and nothing else."""

    @wsgify
    def api(request: Request) -> Response:
        path = request.environ.get("PATH_INFO") or "/"  # as the server decoded it: path_info raises on non-UTF-8
        if path == "/health":
            return Response(json_body={"status": "ok"})
        if path != PATH:
            return problem(404, "not_found", "There is nothing here; the to-do list is at " + PATH)
        caller = request.environ[CALLER]
        # An app-only caller (a daemon with an application permission) sees every user's items.
        owner = caller.id if not caller.app_only else f"app:{caller.app_id}"
        if request.method in ("GET", "HEAD"):
            return Response(json_body=store.list(None if caller.app_only else owner))
        if request.method != "POST":
            raise HTTPMethodNotAllowed(headers={"Allow": "GET, HEAD, POST"})
        key = request.headers.get("Idempotency-Key")
        if key is not None and not _IDEMPOTENCY_KEY.match(key):
            return problem(400, "invalid_request", "Idempotency-Key must be 1 to 64 letters, digits, - or _.")
        try:
            description = request.json_body["description"]
        except (ValueError, KeyError, TypeError):
            return problem(400, "invalid_request", 'expected {"description": "..."}')
        if not isinstance(description, str) or not 0 < len(description.strip()) <= MAX_DESCRIPTION:
            return problem(400, "invalid_request", f"a description has 1 to {MAX_DESCRIPTION} characters")
        item, replayed = store.add(owner, description.strip(), key)
        response = Response(json_body=item, status=201)
        if replayed:
            response.headers["Idempotent-Replayed"] = "true"
            log.info("POST with a used Idempotency-Key: answered item %s again, added nothing", item["id"])
        return response

    return api


def make_app(env: dict[str, str] | None = None) -> Any:
    """The to-do API behind msal_wsgi's API mode, configured from ``env`` (default: the environment)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    env = dict(os.environ if env is None else env)
    defaults: dict[str, Any] = {}
    if "MSAL_PROTECT" not in env:
        defaults["protect"] = {PATH: RULE}
    if "MSAL_API_AUDIENCE" not in env:
        defaults["api_audience"] = TODOLIST_READ.rsplit("/", 1)[0]
    settings = Settings.from_env(env, **defaults)
    store = TodoStore(Path(env.get("SAMPLE_DATA_DIR", ".sample-data")) / "todos.sqlite3")
    return MsalMiddleware(make_api(store), settings)


def __getattr__(name: str) -> Any:
    """``todo_api:app`` is built on first use, so a configuration error names the setting then."""
    if name == "app":
        globals()["app"] = make_app()
        return globals()["app"]
    raise AttributeError(name)
