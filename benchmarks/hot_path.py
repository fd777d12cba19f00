"""In-process cost of one protected request with a valid cached token, per stack.

Each stack serves the same tiny app; requests are plain WSGI calls with a
prepared environ (cookie of a real signed-in session, ``Accept: application/json``
so that a failed check would answer 401, not a sign-in redirect). Stacks are
measured in interleaved rounds so that drift hits all of them alike.
"""

from __future__ import annotations

import gc
import json
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

from webob import Request

from devprovider import DevProvider

from . import stacks
from .fixtures import TODO_READ, SignedInUser, beaker_options, bench_settings, counting, seed_session, stored_bytes

#: (label, stack kind), in the order of the table.
STACKS = [
    ("(a) bare app", "bare"),
    ("(b) Beaker session only", "session_only"),
    ("(c) msal_wsgi", "msal_wsgi"),
    ("(d) Node sample pattern", "node_pattern"),
    ("(e) identity.web.Auth", "identity_web"),
]
#: Requests per stack and round: the expensive stacks get fewer.
PER_ROUND = {"bare": 2000, "session_only": 2000, "msal_wsgi": 2000, "node_pattern": 400, "identity_web": 400}
ROUNDS = 10
MAX_ADDED_US = 10.0


@dataclass
class Result:
    label: str
    samples_ns: list[int]
    provider_requests: int
    session_writes: int
    round_medians_us: list[float]

    @property
    def median_us(self) -> float:
        return statistics.median(self.samples_ns) / 1000

    @property
    def p99_us(self) -> float:
        ordered = sorted(self.samples_ns)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000


def session_data(kind: str, user: SignedInUser) -> dict[str, Any]:
    """What each stack finds in the session of the same signed-in user."""
    if kind == "node_pattern":
        account = next(iter(json.loads(user.cache)["Account"].values()))
        return {stacks.NODE_CACHE: user.full_cache, stacks.NODE_ACCOUNT: account}
    if kind == "identity_web":
        return {stacks.IDENTITY_CACHE: user.full_cache, stacks.IDENTITY_USER: user.record["claims"]}
    return dict(user.session)


class Bench:
    """The five stacks for one user and one session store, ready to be timed."""

    def __init__(self, dev: DevProvider, user: SignedInUser, store: str = "memory", data_dir: str | None = None,
                 *, save_accessed_time: bool = False, **overrides: Any) -> None:
        self.dev = dev
        self.store = store
        beaker = beaker_options(store, data_dir)
        beaker["session.save_accessed_time"] = save_accessed_time
        settings = bench_settings(dev, **overrides)
        http_cache: dict[Any, Any] = {}
        self.apps: dict[str, Callable[..., Any]] = {}
        self.environs: dict[str, dict[str, Any]] = {}
        for _, kind in STACKS:
            self.apps[kind] = stacks.build(kind, settings, beaker, [TODO_READ], http_cache)
            headers = {"Accept": "application/json"}
            if kind != "bare":
                headers["Cookie"] = "sid=" + seed_session(beaker, session_data(kind, user))
            self.environs[kind] = Request.blank("/todos/1", headers=headers).environ

    def run(self, kind: str, n: int) -> tuple[list[int], int, int]:
        """Time ``n`` requests; returns the samples, provider requests and session writes they caused."""
        app, template = self.apps[kind], self.environs[kind]
        status: list[str] = []

        def start_response(s: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            status.append(s)

        samples = []
        writes, mark = counting(self.store).writes, self.dev.mark()
        clock = time.perf_counter_ns
        for _ in range(n):
            environ = dict(template)
            started = clock()
            body = app(environ, start_response)
            for _chunk in body:
                pass
            close = getattr(body, "close", None)
            if close is not None:
                close()
            samples.append(clock() - started)
        bad = [s for s in status if not s.startswith("200")]
        if bad:
            raise RuntimeError(f"{kind}: {len(bad)} requests answered {bad[0]}")
        return samples, len(self.dev.requests_since(mark)), counting(self.store).writes - writes

    def measure(self, kinds: list[str], rounds: int = ROUNDS, scale: float = 1.0) -> dict[str, Result]:
        for kind in kinds:  # warm up: imports, discovery of the per-request msal apps, caches
            self.run(kind, 50)
        samples: dict[str, list[int]] = {k: [] for k in kinds}
        medians: dict[str, list[float]] = {k: [] for k in kinds}
        requests = dict.fromkeys(kinds, 0)
        writes = dict.fromkeys(kinds, 0)
        for _ in range(rounds):
            for kind in kinds:
                gc.collect()
                got, provider, written = self.run(kind, max(50, int(PER_ROUND[kind] * scale)))
                samples[kind] += got
                medians[kind].append(statistics.median(got) / 1000)
                requests[kind] += provider
                writes[kind] += written
        labels = {k: label for label, k in STACKS}
        return {k: Result(labels[k], samples[k], requests[k], writes[k], medians[k]) for k in kinds}


def added_us(results: dict[str, Result]) -> float:
    """msal_wsgi's cost over (b): the median of the per-round differences of medians.

    Rounds run (b) and (c) back to back, so pairing them cancels drift from other load.
    """
    pairs = zip(results["session_only"].round_medians_us, results["msal_wsgi"].round_medians_us)
    return statistics.median(c - b for b, c in pairs)


def session_bytes(user: SignedInUser) -> tuple[int, int, int]:
    """Bytes a server-side store keeps for the signed-in user (the pickled session, msal_wsgi's values
    sealed; the same as Beaker stores it), and those of the msal caches it stands for, as msal
    serializes them (access tokens in)."""
    pickled, beaker = stored_bytes(user.session)
    return pickled, user.msal_bytes(), beaker


def table(results: dict[str, Result]) -> str:
    base = results["session_only"].median_us
    lines = [(f"{'per protected request':<28}{'median us':>10}{'p99 us':>9}{'x (b)':>8}"
              f"{'provider req':>14}{'session writes':>16}{'requests':>10}")]
    for r in results.values():
        lines.append(f"{r.label:<28}{r.median_us:>10.1f}{r.p99_us:>9.1f}{r.median_us / base:>8.2f}"
                     f"{r.provider_requests:>14}{r.session_writes:>16}{len(r.samples_ns):>10}")
    return "\n".join(lines)


def targets(results: dict[str, Result]) -> str:
    added = added_us(results)
    ours = results["msal_wsgi"]
    checks = [
        (f"msal_wsgi adds <= {MAX_ADDED_US:.0f} us over (b) at the median (paired by round)", f"{added:+.1f} us",
         added <= MAX_ADDED_US),
        ("zero provider requests on the hot path", str(ours.provider_requests), ours.provider_requests == 0),
        ("zero session writes on the hot path", str(ours.session_writes), ours.session_writes == 0),
    ]
    return "\n".join(f"  [{'PASS' if ok else 'FAIL'}] {name}: {value}" for name, value, ok in checks)


def scaling(dev: DevProvider, users: list[SignedInUser], store: str, data_dir: str | None,
            kinds: tuple[str, ...] = ("session_only", "msal_wsgi", "node_pattern", "identity_web")) -> str:
    """Median cost by number of resources; the other stacks know one msal cache, so grants time only (b), (c)."""
    lines = [f"{'median us, by tokens cached':<28}" + "".join(f"{u.resources:>10}" for u in users)]
    rows: dict[str, list[float]] = {k: [] for k in kinds}
    added = []
    for user in users:
        results = Bench(dev, user, store, data_dir).measure(list(kinds), rounds=6, scale=0.5)
        for kind in kinds:
            rows[kind].append(results[kind].median_us)
        added.append(added_us(results))
    labels = {k: label for label, k in STACKS}
    for kind in kinds:
        lines.append(f"{labels[kind]:<28}" + "".join(f"{v:>10.1f}" for v in rows[kind]))
    lines.append(f"{'(c) minus (b), paired':<28}" + "".join(f"{v:>+10.1f}" for v in added))
    sizes = [session_bytes(u) for u in users]
    lines.append(f"{'session bytes (pickled)':<28}" + "".join(f"{s[0]:>10}" for s in sizes))
    lines.append(f"{'  as Beaker stores them':<28}" + "".join(f"{s[2]:>10}" for s in sizes))
    lines.append(f"{'msal caches, as msal keeps':<28}" + "".join(f"{s[1]:>10}" for s in sizes))
    lines.append(f"{'  session / msal caches':<28}" + "".join(f"{s[0] / s[1]:>10.2f}" for s in sizes))
    return "\n".join(lines)


def accessed_time_writes(dev: DevProvider, user: SignedInUser, n: int = 200) -> int:
    """Session writes msal_wsgi's hot path causes under Beaker's default ``save_accessed_time=True``."""
    bench = Bench(dev, user, "memory", save_accessed_time=True)
    return bench.run("msal_wsgi", n)[2]


def activity_writes(dev: DevProvider, user: SignedInUser, interval: int = 2, n: int = 200) -> tuple[int, int]:
    """Session writes of ``n`` msal_wsgi requests inside the activity interval, then of ``n`` more right after it."""
    bench = Bench(dev, user, "memory", idle_timeout=2 * interval, session_activity_interval=interval)
    inside = bench.run("msal_wsgi", n)[2]
    time.sleep(interval + 0.05)
    return inside, bench.run("msal_wsgi", n)[2]


#: The session may hold at most this many times the bytes of the msal caches it stands for (issue 11).
MAX_SIZE_RATIO = 1.1


def size_targets(users: list[SignedInUser]) -> str:
    checks = []
    for user in users:
        stored, msal, _ = session_bytes(user)
        checks.append((f"session of a user with {user.resources} resources <= {MAX_SIZE_RATIO} x the msal caches",
                       f"{stored} / {msal} bytes = {stored / msal:.2f}", stored <= MAX_SIZE_RATIO * msal))
    return "\n".join(f"  [{'PASS' if ok else 'FAIL'}] {name}: {value}" for name, value, ok in checks)
