"""What happened, told once: to the ``msal_wsgi`` logger and to an optional metrics hook.

Each event has one row in :data:`EVENTS`: its log level and message. A call site
states its facts once, as keyword arguments; they fill the message and are what
the hook receives. The hook (setting ``on_event``) is called as
``on_event(name, data)`` with one of the names below and the facts: never a
token, a code or a secret. It runs on the request's thread, so it should be
quick (increment a counter); if it raises, the error is logged and the request
carries on.

The names are constants to import::

    from msal_wsgi import events

    def on_event(name, data):
        if name == events.SIGN_IN_FAILED and data["reason"] == SignInFailure.UNKNOWN_STATE:
            ...
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple, Union

log = logging.getLogger("msal_wsgi")

EventHook = Callable[[str, Mapping[str, Any]], None]

SIGN_IN_STARTED = "sign_in.started"
SIGN_IN_COMPLETED = "sign_in.completed"
SIGN_IN_FAILED = "sign_in.failed"
TOKEN_REFRESHED = "token.refreshed"
TOKEN_CACHE_HIT = "token.cache_hit"
INTERACTION_REQUIRED = "interaction_required"
SIGN_OUT = "sign_out"
PROVIDER_UNAVAILABLE = "provider.unavailable"
CREDENTIAL_REJECTED = "provider.credential_rejected"
PROVIDER_MISCONFIGURED = "provider.misconfigured"
SESSION_UNAVAILABLE = "session.unavailable"
API_TOKEN_ACCEPTED = "api.token_accepted"
API_TOKEN_REJECTED = "api.token_rejected"
AUTHZ_DENIED = "authz.denied"
TOKEN_ON_BEHALF_OF = "token.on_behalf_of"
FORM_KEPT = "form.kept"
FORM_NOT_KEPT = "form.not_kept"
FORM_REPLAYED = "form.replayed"
FORM_REPLAY_REFUSED = "form.replay_refused"
SESSION_ENDED = "session.ended"
SESSION_UNREADABLE = "session.unreadable"
ACCOUNT_RECHECKED = "account.rechecked"
SIGN_OUT_REFUSED = "sign_out.refused"
LOGOUT_RECEIVED = "logout.received"
LOGOUT_REFUSED = "logout.refused"

Level = Union[int, Callable[[Mapping[str, Any]], int], None]


class Event(NamedTuple):
    """How an event is logged: a level (or a function of the facts; ``None``: never logged) and a message
    with ``{fact}`` fields."""

    level: Level
    message: str


#: Every event, with the facts it carries (in its message or beside it).
EVENTS: Mapping[str, Event] = {
    # scopes, claims_challenge (bool), next
    SIGN_IN_STARTED: Event(logging.INFO, "sign-in started for {next} (scopes {scopes}, claims challenge: "
                                         "{claims_challenge})"),
    # user, same_account (bool: the account already signed in, for more scopes), scopes
    SIGN_IN_COMPLETED: Event(logging.INFO, "sign-in completed for {user}"),
    # reason (a SignInFailure), detail; error when the provider sent one. The level is the reason's.
    SIGN_IN_FAILED: Event(logging.WARNING, "sign-in failed ({reason}): {detail}"),
    # user, scopes: the token endpoint was called
    TOKEN_REFRESHED: Event(logging.INFO, "token refreshed for {user} (scopes {scopes})"),
    # scopes: for the hook only, never logged (the hot path)
    TOKEN_CACHE_HIT: Event(None, ""),
    # reason, path, redirect (bool): a browser is sent to sign in (DEBUG), an API caller gets 401 (INFO)
    INTERACTION_REQUIRED: Event(lambda facts: logging.DEBUG if facts["redirect"] else logging.INFO,
                                "interaction required for {path} (redirect: {redirect}): {reason}"),
    # signed_in (bool)
    SIGN_OUT: Event(lambda facts: logging.INFO if facts["signed_in"] else logging.DEBUG,
                    "sign-out (someone was signed in: {signed_in})"),
    # error
    PROVIDER_UNAVAILABLE: Event(logging.ERROR, "identity provider unavailable: {error}"),
    # error: the provider refused this application's client id or credential
    CREDENTIAL_REJECTED: Event(logging.ERROR, "the identity provider rejected this application's "
                                              "credentials: {error}"),
    # error: discovery does not fit the settings (another issuer, no usable signing algorithm...)
    PROVIDER_MISCONFIGURED: Event(logging.ERROR, "the identity provider does not fit the settings: {error}"),
    # error
    SESSION_UNAVAILABLE: Event(logging.ERROR, "session store unavailable: {error}"),
    # app_only (bool), cached (bool): for the hook only, never logged (the API hot path)
    API_TOKEN_ACCEPTED: Event(None, ""),
    # status (400, 401 or 403), error (RFC 6750 code, or none when no token came), reason (a short code:
    # no_token, expired, wrong_audience, insufficient_scope...), path. Never the token.
    API_TOKEN_REJECTED: Event(logging.INFO, "API request to {path} refused ({status} {error}): {reason}"),
    # path, caller (User.id or Caller.id), requirement (roles, groups, groups_overage, tenants, claims), needed
    AUTHZ_DENIED: Event(logging.WARNING, "access to {path} denied to {caller}: {requirement} {needed} required"),
    # caller, scopes: a token for a downstream API was acquired on behalf of an API's caller
    TOKEN_ON_BEHALF_OF: Event(logging.INFO, "token acquired on behalf of {caller} (scopes {scopes})"),
    # path, size (bytes): a form POST goes along with the sign-in it needs
    FORM_KEPT: Event(logging.INFO, "form posted to {path} kept across the sign-in ({size} bytes)"),
    # path, why: a POST that needs a sign-in cannot be kept; the user is told to do it again
    FORM_NOT_KEPT: Event(logging.WARNING, "form posted to {path} not kept across the sign-in: {why}"),
    # path: a kept form was re-submitted after the sign-in
    FORM_REPLAYED: Event(logging.INFO, "form re-submitted to {path} after the sign-in"),
    # path, reason (used: answered 303 to the page; unknown: expired, or for another page)
    FORM_REPLAY_REFUSED: Event(lambda facts: logging.INFO if facts["reason"] == "used" else logging.WARNING,
                               "form re-submission to {path} refused ({reason})"),
    # reason (idle_timeout, max_session_lifetime, account_recheck_refused, sign_out, backchannel_logout,
    # frontchannel_logout), user (None when the session was ended by id, unread): a sign-in ended and its
    # session left the store
    SESSION_ENDED: Event(logging.INFO, "session ended ({reason}; user {user})"),
    # reason (unsealed, malformed, unknown_key, tampered), field: session data that does not open reads as
    # signed out; msal_wsgi.crypto logs the first of each reason at WARNING, so the event is for the hook only
    SESSION_UNREADABLE: Event(None, ""),
    # user: the provider confirmed the account of a prefix without scopes (account_recheck_interval)
    ACCOUNT_RECHECKED: Event(logging.DEBUG, "account of {user} re-checked with the provider"),
    # why: a sign-out POST that did not come from this app's pages (no session is ended)
    SIGN_OUT_REFUSED: Event(logging.WARNING, "sign-out refused: {why}"),
    # channel (backchannel, frontchannel), by (sid, sub, or cookie), sessions (how many ended)
    LOGOUT_RECEIVED: Event(logging.INFO, "{channel} logout by {by}: {sessions} session(s) ended"),
    # channel, reason (invalid_token reasons such as bad_signature, replayed, wrong_issuer, no_sid...)
    LOGOUT_REFUSED: Event(logging.WARNING, "{channel} logout refused: {reason}"),
}


_HOOK_ONLY = frozenset(name for name, event in EVENTS.items() if event.level is None)


class _Facts(dict):  # type: ignore[type-arg]
    """Facts as the message shows them: sequences space-separated, absent ones empty."""

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, "")
        return " ".join(map(str, value)) if isinstance(value, (tuple, list)) else value


class Events:
    """Tells an event to the logger (as :data:`EVENTS` says) and to the hook, if there is one."""

    __slots__ = ("_hook",)

    def __init__(self, hook: EventHook | None) -> None:
        self._hook = hook

    def __call__(self, name: str, *, level: int | None = None, **facts: Any) -> None:
        """Tell event ``name`` with its ``facts``; ``level`` overrides the table's."""
        if self._hook is None and name in _HOOK_ONLY:
            return  # the hot path: nothing to log, nobody to tell
        event = EVENTS[name]
        if level is None:
            level = event.level(facts) if callable(event.level) else event.level
        if level is not None and log.isEnabledFor(level):
            log.log(level, event.message.format_map(_Facts(facts)), stacklevel=2)
        if self._hook is not None:
            try:
                self._hook(name, facts)
            except Exception:  # a metrics hook must never break a request
                log.exception("msal_wsgi: the on_event hook failed for %s", name)
