"""Which protection rule, if any, a request path falls under."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping

from .settings import Rule


class Router:
    """Match app-relative paths (``PATH_INFO``) against protected prefixes.

    A prefix matches on segment boundaries: ``/todos`` covers ``/todos`` and
    ``/todos/1`` but not ``/todosx``. The longest matching prefix wins.

    A path is matched twice: as it is, and normalised (backslashes read as
    slashes, empty segments collapsed, ``.`` and ``..`` resolved), because the
    app or a server in front of it may serve either. It is protected if either
    form falls under a prefix, so neither ``/public/../todos`` nor
    ``/todos/../public`` slips past ``/todos``; when both forms match, the longer
    prefix of the two wins (``/todos/./admin`` falls under ``/todos/admin``), and
    on a tie the one of the path as it is, which is what the app receives.

    Nothing is percent-decoded here: the server has already decoded
    ``PATH_INFO``, so a ``%2F`` still in it is part of a segment's name.

    :param rules: prefixes as :class:`~msal_wsgi.Settings` accepts them (no
        trailing slash, no empty, dot or encoded segments; ``/`` is refused because
        it would cover the sign-in endpoints), each with its :class:`Protect` or
        :class:`ProtectApi`.
    """

    def __init__(self, rules: Mapping[str, Rule]) -> None:
        # Longest first, so the first hit is the most specific rule.
        longest_first = sorted(rules.items(), key=lambda item: len(item[0]), reverse=True)
        self._rules = [(prefix, prefix + "/", rule) for prefix, rule in longest_first]

    def match(self, path: str) -> tuple[str, Rule] | None:
        """The ``(prefix, rule)`` protecting ``path``, or ``None`` when it is public."""
        raw = self._match(path)
        if path.startswith("/") and "/." not in path and "//" not in path and "\\" not in path:
            return raw  # no dot or empty segment, no backslash: normalising would change nothing that matters
        normal = self._match(_normalise(path))
        if raw is None or (normal is not None and len(normal[0]) > len(raw[0])):
            return normal
        return raw

    def _match(self, path: str) -> tuple[str, Rule] | None:
        for prefix, below, rule in self._rules:
            if path == prefix or path.startswith(below):
                return prefix, rule
        return None


def _normalise(path: str) -> str:
    # normpath keeps a leading "//" (POSIX allows it a meaning of its own): strip it.
    return "/" + posixpath.normpath("/" + path.replace("\\", "/")).lstrip("/")
