"""What happened, told twice: to the ``msal_wsgi`` logger and to an optional metrics hook.

The hook (setting ``on_event``) is called as ``on_event(name, data)`` with one of the
names below and a small dict of facts: never a token, a code or a secret. It runs
on the request's thread, so it should be quick (increment a counter); if it raises,
the error is logged and the request carries on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Callable

log = logging.getLogger("msal_wsgi")

EventHook = Callable[[str, Mapping[str, Any]], None]

#: The event names, with the facts each carries.
SIGN_IN_STARTED = "sign_in.started"  # scopes, claims_challenge (bool), next
SIGN_IN_COMPLETED = "sign_in.completed"  # user
SIGN_IN_FAILED = "sign_in.failed"  # reason, and error when the provider sent one
TOKEN_REFRESHED = "token.refreshed"  # user, scopes: the token endpoint was called
TOKEN_CACHE_HIT = "token.cache_hit"  # scopes: hook only, never logged (the hot path)
INTERACTION_REQUIRED = "interaction_required"  # reason, path, redirect (bool)
SIGN_OUT = "sign_out"  # signed_in (bool)
PROVIDER_UNAVAILABLE = "provider.unavailable"  # error
SESSION_UNAVAILABLE = "session.unavailable"  # error


class Events:
    """Logs an event's message and passes its facts to the hook, if there is one."""

    __slots__ = ("hook",)

    def __init__(self, hook: EventHook | None) -> None:
        self.hook = hook

    def __call__(self, name: str, level: int, message: str, *args: Any, **data: Any) -> None:
        log.log(level, message, *args, stacklevel=2)
        self.notify(name, data)

    def notify(self, name: str, data: Mapping[str, Any]) -> None:
        """Call the hook only (for events too frequent to log)."""
        if self.hook is None:
            return
        try:
            self.hook(name, data)
        except Exception:  # a metrics hook must never break a request
            log.exception("msal_wsgi: the on_event hook failed for %s", name)
