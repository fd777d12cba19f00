"""Per-session locks, so that parallel requests of one user refresh a token once.

A refresh with a rotating refresh token invalidates the old one: two requests
refreshing at the same time would each write a cache, and the loser's refresh
token is dead. msal_wsgi therefore refreshes under a lock keyed by the session
id, re-reads the session from the store inside it, and uses a token another
request has just saved. Pick the lock that spans the processes sharing your
session store:

* :class:`ThreadLock` (the default): threads of one process.
* :class:`FileLock`: processes on one host (gunicorn workers with Beaker
  ``file`` sessions); ``fcntl`` locks on files in a directory.
* :class:`RedisLock`: processes anywhere sharing a Redis server (redis-py's
  ``Lock``: a random token, atomic release; a short lease renewed while held).

The ``session_lock`` setting takes an instance, or ``"thread"``,
``"file:/path/to/dir"`` or ``"redis://host:port/db"``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any, Protocol

from ._redis import redis_client
from .errors import SessionUnavailable

log = logging.getLogger("msal_wsgi")

#: How long a request waits for another one's refresh before giving up with a 503 (seconds): longer
#: than a refresh normally takes and than a dead holder's lease, shorter than gunicorn's ``timeout``
#: (30 s) and the usual 30-60 s of load balancers and browsers.
DEFAULT_WAIT = 10.0
#: Seconds a Redis lock lives without renewal: how long the lock of a holder that died (a killed
#: worker) or lost Redis keeps others waiting. Renewed every ``LEASE_RENEWALS``-th of it while held,
#: so a live holder keeps its lock through a store pause of up to seven eighths of it.
DEFAULT_LEASE = 8.0
LEASE_RENEWALS = 8


class SessionLock(Protocol):
    """``with lock(session_id): ...`` holds the lock for one session."""

    def __call__(self, session_id: str) -> contextlib.AbstractContextManager[None]: ...


class ThreadLock:
    """Serialise the threads of this process that work on one session."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def __call__(self, session_id: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(session_id, (threading.Lock(), 0))
            self._locks[session_id] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[session_id]
                if users == 1:
                    del self._locks[session_id]  # keep the table as small as the live requests
                else:
                    self._locks[session_id] = (lock, users - 1)


class FileLock:
    """Serialise the processes of one host: an ``fcntl`` lock on a file per session.

    :param directory: where the lock files live (created if missing); one empty
        file per session id, named by its hash.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        import fcntl  # POSIX only; imported here so the module loads everywhere

        self._fcntl: Any = fcntl
        self._directory = os.fspath(directory)
        os.makedirs(self._directory, exist_ok=True)
        # A flock() lock belongs to an open file, so threads opening their own exclude each other;
        # but on NFS Linux emulates flock() with fcntl() locks, which belong to the process.
        self._threads = ThreadLock()

    @contextlib.contextmanager
    def __call__(self, session_id: str) -> Iterator[None]:
        name = hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        with self._threads(session_id):
            try:
                fd = os.open(os.path.join(self._directory, name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise SessionUnavailable(f"cannot open the session lock file: {exc.strerror}") from None
            try:
                self._fcntl.flock(fd, self._fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing releases the lock


class RedisLock:
    """Serialise requests across hosts that share a Redis server: redis-py's ``Lock``, renewed while held.

    The lock lives ``lease`` seconds and its holder renews it as long as it works, at most ``ttl``
    seconds in all: a holder that died (a killed worker) keeps others waiting for at most ``lease``,
    a live one keeps its lock through a refresh however long its provider takes (``http_timeout``)
    and through a store pause shorter than the lease. A release that fails (Redis unreachable at
    that moment) is tried again in the background until Redis answers, so the next request is
    served as soon as the store is back, not when the lease runs out.

    :param client: a ``redis.Redis`` client, or a ``redis://`` URL (a client with bounded waits,
        :func:`msal_wsgi.redis_client`).
    :param ttl: the longest any holder keeps the lock, renewals included (seconds).
    :param wait: seconds to wait for the lock before answering 503.
    :param prefix: of the lock keys; the rest is a hash of the session id.
    :param lease: seconds the lock lives without renewal (at most ``ttl``).
    """

    def __init__(self, client: Any, *, ttl: float = 60.0, wait: float = DEFAULT_WAIT,
                 prefix: str = "msal_wsgi.lock.", lease: float = DEFAULT_LEASE) -> None:
        self._redis = redis_client(client) if isinstance(client, str) else client
        self._ttl = ttl
        self._lease = min(lease, ttl)
        self._wait = wait
        self._prefix = prefix

    @contextlib.contextmanager
    def __call__(self, session_id: str) -> Iterator[None]:
        key = self._prefix + hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        token = secrets.token_hex(16)
        lock = self._redis.lock(key, timeout=self._lease, sleep=0.05, blocking_timeout=self._wait,
                                thread_local=False)
        try:
            acquired = lock.acquire(token=token)
        except Exception as exc:  # noqa: BLE001 - redis.ConnectionError and friends, not importable here
            raise SessionUnavailable(f"the session lock is unavailable: {type(exc).__name__}") from None
        if not acquired:
            raise SessionUnavailable("timed out waiting for another request's token refresh")
        lease = _Lease(lock, self._lease, self._ttl)
        try:
            yield
        finally:
            lease.end(token)


class _Lease:
    """A held Redis lock: renewed by a thread of its own while held, released (or tried again) at the end."""

    def __init__(self, lock: Any, lease: float, ttl: float) -> None:
        self._lock = lock
        self._lease = lease
        started = time.monotonic()
        self._renew_until = started + ttl - lease  # the last renewal keeps it to ttl at most
        self._expires = started + lease
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if lease < ttl:
            self._thread = threading.Thread(target=self._renew, name="msal_wsgi lock lease", daemon=True)
            self._thread.start()

    def _renew(self) -> None:
        from redis.exceptions import LockError

        every = self._lease / LEASE_RENEWALS
        while not self._stop.wait(every) and time.monotonic() <= self._renew_until:
            renewed = time.monotonic()
            try:
                self._lock.reacquire()
                self._expires = renewed + self._lease
            except LockError:  # not ours any more: expired, or released meanwhile
                return
            except Exception as exc:  # noqa: BLE001 - the store did not answer: try again at the next turn
                log.debug("the refresh lock's lease was not renewed (%s); trying again", type(exc).__name__)

    def end(self, token: str) -> None:
        # Not waiting for the renewal thread: a renewal after the release finds the key gone, and does nothing.
        self._stop.set()
        if not self._release(token):
            threading.Thread(target=self._release_later, args=(token,), name="msal_wsgi lock release",
                             daemon=True).start()

    def _release(self, token: str) -> bool:
        """Whether the lock is released, or no longer ours (expired, taken over); False: Redis did not answer."""
        from redis.exceptions import LockError

        try:
            self._lock.do_release(token)
        except LockError:  # LockNotOwnedError: it expired, and may be another's now
            return True
        except Exception:  # noqa: BLE001 - the store did not answer
            return False
        return True

    def _release_later(self, token: str) -> None:
        """Try the release again until Redis answers, or until the lease has run out by itself."""
        log.warning("the refresh lock could not be released; trying again until the store answers")
        while time.monotonic() < self._expires:
            time.sleep(0.25)
            if self._release(token):
                return


def lock_from_setting(value: Any) -> SessionLock:
    """The lock a ``session_lock`` setting names: an instance, ``thread``, ``file:DIR`` or a Redis URL."""
    if value is None or value == "thread":
        return ThreadLock()
    if isinstance(value, str):
        if value.startswith("file:"):
            return FileLock(value[len("file:"):])
        if value.startswith(("redis://", "rediss://", "unix://")):
            return RedisLock(value)
        raise ValueError(f"{value!r} is not 'thread', 'file:/dir' or a redis:// URL")
    if callable(value):
        return value  # type: ignore[no-any-return]
    raise ValueError(f"{value!r} is not a session lock")
