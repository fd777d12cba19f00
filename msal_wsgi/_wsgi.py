"""The WSGI types (PEP 3333), declared once.

Type checkers take them from typeshed's ``_typeshed.wsgi``, which exists only for
them (as Werkzeug does); at run time they are plain aliases.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
else:
    WSGIEnvironment = dict
    StartResponse = Callable[..., Callable[[bytes], object]]
    WSGIApplication = Callable[[WSGIEnvironment, StartResponse], Iterable[bytes]]

__all__ = ["StartResponse", "WSGIApplication", "WSGIEnvironment"]
