"""Hostile HTTP requests against a running server, sent as raw bytes: every one must get an answer below 500.

A seeded generator (:func:`probes`) writes requests of five families, the issue's:

* ``method-path``: odd methods, odd and non-UTF-8 paths, absolute-form targets, dot segments, long paths;
* ``encoding``: broken percent-encodings, non-UTF-8 queries and bodies, bodies in other charsets, bad
  multipart boundaries, chunked bodies (over 64 KB too), bodies that are not forms;
* ``parameters``: repeated and oversized parameters in queries and form bodies;
* ``cookies``: tampered, oversized, non-ASCII, doubled session cookies;
* ``headers``: odd ``Host``, ``X-Forwarded-*``, ``Forwarded``, ``SCRIPT_NAME``, conflicting scheme headers,
  ``Expect``, oversized and repeated headers, odd ``Accept``/``Content-Type``/``Authorization``.

Half the requests carry the session cookie of a signed-in user (the sign-out endpoint never does), so the
protected pages, the sample's call to its to-do API, and a refresh are reached with hostile input too.

:func:`send` writes one request on a new connection and reads until the server closes it; a connection
closed (or silent for ``timeout`` seconds) without a status line is *unanswered*. Sending and reading are
interleaved, so an early answer (a 413 before the body is all sent) is read before the server's reset.
"""

from __future__ import annotations

import contextlib
import random
import select
import socket
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from devprovider import DevProvider

FAMILIES = ("method-path", "encoding", "parameters", "cookies", "headers")
#: What an unanswered request is counted as.
UNANSWERED = 0
#: The sample's session cookie (``session.key`` in sample_app.py).
COOKIE_NAME = "msal_wsgi_sample"


@dataclass(frozen=True)
class Target:
    """Where the probes go: the web app (``host:port``), its session cookie name and signed-in cookie values,
    and the to-do API (``api``, ``host:port``), reached with the same hostile input."""

    web: str
    cookie_name: str
    signed_in: Sequence[str]
    api: str | None = None


@dataclass(frozen=True)
class Probe:
    family: str
    what: str
    server: str  # host:port
    raw: bytes


@dataclass
class Outcome:
    probe: Probe
    status: int  # UNANSWERED when no status line came back
    seconds: float


@dataclass
class Tally:
    """Outcomes by family and status, and the failing probes (5xx or unanswered)."""

    by_family: dict[str, Counter[int]] = field(default_factory=dict)
    failures: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, outcome: Outcome) -> None:
        self.by_family.setdefault(outcome.probe.family, Counter())[outcome.status] += 1
        if outcome.status == UNANSWERED or outcome.status >= 500:
            self.failures.append(outcome)

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for c in self.by_family.values())

    def count(self, predicate) -> int:  # type: ignore[no-untyped-def]
        return sum(n for c in self.by_family.values() for status, n in c.items() if predicate(status))

    @property
    def server_errors(self) -> int:
        return self.count(lambda s: s >= 500)

    @property
    def unanswered(self) -> int:
        return self.count(lambda s: s == UNANSWERED)

    def report(self) -> str:
        lines = [(f"{self.total} hostile requests in {self.seconds:.1f} s: {self.server_errors} x 5xx, "
                  f"{self.unanswered} unanswered")]
        for family in FAMILIES:
            counts = self.by_family.get(family, Counter())
            statuses = ", ".join(f"{'none' if s == UNANSWERED else s}: {n}" for s, n in sorted(counts.items()))
            lines.append(f"  {family:12} {sum(counts.values()):6}   {statuses}")
        kinds = Counter((f.probe.family, f.probe.what, f.status) for f in self.failures)
        for (family, what, status), n in sorted(kinds.items(), key=lambda kv: (kv[0][2], -kv[1]))[:30]:
            example = next(f for f in self.failures if (f.probe.family, f.probe.what, f.status) == (family, what, status))
            lines.append(f"  FAILED {'unanswered' if status == UNANSWERED else status} x {n}: [{family}] {what}: "
                         f"{example.probe.raw[:120]!r}")
        return "\n".join(lines)


# -- the generator ------------------------------------------------------------------

WEB_PATHS = ["/", "/todos", "/auth/login", "/auth/callback", "/auth/logout", "/static/sample.css", "/nowhere"]
METHODS = ["GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH", "PROPFIND", "TRACE", "BREW", "get",
           "M-SEARCH", "GET\x00", "GE T"]
PATH_EDITS = ["//{p}", "{p}/", "{p}/.", "{p}/..", "/x/..{p}", "{p}%2F", "/%2e%2e{p}", "{p}%00", "{p}%ff%fe",
              "{p}/%c0%af", "/\xff\xfe{p}", "/\u00e9{p}", "{p}\\..\\", "{p};x=1", "{p}#frag", "{p}/" + "a" * 3000,
              "/" + "%ff" * 40, "/todos%2f..%2f", "/TODOS", "/todos/../auth/logout", "{p}?", "{p}??&&",
              "//evil.example{p}", "/\\evil.example{p}"]
QUERIES = ["%", "%2", "%zz", "%ff%fe=%ff", "a=%c0%af", "next=%ff", "next=%2F%2Fevil.example", "state=%00",
           "code=%u0041", "=&=&", "&&&", "a=1;b=2", "x=" + "%ff" * 200, "next=\xff", "+=+", "next=/todos%0d%0aX: y"]
CHARSETS = ["latin-1", "utf-16", "shift_jis", "bogus", "utf-8", "iso-8859-1"]


def _raw(method: str, target: str, host: str | None, headers: Sequence[tuple[str, str]] = (),
         body: bytes = b"", *, length: bool = True, version: str = "HTTP/1.1") -> bytes:
    """A request as bytes (latin-1, as a client may send any byte); ``Connection: close`` always."""
    lines = [f"{method} {target} {version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append("Connection: close")
    if body and length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _chunked(body: bytes, size: int = 4096) -> bytes:
    parts = [b"%x\r\n%s\r\n" % (len(body[i:i + size]), body[i:i + size]) for i in range(0, len(body), size)]
    return b"".join(parts) + b"0\r\n\r\n"


class _Writer:
    """One family's requests: picks paths, cookies and headers from the seeded ``rng``."""

    def __init__(self, rng: random.Random, target: Target) -> None:
        self.rng = rng
        self.t = target

    def cookie(self, path: str) -> list[tuple[str, str]]:
        """A signed-in user's session cookie, half of the time (never on the sign-out endpoint)."""
        if path.startswith("/auth/logout") or not self.t.signed_in or self.rng.random() < 0.5:
            return []
        return [("Cookie", f"{self.t.cookie_name}={self.rng.choice(self.t.signed_in)}")]

    def browser(self) -> list[tuple[str, str]]:
        return self.rng.choice([[("Accept", "text/html")], [("Accept", "application/json")],
                                [("Accept", "*/*"), ("X-Requested-With", "XMLHttpRequest")], []])

    def form_post(self, path: str, body: bytes, content_type: str, *, chunked: bool = False) -> bytes:
        headers = [("Content-Type", content_type), ("Origin", f"http://{self.t.web}"), *self.cookie(path)]
        if chunked:
            return _raw("POST", path, self.t.web, headers + [("Transfer-Encoding", "chunked")], _chunked(body),
                        length=False)
        return _raw("POST", path, self.t.web, headers, body)

    # -- the families --------------------------------------------------------------

    def method_path(self) -> tuple[str, bytes]:
        rng = self.rng
        method, path = rng.choice(METHODS), rng.choice(WEB_PATHS)
        choice = rng.random()
        if choice < 0.1:
            target, what = f"http://evil.example{path}", "absolute-form target"
        elif choice < 0.15:
            target, what, method = "*", "asterisk target", "OPTIONS"
        else:
            edit = rng.choice(PATH_EDITS)
            target, what = edit.format(p=path), f"{method} {edit}"
        body = b"description=x" if method in ("POST", "PUT", "PATCH") else b""
        headers = [*self.browser(), *self.cookie(target)]
        if body:
            headers.append(("Content-Type", "application/x-www-form-urlencoded"))
        return what, _raw(method, target, self.t.web, headers, body)

    def encoding(self) -> tuple[str, bytes]:
        rng = self.rng
        kind = rng.randrange(8)
        path = rng.choice(["/auth/callback", "/todos", "/auth/callback", "/"])
        if kind == 0:
            query = rng.choice(QUERIES)
            target = rng.choice(WEB_PATHS) + "?" + query
            return f"query {query[:30]!r}", _raw("GET", target, self.t.web, [*self.browser(), *self.cookie(target)])
        if kind == 1:
            charset = rng.choice(CHARSETS)
            text = rng.choice(["description=caf\u00e9", "state=\u00e9&code=x", "description=\u65e5\u672c"])
            try:
                body = text.encode(charset, "replace")
            except LookupError:  # a charset no one knows
                body = text.encode("latin-1", "replace")
            return (f"form in {charset}", self.form_post(
                path, body, f"application/x-www-form-urlencoded; charset={charset}"))
        if kind == 2:
            body = rng.choice([b"description=\xff\xfe", b"state=\xc0\xaf&code=\x80", b"\xff" * 50,
                               b"description=%ff%fe", b"description=ok\x00"])
            return "non-UTF-8 form body", self.form_post(path, body, "application/x-www-form-urlencoded")
        if kind == 3:
            content_type = rng.choice(["multipart/form-data", "multipart/form-data; boundary=",
                                       "multipart/form-data; boundary=\"", "multipart/form-data; boundary=" + "x" * 80,
                                       "multipart/form-data; boundary=abc"])
            body = rng.choice([b"--abc\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\nx\r\n--abc--\r\n",
                               b"--abc\r\n\r\n", b"garbage", b"--abc\r\nContent-Disposition: form-data\r\n\r\nx"])
            return f"multipart {content_type[19:40]!r}", self.form_post(path, body, content_type)
        if kind == 4:
            size = rng.choice([100, 60_000, 70_000, 200_000])
            body = b"state=" + b"x" * size
            return f"chunked form of {size} bytes", self.form_post(path, body, "application/x-www-form-urlencoded",
                                                                   chunked=True)
        if kind == 5:
            content_type = rng.choice(["text/plain", "application/json", "application/octet-stream", "",
                                       "application/x-www-form-urlencoded; charset", "image/png; charset=utf-8"])
            body = rng.choice([b'{"description": "x"}', b"\x00\x01\x02", b"description=x", b"<xml/>"])
            return f"body of type {content_type!r}", self.form_post(path, body, content_type)
        if kind == 6:
            body = b"description=x"
            encoding = rng.choice(["gzip", "deflate", "br", "identity, gzip"])
            headers = [("Content-Type", "application/x-www-form-urlencoded"), ("Content-Encoding", encoding),
                       *self.cookie(path)]
            return f"Content-Encoding {encoding}", _raw("POST", path, self.t.web, headers, body)
        # Each framing ends: one that announces more than it sends would wait for the client (gunicorn's
        # gthread workers have no body read timeout; a proxy in front should have one).
        chunk = rng.choice([b"zz\r\nx\r\n0\r\n\r\n", b"5\r\nab\r\n0\r\n\r\n", b"-1\r\n\r\n",
                            b"3;ext=\"x\"\r\nabc\r\n0\r\n\r\n", b"0\r\n\r\n", b"3\r\nabc\r\n0\r\nX-Trailer: y\r\n\r\n"])
        headers = [("Content-Type", "application/x-www-form-urlencoded"), ("Transfer-Encoding", "chunked"),
                   *self.cookie(path)]
        return "broken chunked framing", _raw("POST", path, self.t.web, headers, chunk, length=False)

    def parameters(self) -> tuple[str, bytes]:
        rng = self.rng
        path = rng.choice(["/auth/callback", "/auth/login", "/todos", "/auth/callback", "/"])
        name = rng.choice(["state", "code", "next", "error", "description", "idempotency_key", "scope",
                           "login_hint", "msal_wsgi_replay", "msal_wsgi_repost", "iss"])
        count = rng.choice([2, 3, 50, 500])
        size = rng.choice([1, 300, 3000, 70_000])
        value = quote(rng.choice(["x", "/todos", "//evil.example", "\u00e9"]) * max(1, size // 8))
        pairs = "&".join(f"{name}={value if i == 0 else i}" for i in range(count))
        if rng.random() < 0.4 and len(pairs) < 3500:
            target = f"{path}?{pairs}"
            return (f"{count} x {name} in the query", _raw("GET", target, self.t.web,
                                                           [*self.browser(), *self.cookie(path)]))
        return (f"{count} x {name} ({size} chars) in a form body",
                self.form_post(path, pairs.encode(), "application/x-www-form-urlencoded"))

    def cookies(self) -> tuple[str, bytes]:
        rng = self.rng
        name = self.t.cookie_name
        valid = rng.choice(self.t.signed_in) if self.t.signed_in else "0" * 32
        value = rng.choice([
            "x" * rng.choice([33, 260, 600, 4000]), "../../../../etc/passwd", "..", "a/b/" + valid,
            valid + "x" * 300, valid[:-1], "%ff%fe", "\xe9\xff" * 20, '"' + valid + '"', "", " ", "\\",
            valid + "; " + name + "=" + "y" * 300, "0" * 32, "deadbeef" * 4, valid.upper(), "a" * 40 + valid,
        ])
        cookie = f"{name}={value}"
        if rng.random() < 0.2:
            cookie = f"{name}=first; {cookie}"
        if rng.random() < 0.1:
            cookie += "; other=" + "z" * 2000
        path = rng.choice(["/", "/todos", "/auth/login?next=/todos", "/auth/callback?state=x&code=y", "/todos"])
        method = rng.choice(["GET", "GET", "POST"])
        body = b"description=tampered" if method == "POST" else b""
        headers = [("Cookie", cookie), *self.browser(), ("Origin", f"http://{self.t.web}")]
        if body:
            headers.append(("Content-Type", "application/x-www-form-urlencoded"))
        return f"cookie {value[:24]!r} ({len(value)} chars)", _raw(method, path, self.t.web, headers, body)

    def headers(self) -> tuple[str, bytes]:
        rng = self.rng
        path = rng.choice(["/todos", "/todos", "/", "/auth/login?next=/todos", "/auth/callback"])
        method = rng.choice(["GET", "GET", "POST"])
        host: str | None = self.t.web
        extra: list[tuple[str, str]] = []
        kind = rng.randrange(10)
        if kind == 0:
            host = rng.choice(["evil.example", "evil.example:99999", "", "127.0.0.1:1", "[::1]", "a" * 1000,
                               "evil.example/todos", "\xe9vil.example", "127.0.0.1:80@evil.example", "-"])
            what = f"Host {host[:30]!r}"
        elif kind == 1:
            extra = rng.sample([("X-Forwarded-Host", "evil.example"), ("X-Forwarded-Proto", "https"),
                                ("X-Forwarded-For", "1.2.3.4, evil"), ("X-Forwarded-Port", "443"),
                                ("X-Forwarded-Prefix", "/evil"), ("Forwarded", "host=evil.example;proto=https"),
                                ("X-Forwarded-Ssl", "on"), ("X-Forwarded-Protocol", "ssl"),
                                ("X-Original-URL", "/auth/logout"), ("X-Rewrite-URL", "/admin")], k=rng.randint(1, 4))
            what = "forwarding headers " + ",".join(n for n, _ in extra)
        elif kind == 2:
            extra = [("X-Forwarded-Proto", "https"), ("X-Forwarded-Ssl", "off")]
            what = "conflicting scheme headers"
        elif kind == 3:
            extra = [("SCRIPT_NAME", rng.choice(["/evil", "/todos", "", "/\xff"]))]
            what = f"SCRIPT_NAME header {extra[0][1]!r}"
        elif kind == 4:
            extra = [("Expect", rng.choice(["100-continue", "200-ok", "", "100-continue, x"]))]
            what = f"Expect {extra[0][1]!r}"
        elif kind == 5:
            extra = [("X-Big", "b" * rng.choice([4000, 9000]))]
            what = f"a header of {len(extra[0][1])} bytes"
        elif kind == 6:
            extra = [(f"X-Many-{i}", "1") for i in range(rng.choice([50, 120]))]
            what = f"{len(extra)} headers"
        elif kind == 7:
            extra = [(n, v) for n, v in rng.choice([
                [("Accept", "*/*;q=x")], [("Accept", "application/json;q=0, text/html;q=abc")],
                [("Sec-Fetch-Mode", "cors"), ("Sec-Fetch-Site", "cross-site")], [("Origin", "null")],
                [("Referer", "http://evil.example/\xff")], [("Referer", f"http://{self.t.web}//evil.example/x")],
                [("Accept-Language", "\xff" * 10)], [("Content-Type", "application/x-www-form-urlencoded;;;")]])]
            what = "odd " + ",".join(n for n, _ in extra)
        elif kind == 8:
            extra = [("Authorization", rng.choice(["Bearer x", "Bearer " + "a" * 5000, "Basic =", "Bearer"]))]
            extra += [("Authorization", "Bearer y")] if rng.random() < 0.5 else []
            what = "Authorization on the web app"
        else:
            extra = [("Transfer-Encoding", "chunked"), ("Content-Length", "5")]
            what = "Transfer-Encoding with Content-Length"
        body = b"description=headers" if method == "POST" else b""
        headers = [*extra, *self.cookie(path), *self.browser()]
        if body and kind != 9:
            headers.append(("Content-Type", "application/x-www-form-urlencoded"))
        if kind == 9:
            return what, _raw("POST", path, host, headers + [("Content-Type", "text/plain")], b"0\r\n\r\n",
                              length=False)
        return what, _raw(method, path, host, headers, body)

    def api(self) -> tuple[str, bytes]:
        """The to-do API, reached directly with hostile input (the same families, API paths)."""
        assert self.t.api is not None
        rng = self.rng
        path = rng.choice(["/api/todolist", "/api/todolist/", "/health", "/api/todolist%ff", "/api//todolist",
                           "/api/todolist?x=%ff", "/nowhere"])
        headers = rng.choice([[("Authorization", "Bearer " + rng.choice(["x", "a.b.c", "eyJ" + "a" * 3000]))],
                              [("Authorization", "Bearer x"), ("Authorization", "Bearer y")],
                              [("Idempotency-Key", "\xff" * 10)], [("Content-Type", "application/json")], []])
        method = rng.choice(["GET", "POST", "DELETE", "PROPFIND"])
        body = rng.choice([b"", b'{"description": "x"}', b"\xff\xfe", b"[]"]) if method == "POST" else b""
        return f"API {method} {path}", _raw(method, path, self.t.api, headers, body)


def probes(seed: int, count: int, target: Target) -> Iterator[Probe]:
    """``count`` hostile requests, the same ones for the same ``seed`` (and cookies); families in turn."""
    rng = random.Random(seed)
    writer = _Writer(rng, target)
    makers = [("method-path", writer.method_path), ("encoding", writer.encoding),
              ("parameters", writer.parameters), ("cookies", writer.cookies), ("headers", writer.headers)]
    for n in range(count):
        family, make = makers[n % len(makers)]
        if target.api is not None and rng.random() < 0.1:
            what, raw = writer.api()
            yield Probe(family, what, target.api, raw)
            continue
        what, raw = make()
        yield Probe(family, what, target.web, raw)


# -- sending ------------------------------------------------------------------------

def send(probe: Probe, timeout: float = 20.0) -> Outcome:
    """Write ``probe`` on a new connection and read the answer's status line (UNANSWERED if none)."""
    host, port = probe.server.rsplit(":", 1)
    started = time.monotonic()
    received = b""
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as sock:
            sock.setblocking(False)
            pending = memoryview(probe.raw)
            deadline = started + timeout
            while time.monotonic() < deadline:
                wants_write = [sock] if pending else []
                readable, writable, _ = select.select([sock], wants_write, [], 0.5)
                if readable:
                    try:
                        data = sock.recv(65536)
                    except (ConnectionResetError, BlockingIOError):
                        break
                    if not data:
                        break  # closed by the server
                    received += data
                    if _status(received) >= 200:
                        break  # the final status line is all we need
                if writable and pending:
                    try:
                        sent = sock.send(pending)
                    except (BrokenPipeError, ConnectionResetError, BlockingIOError):
                        pending = memoryview(b"")  # the server stopped reading: read its answer
                        continue
                    pending = pending[sent:]
    except OSError:
        pass
    return Outcome(probe, _status(received), time.monotonic() - started)


def _status(received: bytes) -> int:
    """The status of the final answer in ``received`` (after any 1xx interim ones), else UNANSWERED."""
    while received:
        line = received.split(b"\r\n", 1)[0].split()
        if not (len(line) >= 2 and line[0].startswith(b"HTTP/") and line[1].isdigit()):
            return UNANSWERED
        status = int(line[1])
        if status >= 200:
            return status
        _, end, received = received.partition(b"\r\n\r\n")  # an interim answer: headers, an empty line
        if not end:
            return UNANSWERED
    return UNANSWERED


def run(seed: int, count: int, target: Target, *, clients: int = 6, timeout: float = 20.0) -> Tally:
    """Send ``count`` probes from ``clients`` threads; the tally of their outcomes."""
    tally = Tally()
    started = time.monotonic()
    with ThreadPoolExecutor(clients) as pool:
        for outcome in pool.map(lambda p: send(p, timeout), probes(seed, count, target)):
            tally.add(outcome)
    tally.seconds = time.monotonic() - started
    return tally


# -- the sample, signed in, as the probes' target -------------------------------------

@contextmanager
def signed_in_sample(provider: DevProvider, workdir: Path, *, users: int = 3, store: str = "redis",
                     **env: str) -> Iterator[Target]:
    """The sample (web app and to-do API under gunicorn; sessions and refresh locks in a Redis of its own, or
    with ``store="file"`` in files), with ``users`` users signed in: the :class:`Target` of the probes.
    ``env`` goes to the sample."""
    from .servers import Browser, RedisServer, sample_server

    with contextlib.ExitStack() as stack:
        if store == "redis":
            env = {"SAMPLE_SESSION_URL": stack.enter_context(RedisServer(workdir / "redis")).url, **env}
        web = stack.enter_context(sample_server(provider, workdir / "sample", **env))
        cookies = []
        for n in range(users):
            browser = Browser(provider)
            page = browser.sign_in(web.url + "/todos", login=f"fuzz-{n}")
            assert page.status_code == 200, page.text[:500]
            cookies.append(browser.session.cookies[COOKIE_NAME])
        yield Target(web=f"127.0.0.1:{web.port}", cookie_name=COOKIE_NAME, signed_in=cookies,
                     api=f"127.0.0.1:{web.api.port}")
