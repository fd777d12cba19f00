"""Real servers for deployment tests: gunicorn, Redis, and a requests "browser" that signs in.

Each server is a context manager that starts a real process on a free loopback
port and stops it on exit; its output goes to files in a work directory, and a
failed start raises with the tail of that output::

    with RedisServer(tmp_path / "redis") as redis, \\
         sample_server(provider, tmp_path / "web", SAMPLE_SESSION_URL=redis.url) as web:
        browser = Browser(provider)
        page = browser.sign_in(web.url + "/todos")
        assert "Signed in as" in page.text
        assert len(web.worker_pids()) == 2   # which workers answered, from the access log
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import gunicorn.config
import redis
import requests

from devprovider import DevProvider, forms

from .apps import repost_form
from .environment import ROOT, sample_env

if TYPE_CHECKING:  # typing.Self is Python 3.11+
    from typing_extensions import Self

SAMPLE_CONFIG = ROOT / "gunicorn.conf.py"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
#: gunicorn access log line: worker pid, method, path, status (``%(p)s`` is ``<pid>``).
ACCESS_LOG_FORMAT = "%(p)s %(m)s %(U)s %(s)s"
_ACCESS_LINE = re.compile(r"^<(\d+)> (\S+) (\S+) (\d{3})$", re.MULTILINE)
#: Recent gunicorn (27 here) opens a control socket at one path per user: servers side by side would share it.
_NO_CONTROL_SOCKET = ["--no-control-socket"] if any(
    setting.name == "control_socket" for setting in gunicorn.config.KNOWN_SETTINGS) else []


@contextmanager
def trusted_provider(workdir: Path | str, **env: str | int) -> Iterator[DevProvider]:
    """A DevProvider started in ``workdir`` (``env``: its ``OP_*`` variables), stopped on exit.

    While it runs, ``REQUESTS_CA_BUNDLE`` points requests, hence msal, at its CA.
    """
    with DevProvider().start(workdir, **env) as provider:
        previous = os.environ.get("REQUESTS_CA_BUNDLE")
        os.environ["REQUESTS_CA_BUNDLE"] = str(provider.ca_path)
        try:
            yield provider
        finally:
            if previous is None:
                os.environ.pop("REQUESTS_CA_BUNDLE", None)
            else:
                os.environ["REQUESTS_CA_BUNDLE"] = previous


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Server:
    """A child process with its output in ``workdir/<name>.log``; subclasses say when it is ready."""

    name = "server"

    def __init__(self, workdir: Path | str, port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.log_path = self.workdir / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    def _ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> Self:
        """Start the process and wait until it serves; raise with its log if it does not."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            # A session of its own, so stop() can end the whole group (gunicorn's workers too).
            self.process = subprocess.Popen(self._command(), env=self._env(), stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + READY_TIMEOUT
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start on port {self.port}:\n{self.log_tail()}")
            time.sleep(0.05)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the process group (idempotent): ``sig`` first, SIGKILL after STOP_TIMEOUT s."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            os.killpg(process.pid, sig)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(process.pid, signal.SIGKILL)  # leftovers, such as workers of a killed master
        except ProcessLookupError:
            pass
        process.wait()

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the process output, for failure messages."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self.start() if self.process is None else self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class RedisServer(_Server):
    """A throw-away ``redis-server`` on loopback: no persistence (``persistent``: an append-only file,
    fsync'ed at every write, as a session store in production keeps), data in ``workdir``.

    ``url`` is ``redis://127.0.0.1:PORT/0``, usable as Beaker's ``session.url``. :meth:`pause` and
    :meth:`resume` stop and continue the process (SIGSTOP, SIGCONT): connections stay open and
    unanswered, as with a Redis that hangs; :meth:`restart` stops it and starts it again on its port.
    """

    name = "redis"

    def __init__(self, workdir: Path | str, port: int | None = None, *, persistent: bool = False) -> None:
        super().__init__(workdir, port)
        self.persistent = persistent

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """SIGTERM (Redis saves, when persistent, and exits), then the same server on the same port."""
        self.stop()
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A redis-py client of this server (close it after use)."""
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def _command(self) -> list[str]:
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("redis-server is not installed (./scripts/bootstrap installs it)")
        keep = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        return [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *keep,
                "--dir", str(self.workdir)]

    def _ready(self) -> bool:
        with self.client() as client:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False


class GunicornServer(_Server):
    """gunicorn serving ``app`` (``module:variable``) on ``127.0.0.1:port`` with ``workers`` workers.

    :param app: the WSGI application spec, importable from ``chdir``.
    :param workdir: where ``gunicorn.log`` (master, workers and app logging) and
        ``access.log`` (one ``<pid> METHOD PATH STATUS`` line per request) go.
    :param env: variables added to this process's environment.
    :param port: the port (default: a free one); pick it first with :func:`free_port`
        when the app's configuration must name its own URL.
    :param config: a gunicorn config file, e.g. :data:`SAMPLE_CONFIG`; the command
        line set here (bind, workers, logs) wins over it.
    :param chdir: the directory gunicorn imports ``app`` from (default: the repository).
    :param args: more gunicorn command-line arguments.
    :param host: the host name in :attr:`url` (it always listens on 127.0.0.1): ``localhost``
        makes the app another site than the provider at 127.0.0.1, as a real browser sees it.

    Stopping sends SIGINT, gunicorn's quick shutdown: a browser's kept-alive
    connections would hold a graceful one for the whole graceful timeout.
    """

    name = "gunicorn"

    def __init__(self, app: str, workdir: Path | str, *, env: Mapping[str, str] | None = None,
                 port: int | None = None, workers: int = 2, config: Path | None = None,
                 chdir: Path = ROOT, args: Sequence[str] = (), host: str = "127.0.0.1") -> None:
        super().__init__(workdir, port)
        self.host = host
        self.app = app
        self.extra_env = dict(env or {})
        self.workers = workers
        self.config = config
        self.chdir = chdir
        self.args = list(args)
        self.access_log_path = self.workdir / "access.log"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _command(self) -> list[str]:
        command = [sys.executable, "-m", "gunicorn"]
        if self.config is not None:
            command += ["--config", str(self.config)]
        return command + [
            "--chdir", str(self.chdir), "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers),
            "--error-logfile", "-", "--access-logfile", str(self.access_log_path),
            "--access-logformat", ACCESS_LOG_FORMAT, *_NO_CONTROL_SOCKET, *self.args, self.app]

    def _env(self) -> dict[str, str]:
        return {**os.environ, **self.extra_env}

    def _ready(self) -> bool:
        booted = self.log_path.read_text(errors="replace").count("Booting worker with pid")
        if booted < self.workers:
            return False
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
        except OSError:
            return False
        return True

    def stop(self, sig: int = signal.SIGINT) -> None:
        super().stop(sig)

    def access_log(self, at_least: int = 0) -> list[tuple[int, str, str, int]]:
        """``(worker pid, method, path, status)`` for every request answered so far.

        A worker writes the line after the client has its answer: ``at_least`` waits
        (up to READY_TIMEOUT s) until that many lines are there.
        """
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            text = self.access_log_path.read_text(errors="replace") if self.access_log_path.exists() else ""
            entries = [(int(pid), method, path, int(status))
                       for pid, method, path, status in _ACCESS_LINE.findall(text)]
            if len(entries) >= at_least or time.monotonic() > deadline:
                return entries
            time.sleep(0.02)

    def worker_pids(self) -> set[int]:
        """The pids of the workers that answered requests so far."""
        return {pid for pid, *_ in self.access_log()}


def todo_api_server(provider: DevProvider, workdir: Path, *, workers: int = 2, **env: str) -> GunicornServer:
    """gunicorn serving ``todo_api:app``, the sample's to-do list API, validating ``provider``'s tokens.

    Its logs go to ``workdir``, its SQLite store to ``workdir/data``; ``env`` adds or overrides variables.
    """
    return GunicornServer("todo_api:app", workdir, env={
        "MSAL_CLIENT_ID": "todo-api", "MSAL_OIDC_AUTHORITY": provider.issuer,
        "REQUESTS_CA_BUNDLE": str(provider.ca_path), "SAMPLE_DATA_DIR": str(workdir / "data"), **env},
        workers=workers, config=SAMPLE_CONFIG)


class SampleServer(GunicornServer):
    """The sample web app's gunicorn, and beside it the to-do list API's (``api``): they start and stop together."""

    def __init__(self, api: GunicornServer, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api = api

    def start(self) -> Self:
        self.api.start()
        try:
            return super().start()
        except BaseException:
            self.api.stop()
            raise

    def stop(self, sig: int = signal.SIGINT) -> None:
        super().stop(sig)
        self.api.stop(sig)


def sample_server(provider: DevProvider, workdir: Path, *, host: str = "127.0.0.1", workers: int = 2,
                  client_id: str = "todo-web", port: int | None = None, **env: str) -> SampleServer:
    """gunicorn serving ``sample_app:app`` with :data:`SAMPLE_CONFIG`, signed in by ``provider``, and its
    to-do list API (:func:`todo_api_server`, logs in ``workdir/api``) at ``TODOLIST_ENDPOINT``.

    Not started yet: use it in a ``with``. Its redirect_uri is its own ``url`` (on ``port``, default a
    free one) and its data (to-do SQLite, file sessions, the session key) go to ``workdir/data``; ``env``
    overrides :func:`support.environment.sample_env`, e.g. ``SAMPLE_SESSION_URL=redis.url``.
    """
    port = port or free_port()
    api = todo_api_server(provider, workdir / "api", workers=workers)
    return SampleServer(api, "sample_app:app", workdir, env=sample_env(
        provider, f"http://{host}:{port}", workdir / "data", client_id=client_id,
        **{"TODOLIST_ENDPOINT": f"{api.url}/api/todolist", **env}),
        port=port, workers=workers, config=SAMPLE_CONFIG, host=host)


class Browser:
    """A ``requests.Session`` acting as a browser towards the app and the provider.

    It keeps cookies, sends ``Accept: text/html`` like a navigation, trusts the
    provider's CA, follows no redirect by itself, and opens a new connection per
    request (``Connection: close``), so the workers of a gunicorn server take
    turns instead of one worker serving a kept-alive connection.
    """

    def __init__(self, provider: DevProvider) -> None:
        self.provider = provider
        self.session = provider.browser()
        self.session.headers.update({"Accept": "text/html,*/*;q=0.8", "Connection": "close"})

    def get(self, url: str, **options: Any) -> requests.Response:
        return self.session.get(url, allow_redirects=False, timeout=30, **options)

    def post(self, url: str, data: Mapping[str, str], **options: Any) -> requests.Response:
        return self.session.post(url, data=data, allow_redirects=False, timeout=30, **options)

    def follow(self, response: requests.Response) -> requests.Response:
        """GET the target of a redirect."""
        assert response.is_redirect, f"expected a redirect, got {response.status_code}: {response.text[:500]}"
        return self.get(urljoin(response.url, response.headers["location"]))

    def complete_sign_in(self, authorize: requests.Response, login: str = "alice") -> requests.Response:
        """From the app's 302 to the provider, sign in there and bring the answer to the callback.

        A ``form_post`` answer is posted cross-site as a browser does, without the
        app's SameSite=Lax cookie; the app answers with its re-post page (form ``f``),
        which is then submitted from the app's own site, cookie included. Returns the
        callback's final answer (a 302 to the page that needed the sign-in).
        """
        assert authorize.is_redirect, f"expected a sign-in redirect, got {authorize.status_code}"
        location = authorize.headers["location"]
        assert location.startswith(self.provider.issuer + "/auth?"), location
        result = self.provider.sign_in(location, login=login)
        if result.form is None:
            return self.get(result.url)
        with self.provider.browser() as other_site:  # no cookies of the app: SameSite=Lax keeps them
            cross_site = other_site.post(result.url, data=result.form, allow_redirects=False, timeout=30)
        assert cross_site.status_code == 200, cross_site.text[:500]
        form = repost_form(cross_site.text)
        return self.post(urljoin(cross_site.url, form.action), form.fields)

    def sign_in(self, url: str, login: str = "alice") -> requests.Response:
        """Open ``url`` of a protected page, sign in as ``login``, and return that page."""
        back = self.complete_sign_in(self.get(url), login=login)
        return self.follow(back)

    def sign_out(self, url: str) -> str:
        """Open the app's sign-out page at ``url`` and press its button (a same-origin form POST, as a
        browser sends it); return where it sends the browser (the provider's end-session URL)."""
        page = self.get(url)
        assert page.status_code == 200, f"expected the sign-out page, got {page.status_code}: {page.text[:500]}"
        (form,) = forms(page.text)
        parts = urlsplit(url)
        answer = self.post(urljoin(url, form.action), form.fields,
                           headers={"Origin": f"{parts.scheme}://{parts.netloc}", "Sec-Fetch-Site": "same-origin"})
        assert answer.status_code == 303, f"expected a redirect, got {answer.status_code}: {answer.text[:500]}"
        return urljoin(answer.url, answer.headers["location"])


class CommandServer(_Server):
    """A server started by a shell command run from the repository, such as a README's; ready when ``port`` accepts.

    :param command: the ``sh -c`` command line, e.g. ``cd examples && flask --app flask_app run --port 5001``.
    :param env: variables added to this process's environment (``PATH`` starts with this Python's scripts).
    """

    name = "command"

    def __init__(self, command: str, workdir: Path | str, *, port: int, env: Mapping[str, str] | None = None) -> None:
        super().__init__(workdir, port)
        self.command = command
        self.extra_env = dict(env or {})

    def _command(self) -> list[str]:
        return ["sh", "-c", f"cd '{ROOT}' && {self.command}"]

    def _env(self) -> dict[str, str]:
        scripts = str(Path(sys.executable).parent)  # flask, pserve, waitress-serve of the Python running the tests
        return {**os.environ, "PATH": scripts + os.pathsep + os.environ.get("PATH", ""), **self.extra_env}

    def _ready(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
        except OSError:
            return False
        return True
