"""``./scripts/run-sample`` (scripts/run_sample.py) run as a user runs it, on free ports.

A taken port is named before anything is written, the dev CA is made once and kept,
and Ctrl-C (SIGINT to the terminal's process group) or SIGTERM stops the provider
and gunicorn within 3 s, also with a browser's idle connection open.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from support.environment import ROOT
from support.servers import free_port

RUN_SAMPLE = ROOT / "scripts" / "run_sample.py"
READY_TIMEOUT = 60.0
#: The issue's promise: everything gone this many seconds after Ctrl-C.
STOPPED_WITHIN = 3.0


@dataclass
class Sample:
    process: subprocess.Popen[bytes]
    ports: tuple[int, int]  # SAMPLE_PORT, PROVIDER_PORT
    url: str
    issuer: str
    ca_path: Path
    output: Path


def run_sample_env(data: Path, sample_port: int, provider_port: int, api_port: int | None = None) -> dict[str, str]:
    """run-sample's environment: its data folder and ports (the API's a free one unless given)."""
    return {**os.environ, "SAMPLE_DATA_DIR": str(data), "SAMPLE_PORT": str(sample_port),
            "PROVIDER_PORT": str(provider_port), "SAMPLE_API_PORT": str(api_port or free_port())}


def running_in_group(pgid: int) -> list[int]:
    """The processes of group ``pgid`` still running (a zombie has exited, only not yet been reaped)."""
    running = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _parent, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(group) == pgid and state != "Z":
            running.append(int(stat.parent.name))
    return running


@contextmanager
def started(data: Path, workdir: Path) -> Iterator[Sample]:
    """run_sample.py in a session of its own (a terminal's process group), until the sample answers."""
    sample_port, provider_port = free_port(), free_port()
    output = workdir / f"run-sample-{sample_port}.log"
    with output.open("wb") as log:
        process = subprocess.Popen([sys.executable, str(RUN_SAMPLE)], cwd=ROOT, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                   env=run_sample_env(data, sample_port, provider_port))
    try:
        url = f"http://localhost:{sample_port}"
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            assert process.poll() is None and time.monotonic() < deadline, output.read_text()
            try:
                if requests.get(url + "/", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        text = output.read_text()
        issuer = re.search(r"Identity provider: (\S+)", text)
        trust = re.search(r"Trust its certificate: import (\S+) into your browser", text)
        assert issuer and trust, text
        yield Sample(process, (sample_port, provider_port), url, issuer[1], Path(trust[1]), output)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def stop_and_time(process: subprocess.Popen[bytes], send: str) -> float:
    """Seconds from Ctrl-C (``group``) or SIGTERM to run_sample alone (``leader``) until its group is gone."""
    start = time.monotonic()
    if send == "group":
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signal.SIGTERM)
    while running_in_group(process.pid) and time.monotonic() - start < 30:
        time.sleep(0.02)
    took = time.monotonic() - start
    assert process.wait(timeout=5) == 0
    return took


def assert_signs_in_through_the_provider(sample: Sample) -> None:
    """/todos sends the browser to the provider: the sample read its discovery, trusting the CA."""
    answer = requests.get(sample.url + "/todos", headers={"Accept": "text/html"}, allow_redirects=False,
                          timeout=30)
    assert answer.status_code == 302, answer.text[:500]
    assert answer.headers["location"].startswith(sample.issuer + "/auth?")
    requests.get(sample.issuer + "/.well-known/openid-configuration", verify=str(sample.ca_path),
                 timeout=10).raise_for_status()


@pytest.mark.parametrize("taken", ["SAMPLE_PORT", "SAMPLE_API_PORT", "PROVIDER_PORT"])
def test_a_taken_port_is_named_and_nothing_is_written(tmp_path, taken):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        ports = {"SAMPLE_PORT": free_port(), "SAMPLE_API_PORT": free_port(), "PROVIDER_PORT": free_port(),
                 taken: other.getsockname()[1]}
        data = tmp_path / "data"
        result = subprocess.run([sys.executable, str(RUN_SAMPLE)], cwd=ROOT, capture_output=True, text=True, check=False,
                                timeout=60, env=run_sample_env(data, ports["SAMPLE_PORT"], ports["PROVIDER_PORT"],
                                                               ports["SAMPLE_API_PORT"]))
    assert result.returncode == 1
    assert f"port {ports[taken]} ({taken}) in use" in result.stderr
    assert "SAMPLE_PORT=5002 SAMPLE_API_PORT=5012 PROVIDER_PORT=8444 ./scripts/run-sample" in result.stderr
    assert not data.exists()


def test_a_second_run_sample_on_the_same_ports_leaves_the_first_working(tmp_path):
    with started(tmp_path / "data", tmp_path) as first:
        ca = first.ca_path.read_bytes()
        second = subprocess.run([sys.executable, str(RUN_SAMPLE)], cwd=ROOT, capture_output=True, text=True, check=False,
                                timeout=60, env=run_sample_env(tmp_path / "data", *first.ports))
        assert second.returncode == 1
        assert f"port {first.ports[0]} (SAMPLE_PORT) and port {first.ports[1]} (PROVIDER_PORT) in use" in second.stderr
        assert first.ca_path.read_bytes() == ca
        assert_signs_in_through_the_provider(first)


@pytest.mark.parametrize("send", ["group", "leader"], ids=["ctrl-c", "sigterm"])
def test_stops_within_3_s_and_the_next_run_keeps_the_ca(tmp_path, send):
    data = tmp_path / "data"
    with started(data, tmp_path) as first:
        assert first.ca_path == data / "provider" / "ca.pem"
        ca = first.ca_path.read_bytes()
        # A browser keeps connections open that it has sent nothing on yet; a worker's thread waits on each.
        idle = [socket.create_connection(("127.0.0.1", first.ports[0])) for _ in range(4)]
        time.sleep(0.5)
        try:
            took = stop_and_time(first.process, send)
        finally:
            for connection in idle:
                connection.close()
        assert took <= STOPPED_WITHIN, f"{took:.2f} s:\n{first.output.read_text()}"
        assert "SIGKILL" not in first.output.read_text()
    with started(data, tmp_path) as second:
        assert second.ca_path.read_bytes() == ca
        assert_signs_in_through_the_provider(second)
