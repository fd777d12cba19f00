"""A fault injector in front of a real provider: the token endpoint slow, failing or garbled on demand.

:class:`FaultyProxy` is *not* a fake provider. It is a TLS reverse proxy in front
of a :class:`~devprovider.DevProvider` of its own, which announces the proxy as
its issuer (``OP_ISSUER_ORIGIN``): discovery, the authorization response's
``iss`` and the id tokens all name the proxy, as they would name a provider
that msal_wsgi validates. Every request is forwarded and its answer handed back
unchanged, except that a test can switch the token endpoint to a :class:`Fault`
— a delay, a 5xx error page, a 200 with malformed JSON, a closed connection —
which the real provider cannot produce on demand::

    with FaultyProxy(devprovider, tmp_path / "op") as proxy:
        app = make_testapp(proxy.provider)   # sign in, mark, revoke with proxy.provider
        proxy.fault = Fault(status=503, retry_after=1)
        ...
        proxy.fault = None  # the provider answers again

``discovery_overrides`` changes fields of the discovery document, as another
provider would announce them: ``{"end_session_endpoint": None}`` is a provider
without one (``None`` drops a field, any other value replaces it).

:meth:`FaultyProxy.refuse` closes the proxy's port, so connecting is refused as
for a provider that is down, and :meth:`FaultyProxy.accept` opens it again: the
provider behind keeps its keys, sessions and refresh tokens, as a real one
restarted would. ``mode="stock"`` runs the stock provider behind the proxy.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from devprovider import DevProvider

from .servers import free_port

if TYPE_CHECKING:  # typing.Self is Python 3.11+
    from typing_extensions import Self

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-encoding", "content-length"})
_ERROR_PAGE = b"<html><body><h1>%d</h1><p>The service is unavailable.</p></body></html>"
_DISCOVERY = "/.well-known/openid-configuration"


@dataclass(frozen=True)
class Fault:
    """What the token endpoint does instead of answering normally.

    :param delay: seconds to wait first (then forward, or fail as below).
    :param status: answer this status with an HTML page instead of forwarding.
    :param retry_after: the ``Retry-After`` header of that answer, if any.
    :param body: answer 200 with this body (e.g. malformed JSON) instead of forwarding.
    :param hang_up: close the connection without answering.
    """

    delay: float = 0.0
    status: int | None = None
    retry_after: int | None = None
    body: bytes | None = None
    hang_up: bool = False


class FaultyProxy:
    """A provider of its own behind a TLS proxy on a free loopback port; ``fault`` applies to token requests.

    :param beside: a running provider whose CA and TLS certificate the proxy and its
        provider use, so that what trusts it (``REQUESTS_CA_BUNDLE``) trusts them.
    :param workdir: the files of the proxy's provider.
    :param discovery_overrides: discovery fields to replace, or to drop where the value is ``None``.
    :param mode: the provider's mode, ``"entra"`` or ``"stock"`` (see :meth:`DevProvider.start`).
    """

    def __init__(self, beside: DevProvider, workdir: Path | str, *,
                 discovery_overrides: dict[str, Any] | None = None, mode: str = "entra") -> None:
        assert beside.server_cert_path and beside.server_key_path, "start that provider first"
        self.beside = beside
        self.workdir = Path(workdir)
        self.mode = mode
        self.fault: Fault | None = None
        self.discovery_overrides = dict(discovery_overrides or {})
        #: Token requests that reached the proxy (faulted or forwarded), as ``time.monotonic()`` stamps.
        self.token_requests: list[float] = []
        #: The provider behind the proxy; its issuer is the proxy's. Started on entering.
        self.provider = DevProvider()
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._tls.load_cert_chain(beside.server_cert_path, beside.server_key_path)
        self._listen(0)
        self._host = f"127.0.0.1:{self._server.server_address[1]}"
        self._upstream_port = free_port()
        self._upstream = beside.browser()
        # The browsers' cookies go through in their requests; the proxy's own client keeps none, or
        # it would hand one browser's provider session to the next that comes without cookies.
        self._upstream.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        #: Connections being served: refuse() ends them too.
        self.connections: set[Any] = set()

    def _listen(self, port: int) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self._server.socket = self._tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def issuer(self) -> str:
        return self.provider.issuer

    def refuse(self) -> None:
        """Close the proxy's port and its open connections: connecting is refused, as to a provider that is down."""
        self._server.shutdown()
        self._server.server_close()
        for connection in list(self.connections):
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def accept(self) -> None:
        """Listen on the proxy's port again, in front of the same provider."""
        self._listen(int(self._host.rsplit(":", 1)[1]))

    def __enter__(self) -> Self:
        try:
            self.provider.start(self.workdir, port=self._upstream_port, tls_of=self.beside, mode=self.mode,
                                OP_ISSUER_ORIGIN=f"https://{self._host}")
        except BaseException:
            self.__exit__()
            raise
        self.token_path = urlsplit(self.provider.metadata["token_endpoint"]).path
        return self

    def __exit__(self, *exc: object) -> None:
        self.provider.stop()
        self._server.shutdown()
        self._server.server_close()
        self._upstream.close()

    def discovery(self, document: dict[str, Any]) -> dict[str, Any]:
        """The provider's discovery document with the overrides."""
        changed = {**document, **self.discovery_overrides}
        return {key: value for key, value in changed.items() if value is not None}

    def answer(self, request: BaseHTTPRequestHandler, method: str) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        fault = self.fault
        path = request.path.split("?")[0]
        if method == "POST" and path == getattr(self, "token_path", None):
            self.token_requests.append(time.monotonic())
            if fault is not None:
                time.sleep(fault.delay)
                if fault.hang_up:
                    request.close_connection = True
                    request.connection.close()
                    return
                if fault.status is not None:
                    headers = [("Retry-After", str(fault.retry_after))] if fault.retry_after is not None else []
                    return _send(request, fault.status, "text/html", _ERROR_PAGE % fault.status, headers)
                if fault.body is not None:
                    return _send(request, 200, "application/json", fault.body, [])
        # The Host header goes along: the provider builds its URLs from it, and they must name the proxy.
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
        upstream = self._upstream.request(method, f"https://127.0.0.1:{self._upstream_port}{request.path}",
                                          headers=headers, data=body, allow_redirects=False, timeout=30)
        content = upstream.content
        if path.endswith(_DISCOVERY) and upstream.ok:
            content = json.dumps(self.discovery(upstream.json())).encode()
        # The raw headers, each Set-Cookie on its own (requests folds repeated headers into one).
        passed = [(k, v) for k, v in upstream.raw.headers.items() if k.lower() not in _HOP_BY_HOP | {"content-type"}]
        _send(request, upstream.status_code, upstream.headers.get("Content-Type", ""), content, passed)


def _send(request: BaseHTTPRequestHandler, status: int, content_type: str, body: bytes,
          headers: list[tuple[str, str]]) -> None:
    request.send_response(status)
    for name, value in [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers]:
        request.send_header(name, value)
    request.end_headers()
    request.wfile.write(body)


def _handler(proxy: FaultyProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def setup(self) -> None:
            super().setup()
            proxy.connections.add(self.connection)

        def finish(self) -> None:
            proxy.connections.discard(self.connection)
            super().finish()

        def do_GET(self) -> None:
            self._safely("GET")

        def do_POST(self) -> None:
            self._safely("POST")

        def _safely(self, method: str) -> None:
            try:
                proxy.answer(self, method)
            except OSError:  # ssl.SSLError, BrokenPipeError... too
                pass  # the client gave up (its timeout) before the delayed answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
