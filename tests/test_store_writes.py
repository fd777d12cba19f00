"""msal_wsgi writes the session once when it must write now (a refresh), and never on the hot path.

The store is Beaker's memory store with its writes counted (a subclass of Beaker's own
namespace class: nothing is faked, the data goes where Beaker puts it).
"""

from __future__ import annotations

from typing import Any

from beaker.container import MemoryNamespaceManager
from support.apps import make_testapp, sign_in


class CountingMemory(MemoryNamespaceManager):
    writes = 0

    def __setitem__(self, key: str, value: Any) -> None:
        type(self).writes += 1
        super().__setitem__(key, value)


def test_a_refresh_writes_the_session_once_and_a_cached_token_not_at_all(provider):
    app = make_testapp(provider, session={"session.namespace_class": CountingMemory})
    sign_in(app, provider)
    CountingMemory.writes = 0
    body = app.get("/todos", {"acquire": "api://r1/access"}).json  # a refresh, saved at once
    assert "value" in body["acquired"]
    assert CountingMemory.writes == 1  # not again by Beaker when the response starts
    CountingMemory.writes = 0
    assert app.get("/todos", {"acquire": "api://r1/access"}).json["acquired"]["value"] == body["acquired"]["value"]
    assert CountingMemory.writes == 0
