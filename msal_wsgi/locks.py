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
* :class:`RedisLock`: processes anywhere sharing a Redis server
  (``SET NX PX`` with a random token, released by compare-and-delete).

The ``session_lock`` setting takes an instance, or ``"thread"``,
``"file:/path/to/dir"`` or ``"redis://host:port/db"``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any, Protocol

from .errors import SessionUnavailable

#: How long a request waits for another one's refresh before giving up (seconds).
DEFAULT_WAIT = 30.0


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


_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class RedisLock:
    """Serialise requests across hosts that share a Redis server.

    :param client: a ``redis.Redis`` client, or a ``redis://`` URL.
    :param ttl: seconds after which a lock left by a crashed process frees itself;
        keep it above the longest refresh (``http_timeout`` plus margin).
    :param wait: seconds to wait for the lock before answering 503.
    """

    def __init__(self, client: Any, *, ttl: float = 60.0, wait: float = DEFAULT_WAIT,
                 prefix: str = "msal_wsgi.lock.") -> None:
        if isinstance(client, str):
            import redis  # optional dependency

            client = redis.Redis.from_url(client)
        self._redis = client
        self._ttl_ms = int(ttl * 1000)
        self._wait = wait
        self._prefix = prefix
        self._release = client.register_script(_RELEASE)

    @contextlib.contextmanager
    def __call__(self, session_id: str) -> Iterator[None]:
        key = self._prefix + hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        token = secrets.token_hex(16)
        deadline = time.monotonic() + self._wait
        delay = 0.005
        try:
            while not self._redis.set(key, token, nx=True, px=self._ttl_ms):
                if time.monotonic() > deadline:
                    raise SessionUnavailable("timed out waiting for another request's token refresh")
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
        except SessionUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - redis.ConnectionError and friends, not importable here
            raise SessionUnavailable(f"the session lock is unavailable: {type(exc).__name__}") from None
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # an expired lock is already gone
                self._release(keys=[key], args=[token])


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
