"""Local OpenID Connect provider for tests and development.

Runs ``provider.mjs`` (panva's oidc-provider, pinned in ``package.json``) over
HTTPS on 127.0.0.1 with the issuer ``https://127.0.0.1:PORT/op``, and drives
its development login, consent and logout pages with ``requests`` the way a
browser would.  See ``provider.mjs`` for the clients, resources and
environment variables.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Optional
from urllib.parse import parse_qsl, urljoin, urlsplit

import requests
import trustme
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

if TYPE_CHECKING:  # typing.Self is Python 3.11+
    from typing_extensions import Self

__all__ = [
    "DEVPROVIDER_DIR",
    "DevProvider",
    "DevProviderError",
    "Form",
    "SignInResult",
    "forms",
    "make_ca",
    "make_client_certificate",
]

DEVPROVIDER_DIR = Path(__file__).resolve().parent
#: How long each start of node may stay silent before it is stopped and, while there are
#: attempts left, started again; after the last one a start that never got ready is an error.
READY_TIMEOUTS: tuple[float, ...] = (30.0, 30.0)
MAX_STEPS = 20
#: How oidc-provider's pages that a browser submits by itself submit themselves.
_AUTO_SUBMIT = "document.forms[0].submit()"


class DevProviderError(RuntimeError):
    """The provider failed to start or answered a browser step unexpectedly."""


class _NotReady(Exception):
    """node did not say READY in time (what it was doing is the message)."""


def make_ca(directory: Path | str, *, keep: bool = False) -> tuple[Path, Path, Path]:
    """Write a fresh test CA and a server certificate for 127.0.0.1 and localhost.

    Returns the paths of the CA certificate, the server certificate chain and
    the server private key (all PEM). With ``keep``, the files an earlier call
    wrote to ``directory`` are used as they are, while the certificate is still
    valid, issued by that CA, and the key's: what trusts the CA (a browser,
    ``REQUESTS_CA_BUNDLE``) goes on trusting the provider.
    """
    directory = Path(directory)
    ca_path = directory / "ca.pem"
    cert_path = directory / "server-cert.pem"
    key_path = directory / "server-key.pem"
    if keep and _issued_by(ca_path, cert_path, key_path):
        return ca_path, cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(ca_path))
    cert_path.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    server.private_key_pem.write_to_path(str(key_path))
    return ca_path, cert_path, key_path


def _issued_by(ca_path: Path, cert_path: Path, key_path: Path) -> bool:
    """Whether ``cert_path`` (its first certificate) is valid now, issued by ``ca_path``, for the key ``key_path``."""
    try:
        ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        certificate.verify_directly_issued_by(ca)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    now = datetime.datetime.now(datetime.timezone.utc)
    return (certificate.not_valid_before_utc <= now < certificate.not_valid_after_utc
            and key.public_key().public_bytes(*spki) == certificate.public_key().public_bytes(*spki))


def _hung(process: subprocess.Popen[bytes], report_path: Path) -> str:
    """What a provider process that never got ready is doing: each thread's state, CPU time and kernel wait
    channel (from /proc), and the JavaScript stack of node's diagnostic report (SIGUSR2), if it comes."""
    lines = []
    ticks = os.sysconf("SC_CLK_TCK")
    for task in sorted(Path(f"/proc/{process.pid}/task").glob("*")):
        try:
            stat = (task / "stat").read_text().rsplit(")", 1)[1].split()
            wchan = (task / "wchan").read_text().strip()
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        lines.append(f"  thread {task.name} {name}: state {stat[0]}, cpu {(int(stat[11]) + int(stat[12])) / ticks:.2f} s, "
                     f"waiting in {wchan or '-'}")
    try:
        process.send_signal(signal.SIGUSR2)
    except OSError:
        pass
    deadline = time.monotonic() + 3.0
    report = None
    while time.monotonic() < deadline and report is None:
        try:
            report = json.loads(report_path.read_text())
        except (OSError, ValueError):
            time.sleep(0.1)
    if report is None:
        lines.append("  no diagnostic report within 3 s (the main thread does not come back to the event loop)")
    else:
        stack = report.get("javascriptStack", {})
        lines.append(f"  JavaScript: {stack.get('message', '')}")
        lines += [f"    {frame}" for frame in stack.get("stack", [])[:15]]
        handles = [h.get("type") for h in report.get("libuv", []) if h.get("is_active")]
        lines.append(f"  active libuv handles: {handles}")
    return "\nprocess:\n" + "\n".join(lines)


def make_client_certificate(directory: Path | str, name: str = "client-cert") -> tuple[Path, Path]:
    """Write a new RSA key with a self-signed certificate, as for an app registration.

    Returns the path of ``NAME.pem`` (private key then certificate: the file an
    app's ``client_certificate`` setting reads) and of ``NAME.crt`` (the
    certificate alone: what is uploaded to the provider).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    pem_path, crt_path = directory / f"{name}.pem", directory / f"{name}.crt"
    pem_path.write_bytes(key_pem + cert_pem)
    crt_path.write_bytes(cert_pem)
    return pem_path, crt_path


@dataclass
class SignInResult:
    """Where the provider sent the browser at the end of an authorization request.

    ``url`` is the redirect_uri with the response in its query (query response
    mode), or the action of the auto-submitting form (form_post), whose hidden
    fields are in ``form``.  ``session`` holds the provider's cookies.
    ``prompts`` lists the pages the provider showed on the way, in order
    (``"login"``, ``"consent"``); it is empty after a single sign-on.
    """

    url: str
    form: dict[str, str] | None
    session: requests.Session
    prompts: list[str] = field(default_factory=list)

    @property
    def params(self) -> dict[str, str]:
        """The authorization response parameters (query string or form fields)."""
        if self.form is not None:
            return dict(self.form)
        return dict(parse_qsl(urlsplit(self.url).query))


@dataclass
class Form:
    """A form of an HTML page: its ``action`` (as written), ``method`` (lower case), attributes and input fields."""

    action: str
    method: str
    attrs: dict[str, str]
    fields: dict[str, str] = field(default_factory=dict)


class _FormParser(HTMLParser):
    """Collects the forms of a page with their input fields."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._open: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._open = Form(
                values.get("action", ""), values.get("method", "get").lower(), values
            )
            self.forms.append(self._open)
        elif tag == "input" and self._open is not None and "name" in values:
            self._open.fields[values["name"]] = values.get("value", "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag == "form":
            self._open = None

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None


def forms(html: str) -> list[Form]:
    """The forms of an HTML page, in document order, each with its named ``<input>`` fields."""
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    return parser.forms


#: A browser step: (method, absolute URL, form data or None).
_Step = tuple[str, str, Optional[dict[str, str]]]  # Optional: evaluated at run time, on Python 3.9 too


class DevProvider:
    """A running ``provider.mjs``: start, drive its pages, read its request log."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.issuer: str = ""
        self.mode: str = "entra"
        self.port: int = 0
        self.workdir: Path | None = None
        self.ca_path: Path | None = None
        #: The TLS server certificate chain and its key (PEM), for a server that must look like this one.
        self.server_cert_path: Path | None = None
        self.server_key_path: Path | None = None
        self.client_certificate_path: Path | None = None
        self.log_path: Path | None = None
        self.last_session: requests.Session | None = None
        self._metadata: dict[str, Any] | None = None

    # -- lifecycle -----------------------------------------------------------

    def start(self, workdir: Path | str, port: int = 0, *, mode: str = "entra", tls_of: DevProvider | None = None,
              keep_ca: bool = False, **env: str | int) -> Self:
        """Start the provider (port 0: a free one) with extra ``OP_*`` env variables.

        ``mode`` is ``"entra"`` (Entra-like: one consent and one refresh token for every
        resource) or ``"stock"`` (oidc-provider's own rules: consent per scope, refresh
        tokens only with ``prompt=consent``, each covering its sign-in's scopes, rotated);
        it is kept as :attr:`mode`. See ``provider.mjs``.

        Files (CA, certificates, request log, stdout/stderr) go to ``workdir``;
        ``client-cert.pem`` (key and certificate, see :attr:`client_certificate_path`)
        is the certificate credential of the client ``todo-web-cert``. The TLS
        server certificate is issued by a new CA, or is that of the running
        provider ``tls_of``, so that what trusts one trusts both. ``keep_ca``
        reuses the CA and certificate an earlier start left in ``workdir``
        (:func:`make_ca` with ``keep``), as ``./scripts/run-sample`` does.
        """
        if self.process is not None:
            raise DevProviderError("provider already started")
        if mode not in ("entra", "stock"):
            raise DevProviderError(f"mode must be 'entra' or 'stock', not {mode!r}")
        ensure_node_modules()
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        if tls_of is None:
            ca_path, cert_path, key_path = make_ca(workdir, keep=keep_ca)
        elif tls_of.ca_path and tls_of.server_cert_path and tls_of.server_key_path:
            ca_path, cert_path, key_path = tls_of.ca_path, tls_of.server_cert_path, tls_of.server_key_path
        else:
            raise DevProviderError("tls_of: that provider is not started")
        client_pem, client_crt = make_client_certificate(workdir)
        log_path = workdir / "op-requests.jsonl"
        log_path.write_text("")
        child_env = dict(os.environ)
        child_env.update(
            OP_PORT=str(port),
            OP_CERT=str(cert_path),
            OP_KEY=str(key_path),
            OP_LOG=str(log_path),
            OP_CLIENT_CERT=str(client_crt),
            OP_MODE=mode,
        )
        child_env.update({name: str(value) for name, value in env.items()})
        node = shutil.which("node")
        if node is None:
            raise DevProviderError(
                "node is not installed (needed by devprovider/provider.mjs)"
            )
        self.workdir, self.ca_path, self.log_path = workdir, ca_path, log_path
        self.server_cert_path, self.server_key_path = cert_path, key_path
        self.mode = mode
        self.client_certificate_path = client_pem
        command = [node, "--report-on-signal", "--report-signal=SIGUSR2", f"--report-directory={workdir}",
                   "--report-filename=op-report.json", str(DEVPROVIDER_DIR / "provider.mjs")]
        hung = ""
        timeouts = READY_TIMEOUTS
        for attempt, timeout in enumerate(timeouts, 1):
            try:
                self._launch(command, child_env, workdir, timeout)
                return self
            except _NotReady as exc:  # once in a few thousand starts node hangs before it listens
                hung += f"\nattempt {attempt}: not ready in {timeout:.0f} s{exc}"
                if attempt < len(timeouts):
                    print(f"devprovider: not ready in {timeout:.0f} s, starting it again{exc}",
                          file=sys.stderr, flush=True)
        raise DevProviderError(f"devprovider not ready, {len(timeouts)} times:{hung}")

    def _launch(self, command: list[str], env: dict[str, str], workdir: Path, timeout: float) -> None:
        """Run node until it prints READY (then :attr:`issuer` and :attr:`port` are set); raise
        :class:`_NotReady` if it is still silent after ``timeout`` s, DevProviderError if it exits."""
        stdout_path, stderr_path = workdir / "op-stdout.log", workdir / "op-stderr.log"
        report_path = workdir / "op-report.json"
        report_path.unlink(missing_ok=True)
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            self.process = subprocess.Popen(command, cwd=DEVPROVIDER_DIR, env=env, stdin=subprocess.DEVNULL,
                                            stdout=out, stderr=err)
        deadline = time.monotonic() + timeout
        while True:
            for line in stdout_path.read_text(errors="replace").splitlines():
                if line.startswith("READY "):
                    self.issuer = line.split(" ", 1)[1].strip()
                    self.port = urlsplit(self.issuer).port or 443
                    return
            code = self.process.poll()
            if code is not None or time.monotonic() > deadline:
                state = "" if code is not None else _hung(self.process, report_path)
                self.stop()
                stderr = stderr_path.read_text(errors="replace").strip()
                stdout = stdout_path.read_text(errors="replace").strip()
                if code is not None:
                    raise DevProviderError(f"devprovider exited with code {code}; stderr:\n{stderr}\n"
                                           f"stdout:\n{stdout}")
                raise _NotReady(f"; stderr: {stderr!r}; stdout: {stdout!r}{state}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the provider process (idempotent)."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- HTTP helpers --------------------------------------------------------

    def browser(self) -> requests.Session:
        """A new cookie-keeping session trusting only the provider's CA."""
        session = requests.Session()
        session.trust_env = False
        session.verify = str(self._require_ca())
        return session

    @property
    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document."""
        if self._metadata is None:
            url = f"{self.issuer}/.well-known/openid-configuration"
            with self.browser() as session:
                response = session.get(url, timeout=10)
            response.raise_for_status()
            self._metadata = response.json()
        return self._metadata

    def _require_ca(self) -> Path:
        if self.ca_path is None:
            raise DevProviderError("provider not started")
        return self.ca_path

    def _is_provider_url(self, url: str) -> bool:
        return url == self.issuer or url.startswith(
            (self.issuer + "/", self.issuer + "?")
        )

    def sign_in(
        self,
        authorize_url: str,
        login: str = "alice",
        *,
        session: requests.Session | None = None,
    ) -> SignInResult:
        """Drive the login and consent pages for ``authorize_url`` as user ``login``.

        Redirects inside the provider are followed, the final one to the
        redirect_uri is not.  A new browser session is used unless ``session``
        is given (pass one to reuse the provider's single sign-on cookies); it
        is kept as ``last_session`` for :meth:`end_session`.
        """
        browser = session if session is not None else self.browser()
        self.last_session = browser
        shown: list[str] = []

        def page(response: requests.Response) -> _Step | SignInResult:
            found = forms(response.text) if "html" in response.headers.get("content-type", "") else []
            if not found:
                raise DevProviderError(
                    f"unexpected provider answer {response.status_code} for {response.url}: {response.text[:2000]}"
                )
            form = found[0]
            action = urljoin(response.url, form.action)
            prompt = form.fields.get("prompt")
            if prompt == "login":
                shown.append(prompt)
                return "post", action, {"prompt": "login", "login": login, "password": "x"}
            if prompt == "consent":
                shown.append(prompt)
                return "post", action, {"prompt": "consent"}
            if not self._is_provider_url(action):
                return SignInResult(url=action, form=dict(form.fields), session=browser, prompts=shown)
            if _AUTO_SUBMIT in response.text:
                # The provider's own self-submitting form, e.g. ending the session of
                # the previous user when another one signs in (prompt=login).
                return form.method, action, dict(form.fields)
            raise DevProviderError(f"unexpected provider page at {response.url}: {response.text[:2000]}")

        answer = self._browse(browser, authorize_url, page, "sign-in")
        if isinstance(answer, str):  # redirected to the redirect_uri: the query response mode
            return SignInResult(url=answer, form=None, session=browser, prompts=shown)
        return answer

    def end_session(self, url: str, *, session: requests.Session | None = None) -> str:
        """Open an end-session URL, confirm "Yes, sign me out", return where it leads.

        Uses ``session`` or the browser of the last :meth:`sign_in`.  Returns
        the post_logout_redirect_uri location (or the provider's success page
        URL when none was requested).
        """

        def page(response: requests.Response) -> _Step | str:
            logout = [f for f in forms(response.text) if f.attrs.get("id") == "op.logoutForm"]
            if response.status_code == 200 and logout:
                return "post", urljoin(response.url, logout[0].action), {**logout[0].fields, "logout": "yes"}
            if response.status_code == 200:
                return response.url
            raise DevProviderError(
                f"unexpected provider answer {response.status_code} for {response.url}: {response.text[:2000]}"
            )

        answer = self._browse(session or self.last_session or self.browser(), url, page, "end-session")
        assert isinstance(answer, str)
        return answer

    def _browse(self, browser: requests.Session, url: str,
                page: Callable[[requests.Response], Any], what: str) -> Any:
        """GET ``url`` and go on as a browser would, at most MAX_STEPS requests.

        Redirects inside the provider are followed; a redirect out of it ends the
        walk with its absolute target. Any other answer goes to ``page``, which
        returns the next step ``(method, url, data)`` or the walk's result.
        """
        step: _Step = ("get", url, None)
        for _ in range(MAX_STEPS):
            method, url, data = step
            response = browser.request(method, url, data=data, allow_redirects=False, timeout=30)
            if response.is_redirect:
                target = urljoin(response.url, response.headers["location"])
                if not self._is_provider_url(target):
                    return target
                step = ("get", target, None)
                continue
            answer = page(response)
            if not isinstance(answer, tuple):
                return answer
            step = answer
        raise DevProviderError(f"{what} did not finish in {MAX_STEPS} steps")

    def revoke(
        self,
        token: str,
        client_id: str,
        client_secret: str,
        token_type_hint: str | None = None,
    ) -> None:
        """Revoke a refresh or access token at the revocation endpoint."""
        data = {"token": token}
        if token_type_hint:
            data["token_type_hint"] = token_type_hint
        with self.browser() as session:
            response = session.post(
                self.metadata["revocation_endpoint"],
                data=data,
                auth=(client_id, client_secret),
                timeout=10,
            )
        if response.status_code != 200:
            raise DevProviderError(
                f"revocation failed: {response.status_code} {response.text}"
            )

    # -- request log ---------------------------------------------------------

    def requests_log(self) -> list[dict[str, Any]]:
        """Every request the provider received so far: t, method, path, status."""
        if self.log_path is None or not self.log_path.exists():
            return []
        lines = self.log_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def mark(self) -> int:
        """The number of logged requests so far, for :meth:`requests_since`."""
        return len(self.requests_log())

    def requests_since(
        self, mark: int, path_contains: str | None = None
    ) -> list[dict[str, Any]]:
        """Requests logged after ``mark``, optionally only those whose path contains a string."""
        entries = self.requests_log()[mark:]
        if path_contains is not None:
            entries = [entry for entry in entries if path_contains in entry["path"]]
        return entries

    def authorizations_since(self, mark: int) -> list[dict[str, Any]]:
        """Sign-ins started after ``mark``: GETs of the authorization endpoint (not its resumptions)."""
        auth_path = urlsplit(self.issuer).path + "/auth"
        return [e for e in self.requests_since(mark) if e["method"] == "GET" and e["path"] == auth_path]

    def token_requests_since(self, mark: int) -> list[dict[str, Any]]:
        """POSTs to the token endpoint logged after ``mark``."""
        token_path = urlsplit(self.issuer).path + "/token"
        return [
            e
            for e in self.requests_since(mark)
            if e["method"] == "POST" and e["path"] == token_path
        ]


def ensure_node_modules() -> None:
    """Run ``npm ci`` in devprovider/ unless oidc-provider is installed there."""
    if (DEVPROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise DevProviderError(
            "npm is not installed; it is needed to install devprovider's oidc-provider"
        )
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=DEVPROVIDER_DIR,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise DevProviderError(
            f"npm ci in {DEVPROVIDER_DIR} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
