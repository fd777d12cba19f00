"""A soak test of the sample as deployed: signed-in users, mixed traffic, refreshing tokens, and faults.

The sample runs as documented for several servers: its web app and its to-do API under gunicorn
(gthread workers), sessions and the refresh lock in Redis (persistent: an append-only file), the
provider behind a proxy that can refuse connections (:class:`~support.faults.FaultyProxy`), and
the ``todo-web-short`` client, whose 303 s access tokens msal refreshes 3 s after they are issued.
Each user signs in (and, against the stock provider, consents to write with a first item), then
until the end mixes page views, XHR calls (``Accept: application/json``, two at once, as a page's
scripts make them: their refreshes contend for the session's lock) and form posts, each on a new
connection, with a think time between them. Meanwhile, in turn:

* a web worker is killed (SIGKILL; gunicorn starts another);
* the provider is down (its port refuses connections), then back with its state;
* Redis is paused (SIGSTOP, then SIGCONT): connections stay open and unanswered;
* Redis is restarted (SIGTERM, then started again from its append-only file).

A form post whose outcome is unknown (a 503, a dropped connection) is sent again, with the same
idempotency key, until it is answered 303. At the end each user's list is read: every item that
was answered 303 must be there once (else *lost*), and no item twice (*duplicated*).

Counted as **unanswered**: a request without a status line, whether its connection was closed or
the client gave up (``client_timeout``), except a connection that the worker kill itself reset
while it was being served (nothing can answer those; they are reported apart, and sent again).
**Unexpected sign-ins**: after the warm-up, a redirect to the provider or a 401; against the stock
provider, whose refresh tokens rotate, a user whose refresh the worker kill cut (the provider answered,
the worker died before saving: the session holds a retired refresh token) signs in once, and that is
counted apart (:meth:`Soak.lost_rotations` follows each refresh token through the provider's log), as is one
whose answer the provider outage cut. The run *fails*
(:attr:`Soak.failures`) on any 5xx other than 503, any unanswered request, any lost or duplicated
item, and any unexpected sign-in.
"""

from __future__ import annotations

import os
import random
import re
import secrets
import signal
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests

from devprovider import DevProvider, forms

from .apps import TODO_READ, TODO_WRITE
from .faults import FaultyProxy
from .servers import Browser, GunicornServer, RedisServer, sample_server

CLIENT = "todo-web-short"
#: Seconds after its issue when msal refreshes a 303 s access token (its 300 s margin).
STALE = 3.0
JSON = {"Accept": "application/json"}
KINDS = ("page", "xhr", "post")


@dataclass(frozen=True)
class FaultPlan:
    """A fault at ``at`` seconds into the run, lasting ``seconds``; its window for the 503 count adds ``recovery``."""

    name: str
    at: float
    seconds: float = 0.0
    recovery: float = 5.0


#: The four faults, spread over the run (seconds from the end of the warm-up).
FAULTS = (
    FaultPlan("worker killed", at=5.0),
    FaultPlan("provider down", at=12.0, seconds=8.0),
    FaultPlan("Redis paused", at=27.0, seconds=5.0),
    FaultPlan("Redis restarted", at=38.0),
)


@dataclass
class Plan:
    """How big the soak is: the defaults run in about a minute per provider mode on a 2-core machine."""

    users: int = 16
    seconds: float = 48.0
    workers: int = 3
    threads: int = 4
    think: tuple[float, float] = (0.2, 0.8)
    #: What a browser or a load balancer waits before giving up: every answer must come sooner.
    client_timeout: float = 30.0
    faults: tuple[FaultPlan, ...] = FAULTS


@dataclass
class Answer:
    kind: str
    started: float
    ended: float
    status: int | None  # None: no status line
    why: str = ""  # for status None: "dropped" (closed, reset) or "timeout"

    @property
    def ms(self) -> float:
        return (self.ended - self.started) * 1000


@dataclass
class FaultWindow:
    plan: FaultPlan
    started: float
    ended: float
    epoch: float = 0.0  # when it started, in Unix time (as the logs tell it)

    def overlaps(self, answer: Answer) -> bool:
        """Whether the request was in flight during the fault or its recovery."""
        return answer.started <= self.ended + self.plan.recovery and answer.ended >= self.started


@dataclass(frozen=True)
class LostRotation:
    """A refresh token the provider rotated at ``rotated`` (Unix time) and was given again at ``refused``."""

    rotated: float
    refused: float
    cut_by: str  # the fault that explains it, or ""


# -- the users ------------------------------------------------------------------------

class User:
    """One browser: signs in, then pages, XHR calls and posts; an item is sent until it is answered 303."""

    def __init__(self, soak: Soak, n: int) -> None:
        self.soak = soak
        self.login = f"soak-{soak.mode}-{n}"
        self.browser = Browser(soak.provider)
        self.base = soak.web.url
        self.rng = random.Random(f"{soak.mode}-{n}")
        self.answers: list[Answer] = []
        self.confirmed: list[str] = []  # answered 303
        self.pending: list[tuple[str, str]] = []  # (description, idempotency key): outcome unknown
        self.resent: set[str] = set()  # items sent again after an unknown outcome
        self.pending_once: set[str] = set()  # items sent at least once
        self.reset_by_kill: list[Answer] = []
        self.sign_ins = 0
        self.refused: list[tuple[str, int, str]] = []  # 4xx that should not happen, with a snippet
        self.error: BaseException | None = None
        self._items = 0

    # -- one request --------------------------------------------------------------------

    def request(self, kind: str, method: str, path: str, *, record: bool = True, **options: Any
                ) -> tuple[Answer, requests.Response | None]:
        started = time.monotonic()
        try:
            response = self.browser.session.request(method, urljoin(self.base, path), allow_redirects=False,
                                                    timeout=self.soak.plan.client_timeout, **options)
        except requests.Timeout:
            answer, response = Answer(kind, started, time.monotonic(), None, "timeout"), None
        except requests.ConnectionError:
            answer, response = Answer(kind, started, time.monotonic(), None, "dropped"), None
        else:
            answer = Answer(kind, started, time.monotonic(), response.status_code)
        if answer.status is None and self.soak.reset_by_the_kill(answer):
            self.reset_by_kill.append(answer)
        elif record:
            self.answers.append(answer)
        return answer, response

    def to_sign_in(self, response: requests.Response | None) -> bool:
        """Whether ``response`` asks for a sign-in: a redirect to the provider, or a 401."""
        if response is None:
            return False
        location = response.headers.get("Location", "")
        return response.status_code == 401 or (response.is_redirect and location.startswith(self.soak.provider.issuer))

    def sign_in_again(self, response: requests.Response) -> requests.Response:
        """Follow a sign-in (and a kept form's re-submission): the provider's SSO, or its login page."""
        self.sign_ins += 1
        if response.status_code == 401:
            response = self.browser.get(self.base + "/auth/login?next=/todos")
        answer = self.browser.complete_sign_in(response, login=self.login)
        page = [f for f in forms(answer.text) if f.attrs.get("id") == "f"] if answer.status_code == 200 else []
        if page:  # the form kept across the sign-in, re-submitted once
            answer = self.browser.post(urljoin(answer.url, page[0].action), page[0].fields,
                                       headers={"Origin": self.base})
        return answer

    # -- the traffic ----------------------------------------------------------------------

    def warm_up(self) -> None:
        page = self.browser.sign_in(self.base + "/todos", login=self.login)
        assert page.status_code == 200, page.text[:300]
        description, key = self.new_item()
        for _ in range(10):  # the first write: against the stock provider, a consent to write
            _answer, response = self.request("post", "POST", "/todos", record=False,
                                            data={"description": description, "idempotency_key": key},
                                            headers={"Origin": self.base})
            if self.to_sign_in(response):
                assert response is not None
                response = self.sign_in_again(response)
                self.sign_ins -= 1  # expected: the warm-up's consent
            if response is not None and response.status_code == 303:
                self.confirmed.append(description)
                return
            time.sleep(0.5)
        raise AssertionError(f"{self.login} could not add a first item")

    def new_item(self) -> tuple[str, str]:
        self._items += 1
        return f"{self.login} item {self._items}", secrets.token_urlsafe(16)

    def run(self, until: float) -> None:
        try:
            while time.monotonic() < until:
                roll = self.rng.random()
                if roll < 0.45:
                    self.page_view()
                elif roll < 0.75:
                    self.xhr()
                else:
                    self.post()
                time.sleep(self.rng.uniform(*self.soak.plan.think))
        except Exception as exc:  # noqa: BLE001 - reported by the soak
            self.error = exc

    def _check(self, answer: Answer, response: requests.Response | None) -> requests.Response | None:
        """A sign-in asked for is unexpected: count it and sign in again; a 4xx is noted."""
        if self.to_sign_in(response):
            assert response is not None
            return self.sign_in_again(response)
        if response is not None and 400 <= response.status_code < 500:
            self.refused.append((answer.kind, response.status_code, response.text[:200]))
        if response is not None and response.status_code == 503 and not response.headers.get("Retry-After"):
            self.refused.append((answer.kind, 503, "a 503 without Retry-After"))
        return response

    def page_view(self) -> None:
        answer, response = self.request("page", "GET", "/todos", headers={"Accept": "text/html"})
        response = self._check(answer, response)
        if response is not None and response.status_code == 200 and "Signed in as" not in response.text:
            self.refused.append(("page", 200, response.text[:200]))

    def xhr(self) -> None:
        """Two XHR calls at once, as a page's scripts make them: the session's refresh lock is contended."""
        second = threading.Thread(target=self._one_xhr)
        second.start()
        self._one_xhr()
        second.join()

    def _one_xhr(self) -> None:
        answer, response = self.request("xhr", "GET", "/todos", headers=JSON)
        self._check(answer, response)

    def post(self) -> None:
        item = self.pending.pop(0) if self.pending else self.new_item()
        description, key = item
        if item[0] in self.pending_once:
            self.resent.add(description)
        self.pending_once.add(description)
        answer, response = self.request("post", "POST", "/todos", headers={"Origin": self.base},
                                        data={"description": description, "idempotency_key": key})
        response = self._check(answer, response)
        if response is not None and response.status_code == 303:
            self.confirmed.append(description)
        elif response is None or response.status_code >= 500:
            self.pending.append(item)  # unknown: it may have been added; the same key makes a retry safe

    def settle(self, until: float) -> list[str]:
        """Send the items of unknown outcome again until they are answered; then this user's list (JSON)."""
        while self.pending and time.monotonic() < until:
            self.post()
            time.sleep(0.3)
        for _ in range(20):
            _, response = self.request("xhr", "GET", "/todos", record=False, headers=JSON)
            if response is not None and response.status_code == 200:
                return [item["description"] for item in response.json()]
            time.sleep(0.5)
        raise AssertionError(f"{self.login}: the list could not be read after the soak")


# -- the soak -------------------------------------------------------------------------

@dataclass
class Soak:
    """One run against one provider mode: set up by :func:`soak_environment`, then :meth:`run`."""

    mode: str
    plan: Plan
    proxy: FaultyProxy
    redis: RedisServer
    web: GunicornServer
    provider: DevProvider = field(init=False)
    windows: list[FaultWindow] = field(default_factory=list)
    users: list[User] = field(default_factory=list)
    lists: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    authorizations: int = 0
    kill_at: float | None = None
    kill_epoch: float | None = None  # the same moment, as the provider's log and the web app's log tell time
    outage_epoch: float | None = None  # when the provider went down, as the logs tell time
    outage_closed_epoch: float | None = None  # when the proxy had closed the connections it was serving
    log_mark: int = 0  # where the web app's log stood at the end of the warm-up
    begin_epoch: float = 0.0  # the end of the warm-up, in Unix time

    def __post_init__(self) -> None:
        self.provider = self.proxy.provider

    def reset_by_the_kill(self, answer: Answer) -> bool:
        """Whether a request without an answer was being served when the worker was killed (its connection reset)."""
        kill = self.kill_at
        return (kill is not None and answer.why == "dropped" and answer.started <= kill + 0.5
                and kill - 0.1 <= answer.ended <= kill + 5.0)

    def run(self) -> Soak:
        started = time.monotonic()
        self.users = [User(self, n) for n in range(self.plan.users)]
        _all(self.users, User.warm_up)
        mark = self.provider.mark()
        self.log_mark = len(self.web.log_path.read_bytes())
        begin, self.begin_epoch = time.monotonic(), time.time()
        until = begin + self.plan.seconds
        faults = threading.Thread(target=self._faults, args=(begin,), daemon=True)
        faults.start()
        _all(self.users, lambda user: user.run(until))
        faults.join()
        for user in self.users:
            if user.error is not None:
                raise AssertionError(f"{user.login} failed: {user.error!r}") from user.error
        settle = time.monotonic() + 15
        for user in self.users:
            self.lists[user.login] = user.settle(settle)
        self.token_requests = self.provider.token_requests_since(mark)
        self.authorizations = len(self.provider.authorizations_since(mark))
        self.seconds = time.monotonic() - started
        return self

    def _faults(self, begin: float) -> None:
        for plan in self.plan.faults:
            time.sleep(max(0.0, begin + plan.at - time.monotonic()))
            started, epoch = time.monotonic(), time.time()
            if plan.name == "worker killed":
                self.kill_at, self.kill_epoch = time.monotonic(), time.time()
                os.kill(_workers(self.web)[0], signal.SIGKILL)
            elif plan.name == "provider down":
                self.outage_epoch = time.time()
                self.proxy.refuse()
                self.outage_closed_epoch = time.time()
                time.sleep(plan.seconds)
                self.proxy.accept()
            elif plan.name == "Redis paused":
                self.redis.pause()
                time.sleep(plan.seconds)
                self.redis.resume()
            elif plan.name == "Redis restarted":
                self.redis.restart()
            else:
                raise ValueError(plan.name)
            self.windows.append(FaultWindow(plan, started, time.monotonic(), epoch))

    # -- figures ------------------------------------------------------------------------

    @property
    def answers(self) -> list[Answer]:
        return [a for user in self.users for a in user.answers]

    def statuses(self) -> Counter[str]:
        return Counter(str(a.status) if a.status is not None else f"unanswered ({a.why})" for a in self.answers)

    @property
    def unanswered(self) -> list[Answer]:
        return [a for a in self.answers if a.status is None]

    @property
    def server_errors(self) -> list[Answer]:
        return [a for a in self.answers if a.status is not None and a.status >= 500 and a.status != 503]

    def items(self) -> tuple[int, list[str], list[str]]:
        """Items answered 303, and those lost (not listed) and duplicated (listed twice)."""
        added = 0
        lost: list[str] = []
        duplicated: list[str] = []
        for user in self.users:
            listed = Counter(self.lists.get(user.login, []))
            added += len(user.confirmed)
            lost += [d for d in user.confirmed if listed[d] == 0]
            duplicated += [d for d, n in listed.items() if n > 1]
        return added, lost, duplicated

    @property
    def unexpected_sign_ins(self) -> int:
        return sum(user.sign_ins for user in self.users)

    def refreshes_needed(self) -> int:
        """At least this many refreshes succeeded: per user and scope, an answered request (2xx, 3xx: it had a
        token) more than STALE s after the last refresh needed one."""
        needed = 0
        for user in self.users:
            for kinds in (("page", "xhr"), ("post",)):
                last = None
                served = (a for a in user.answers if a.kind in kinds and a.status is not None and a.status < 400)
                for answer in sorted(served, key=lambda a: a.started):
                    if last is None or answer.started - last >= STALE:
                        needed += 1
                        last = answer.started
        return needed

    def refresh_lines(self) -> list[tuple[float, str, str]]:
        """The web app's ``token refreshed`` lines after the warm-up: (Unix time, user, scopes)."""
        line = re.compile(r"^(\S+ \S+) \d+ INFO msal_wsgi: token refreshed for (.+?) \(scopes (.+)\)$", re.MULTILINE)
        log = self.web.log_path.read_bytes()[self.log_mark:].decode(errors="replace")
        return [(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp(), user, scopes)
                for stamp, user, scopes in line.findall(log)]

    def duplicate_refreshes(self) -> int:
        """Refreshes less than a second after the previous one for the same user and scopes: a second refresh
        while the first's token was fresh (a 303 s token is stale 2 to 3 s after its issue). Not counted after
        the Redis pause, where a refresh saved late is already stale when it is saved."""
        paused = [(w.epoch, w.epoch + (w.ended - w.started) + 2.0) for w in self.windows if w.plan.name == "Redis paused"]
        last: dict[tuple[str, str], float] = {}
        duplicates = 0
        for moment, user, scopes in self.refresh_lines():
            previous = last.get((user, scopes))
            late = any(start <= previous <= end for start, end in paused) if previous is not None else False
            duplicates += previous is not None and moment - previous < 1.0 and not late
            last[(user, scopes)] = moment
        return duplicates

    def lost_rotations(self) -> list[LostRotation]:
        """Refresh tokens presented again after the provider had rotated them, whose successor no request
        ever presented: the rotation's answer never reached a saved session. One per refresh token, however
        many requests presented it (the provider's request log fingerprints the refresh tokens)."""
        refreshes = [t for t in self.token_requests if t.get("grant_type") == "refresh_token"]
        presented = {t["rt_in"] for t in self.token_requests if t.get("rt_in")}
        lost: dict[str, LostRotation] = {}
        for refused in refreshes:
            old = refused.get("rt_in")
            if refused["status"] == 200 or old is None or old in lost:
                continue
            rotation = next((t for t in refreshes if t["rt_in"] == old and t["status"] == 200
                             and t["t"] <= refused["t"]), None)
            if rotation is not None and rotation.get("rt_out") not in presented:
                lost[old] = LostRotation(rotation["t"], refused["t"], self._cut_by(rotation["t"]))
        return list(lost.values())

    def _cut_by(self, moment: float) -> str:
        """Which fault, if any, explains a rotation at ``moment`` (when the provider received it) whose answer was
        lost: the worker kill (the 3 s before it: the killed worker had it in hand) or the outage (from 2 s before
        it until the proxy had closed the connections it was serving, which can take its half-second poll: an
        answer on one of them never reaches the web app, as in a network cut). Else ``""``."""
        if self.kill_epoch is not None and self.kill_epoch - 3.0 <= moment <= self.kill_epoch:
            return "worker killed"
        if (self.outage_epoch is not None and self.outage_closed_epoch is not None
                and self.outage_epoch - 2.0 <= moment <= self.outage_closed_epoch):
            return "provider down"
        return ""

    def refreshes_cut(self) -> int:
        """Rotations whose answer the worker kill or the provider outage cut: against rotating refresh tokens
        that user signs in again, once. Nothing on the client side can prevent it (the provider would need a
        grace period for the retired refresh token)."""
        return sum(1 for lost in self.lost_rotations() if lost.cut_by)

    @property
    def excused_sign_ins(self) -> int:
        """Unexpected sign-ins explained by rotations the worker kill or the outage cut, against a rotating provider."""
        return min(self.unexpected_sign_ins, self.refreshes_cut()) if self.mode == "stock" else 0

    @property
    def failures(self) -> list[str]:
        """Why the run fails; empty when it passes."""
        _added, lost, duplicated = self.items()
        problems = []
        if self.server_errors:
            problems.append(f"{len(self.server_errors)} answers 5xx other than 503: "
                            f"{Counter(a.status for a in self.server_errors)}")
        if self.unanswered:
            problems.append(f"{len(self.unanswered)} requests unanswered: {Counter(a.why for a in self.unanswered)}")
        if lost:
            problems.append(f"{len(lost)} items lost: {lost[:5]}")
        if duplicated:
            problems.append(f"{len(duplicated)} items duplicated: {duplicated[:5]}")
        if self.unexpected_sign_ins > self.excused_sign_ins:
            problems.append(f"{self.unexpected_sign_ins - self.excused_sign_ins} unexpected sign-ins")
        refused = [r for user in self.users for r in user.refused]
        if refused:
            problems.append(f"{len(refused)} answers refused a normal request: {refused[:3]}")
        return problems

    def report(self) -> str:
        plan = self.plan
        added, lost, duplicated = self.items()
        reset = sum(len(u.reset_by_kill) for u in self.users)
        resent = sum(len(u.resent) for u in self.users)
        resent_added = sum(1 for u in self.users for d in u.confirmed if d in u.resent)
        refreshes, duplicate_refreshes = len(self.refresh_lines()), self.duplicate_refreshes()
        refused_tokens = sum(1 for t in self.token_requests if t["status"] != 200)
        statuses = ", ".join(f"{status}: {n}" for status, n in sorted(self.statuses().items()))
        lines = [
            (f"soak, {self.mode} provider: {plan.users} users for {plan.seconds:.0f} s; web app {plan.workers} gthread "
            f"workers x {plan.threads} threads; sessions and refresh lock in Redis; {CLIENT} (303 s tokens, "
            f"refreshed {STALE:.0f} s after issue); run took {self.seconds:.0f} s"),
            f"requests: {len(self.answers)} ({statuses})",
            (f"unanswered: {len(self.unanswered)} (besides {reset} reset by the worker kill while being served, "
            f"sent again)"),
            (f"items: {added} added, {len(lost)} lost, {len(duplicated)} duplicated "
            f"({resent} sent again after an unknown outcome, {resent_added} of them answered 303 in the end)"),
            (f"unexpected sign-ins: {self.unexpected_sign_ins - self.excused_sign_ins} (authorization requests at "
             f"the provider after the warm-up: {self.authorizations}; {self.excused_sign_ins} sign-ins after a "
             f"rotation the worker kill or the provider outage cut, its refresh token lost: "
             f"{self.refreshes_cut()} cut)"),
            *(f"  refresh token rotated at +{lost.rotated - self.begin_epoch:.2f} s, its successor never used, presented "
              f"again at +{lost.refused - self.begin_epoch:.2f} s: {lost.cut_by or 'no fault explains it'}"
              for lost in self.lost_rotations()),
            (f"token requests: {len(self.token_requests)} ({refused_tokens} refused); refreshes logged by the web "
            f"app: {refreshes}, of which {duplicate_refreshes} duplicates (within 1 s for one user and scope, "
            f"refreshes saved late after the Redis pause aside); refreshes the traffic needed: at least "
            f"{self.refreshes_needed()}"),
            "latency ms        p50      p99      max    count",
        ]
        for kind in KINDS:
            times = sorted(a.ms for a in self.answers if a.kind == kind and a.status is not None)
            if times:
                lines.append(f"  {kind:10} {_pct(times, 50):8.0f} {_pct(times, 99):8.0f} {times[-1]:8.0f} "
                             f"{len(times):8}")
        lines.append("503s per fault window (requests in flight from the fault to its end plus recovery):")
        inside: set[int] = set()
        for window in self.windows:
            in_window = [a for a in self.answers if window.overlaps(a)]
            inside.update(id(a) for a in in_window)
            unavailable = sum(1 for a in in_window if a.status == 503)
            lines.append(f"  {window.plan.name:16} {window.ended - window.started:5.1f} s + {window.plan.recovery:.0f}"
                         f" s: {unavailable:4} x 503 of {len(in_window)} requests (at "
                         f"+{window.epoch - self.begin_epoch:.2f} s)")
        outside = [a for a in self.answers if id(a) not in inside]
        lines.append(f"  {'outside faults':16} {'':12}: {sum(1 for a in outside if a.status == 503):4} x 503 of "
                     f"{len(outside)} requests")
        problems = self.failures
        lines.append("FAILED: " + "; ".join(problems) if problems else "PASSED: no 500, no unanswered request, "
                     "nothing lost or duplicated, no unexpected sign-in")
        return "\n".join(lines)


def _pct(values: list[float], p: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] if p < 100 else values[-1]


def _all(users: list[User], work: Any) -> None:
    threads = [threading.Thread(target=work, args=(user,), daemon=True) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _workers(server: GunicornServer) -> list[int]:
    """The pids of gunicorn's workers: the children of its master."""
    assert server.process is not None
    master = server.process.pid
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


@contextmanager
def soak_environment(beside: DevProvider, workdir: Path, mode: str, plan: Plan) -> Iterator[Soak]:
    """The sample deployed for the soak (see the module) against a provider of ``mode`` behind a proxy."""
    with FaultyProxy(beside, workdir / "op", mode=mode) as proxy, \
            RedisServer(workdir / "redis", persistent=True) as redis, \
            sample_server(proxy.provider, workdir / "sample", client_id=CLIENT, workers=plan.workers,
                          SAMPLE_THREADS=str(plan.threads), SAMPLE_SESSION_URL=redis.url) as web:
        yield Soak(mode, plan, proxy, redis, web)


__all__ = ["FAULTS", "TODO_READ", "TODO_WRITE", "FaultPlan", "Plan", "Soak", "soak_environment"]
