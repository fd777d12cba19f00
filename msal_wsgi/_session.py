"""What msal_wsgi keeps in the user's session, and the only code that touches it.

The session is any dict-like object with ``save()`` found in the environ
(Beaker's ``SessionObject`` by default). Everything stored lives under the keys
in :mod:`msal_wsgi._environ`, each value sealed by :mod:`msal_wsgi.crypto` when
``session_keys`` is set (bound to its key and to the session id). Data that is not in
the expected shape (another app's, an older version's) or does not open (another key,
tampered, moved from another session) reads as "signed out", never as an error.

Stored per user:

* the user's *grants*: what each sign-in of this account consented to, with the msal
  token cache it produced (serialized, one refresh token each). msal keys refresh tokens
  by account and client, not by scopes, so one cache holds one refresh token per account;
  a provider whose refresh tokens cover only the scopes of the sign-in that issued them
  needs one cache per sign-in. The latest grant's cache is ``msal_wsgi.token_cache``
  (where a one-grant session kept it before grants existed) and its scopes are in the
  user record; earlier grants are in ``msal_wsgi.grants``, newest first (bounded). The
  caches hold no access tokens: the index below has each one once;
* the signed-in user, a small record the hot path opens alone: account id, id-token
  claims, the configuration fingerprint, an index of access tokens by requested scopes
  (a dictionary lookup and an expiry comparison instead of a cache deserialization),
  when the sign-in happened (``t0``), when the user was last seen (``seen``, written at
  most once per ``session_activity_interval``), when the account was last re-checked with
  the provider (``chk``), and the sign-out form's token (``csrf``);
* pending sign-ins keyed by ``state`` (bounded, expiring) and recently completed ones;
* form bodies waiting for their re-submission after a sign-in (see :mod:`msal_wsgi.replay`).

A session that ends (sign-out, a lifetime reached, a logout from the provider) leaves the
store: :class:`~msal_wsgi._store.Store` deletes it and its index entries.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Callable, NamedTuple, Protocol

from ._environ import (
    ALL_SESSION_KEYS,
    PREFIX,
    SESSION_CACHE,
    SESSION_DONE,
    SESSION_FLOWS,
    SESSION_GRANTS,
    SESSION_REPLAYS,
    SESSION_USER,
    UNFLUSHED,
)
from ._msal import EXPIRY_MARGIN, Redemption, id_token_of, still_fresh
from ._store import Store, logout_keys, store_of
from .crypto import Codec, Unreadable, is_sealed
from .errors import SessionUnavailable
from .identity import AccessToken, User

log = logging.getLogger("msal_wsgi")

#: At most this many access tokens are indexed per user; the oldest expire first.
MAX_INDEXED_TOKENS = 64
#: Completed sign-ins remembered, so a replayed callback (back button) can move on.
MAX_COMPLETED = 5
#: Grants (refresh tokens) kept per user; beyond it the oldest is dropped. Each is an msal cache of
#: about 2 KB: a user of a stock provider who consented to 32 resources one by one holds about 70 KB.
MAX_GRANTS = 32
#: Values compressed before they are sealed: what the provider issued (token caches, claims, tokens),
#: never what a request chose (pending sign-ins' next page, kept forms) beside a secret.
_COMPRESSED = frozenset({SESSION_USER, SESSION_CACHE, SESSION_GRANTS})
#: Without a max_session_lifetime, the logout index forgets a sign-in this long after it happened.
INDEX_HORIZON = 30 * 24 * 3600
#: Why a session ended: the ``reason`` of the ``session.ended`` event.
IDLE_TIMEOUT = "idle_timeout"
MAX_LIFETIME = "max_session_lifetime"
ACCOUNT_REFUSED = "account_recheck_refused"
SIGNED_OUT = "sign_out"
BACKCHANNEL_LOGOUT = "backchannel_logout"
FRONTCHANNEL_LOGOUT = "frontchannel_logout"


class Lifetimes(NamedTuple):
    """How long a sign-in lasts, from the settings (seconds; 0: no such limit).

    - ``idle``: ends this long after the user was last seen (``idle_timeout``);
    - ``max``: ends this long after the sign-in (``max_session_lifetime``);
    - ``interval``: "last seen" is written at most this often (``session_activity_interval``),
      so a session ends between ``idle - interval`` and ``idle`` after the last request;
    - ``recheck``: a prefix without scopes asks the provider about the account this often
      (``account_recheck_interval``);
    - ``sign_in_timeout``: how long a pending sign-in lasts.
    """

    idle: int = 0
    max: int = 0
    interval: int = 300
    recheck: int = 0
    sign_in_timeout: int = 600

    def ended(self, record: Mapping[str, Any], now: float) -> str | None:
        """Why the sign-in of ``record`` has ended by ``now`` (a reason), or ``None`` while it lasts."""
        return self.check(record, now)[0]

    def check(self, record: Mapping[str, Any], now: float) -> tuple[str | None, bool]:
        """Why the sign-in has ended (or ``None``), and whether this request should write "last seen":
        the hot path's one call."""
        t0, seen = record.get("t0"), record.get("seen")
        if self.max and isinstance(t0, (int, float)) and now - t0 >= self.max:
            return MAX_LIFETIME, False
        if not self.idle:
            return None, False
        if not isinstance(seen, (int, float)):
            return None, True
        idle = now - seen
        return (IDLE_TIMEOUT, False) if idle >= self.idle else (None, idle >= self.interval)

    def activity_due(self, record: Mapping[str, Any], now: float) -> bool:
        """Whether this request should write "last seen" (at most once per interval)."""
        seen = record.get("seen")
        return bool(self.idle) and (not isinstance(seen, (int, float)) or now - seen >= self.interval)

    def recheck_due(self, record: Mapping[str, Any], now: float) -> bool:
        checked = record.get("chk", record.get("t0"))
        return bool(self.recheck) and (not isinstance(checked, (int, float)) or now - checked >= self.recheck)

    def until(self, record: Mapping[str, Any] | None, now: float) -> float | None:
        """The latest time the session may still be in use, unless it is written again (``None``: no
        limit). Without a signed-in user (a pending sign-in), as long as a sign-in or an idle session lasts."""
        if record is None:
            span = max(self.sign_in_timeout, self.idle or self.max)
            return now + span + self.interval if self.idle or self.max else None
        ends = []
        seen, t0 = record.get("seen", now), record.get("t0", now)
        if self.idle:
            ends.append(float(seen) + self.idle + self.interval)
        if self.max:
            ends.append(float(t0) + self.max)
        return min(ends) if ends else None

    @property
    def unused_for(self) -> float | None:
        """Seconds after which a session file nobody rewrote is surely over (the file sweep)."""
        if not (self.idle or self.max):
            return None
        return max(self.sign_in_timeout, self.idle or self.max) + self.interval


#: No lifetime limit, no re-check: what a view gets unless told otherwise.
UNLIMITED = Lifetimes()


class Ended(NamedTuple):
    """What a session that ended held of its sign-in: for the provider's end-session request."""

    signed_in: bool
    id_token: str | None = None
    login_hint: str | None = None


class Grant(NamedTuple):
    """What one sign-in of the user consented to, and the msal token cache it produced.

    ``scopes`` are the scopes its refresh token is known to serve: those the sign-in was
    granted, and those it later served (a multi-resource refresh token, as Entra ID's).
    """

    scopes: frozenset[str]
    cache: str

    def covers(self, scopes: tuple[str, ...]) -> bool:
        return bool(self.scopes) and self.scopes.issuperset(scopes)


class StoredUser:
    """The session's record of the signed-in user: account id, claims, and the index of their access tokens."""

    __slots__ = ("record", "user")

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record  # shared by the requests that open the same sealed record: never changed
        self.user = User(record["id"], record["claims"])

    @property
    def account_id(self) -> str:
        """msal's ``home_account_id`` of the user."""
        return str(self.record["id"])

    @property
    def csrf(self) -> str | None:
        """The token the sign-out form carries for this sign-in."""
        value = self.record.get("csrf")
        return value if isinstance(value, str) else None

    @property
    def logout_keys(self) -> list[str]:
        """This sign-in's keys in the logout index: its provider session (``sid``) and user (``sub``)."""
        claims = self.user.claims
        issuer = claims.get("iss")
        return logout_keys(issuer, sid=claims.get("sid"), sub=claims.get("sub")) if isinstance(issuer, str) else []

    def indexed_tokens(self, now: float) -> list[AccessToken]:
        """The indexed access tokens not yet expired, for msal's cache when it is needed."""
        tokens = []
        for value, expires_on, refresh_on, scopes in self.record["tokens"].values():
            if expires_on > now:
                tokens.append(AccessToken(value, expires_on, tuple(scopes), refresh_on))
        return tokens

    def cached_token(self, key: str, now: float) -> AccessToken | None:
        """An indexed token msal itself would still serve from its cache, else ``None``."""
        entry = self.record["tokens"].get(key)
        if entry is None:
            return None
        value, expires_on, refresh_on, scopes = entry
        if not still_fresh(expires_on, refresh_on, now):
            return None
        return AccessToken(value, expires_on, tuple(scopes), refresh_on)


def scope_key(scopes: tuple[str, ...] | list[str]) -> str:
    return " ".join(scopes)


class _store:
    """Any error of the session store (down, unreadable data) becomes :class:`SessionUnavailable`.

    A class rather than a ``contextlib.contextmanager``: it guards every session read of the hot path.
    """

    __slots__ = ("_failure",)

    def __init__(self, failure: str) -> None:
        self._failure = failure

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, Exception):
            raise SessionUnavailable(f"the session {self._failure}: {type(exc).__name__}: {exc}") from exc


class Session(Protocol):
    """What msal_wsgi needs of a session: a mutable mapping with ``save()`` (Beaker's has more)."""

    def get(self, key: str, default: Any = None) -> Any: ...
    def __getitem__(self, key: str) -> Any: ...
    def __setitem__(self, key: str, value: Any) -> None: ...
    def __delitem__(self, key: str) -> None: ...
    def __contains__(self, key: object) -> bool: ...
    def items(self) -> Any: ...
    def clear(self) -> None: ...
    def pop(self, key: str, default: Any = None) -> Any: ...
    def update(self, other: Mapping[str, Any]) -> None: ...
    def save(self) -> None: ...


class NoSession(Exception):
    """The request has no session msal_wsgi can use: none in the environ, or a cookie-only one."""

    def __init__(self, cookie_only: bool) -> None:
        self.cookie_only = cookie_only
        super().__init__("cookie-only session" if cookie_only else "no session")


class Sessions:
    """Finds each request's session and opens msal_wsgi's view of it.

    :param session_key: the environ key of the session.
    :param fingerprint: names the client and authority (see :class:`SessionView`), and this
        application in keys of the store shared with others.
    :param codec: seals and opens what is kept (:mod:`msal_wsgi.crypto`); plain by default.
    :param lifetimes: how long sign-ins last.
    """

    def __init__(self, session_key: str, fingerprint: str, codec: Codec | None = None,
                 lifetimes: Lifetimes = UNLIMITED) -> None:
        self._key = session_key
        self._fingerprint = fingerprint
        self._codec = codec if codec is not None else Codec()
        self.lifetimes = lifetimes
        self._kinds_checked: set[type] = set()
        self._store: Store | None = None
        self._store_known = False

    def store(self, environ: Mapping[str, Any]) -> Store | None:
        """The store behind this request's session (``None``: not a Beaker session); learnt once,
        as the store behind a session object does not change."""
        if not self._store_known:
            session = environ.get(self._key)
            if session is None:
                return None
            with _store("could not be loaded"):
                self._store = store_of(session, self._fingerprint)
            self._store_known = True
        return self._store

    def view(self, environ: MutableMapping[str, Any]) -> SessionView:
        """msal_wsgi's view of this request's session, or :class:`NoSession`."""
        session = environ.get(self._key)
        if session is None:
            raise NoSession(cookie_only=False)
        kind = type(session)
        if kind not in self._kinds_checked:  # the store behind a session object does not change
            with _store("could not be loaded"):
                cookie_only = _cookie_only(session)
            if cookie_only:
                raise NoSession(cookie_only=True)
            self._kinds_checked.add(kind)
        unflushed = environ.setdefault(UNFLUSHED, set())
        return SessionView(session, self._fingerprint, self._codec, self.lifetimes,
                           lambda: self.store(environ), unflushed)

    def written_back(self, environ: MutableMapping[str, Any]) -> SessionView | None:
        """The view of this request's session when Beaker will write it back as this request holds it, msal_wsgi's
        keys too, when the response starts: the app asked it to (``save()``), or the session was loaded and
        Beaker saves the access time (``save_accessed_time``, its default: it writes the data it loaded).
        ``None`` otherwise (no write, not loaded, not Beaker, a new session)."""
        session: Any = environ.get(self._key)
        try:  # on every request that reaches the app: the cheapest test first
            if not session.accessed():
                return None
            # Loaded (accessed): these attributes are read from the loaded session, the store is not asked.
            if not session.dirty() and not (session.save_atime is True and session.is_new is False):
                return None
        except AttributeError:  # not a Beaker session (or none)
            return None
        view = self.view(environ)
        return view if view.session_id is not None else None


def _cookie_only(session: Any) -> bool:
    """A Beaker cookie session: unlike its server-side sessions, it has no namespace class (a store)."""
    return type(session).__module__.startswith("beaker.") and getattr(session, "namespace_class", None) is None


class SessionView:
    """Reads and writes msal_wsgi's part of one request's session.

    ``fingerprint`` names the client and authority: a user signed in for another
    configuration reads as signed out.
    """

    def __init__(self, session: Session, fingerprint: str, codec: Codec | None = None,
                 lifetimes: Lifetimes = UNLIMITED, store: Callable[[], Store | None] = lambda: None,
                 unflushed: set[str] | None = None) -> None:
        self._session = session
        self._fingerprint = fingerprint
        self._codec = codec if codec is not None else Codec()
        self._lifetimes = lifetimes
        self._store = store
        #: msal_wsgi's keys this request changed and has not flushed (shared by the request's views).
        self._unflushed = unflushed if unflushed is not None else set()
        self._bound_to: str | None = None  # the session id, once read (it changes only in _renew_id)

    @property
    def lifetimes(self) -> Lifetimes:
        return self._lifetimes

    def _get(self, key: str, *, build: Callable[[Any], Any] | None = None) -> Any:
        """The value kept under ``key``, opened (``build`` of it, remembered: see :class:`~msal_wsgi.crypto.Sealer`);
        ``None`` when absent or when it does not open."""
        with _store("could not be loaded"):
            stored = self._session.get(key)
            if stored is None:
                return None
            if not self._codec.encrypted and not is_sealed(stored):
                return stored if build is None else build(stored)
            binding = self._binding()
        try:
            return self._codec.open(key, binding, stored, build=build)
        except Unreadable:
            return None

    def _put(self, key: str, value: Any) -> None:
        """Keep ``value`` under ``key``, sealed for this session's current id."""
        self._session[key] = self._codec.seal(key, self._binding(), value, compress=key in _COMPRESSED)
        self._unflushed.add(key)

    def _binding(self) -> str:
        """What sealed values are bound to: the session id (a session without one: nothing)."""
        binding = self._bound_to
        if binding is None:
            sid = getattr(self._session, "id", None)
            binding = self._bound_to = sid if isinstance(sid, str) else ""
        return binding

    def _save(self) -> None:
        with _store("could not be saved"):
            self._session.save()

    @property
    def session_id(self) -> str | None:
        """The store's id of this session, when the session object exposes one (Beaker: ``id``)."""
        with _store("could not be loaded"):
            sid = getattr(self._session, "id", None)
        return sid if isinstance(sid, str) else None

    @property
    def lock_key(self) -> str:
        """What the per-session lock is keyed by: the session id (a session without one locks alone)."""
        return self.session_id or f"unkeyed:{id(self)}"

    def reload(self, keys: Iterable[str] = ALL_SESSION_KEYS) -> None:
        """Take msal_wsgi's ``keys`` afresh from the store: another request may have saved newer ones.

        Needs ``get_by_id(id)`` (Beaker); other keys of the session stay as this request has them.
        """
        get_by_id = getattr(self._session, "get_by_id", None)
        sid = self.session_id
        if get_by_id is None or sid is None:
            return
        with _store("could not be re-read"):
            stored = get_by_id(sid)
        for key in keys:
            value = stored.get(key) if stored is not None else None
            if value is None:
                self._session.pop(key, None)
            else:
                self._session[key] = value
            self._unflushed.discard(key)
        self._sync_accessed()

    def take_current_keys(self) -> None:
        """Before Beaker writes the session back: msal_wsgi's keys as the store has them now, but those this
        request changed itself. Another request may have rotated the refresh token, taken a kept form's token
        or signed the user out since this one loaded the session; the save would undo it. Call it under the
        session's lock."""
        self.reload([key for key in ALL_SESSION_KEYS if key not in self._unflushed])

    def flush(self) -> None:
        """Write msal_wsgi's keys to the store now, not at the end of the request (Beaker defers it).

        With Beaker, the stored copy of the session (``get_by_id``) is updated and saved, and the
        request's session is not marked changed: Beaker does not write it a second time when the
        response starts, where a store failing in between would be outside msal_wsgi's reach.
        Other sessions are saved as they can (``save()``, then ``persist()`` if they have one).
        """
        get_by_id = getattr(self._session, "get_by_id", None)
        sid = self.session_id
        stored = None
        if get_by_id is not None and sid is not None:
            with _store("could not be re-read"):
                stored = get_by_id(sid)
        if stored is None:  # not Beaker, or never saved yet
            self._save()
            persist = getattr(self._session, "persist", None)
            if persist is not None:
                with _store("could not be saved"):
                    persist()
        else:
            with _store("could not be saved"):
                for key in ALL_SESSION_KEYS:
                    if key in self._session:
                        stored[key] = self._session[key]
                    else:
                        stored.pop(key, None)
                stored.save()
        self._unflushed.clear()
        self._sync_accessed()

    def _sync_accessed(self) -> None:
        # Beaker's default save_accessed_time=True writes back, at the end of the request,
        # the data loaded at its start ("accessed_dict"): keep our keys there current so
        # that write-back cannot restore a refresh token that was rotated meanwhile.
        accessed = getattr(self._session, "accessed_dict", None)
        if isinstance(accessed, dict):
            for key in ALL_SESSION_KEYS:
                if key in self._session:
                    accessed[key] = self._session[key]
                else:
                    accessed.pop(key, None)

    # -- the signed-in user -------------------------------------------------

    def user(self) -> StoredUser | None:
        """The signed-in user, or ``None`` (nobody, or data in another shape or of another configuration).

        Lifetimes are not checked here: see :class:`Lifetimes`."""
        found = self._get(SESSION_USER, build=self._stored_user)
        return found if isinstance(found, StoredUser) else None

    def _stored_user(self, record: Any) -> StoredUser | None:
        if (type(record) is dict and record.get("fp") == self._fingerprint and isinstance(record.get("id"), str)
                and isinstance(record.get("claims"), dict) and isinstance(record.get("tokens"), dict)):
            return StoredUser(record)
        return None

    def grants(self, signed_in: StoredUser) -> list[Grant]:
        """The grants of ``signed_in``, newest first; empty when the session holds no token cache."""
        latest = self._get(SESSION_CACHE)
        if not isinstance(latest, str):
            return []
        scopes = signed_in.record.get("scopes")
        grants = [Grant(frozenset(scopes) if isinstance(scopes, list) else frozenset(), latest)]
        earlier = self._get(SESSION_GRANTS)
        for entry in earlier if type(earlier) is list else ():
            if type(entry) is dict and isinstance(entry.get("cache"), str) and isinstance(entry.get("scopes"), list):
                grants.append(Grant(frozenset(entry["scopes"]), entry["cache"]))
        return grants

    def store_token(self, signed_in: StoredUser, token: AccessToken | None, new_cache: str | None, *,
                    grant: int = 0, served: tuple[str, ...] = ()) -> None:
        """Index ``token`` for its scopes and keep the new cache of grant number ``grant``, if any;
        :meth:`flush` (or the end of the request) writes them.

        ``served``: scopes that grant turned out to serve, remembered as covered by it.
        """
        tokens = dict(signed_in.record["tokens"])
        if token is not None:
            now = time.time()
            tokens = {k: v for k, v in tokens.items() if v[1] - now >= EXPIRY_MARGIN}
            tokens[scope_key(token.scopes)] = [token.value, token.expires_on, token.refresh_on, list(token.scopes)]
            while len(tokens) > MAX_INDEXED_TOKENS:
                del tokens[min(tokens, key=lambda k: tokens[k][1])]
        record = dict(signed_in.record, tokens=tokens, seen=time.time())  # a request of the user is under way
        if grant == 0:
            if served:
                record["scopes"] = sorted(set(record.get("scopes") or ()) | set(served))
            if new_cache is not None:
                self._put(SESSION_CACHE, new_cache)
        elif new_cache is not None or served:
            earlier = list(self._get(SESSION_GRANTS) or ())
            entry = dict(earlier[grant - 1])
            if new_cache is not None:
                entry["cache"] = new_cache
            entry["scopes"] = sorted(set(entry["scopes"]) | set(served))
            earlier[grant - 1] = entry
            self._put(SESSION_GRANTS, earlier)
        self._put_user(record)

    def _put_user(self, record: dict[str, Any]) -> None:
        """Keep the user record, and tell the store until when the session lasts unless written again."""
        self._put(SESSION_USER, record)
        self._keep(record)

    def _keep(self, record: dict[str, Any] | None) -> None:
        store, sid = self._store(), self.session_id
        until = self._lifetimes.until(record, time.time())
        if store is not None and sid is not None and until is not None:
            store.keep(sid, until)

    # -- lifetimes ------------------------------------------------------------------

    def touch(self, signed_in: StoredUser, now: float) -> StoredUser:
        """Write "last seen" now (the middleware calls it at most once per activity interval)."""
        record = dict(signed_in.record, seen=now)
        self._put_user(record)
        self.flush()
        return StoredUser(record)

    def rechecked(self, signed_in: StoredUser, new_cache: str, now: float) -> None:
        """The provider confirmed the account (a refresh of the sign-in): keep its new cache, note when."""
        self._put(SESSION_CACHE, new_cache)
        self._put_user(dict(signed_in.record, chk=now, seen=now))
        self.flush()

    def sign_in(self, redemption: Redemption, state: str, next_url: str) -> bool:
        """Sign in the user of ``redemption`` under a new session id; returns whether it was the same account.

        A sign-in of the account already signed in (for more scopes: incremental consent)
        adds its grant to theirs: the earlier refresh and access tokens stay usable, and
        so does the app's own data in the session. Another account replaces everything.
        The sign-in's lifetimes start now, and the logout index learns its ``sid`` and ``sub``.
        """
        flows = self._flows()
        done = self._completed()
        done[state] = next_url
        while len(done) > MAX_COMPLETED:
            del done[next(iter(done))]
        current = self.user()
        same = current is not None and current.account_id == redemption.account_id
        new = Grant(frozenset(redemption.granted), redemption.cache)
        earlier: list[Grant] = []
        tokens: dict[str, Any] = {}
        app_data: dict[str, Any] = {}
        replays = None
        if same and current is not None:
            # A refresh token the new one covers is redundant; keep the others, newest first.
            earlier = [g for g in self.grants(current) if not (g.scopes and g.scopes <= new.scopes)]
            earlier = earlier[:MAX_GRANTS - 1]
            tokens = dict(current.record["tokens"])
            app_data = {k: v for k, v in self._session.items() if not k.startswith(("_", PREFIX))}
            replays = self._get(SESSION_REPLAYS)
        old_keys = current.logout_keys if current is not None else []
        old_id = self.session_id
        self._renew_id(keep_flows=flows, keep=app_data)
        self._put(SESSION_DONE, done)
        if replays is not None:
            self._put(SESSION_REPLAYS, replays)
        self._put(SESSION_CACHE, new.cache)
        if earlier:
            self._put(SESSION_GRANTS, [{"scopes": sorted(g.scopes), "cache": g.cache} for g in earlier])
        now = time.time()
        record = {"id": redemption.account_id, "claims": dict(redemption.claims), "fp": self._fingerprint,
                  "tokens": tokens, "scopes": sorted(new.scopes), "t0": now, "seen": now, "chk": now,
                  "csrf": secrets.token_urlsafe(24)}
        self.store_token(StoredUser(record), redemption.token, None)
        self._save()
        self._reindex(old_id, old_keys, StoredUser(record))
        return same

    def _reindex(self, old_id: str | None, old_keys: list[str], signed_in: StoredUser | None) -> None:
        """The logout index after a sign-in (``signed_in``) or the end of one (``None``)."""
        store = self._store()
        if store is None or not store.indexes:
            return
        if old_id is not None and old_keys:
            store.unindex(old_keys, old_id)
        sid = self.session_id
        if signed_in is not None and sid is not None and signed_in.logout_keys:
            t0 = float(signed_in.record["t0"])
            store.index(signed_in.logout_keys, sid, t0 + (self._lifetimes.max or INDEX_HORIZON))

    def end(self) -> Ended:
        """End the sign-in: the session leaves the store, and continues empty under a new id (the
        cookie it had is worth nothing). Returns what the provider's end-session request needs."""
        current = self.user()
        ended = Ended(False)
        if current is not None:
            latest = self._get(SESSION_CACHE)
            hint = current.user.claims.get("login_hint")
            ended = Ended(True, id_token_of(latest) if isinstance(latest, str) else None,
                          hint if isinstance(hint, str) else None)
        old_keys = current.logout_keys if current is not None else []
        old_id = self.session_id
        self._renew_id(keep_flows=None)
        if self._store() is None:
            self._save()  # a store msal_wsgi does not know: save the emptied session
        else:
            # Nothing to store under the new id (Beaker then writes nothing, with save_accessed_time=false);
            # and its end-of-request write-back of the data it loaded (save_accessed_time=true) must not
            # bring the ended session back under the new id.
            accessed = getattr(self._session, "accessed_dict", None)
            if isinstance(accessed, dict):
                accessed.clear()
        self._reindex(old_id, old_keys, None)
        return ended

    def _renew_id(self, keep_flows: dict[str, Any] | None, keep: Mapping[str, Any] | None = None) -> None:
        """Take the session out of the store under its old id, then continue under a new id.

        Only the pending sign-ins (other tabs), and ``keep`` (the app's own data, when the same
        account signs in again), survive a sign-in; nothing survives a sign-out. The old id's data
        is deleted from the store; a store msal_wsgi does not know (not Beaker) gets it emptied instead.
        Stores without ``regenerate_id()`` keep their id.
        """
        private = {k: v for k, v in self._session.items() if k.startswith("_")}
        self._unflushed.update(ALL_SESSION_KEYS)  # under the new id, none of them is in the store
        old_id = self.session_id
        store = self._store()
        self._session.clear()
        persist = getattr(self._session, "persist", None)
        regenerate = getattr(self._session, "regenerate_id", None)
        with _store("id could not be renewed"):
            if store is None and persist is not None and regenerate is not None:
                self._session.save()
                persist()  # write the emptied session under the old id now
            if regenerate is not None:
                regenerate()
        self._bound_to = None
        if store is not None and old_id is not None and regenerate is not None:
            store.delete(old_id)
        self._session.update(private)
        if keep:
            self._session.update(keep)
        if keep_flows:
            self._put(SESSION_FLOWS, keep_flows)

    # -- pending sign-ins -----------------------------------------------------

    def _flows(self) -> dict[str, Any]:
        flows = self._get(SESSION_FLOWS)
        return dict(flows) if type(flows) is dict else {}

    def _completed(self) -> dict[str, str]:
        done = self._get(SESSION_DONE)
        return dict(done) if type(done) is dict else {}

    def add_flow(self, state: str, pending: dict[str, Any], *, limit: int, ttl: int) -> None:
        """Keep a pending sign-in; drop expired ones and the oldest beyond ``limit``."""
        flows = self._live(self._flows(), ttl)
        flows[state] = pending
        while len(flows) > limit:
            del flows[min(flows, key=lambda s: flows[s].get("t", 0))]
        self._put(SESSION_FLOWS, flows)
        self._save()
        if self.user() is None:
            self._keep(None)  # an anonymous session: as long as a sign-in, or an idle session, lasts

    def pop_flow(self, state: str, *, ttl: int) -> tuple[dict[str, Any] | None, str | None]:
        """Take the pending sign-in for ``state`` out of the session (single use).

        Returns it while it is fresh; an expired one gives only the page it was for.
        """
        flows = self._flows()
        pending = flows.pop(state, None)
        live = self._live(flows, ttl)
        if pending is not None or len(live) != len(flows):
            self._put(SESSION_FLOWS, live)
            self._save()
        if type(pending) is not dict:
            return None, None
        if _fresh(pending, time.time(), ttl) and isinstance(pending.get("flow"), dict):
            return pending, None
        next_url = pending.get("next")
        return None, next_url if isinstance(next_url, str) else None

    def completed(self, state: str) -> str | None:
        """Where a finished sign-in with this ``state`` went, if it is recent."""
        next_url = self._completed().get(state)
        return next_url if isinstance(next_url, str) else None

    # -- forms waiting for their re-submission (msal_wsgi.replay) ---------------------

    def _replays(self, ttl: int) -> dict[str, dict[str, Any]]:
        replays = self._get(SESSION_REPLAYS)
        now = time.time()
        return {key: entry for key, entry in (replays.items() if type(replays) is dict else ())
                if type(entry) is dict and isinstance(entry.get("url"), str) and _fresh(entry, now, ttl)}

    def add_replay(self, key: str, entry: dict[str, Any], *, limit: int, ttl: int) -> None:
        """Keep a form body under ``key`` (its token's hash); drop expired ones and the oldest beyond ``limit``."""
        replays = self._replays(ttl)
        replays[key] = entry
        while len(replays) > limit:
            del replays[min(replays, key=lambda k: replays[k]["t"])]
        self._put(SESSION_REPLAYS, replays)
        self._save()

    def take_replay(self, key: str, *, ttl: int) -> dict[str, Any] | None:
        """The form kept under ``key``, its body taken out of the store at once (single use).

        A used one comes back without ``body``; an unknown or expired one is ``None``.
        """
        stored = self._get(SESSION_REPLAYS)
        replays = self._replays(ttl)
        entry = replays.get(key)
        taken = entry is not None and "body" in entry
        if entry is not None and taken:
            replays[key] = {"url": entry["url"], "t": entry["t"]}
        if taken or (stored is not None and (type(stored) is not dict or len(stored) != len(replays))):
            self._put(SESSION_REPLAYS, replays)  # taken, or expired ones dropped: written at once
            self.flush()
        return entry

    @staticmethod
    def _live(flows: dict[str, Any], ttl: int) -> dict[str, Any]:
        now = time.time()
        return {s: f for s, f in flows.items() if type(f) is dict and _fresh(f, now, ttl)}


def _fresh(pending: dict[str, Any], now: float, ttl: int) -> bool:
    """Whether a pending sign-in started less than ``ttl`` seconds ago (a malformed one never is)."""
    started = pending.get("t")
    return isinstance(started, (int, float)) and now - started <= ttl
