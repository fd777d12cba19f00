"""Authenticated encryption of what msal_wsgi keeps in the session (AES-256-GCM, ``cryptography``).

A session store holds refresh tokens: anyone who can read Redis or the session files could
use them. With ``session_keys`` set, every value msal_wsgi puts in the session is sealed here
before Beaker stores it, and opened when read; without keys the values are stored as they are
(a development setup, which ``check`` and a startup warning point out).

A sealed value is ASCII text, ``mw1:`` and the base64url of::

    key id (4) | nonce (12) | AES-GCM ciphertext | tag (16)

Text, not bytes: Beaker pickles sessions with protocol 2, which stores bytes as latin-1 text
re-encoded (half as large again, and slow to load), and its ``json`` serializer takes no bytes.

- Keys are 32 random bytes, written as base64url (``python -m msal_wsgi make-key``). The first
  key of the setting seals; every key opens, so a key can be rotated in and an old one kept
  until the sessions it sealed have ended. The key id (4 bytes of an HMAC of the key) says which
  key sealed a value, so opening tries one key, never all.
- The associated data binds a value to its session key (``msal_wsgi.user``...) and to the
  session's id: a value copied into another session, or under another key of the same session,
  does not open. Session ids change at every sign-in and sign-out; msal_wsgi seals again what
  it keeps across the change.
- The nonce is random (96 bits) for every seal; a key seals far fewer than the 2**32 values
  after which random nonces would become a risk (NIST SP 800-38D §8.3).
- A value that does not open (another key, tampered, moved, or stored unsealed) reads as absent:
  the user is signed out. Each kind of failure is logged once per process (WARNING), then at DEBUG.

The payload is JSON (never pickle: a value that opens is still only data), or UTF-8 text for
strings (msal's serialized caches), marked by its first byte; ``compress=True`` deflates it first.
The caller compresses only values whose content comes from the provider (token caches, the user
record), never those holding what a request chose (a ``next`` page, a form) next to a secret (a
PKCE verifier): a compressed length then reveals nothing an attacker could steer.

Opening the signed-in user's record on every protected request would cost a decryption and a
JSON parse; :class:`Sealer` remembers the last opened records (bounded, per process), keyed by
session key, session id and the sealed value's key id, nonce and tag, and served again only for
the very same text, so a request whose session holds the same sealed value costs a dictionary
lookup and a comparison.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import zlib
from collections.abc import Sequence
from typing import Any, Callable

log = logging.getLogger("msal_wsgi")

#: What a sealed value starts with (this format, version 1).
PREFIX = "mw1:"
KEY_BYTES = 32
_KEY_ID_BYTES = 4
_NONCE_BYTES = 12
_TAG_BYTES = 16
_HEADER = _KEY_ID_BYTES + _NONCE_BYTES
#: Characters of a sealed value that hold its key id and nonce, and its tag: the memory's key.
_HEAD_CHARS = len(PREFIX) + (_HEADER * 4 + 2) // 3
_TAIL_CHARS = (_TAG_BYTES * 4 + 2) // 3
_TEXT, _JSON, _DEFLATED_TEXT, _DEFLATED_JSON = b"s", b"j", b"S", b"J"
#: Opened records remembered per process (the signed-in user's record of each session).
REMEMBERED = 1024

#: Why a stored value did not open: the ``reason`` of the ``session.unreadable`` event.
UNSEALED = "unsealed"  # stored without encryption (before session_keys was set, or by another app)
MALFORMED = "malformed"  # not a value msal_wsgi sealed
UNKNOWN_KEY = "unknown_key"  # sealed under a key that is not in session_keys (removed too early?)
TAMPERED = "tampered"  # changed, or moved from another session or session key


def make_key() -> str:
    """A new session key: 32 random bytes, base64url without padding."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).rstrip(b"=").decode("ascii")


def parse_keys(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """The keys of the ``session_keys`` setting: base64url strings of 32 bytes, separated by commas or
    spaces in a string. Raises ValueError naming the key (by position, never its value)."""
    if value is None:
        return ()
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    for number, key in enumerate(items, start=1):
        if not isinstance(key, str) or len(decode_key(key, number)) != KEY_BYTES:
            raise ValueError(f"key {number} is not {KEY_BYTES} bytes of base64url; make one with "
                             "'python -m msal_wsgi make-key'")
    if len(set(items)) != len(items):
        raise ValueError("a key is listed twice")
    return tuple(items)


def decode_key(key: str, number: int = 1) -> bytes:
    """The 32 bytes of a base64url key (padding optional)."""
    try:
        return base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
    except (binascii.Error, ValueError):
        raise ValueError(f"key {number} is not base64url; make one with 'python -m msal_wsgi make-key'") from None


def is_sealed(stored: object) -> bool:
    """Whether a stored value is one :class:`Sealer` made (it may still not open)."""
    return isinstance(stored, str) and stored.startswith(PREFIX)


def _key_id(key: bytes) -> bytes:
    return hmac.new(key, b"msal_wsgi session key id", hashlib.sha256).digest()[:_KEY_ID_BYTES]


class Unreadable(Exception):
    """A stored value did not open; ``reason`` is one of :data:`UNSEALED`, :data:`MALFORMED`,
    :data:`UNKNOWN_KEY`, :data:`TAMPERED`."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class Codec:
    """Stores values as they are: no ``session_keys``. :class:`Sealer` seals them.

    :param on_unreadable: told ``(reason, session key)`` of every value that does not open, after
        it is logged (once per reason and process at WARNING, then at DEBUG).
    """

    encrypted = False

    def __init__(self, on_unreadable: Callable[[str, str], None] | None = None) -> None:
        self._on_unreadable = on_unreadable
        self._reported: set[str] = set()

    def seal(self, field: str, binding: str, value: Any, *, compress: bool = False) -> Any:
        """What to store for ``value`` under session key ``field`` of the session ``binding``."""
        return value

    def open(self, field: str, binding: str, stored: Any, *, build: Callable[[Any], Any] | None = None) -> Any:
        """The value ``stored`` holds (``build`` of it, when given), or :class:`Unreadable`."""
        if is_sealed(stored):
            raise self._unreadable(UNKNOWN_KEY, field)  # sealed, and session_keys is empty now
        return stored if build is None else build(stored)

    def _unreadable(self, reason: str, field: str) -> Unreadable:
        first = reason not in self._reported
        self._reported.add(reason)
        log.log(logging.WARNING if first else logging.DEBUG,
                "session data that does not open (%s, %s) reads as signed out%s", reason, field,
                "; further ones are logged at DEBUG" if first else "")
        if self._on_unreadable is not None:
            self._on_unreadable(reason, field)
        return Unreadable(reason)


class Sealer(Codec):
    """Seals values with the first of ``keys`` and opens values sealed with any of them.

    :param keys: base64url keys, as :func:`parse_keys` returns them.
    :param on_unreadable: as for :class:`Codec`.
    """

    encrypted = True

    def __init__(self, keys: Sequence[str], on_unreadable: Callable[[str, str], None] | None = None) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # msal's own dependency

        super().__init__(on_unreadable)
        if not keys:
            raise ValueError("a Sealer needs at least one key")
        raw = [decode_key(key, n) for n, key in enumerate(keys, start=1)]
        self._ciphers = {_key_id(key): AESGCM(key) for key in raw}
        self._sealing_id = _key_id(raw[0])
        self._sealing = self._ciphers[self._sealing_id]
        self._remembered: dict[tuple[str, str, str], tuple[str, Any]] = {}
        self._guard = threading.Lock()

    def __repr__(self) -> str:
        return f"Sealer({len(self._ciphers)} keys)"  # never the keys

    @property
    def remembered(self) -> int:
        """How many opened records this process remembers (at most :data:`REMEMBERED`)."""
        return len(self._remembered)

    def seal(self, field: str, binding: str, value: Any, *, compress: bool = False) -> str:
        if isinstance(value, str):
            kind, body = _TEXT, value.encode("utf-8")
        else:
            kind, body = _JSON, json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if compress:
            kind, body = kind.upper(), zlib.compress(body, 6)
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._sealing_id + nonce + self._sealing.encrypt(nonce, kind + body, _aad(field, binding))
        return PREFIX + base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii")

    def open(self, field: str, binding: str, stored: Any, *, build: Callable[[Any], Any] | None = None) -> Any:
        """The value ``stored`` holds, or :class:`Unreadable`. With ``build``, what ``build`` makes of it,
        remembered for the next request holding the same sealed value (so never to be changed)."""
        if not isinstance(stored, str) or not stored.startswith(PREFIX):
            raise self._unreadable(UNSEALED, field)
        if build is None:
            return self._open(field, binding, stored)
        # Keyed by the key id, nonce and tag (cheap to hash), and served only for the very same
        # text (a comparison is cheaper than hashing it): a changed value is opened, and fails.
        key = (field, binding, stored[:_HEAD_CHARS] + stored[-_TAIL_CHARS:])
        known = self._remembered.get(key)
        if known is not None and known[0] == stored:
            return known[1]
        value = build(self._open(field, binding, stored))
        with self._guard:
            while len(self._remembered) >= REMEMBERED:
                del self._remembered[next(iter(self._remembered))]
            self._remembered[key] = (stored, value)
        return value

    def _open(self, field: str, binding: str, stored: str) -> Any:
        from cryptography.exceptions import InvalidTag

        encoded = stored[len(PREFIX):]
        try:
            sealed = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            raise self._unreadable(MALFORMED, field) from None
        if base64.urlsafe_b64encode(sealed).rstrip(b"=").decode("ascii") != encoded:
            raise self._unreadable(MALFORMED, field)  # only the one spelling we write: the same text, the same value
        if len(sealed) < _HEADER + _TAG_BYTES + 1:
            raise self._unreadable(MALFORMED, field)
        cipher = self._ciphers.get(sealed[:_KEY_ID_BYTES])
        if cipher is None:
            raise self._unreadable(UNKNOWN_KEY, field)
        try:
            payload = cipher.decrypt(sealed[_KEY_ID_BYTES:_HEADER], sealed[_HEADER:], _aad(field, binding))
        except InvalidTag:
            raise self._unreadable(TAMPERED, field) from None
        kind, body = payload[:1], payload[1:]
        try:
            if kind in (_DEFLATED_TEXT, _DEFLATED_JSON):
                kind, body = kind.lower(), zlib.decompress(body)
            if kind not in (_TEXT, _JSON):
                raise ValueError(kind)
            return body.decode("utf-8") if kind == _TEXT else json.loads(body)
        except (ValueError, zlib.error):  # authentic, so ours, yet not what we write: another version's format
            raise self._unreadable(MALFORMED, field) from None


def _aad(field: str, binding: str) -> bytes:
    return b"msal_wsgi/1\x00" + field.encode("utf-8") + b"\x00" + binding.encode("utf-8", "surrogatepass")


def codec_for(keys: Sequence[str], on_unreadable: Callable[[str, str], None] | None = None) -> Codec:
    """A :class:`Sealer` for ``keys``, or the plain :class:`Codec` without any."""
    return Sealer(keys, on_unreadable) if keys else Codec(on_unreadable)
