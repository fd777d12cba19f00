"""Which paths are protected: segment boundaries, longest prefix, SCRIPT_NAME, dot segments."""

from __future__ import annotations

import posixpath

import hypothesis
import pytest
from support.apps import make_testapp

from msal_wsgi import ConfigurationError, Protect, Settings
from msal_wsgi.routing import Router

TODOS, ADMIN, API = Protect(["a"]), Protect(["b"]), Protect()
RULES = {"/todos": TODOS, "/todos/admin": ADMIN, "/api": API}


def protecting(path: str, rules=RULES) -> str | None:
    hit = Router(rules).match(path)
    return hit[0] if hit else None


@pytest.mark.parametrize(("path", "prefix"), [
    ("/todos", "/todos"),
    ("/todos/", "/todos"),
    ("/todos/1", "/todos"),
    ("/api/x", "/api"),
    ("/todos/admin", "/todos/admin"),
    ("/todos/admin/x", "/todos/admin"),
    ("/todos/administrator", "/todos"),
    ("/todosx", None),
    ("/todo", None),
    ("/", None),
    ("", None),
    ("/TODOS", None),
    ("/public", None),
], ids=repr)
def test_a_prefix_covers_itself_and_the_paths_below_it(path, prefix):
    assert protecting(path) == prefix


@pytest.mark.parametrize(("path", "prefix"), [
    ("/public/../todos", "/todos"),     # a server that normalises serves /todos
    ("/todos/../public", "/todos"),     # an app that does not serves something of /todos
    ("/todos/..", "/todos"),
    ("/todos/.", "/todos"),
    ("/../todos", "/todos"),
    ("/./todos/1", "/todos"),
    ("//todos", "/todos"),
    ("///todos/1", "/todos"),
    ("/x/..\\todos", "/todos"),
    ("/public\\..\\todos", "/todos"),
    ("\\todos", "/todos"),
    ("todos", "/todos"),
    ("/public/..", None),
    ("/public//x", None),
], ids=repr)
def test_a_path_is_protected_as_it_is_and_normalised(path, prefix):
    assert protecting(path) == prefix


@pytest.mark.parametrize(("path", "prefix"), [
    ("/todos/./admin", "/todos/admin"),       # as it is: /todos; normalised: /todos/admin
    ("/todos//admin", "/todos/admin"),
    ("/api/../todos/admin", "/todos/admin"),
    ("/todos/admin/../1", "/todos/admin"),    # as it is: /todos/admin; normalised: /todos
    ("/todos/admin/../../api", "/todos/admin"),
], ids=repr)
def test_the_longer_prefix_of_the_two_forms_wins(path, prefix):
    assert protecting(path) == prefix


def test_on_a_tie_the_path_as_the_app_receives_it_wins():
    rules = {"/aaaa": TODOS, "/bbbb": ADMIN}
    assert Router(rules).match("/aaaa/../bbbb") == ("/aaaa", TODOS)
    assert Router(rules).match("/bbbb/../aaaa") == ("/bbbb", ADMIN)


@pytest.mark.parametrize(("path", "prefix"), [
    ("/todos%2F..", None),               # a segment named "todos%2F..", not /todos then ..
    ("/todos%2Fadmin", None),
    ("/public/%2E%2E/todos", None),
    ("/todos/%2E%2E/public", "/todos"),
], ids=repr)
def test_nothing_is_percent_decoded_again(path, prefix):
    assert protecting(path) == prefix


def test_match_answers_the_prefix_and_its_rule():
    assert Router(RULES).match("/todos/admin/x") == ("/todos/admin", ADMIN)
    assert Router(RULES).match("/todos/x") == ("/todos", TODOS)


def test_no_rules_protect_nothing():
    assert Router({}).match("/todos") is None


def test_the_root_cannot_be_a_prefix_because_it_covers_the_sign_in_endpoints():
    with pytest.raises(ConfigurationError, match="protect"):
        Settings(client_id="app", client_credential="secret", oidc_authority="https://id.example/realm",
                 redirect_uri="https://app.example/auth/callback", protect={"/": Protect()})


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


def _reference(path: str, prefixes: tuple[str, ...]) -> str | None:
    """The documented rule, computed the long way: both forms always matched, the longer prefix wins."""
    def under(candidate: str) -> str | None:
        return next((p for p in sorted(prefixes, key=len, reverse=True)
                     if candidate == p or candidate.startswith(p + "/")), None)

    raw, normal = under(path), under("/" + posixpath.normpath("/" + path.replace("\\", "/")).lstrip("/"))
    return normal if raw is None or (normal is not None and len(normal) > len(raw)) else raw


@hypothesis.settings(max_examples=500, deadline=None)
@hypothesis.given(hypothesis.strategies.lists(
    hypothesis.strategies.sampled_from(["todos", "admin", "public", ".", "..", "", "a.b", ".x", "\\", "todos\\admin"]),
    max_size=6).map(lambda segments: "/" + "/".join(segments)))
def test_matching_once_is_matching_both_forms_when_normalising_changes_nothing(path):
    """The fast path (one match for a plain path) agrees with the rule computed the long way."""
    prefixes = ("/todos", "/todos/admin", "/admin")
    assert protecting(path, {prefix: Protect() for prefix in prefixes}) == _reference(path, prefixes)
