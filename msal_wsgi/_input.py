"""The request body as msal_wsgi and the app read it: a read that fails is a 400, not a closed connection.

A server raises ``OSError`` from ``wsgi.input`` when the body cannot be read: broken chunked
framing (gunicorn's ``InvalidChunkSize``, ``ChunkMissingTerminator``), a client gone mid-body
(``NoMoreData``). gunicorn's workers answer an ``OSError`` that escapes the app by closing the
connection, without a response. :class:`GuardedInput` turns it into :class:`UnreadableBody`, a
``ValueError`` (so code that already refuses a malformed body refuses this one too), which the
middleware answers with a 400 when nothing caught it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ._wsgi import WSGIEnvironment


class UnreadableBody(ValueError):
    """The request body could not be read (broken framing, the client gone)."""


class GuardedInput:
    """``wsgi.input`` whose read failures raise :class:`UnreadableBody` instead of ``OSError``."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def read(self, *size: int) -> bytes:
        try:
            return self._stream.read(*size)  # type: ignore[no-any-return]
        except OSError as exc:
            raise UnreadableBody(f"the request body could not be read: {exc}") from exc

    def readline(self, *size: int) -> bytes:
        try:
            return self._stream.readline(*size)  # type: ignore[no-any-return]
        except OSError as exc:
            raise UnreadableBody(f"the request body could not be read: {exc}") from exc

    def readlines(self, *hint: int) -> list[bytes]:
        try:
            return self._stream.readlines(*hint)  # type: ignore[no-any-return]
        except OSError as exc:
            raise UnreadableBody(f"the request body could not be read: {exc}") from exc

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)  # seek, tell, close...: the server's own

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line


def guard_input(environ: WSGIEnvironment) -> None:
    """Wrap ``wsgi.input`` in a :class:`GuardedInput` when the request has a body (once)."""
    stream = environ.get("wsgi.input")
    if stream is None or isinstance(stream, GuardedInput):
        return
    if "HTTP_TRANSFER_ENCODING" in environ or environ.get("CONTENT_LENGTH", "") not in ("", "0"):
        environ["wsgi.input"] = GuardedInput(stream)
