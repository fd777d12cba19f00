"""The session store beyond one session: ending a session by its id, the index from the provider's
``sid`` and ``sub`` to the sessions they signed in, logout tokens already seen, and purging the
sessions nobody comes back to.

A provider's logout (back-channel or front-channel) names a provider session (``sid``) or a user
(``sub``), not a session of ours, and may reach any server: the index and the sessions live in
the store every server shares. msal_wsgi learns that store from a Beaker session object (its
namespace class and arguments, as Beaker itself builds a session's namespace), so it needs no
configuration of its own:

- Beaker ``file`` sessions (:class:`FileStore`): each session is ``DATA_DIR/container_file/
  <a>/<ab>/<id>.cache``. The index is a directory tree beside it (``DATA_DIR/msal_wsgi/``): one
  empty-ish file per indexed session, created, listed and removed with single atomic file
  operations, so the processes and hosts sharing the directory need no lock. Sessions nobody
  rewrote for longer than the idle timeout are removed by :meth:`Store.sweep` (with their Beaker
  lock files); msal_wsgi rewrites a session at least once per ``session_activity_interval`` while
  it is used.
- Beaker ``ext:redis`` sessions (:class:`RedisStore`): the index is a sorted set per key
  (member: session id, score: until when it may be needed), logout tokens are ``SET NX EX`` keys,
  and every session msal_wsgi writes is in a sorted set by the time it ends, from which the sweep
  deletes those that have passed it. Keys expire on their own.
- Beaker ``memory`` sessions (:class:`MemoryStore`): the same in this process (tests, development).
- Other Beaker stores (``ext:database``, ``ext:memcached``...) can end a session by its id; they have
  no index (:attr:`Store.indexes` is false: the logout channels answer 501) and no sweep.

Everything here keys by hashes: a provider's ``sid``, ``sub`` and ``jti`` never appear in the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import SessionUnavailable

log = logging.getLogger("msal_wsgi")

#: Sessions remembered per ``sid`` or ``sub`` (the newest kept): a user signed in on many devices.
MAX_PER_KEY = 64
#: Entries a sweep looks at, at most: the next sweep goes on.
MAX_SWEPT = 10_000


def logout_keys(issuer: str, *, sid: str | None = None, sub: str | None = None) -> list[str]:
    """The index keys of a provider session (``sid``) and of a user (``sub``) at ``issuer``."""
    keys = []
    for kind, value in (("sid", sid), ("sub", sub)):
        if isinstance(value, str) and value:
            keys.append(kind + "-" + hashlib.sha256(f"{issuer}\x00{value}".encode()).hexdigest()[:40])
    return keys


class Store:
    """What msal_wsgi does with the session store beyond the request's own session.

    This base class is a Beaker store of an unknown kind: sessions can be deleted by id through
    Beaker's namespace, nothing more. Every method raises :class:`SessionUnavailable` when the store does.
    """

    #: Whether the store keeps the index and logout tokens (the logout channels need it).
    indexes = False
    #: Whether sessions nobody comes back to are purged by :meth:`sweep`.
    sweeps = False

    def __init__(self, namespace_class: type, data_dir: str | None, namespace_args: Mapping[str, Any]) -> None:
        self._namespace_class = namespace_class
        self._data_dir = data_dir
        self._args = dict(namespace_args)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._namespace_class.__name__})"

    def _namespace(self, session_id: str) -> Any:
        # As Beaker's Session.load builds it: the namespace of one session is its id.
        return self._namespace_class(session_id, data_dir=self._data_dir, digest_filenames=False, **self._args)

    def delete(self, session_id: str) -> None:
        """Take the session ``session_id`` out of the store (a browser still holding its cookie gets a new, empty one)."""
        with _failing("could not be deleted"):
            namespace = self._namespace(session_id)
            namespace.acquire_write_lock()
            try:
                if "session" in namespace:
                    del namespace["session"]
            finally:
                namespace.release_write_lock()
        self.forget(session_id)

    # -- the logout index -------------------------------------------------------------------

    def index(self, keys: Iterable[str], session_id: str, until: float) -> None:
        """Remember that ``session_id`` belongs to each of ``keys`` until ``until`` (Unix time)."""

    def unindex(self, keys: Iterable[str], session_id: str) -> None:
        """Forget ``session_id`` under ``keys``."""

    def indexed(self, key: str, now: float | None = None) -> list[str]:
        """The sessions remembered under ``key``, still possibly alive."""
        return []

    def first_use(self, key: str, until: float) -> bool:
        """Whether ``key`` (a logout token's ``jti``) is new; it is then remembered until ``until``."""
        return True

    # -- purging ------------------------------------------------------------------------------

    def keep(self, session_id: str, until: float) -> None:
        """``session_id`` was written and ends at ``until`` at the latest, unless written again."""

    def forget(self, session_id: str) -> None:
        """``session_id`` ended: nothing to purge any more."""

    def sweep(self, now: float, idle: float) -> int:
        """Delete sessions past their end (not written for ``idle`` seconds, for stores that know
        only that); returns how many. At most :data:`MAX_SWEPT` entries are looked at."""
        return 0


class MemoryStore(Store):
    """Beaker ``memory`` sessions: one process only."""

    indexes = True
    sweeps = True

    def __init__(self, namespace_class: type, data_dir: str | None, namespace_args: Mapping[str, Any]) -> None:
        super().__init__(namespace_class, data_dir, namespace_args)
        self._guard = threading.Lock()
        self._index: dict[str, dict[str, float]] = {}
        self._seen: dict[str, float] = {}
        self._ends: dict[str, float] = {}

    def delete(self, session_id: str) -> None:
        namespace = self._namespace(session_id)
        namespace.remove()  # the session's dict, emptied
        self.forget(session_id)

    def index(self, keys: Iterable[str], session_id: str, until: float) -> None:
        with self._guard:
            for key in keys:
                entry = self._index.setdefault(key, {})
                entry[session_id] = until
                _trim(entry)

    def unindex(self, keys: Iterable[str], session_id: str) -> None:
        with self._guard:
            for key in keys:
                entry = self._index.get(key)
                if entry is not None:
                    entry.pop(session_id, None)
                    if not entry:
                        del self._index[key]

    def indexed(self, key: str, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        with self._guard:
            return [sid for sid, until in self._index.get(key, {}).items() if until > now]

    def first_use(self, key: str, until: float) -> bool:
        now = time.time()
        with self._guard:
            for old in [k for k, t in self._seen.items() if t <= now][:MAX_SWEPT]:
                del self._seen[old]
            if key in self._seen:
                return False
            self._seen[key] = until
            return True

    def keep(self, session_id: str, until: float) -> None:
        with self._guard:
            self._ends[session_id] = until

    def forget(self, session_id: str) -> None:
        with self._guard:
            self._ends.pop(session_id, None)

    def sweep(self, now: float, idle: float) -> int:
        with self._guard:
            ended = [sid for sid, until in self._ends.items() if until <= now][:MAX_SWEPT]
            for key in [k for k, entry in self._index.items() if all(t <= now for t in entry.values())]:
                del self._index[key]
        for session_id in ended:
            self.delete(session_id)
        return len(ended)


def _trim(entry: dict[str, float]) -> None:
    while len(entry) > MAX_PER_KEY:
        del entry[min(entry, key=entry.__getitem__)]


class FileStore(Store):
    """Beaker ``file`` sessions, shared by the processes of one host (or a shared file system).

    The index lives in ``DATA_DIR/msal_wsgi/index/<key>/<session id>`` (the file holds the time
    until which it may be needed), logout tokens in ``DATA_DIR/msal_wsgi/jti/<hash>``.
    """

    indexes = True
    sweeps = True

    def __init__(self, namespace_class: type, data_dir: str | None, namespace_args: Mapping[str, Any]) -> None:
        super().__init__(namespace_class, data_dir, namespace_args)
        file_dir = self._args.get("file_dir")
        if file_dir:
            self._sessions_dir = str(file_dir)
            root = os.path.dirname(os.path.abspath(str(file_dir)))
        elif data_dir:
            self._sessions_dir = os.path.join(str(data_dir), "container_file")
            root = str(data_dir)
        else:
            raise ValueError("Beaker file sessions need data_dir (or file_dir)")
        self._root = os.path.join(root, "msal_wsgi")

    def delete(self, session_id: str) -> None:
        with _failing("could not be deleted"):
            namespace = self._namespace(session_id)
            namespace.remove()  # its file, under Beaker's lock of the session
            lock_file = getattr(namespace.access_lock, "filename", None)
            if isinstance(lock_file, str):
                with contextlib.suppress(OSError):
                    os.remove(lock_file)  # one per session ever loaded: they would pile up too

    # -- index: one file per (key, session) -----------------------------------------------

    def _entry_dir(self, key: str) -> str:
        return os.path.join(self._root, "index", key[-2:], key)

    def index(self, keys: Iterable[str], session_id: str, until: float) -> None:
        if not _safe_name(session_id):
            return  # not an id Beaker made (msal_wsgi indexes sessions under the id it renewed)
        name = session_id
        with _failing("index could not be written"):
            for key in keys:
                directory = self._entry_dir(key)
                os.makedirs(directory, exist_ok=True)
                _write(os.path.join(directory, name), f"{until:.0f}")
                entries = _listed(directory)
                if len(entries) > MAX_PER_KEY:
                    for old in sorted(entries, key=entries.__getitem__)[:len(entries) - MAX_PER_KEY]:
                        _remove(os.path.join(directory, old))

    def unindex(self, keys: Iterable[str], session_id: str) -> None:
        if not _safe_name(session_id):
            return
        for key in keys:
            _remove(os.path.join(self._entry_dir(key), session_id))

    def indexed(self, key: str, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        directory = self._entry_dir(key)
        with _failing("index could not be read"):
            entries = _listed(directory)
        for name, until in entries.items():
            if until <= now:
                _remove(os.path.join(directory, name))
        return [name for name, until in entries.items() if until > now]

    def first_use(self, key: str, until: float) -> bool:
        path = os.path.join(self._root, "jti", key[-2:], key)
        with _failing("logout token memory could not be written"):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                if _until(path) > time.time():
                    return False
                _remove(path)  # an expired one: this is a new use
                return self.first_use(key, until)
            with os.fdopen(fd, "w") as f:
                f.write(f"{until:.0f}")
        return True

    # -- purging ------------------------------------------------------------------------------

    def sweep(self, now: float, idle: float) -> int:
        """Delete session files not written for ``idle`` seconds (and their lock files), and index
        entries and logout tokens past their time."""
        removed = 0
        looked = 0
        for path in _files(self._sessions_dir):
            looked += 1
            if looked > MAX_SWEPT:
                break
            name = os.path.basename(path)
            if not name.endswith(".cache"):
                continue
            with contextlib.suppress(OSError):
                if now - os.stat(path).st_mtime > idle:
                    self.delete(name[:-len(".cache")])
                    removed += 1
        for kind in ("index", "jti"):
            for path in _files(os.path.join(self._root, kind)):
                looked += 1
                if looked > 2 * MAX_SWEPT:
                    break
                if _until(path) <= now:
                    _remove(path)
        return removed


def _safe_name(value: str) -> bool:
    return 0 < len(value) <= 128 and all(c.isalnum() or c in "-_" for c in value)


def _write(path: str, text: str) -> None:
    temporary = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    with open(temporary, "w") as f:
        f.write(text)
    os.replace(temporary, path)  # atomic: a reader sees the old file or the new one


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.remove(path)


def _until(path: str) -> float:
    try:
        with open(path) as f:
            return float(f.read(32) or 0)
    except (OSError, ValueError):
        return 0.0


def _listed(directory: str) -> dict[str, float]:
    try:
        names = [n for n in os.listdir(directory) if not n.endswith(".tmp")]
    except FileNotFoundError:
        return {}
    return {name: _until(os.path.join(directory, name)) for name in names}


def _files(root: str) -> Iterable[str]:
    """Every file under ``root`` (two levels of directories, as Beaker lays them out, or more)."""
    for directory, _, names in os.walk(root):
        for name in names:
            yield os.path.join(directory, name)


class RedisStore(Store):
    """Beaker ``ext:redis`` sessions; the index, logout tokens and purging use the same Redis.

    :param scope: names this application in the keys (``msal_wsgi:<scope>:...``), so that apps
        sharing a Redis database keep apart.
    """

    indexes = True
    sweeps = True

    def __init__(self, namespace_class: type, data_dir: str | None, namespace_args: Mapping[str, Any],
                 scope: str) -> None:
        super().__init__(namespace_class, data_dir, namespace_args)
        self._redis = self._namespace("msal_wsgi-probe").client  # Beaker's client for the URL (no I/O)
        self._prefix = f"msal_wsgi:{scope}:"

    def index(self, keys: Iterable[str], session_id: str, until: float) -> None:
        with _failing("index could not be written"):
            pipe = self._redis.pipeline()
            for key in keys:
                name = self._prefix + "index:" + key
                pipe.zadd(name, {session_id: until})
                pipe.zremrangebyrank(name, 0, -MAX_PER_KEY - 1)
                pipe.expireat(name, int(until) + 60)  # the newest sign-in lasts longest
            pipe.execute()

    def unindex(self, keys: Iterable[str], session_id: str) -> None:
        with _failing("index could not be written"):
            pipe = self._redis.pipeline()
            for key in keys:
                pipe.zrem(self._prefix + "index:" + key, session_id)
            pipe.execute()

    def indexed(self, key: str, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        with _failing("index could not be read"):
            members = self._redis.zrangebyscore(self._prefix + "index:" + key, now, "+inf")
        return [m.decode() if isinstance(m, bytes) else str(m) for m in members]

    def first_use(self, key: str, until: float) -> bool:
        ttl = max(1, int(until - time.time()) + 1)
        with _failing("logout token memory could not be written"):
            return bool(self._redis.set(self._prefix + "jti:" + key, b"1", nx=True, ex=ttl))

    def keep(self, session_id: str, until: float) -> None:
        with _failing("could not be saved"):
            self._redis.zadd(self._prefix + "sessions", {session_id: until})

    def forget(self, session_id: str) -> None:
        with _failing("could not be saved"):
            self._redis.zrem(self._prefix + "sessions", session_id)

    def sweep(self, now: float, idle: float) -> int:
        with _failing("could not be swept"):
            ended = self._redis.zrangebyscore(self._prefix + "sessions", "-inf", now, start=0, num=MAX_SWEPT)
        for member in ended:
            self.delete(member.decode() if isinstance(member, bytes) else str(member))
        return len(ended)


@contextlib.contextmanager
def _failing(what: str) -> Any:
    try:
        yield
    except SessionUnavailable:
        raise
    except Exception as exc:
        raise SessionUnavailable(f"the session store {what}: {type(exc).__name__}: {exc}") from exc


def store_of(session: Any, scope: str) -> Store | None:
    """The store behind a Beaker session object (``beaker.session``), or ``None`` for another kind of session.

    ``scope`` names this application in shared keys (Redis). Beaker's memory, file and Redis
    namespaces (and their subclasses) are known; another Beaker store can only delete sessions.
    """
    namespace_class = getattr(session, "namespace_class", None)
    if not isinstance(namespace_class, type) or not type(session).__module__.startswith("beaker."):
        return None
    from beaker.container import FileNamespaceManager, MemoryNamespaceManager  # optional dependency

    data_dir = getattr(session, "data_dir", None)
    args = dict(getattr(session, "namespace_args", None) or {})
    if issubclass(namespace_class, MemoryNamespaceManager):
        return MemoryStore(namespace_class, data_dir, args)
    if issubclass(namespace_class, FileNamespaceManager):
        return FileStore(namespace_class, data_dir, args)
    from beaker.ext.redisnm import RedisNamespaceManager  # imports without redis installed

    if issubclass(namespace_class, RedisNamespaceManager):
        return RedisStore(namespace_class, data_dir, args, scope)
    return Store(namespace_class, data_dir, args)
