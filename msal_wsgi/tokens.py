"""An access token for this request's user: one unit, used by protected paths and ``acquire_token`` alike;
and, on API prefixes, tokens acquired on behalf of the caller (:class:`OnBehalfOf`).

The fast path is a lookup in the session's index of access tokens. Otherwise the
token comes from msal (the cache, or a refresh) under the session's lock, after
re-reading the session from the store: parallel requests of one user refresh
once, and none writes back a cache whose refresh token another request has
already rotated. A new cache is saved at once; if the store fails then, the save is
tried again for up to ``KEEP_TRYING`` seconds, still under the lock: with rotating
refresh tokens the provider has already retired the old one, so a refreshed cache
that is not saved signs the user out.

The user may hold several grants (one per sign-in that consented to more scopes,
each with its own refresh token, see :mod:`msal_wsgi._session`). A token for
scopes S comes from the newest grant known to cover S; when none does, from the
newest grant, whose refresh token may still serve S (Entra ID's serve every
resource consented to); if that refresh token is refused (a stock provider answers
``invalid_scope``), the user must consent to S: one failed token request, then a
sign-in that adds a grant covering S.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable
from functools import partial
from typing import Callable

from ._msal import IdentityClient, still_fresh
from ._session import Grant, SessionView, StoredUser, scope_key
from .errors import InteractionRequired, SessionUnavailable
from .events import ACCOUNT_RECHECKED, TOKEN_CACHE_HIT, TOKEN_ON_BEHALF_OF, TOKEN_REFRESHED, Events
from .identity import AccessToken
from .locks import SessionLock

#: Seconds a refreshed cache whose save failed is tried again, under the lock: a store pause of a few
#: seconds then costs the request a wait instead of the refresh token. Below the Redis lock's lease.
KEEP_TRYING = 6.0


class TokenSource:
    """Access tokens for signed-in users, through their sessions.

    :param client: msal, for refreshes.
    :param lock: the per-session lock a refresh runs under.
    :param events: where ``token.cache_hit`` and ``token.refreshed`` are told.
    """

    def __init__(self, client: IdentityClient, lock: SessionLock, events: Events) -> None:
        self._client = client
        self._lock = lock
        self._events = events

    def get(self, view: SessionView, user: StoredUser, scopes: tuple[str, ...], *,
            claims_challenge: str | None = None) -> AccessToken:
        """The token of ``user`` for ``scopes``: from the session's index, else from msal (and saved).

        A claims challenge always goes to the token endpoint. Raises
        :class:`~msal_wsgi.InteractionRequired` when the user must sign in or consent.
        """
        key = scope_key(scopes)
        if claims_challenge is None:
            token = user.cached_token(key, time.time())
            if token is not None:
                self._events(TOKEN_CACHE_HIT, scopes=scopes)
                return token
        with self._lock(view.lock_key):
            view.reload()
            current = view.user()
            if current is None or current.account_id != user.account_id:
                raise InteractionRequired("the session was signed out or changed user meanwhile")
            if claims_challenge is None:
                token = current.cached_token(key, time.time())
                if token is not None:
                    return token  # another request refreshed it while this one waited
            grants = view.grants(current)
            if not grants:
                raise InteractionRequired("the session holds no token cache", scopes=scopes)
            token, new_cache = self._from_grants(view, current, grants, scopes, claims_challenge)
        if new_cache is not None:
            self._events(TOKEN_REFRESHED, user=current.user.username or current.user.id, scopes=scopes)
        return token

    def _from_grants(self, view: SessionView, user: StoredUser, grants: list[Grant], scopes: tuple[str, ...],
                     claims_challenge: str | None) -> tuple[AccessToken, str | None]:
        """Try the grants covering ``scopes`` (newest first), then the newest; save what the first to serve gave."""
        order = [n for n, grant in enumerate(grants) if grant.covers(scopes)]
        if 0 not in order:
            order.append(0)
        refused: InteractionRequired | None = None
        for number in order:
            try:
                token, new_cache = self._client.acquire_silent(
                    grants[number].cache, user.account_id, scopes, subject=user.user.claims.get("sub"),
                    claims_challenge=claims_challenge, known=user.indexed_tokens(time.time()))
            except InteractionRequired as exc:
                if exc.claims_challenge is not None:
                    raise
                refused = exc
                continue
            served = () if grants[number].covers(scopes) else scopes
            _keep(partial(_store_and_flush, view, user, token, new_cache, number, served),
                  refreshed=new_cache is not None)
            return token, new_cache
        assert refused is not None
        raise InteractionRequired(refused.reason, scopes=scopes)

    def recheck(self, view: SessionView, user: StoredUser) -> None:
        """Ask the provider whether ``user`` may still be signed in (a refresh of the sign-in, under the
        session's lock: parallel requests ask once), for prefixes that need no access token.

        Raises :class:`~msal_wsgi.InteractionRequired` when the provider refuses: the account was
        disabled or its grant revoked.
        """
        with self._lock(view.lock_key):
            view.reload()
            current = view.user()
            if current is None or current.account_id != user.account_id:
                raise InteractionRequired("the session was signed out or changed user meanwhile")
            now = time.time()
            if not view.lifetimes.recheck_due(current.record, now):
                return  # another request asked meanwhile
            grants = view.grants(current)
            if not grants:
                raise InteractionRequired("the session holds no token cache")
            new_cache = self._client.recheck(grants[0].cache, current.account_id,
                                             subject=current.user.claims.get("sub"))
            _keep(lambda: view.rechecked(current, new_cache, now), refreshed=True)  # a rotated one, too
        self._events(ACCOUNT_RECHECKED, user=current.user.username)


def _store_and_flush(view: SessionView, user: StoredUser, token: AccessToken, new_cache: str | None, grant: int,
                     served: tuple[str, ...]) -> None:
    view.store_token(user, token, new_cache, grant=grant, served=served)  # it writes the store's index too
    view.flush()


def _keep(write: Callable[[], None], *, refreshed: bool) -> None:
    """``write()`` the session now; a refreshed cache is written again on failure for up to KEEP_TRYING seconds."""
    deadline = time.monotonic() + (KEEP_TRYING if refreshed else 0.0)
    pause = 0.25
    while True:
        try:
            write()
            return
        except SessionUnavailable:
            if time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 1.0)


class Acquirer:
    """``environ['msal_wsgi.acquire_token'](scopes, claims_challenge=None) -> AccessToken``.

    Tokens for other scopes or resources than the route's, for the user of this
    request. Raises :class:`~msal_wsgi.InteractionRequired` when the user must
    sign in or consent.
    """

    __slots__ = ("_account_id", "_tokens", "_view")

    def __init__(self, tokens: TokenSource, view: SessionView, user: StoredUser) -> None:
        self._tokens = tokens
        self._view = view
        self._account_id = user.account_id

    def __call__(self, scopes: Iterable[str] | str, *, claims_challenge: str | None = None) -> AccessToken:
        wanted = tuple(scopes.split()) if isinstance(scopes, str) else tuple(scopes)
        user = self._view.user()  # as this request last saved it: its index may hold the token
        if user is None or user.account_id != self._account_id:
            raise InteractionRequired("the session was signed out or changed user meanwhile")
        return self._tokens.get(self._view, user, wanted, claims_challenge=claims_challenge)


class OnBehalfOf:
    """Tokens for downstream APIs, acquired on behalf of an API's callers and kept per caller.

    A caller is its bearer token: the cache key is the SHA-256 of that token and the scopes, so a
    downstream token is never served to anyone but the one whose token it was exchanged for. A
    token is kept while msal itself would serve it; at most ``size`` of them, the oldest out first.
    Parallel requests of one caller for the same scopes exchange once (in this process): the others
    wait for that exchange and take its token.

    :param client: msal, for the on-behalf-of grant.
    :param events: where ``token.on_behalf_of`` is told.
    """

    def __init__(self, client: IdentityClient, events: Events, size: int = 1024) -> None:
        self._client = client
        self._events = events
        self._size = size
        self._tokens: dict[tuple[bytes, str], AccessToken] = {}
        self._lock = threading.Lock()
        self._exchanging: dict[tuple[bytes, str], threading.Lock] = {}  # a lock per key being exchanged

    def get(self, assertion: str, caller_id: str, scopes: tuple[str, ...], *,
            claims_challenge: str | None = None) -> AccessToken:
        """A token for ``scopes`` on behalf of the caller whose token is ``assertion``.

        A claims challenge always goes to the token endpoint. Raises
        :class:`~msal_wsgi.InteractionRequired` when the user must consent or satisfy a policy.
        """
        key = (hashlib.sha256(assertion.encode()).digest(), scope_key(scopes))
        if claims_challenge is None:
            token = self._kept(key)
            if token is not None:
                self._events(TOKEN_CACHE_HIT, scopes=scopes)
                return token
        with self._lock:
            exchanging = self._exchanging.setdefault(key, threading.Lock())
        try:
            with exchanging:
                if claims_challenge is None:
                    token = self._kept(key)
                    if token is not None:  # exchanged by another request while this one waited
                        return token
                token = self._client.acquire_on_behalf_of(assertion, scopes, claims_challenge=claims_challenge)
                with self._lock:
                    self._tokens.pop(key, None)
                    while len(self._tokens) >= self._size:
                        del self._tokens[next(iter(self._tokens))]
                    self._tokens[key] = token
        finally:
            with self._lock:
                if not exchanging.locked() and self._exchanging.get(key) is exchanging:
                    del self._exchanging[key]
        self._events(TOKEN_ON_BEHALF_OF, caller=caller_id, scopes=scopes)
        return token

    def _kept(self, key: tuple[bytes, str]) -> AccessToken | None:
        token = self._tokens.get(key)
        return token if token is not None and still_fresh(token.expires_on, token.refresh_on, time.time()) else None


class OnBehalfAcquirer:
    """``environ['msal_wsgi.acquire_token'](scopes, claims_challenge=None) -> AccessToken`` on API
    prefixes: a token for a downstream API, for the user whose token this request carries."""

    __slots__ = ("_assertion", "_caller_id", "_tokens")

    def __init__(self, tokens: OnBehalfOf, assertion: str, caller_id: str) -> None:
        self._tokens = tokens
        self._assertion = assertion
        self._caller_id = caller_id

    def __call__(self, scopes: Iterable[str] | str, *, claims_challenge: str | None = None) -> AccessToken:
        wanted = tuple(scopes.split()) if isinstance(scopes, str) else tuple(scopes)
        return self._tokens.get(self._assertion, self._caller_id, wanted, claims_challenge=claims_challenge)
