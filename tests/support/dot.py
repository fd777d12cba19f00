"""django-oauth-toolkit (DOT) on loopback over TLS: a second, independent OpenID Connect provider.

::

    with DotProvider(tmp_path / "dot", devprovider) as dot:
        dot.add_user("dora", "pw")
        client_id, secret = dot.add_client(redirect_uri="http://127.0.0.1:5001/auth/callback")
        result = dot.sign_in(authorize_url, "dora", "pw")   # login and consent pages, as a browser
        result.url                                          # the redirect_uri with code and state

The Django project is :mod:`dot_site` (next to this file); its database is a fresh
SQLite file in the work directory, its TLS certificate devprovider's (whose CA
``REQUESTS_CA_BUNDLE`` trusts in the tests), its signing key a new RSA key. The
issuer is ``https://127.0.0.1:PORT/o``. Users and the application are created by
the test through Django's management commands.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import requests
from bs4 import BeautifulSoup
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devprovider import DevProvider

from .servers import GunicornServer, free_port

if TYPE_CHECKING:  # typing.Self is Python 3.11+
    from typing_extensions import Self

HERE = Path(__file__).resolve().parent
#: Scopes of the to-do API at DOT (declared in dot_site.settings), and the audience of its JWTs.
DOT_READ = "todo.read"
DOT_WRITE = "todo.write"
DOT_AUDIENCE = "todo-api"
MAX_STEPS = 12


@dataclass
class DotSignIn:
    """Where DOT sent the browser in the end (the redirect_uri with the response), and the pages shown."""

    url: str
    prompts: list[str] = field(default_factory=list)


class DotProvider:
    """DOT served by gunicorn over TLS on a free loopback port.

    :param workdir: where the database, the signing key and the logs go.
    :param tls_from: a started :class:`DevProvider`, whose server certificate (127.0.0.1) is used.
    :param access_token_ttl: lifetime of access tokens, seconds.
    """

    def __init__(self, workdir: Path, tls_from: DevProvider, *, access_token_ttl: int = 3600) -> None:
        assert tls_from.workdir is not None and tls_from.ca_path is not None, "start the DevProvider first"
        self.workdir = workdir
        self.ca_path = tls_from.ca_path
        self.port = free_port()
        self.issuer = f"https://127.0.0.1:{self.port}/o"
        key = workdir / "oidc-key.pem"
        self._env = {
            "DJANGO_SETTINGS_MODULE": "dot_site.settings",
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "DOT_ISSUER": self.issuer,
            "DOT_DB": str(workdir / "dot.sqlite3"),
            "DOT_RSA_KEY": str(key),
            "DOT_AT_TTL": str(access_token_ttl),
            "DOT_API_AUDIENCE": DOT_AUDIENCE,
        }
        self._key_path = key
        cert, tls_key = tls_from.workdir / "server-cert.pem", tls_from.workdir / "server-key.pem"
        self.server = GunicornServer("dot_site.wsgi:application", workdir, env=self._env, port=self.port,
                                     workers=1, chdir=HERE, args=["--certfile", str(cert), "--keyfile", str(tls_key),
                                                                  "--threads", "4"])

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._key_path.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
        self.manage("migrate", "--noinput", "-v", "0")
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def manage(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Run a Django management command against this provider's database; its output."""
        done = subprocess.run([sys.executable, "-m", "django", *args], cwd=HERE, env={**os.environ, **self._env,
                              **(env or {})}, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
                              check=False)
        if done.returncode != 0:
            raise RuntimeError(f"django {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    # -- what the test creates -------------------------------------------------

    def add_user(self, username: str, password: str) -> None:
        self.manage("createsuperuser", "--noinput", "--username", username, "--email", f"{username}@example.test",
                    env={"DJANGO_SUPERUSER_PASSWORD": password})

    def add_client(self, client_id: str, secret: str, *, redirect_uri: str, post_logout_redirect_uri: str) -> None:
        """A confidential authorization-code client signing id_tokens with RS256."""
        self.manage("createapplication", "confidential", "authorization-code", "--client-id", client_id,
                    "--client-secret", secret, "--name", client_id, "--redirect-uris", redirect_uri,
                    "--post-logout-redirect-uris", post_logout_redirect_uri, "--algorithm", "RS256")

    # -- a browser at DOT --------------------------------------------------------

    def browser(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        session.verify = str(self.ca_path)
        return session

    def sign_in(self, authorize_url: str, username: str, password: str, *,
                session: requests.Session | None = None) -> DotSignIn:
        """Drive DOT's pages for ``authorize_url``: Django's login form, then DOT's consent ("Authorize")."""
        browser = session if session is not None else self.browser()
        method, url, data, referer = "get", authorize_url, None, None
        shown: list[str] = []
        for _ in range(MAX_STEPS):
            headers = {"Referer": referer} if referer else {}  # Django's CSRF check over https wants it
            answer = browser.request(method, url, data=data, allow_redirects=False, timeout=30, headers=headers)
            if answer.is_redirect:
                target = urljoin(answer.url, answer.headers["location"])
                if not target.startswith(f"https://127.0.0.1:{self.port}/"):
                    return DotSignIn(target, shown)
                method, url, data = "get", target, None
                continue
            page = BeautifulSoup(answer.text, "html.parser")
            form = page.find("form")
            if answer.status_code != 200 or form is None:
                raise RuntimeError(f"unexpected DOT answer {answer.status_code} at {url}: {answer.text[:1500]}")
            fields = dict(_fields(form))
            action = urljoin(answer.url, form.get("action") or answer.url)
            if "password" in fields:
                shown.append("login")
                fields.update(username=username, password=password)
            elif form.get("id") == "authorizationForm":
                shown.append("consent")
                fields["allow"] = "Authorize"
            else:
                raise RuntimeError(f"unexpected DOT page at {url}: {answer.text[:1500]}")
            method, url, data, referer = "post", action, fields, answer.url
        raise RuntimeError(f"DOT sign-in did not finish in {MAX_STEPS} steps")

    def end_session(self, url: str, *, session: requests.Session) -> str:
        """Open DOT's RP-initiated logout URL, confirm it, and return where it sends the browser."""
        answer = session.get(url, allow_redirects=False, timeout=30)
        if answer.status_code == 200:
            form = BeautifulSoup(answer.text, "html.parser").find("form")
            assert form is not None, answer.text[:1500]
            fields = dict(_fields(form), allow="Logout")
            answer = session.post(urljoin(answer.url, form.get("action") or answer.url), data=fields,
                                  headers={"Referer": answer.url}, allow_redirects=False, timeout=30)
        assert answer.is_redirect, f"{answer.status_code}: {answer.text[:1500]}"
        return urljoin(answer.url, answer.headers["location"])

    @property
    def discovery(self) -> dict[str, Any]:
        with self.browser() as session:
            answer = session.get(self.issuer + "/.well-known/openid-configuration", timeout=10)
        answer.raise_for_status()
        document: dict[str, Any] = answer.json()
        return document

    def access_log(self) -> list[tuple[str, str, int]]:
        """``(method, path, status)`` of every request DOT answered."""
        return [(method, path, status) for _, method, path, status in self.server.access_log()]

    def token_requests_since(self, mark: int) -> list[int]:
        """The statuses of token requests after ``mark``."""
        return [status for method, path, status in self.access_log()[mark:] if method == "POST" and path == "/o/token/"]


def _fields(form: Any) -> Iterator[tuple[str, str]]:
    for element in form.find_all(["input", "textarea"]):
        name = element.get("name")
        if name and element.get("type") not in ("submit", "button"):
            yield name, element.get("value", "")
