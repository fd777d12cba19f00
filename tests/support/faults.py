"""A fault injector in front of the real provider: the token endpoint slow, failing or garbled on demand.

:class:`FaultyProxy` is *not* a fake provider. It is a TLS reverse proxy that
forwards every request to the running :class:`~devprovider.DevProvider` and
hands back its answers unchanged, except that a test can switch the token
endpoint to a :class:`Fault` — a delay, a 5xx error page, a 200 with malformed
JSON, a closed connection — which the real provider cannot produce on demand::

    with FaultyProxy(provider) as proxy:
        app = make_testapp(provider, oidc_authority=proxy.issuer)
        proxy.fault = Fault(status=503, retry_after=1)
        ...
        proxy.fault = None  # the provider answers again

msal accepts an ``oidc_authority`` only if the discovery document's ``issuer``
has the authority's scheme and host *and port* (``Authority.has_valid_issuer``),
so the proxy rewrites the discovery document to its own origin: ``issuer``,
``token_endpoint`` and the other back-channel URLs point to the proxy. The
front-channel endpoints a browser opens (``authorization_endpoint``,
``end_session_endpoint``) stay on the provider, where ``DevProvider.sign_in``
drives them. msal 1.39 does not check the id token's ``iss`` against it.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit

from devprovider import DevProvider

#: Opened by the browser, not by msal: left pointing to the provider.
FRONT_CHANNEL = frozenset({"authorization_endpoint", "end_session_endpoint"})
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-encoding", "content-length"})
_ERROR_PAGE = b"<html><body><h1>%d</h1><p>The service is unavailable.</p></body></html>"


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
    """Forwards to ``provider`` over TLS on a free loopback port; ``fault`` applies to token requests."""

    def __init__(self, provider: DevProvider) -> None:
        self.provider = provider
        self.fault: Fault | None = None
        #: Token requests that reached the proxy (faulted or forwarded), as ``time.monotonic()`` stamps.
        self.token_requests: list[float] = []
        self._upstream = provider.browser()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        assert provider.workdir is not None, "start the provider first"
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(provider.workdir / "server-cert.pem", provider.workdir / "server-key.pem")
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._origin = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._provider_origin = "{0.scheme}://{0.netloc}".format(urlsplit(provider.issuer))
        self.token_path = urlsplit(provider.metadata["token_endpoint"]).path
        self.issuer = self._origin + urlsplit(provider.issuer).path
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._upstream.close()

    def discovery(self, document: dict[str, Any]) -> dict[str, Any]:
        """The provider's discovery document with back-channel URLs moved to the proxy."""
        return {key: value.replace(self._provider_origin, self._origin, 1)
                if isinstance(value, str) and key not in FRONT_CHANNEL else value
                for key, value in document.items()}

    def answer(self, request: BaseHTTPRequestHandler, method: str) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        fault = self.fault
        if method == "POST" and request.path.split("?")[0] == self.token_path:
            self.token_requests.append(time.monotonic())
            if fault is not None:
                time.sleep(fault.delay)
                if fault.hang_up:
                    request.close_connection = True
                    request.connection.close()
                    return
                if fault.status is not None:
                    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                    return _send(request, fault.status, "text/html", _ERROR_PAGE % fault.status, headers)
                if fault.body is not None:
                    return _send(request, 200, "application/json", fault.body, {})
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        upstream = self._upstream.request(method, self._provider_origin + request.path, headers=headers,
                                          data=body, allow_redirects=False, timeout=30)
        content = upstream.content
        if request.path.endswith("/.well-known/openid-configuration") and upstream.ok:
            content = json.dumps(self.discovery(upstream.json())).encode()
        passed = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP | {"content-type"}}
        _send(request, upstream.status_code, upstream.headers.get("Content-Type", ""), content, passed)


def _send(request: BaseHTTPRequestHandler, status: int, content_type: str, body: bytes,
          headers: dict[str, str]) -> None:
    request.send_response(status)
    for name, value in [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers.items()]:
        request.send_header(name, value)
    request.end_headers()
    request.wfile.write(body)


def _handler(proxy: FaultyProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
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
