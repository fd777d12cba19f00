"""Which protection rule, if any, a request path falls under."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping

from .settings import Protect


class Router:
    """Match app-relative paths (``PATH_INFO``) against protected prefixes.

    A prefix matches on segment boundaries: ``/todos`` covers ``/todos`` and
    ``/todos/1`` but not ``/todosx``. The longest matching prefix wins. A path with
    empty or dot segments is also matched in its normalised form, and the stricter
    answer is kept, so ``/public/../todos`` cannot slip past ``/todos``.
    """

    def __init__(self, rules: Mapping[str, Protect]) -> None:
        # Longest first, so the first hit is the most specific rule.
        self._rules = sorted(rules.items(), key=lambda item: len(item[0]), reverse=True)

    def match(self, path: str) -> tuple[str, Protect] | None:
        """The ``(prefix, rule)`` protecting ``path``, or ``None`` when it is public."""
        hit = self._match(path or "/")
        if hit is None and ("//" in path or "/." in path or "\\" in path):
            hit = self._match(_normalise(path))
        return hit

    def _match(self, path: str) -> tuple[str, Protect] | None:
        for prefix, rule in self._rules:
            if prefix == "/" or path == prefix or path.startswith(prefix + "/"):
                return prefix, rule
        return None


def _normalise(path: str) -> str:
    normal = posixpath.normpath("/" + path.replace("\\", "/"))
    return "/" + normal.lstrip("/")
