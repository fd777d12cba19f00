"""Which paths are protected: segment boundaries, longest prefix, SCRIPT_NAME, dot segments."""

from __future__ import annotations

import pytest

from msal_wsgi import Protect
from msal_wsgi.routing import Router

from support.apps import make_testapp

RULES = {"/todos": Protect(["a"]), "/todos/admin": Protect(["b"]), "/api": Protect()}


@pytest.mark.parametrize("path,prefix", [
    ("/todos", "/todos"),
    ("/todos/", "/todos"),
    ("/todos/1", "/todos"),
    ("/todos/admin", "/todos/admin"),
    ("/todos/admin/x", "/todos/admin"),
    ("/todos/administrator", "/todos"),
    ("/todosx", None),
    ("/todo", None),
    ("/", None),
    ("", None),
    ("/public/../todos", "/todos"),
    ("//todos", "/todos"),
    ("/./todos/1", "/todos"),
    ("/x/..\\todos", "/todos"),
    ("/TODOS", None),
])
def test_prefix_matching(path, prefix):
    hit = Router(RULES).match(path)
    assert (hit[0] if hit else None) == prefix


def test_root_prefix_protects_everything():
    assert Router({"/": Protect()}).match("/anything")[0] == "/"


def test_script_name_is_respected(provider):
    app = make_testapp(provider)
    mounted = app.get("/todos", extra_environ={"SCRIPT_NAME": "/app"}, status=302)
    assert mounted.location.startswith(provider.issuer)
    assert app.get("/app/todos", status=200).json["path"] == "/app/todos"  # /app/todos is not /todos


def test_unsafe_methods_use_write_scopes():
    rule = Protect(read=["r"], write=["w"])
    assert [rule.scopes_for(m) for m in ("GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE")] == \
        [("r",), ("r",), ("r",), ("w",), ("w",), ("w",), ("w",)]
    assert Protect(read=["r"]).scopes_for("POST") == ("r",)
