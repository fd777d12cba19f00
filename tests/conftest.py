"""Shared fixtures: real OpenID Connect providers for the whole test session (Entra-like and stock
consent), one behind a fault injector, and a misbehaving provider of our own (support.misbehaving), also on a
test CA of its own (``local_rogue``: no devprovider, so the mutation runs keep the tests that use it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.faults import FaultyProxy
from support.misbehaving import MisbehavingProvider, beside
from support.servers import RedisServer, trusted_provider

from devprovider import DevProvider, make_ca


@pytest.fixture(scope="session")
def devprovider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProvider]:
    """panva's oidc-provider on loopback over TLS; REQUESTS_CA_BUNDLE points requests at its CA."""
    with trusted_provider(tmp_path_factory.mktemp("devprovider")) as provider:
        yield provider


# -- both provider modes (issue 10) ------------------------------------------------
#: ``pytestmark = pytest.mark.both_provider_modes`` in a module runs its tests that take
#: ``provider`` against the Entra-like and the stock provider; ``@pytest.mark.entra_only``
#: keeps a test of Entra-like behaviour (one refresh token for every resource) to that mode.
PROVIDER_MODES = ("entra", "stock")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_provider_modes: run against the Entra-like and the stock provider")
    config.addinivalue_line("markers", "entra_only: relies on Entra-like consent; not run in stock mode")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "provider" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_provider_modes"):
        modes = ("entra",) if metafunc.definition.get_closest_marker("entra_only") else PROVIDER_MODES
        metafunc.parametrize("provider", modes, indirect=True)


@pytest.fixture(scope="session")
def stock_devprovider(devprovider: DevProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProvider]:
    """The same provider with oidc-provider's stock consent and refresh-token rules (``mode="stock"``),
    on the Entra-like one's TLS certificate, which REQUESTS_CA_BUNDLE already trusts."""
    with DevProvider().start(tmp_path_factory.mktemp("devprovider-stock"), mode="stock", tls_of=devprovider) as provider:
        yield provider
# -- end of both provider modes -------------------------------------------------------


@pytest.fixture
def provider(request: pytest.FixtureRequest) -> DevProvider:
    """The Entra-like provider, or the one of the mode a ``both_provider_modes`` module is run in."""
    mode = getattr(request, "param", "entra")
    return request.getfixturevalue("stock_devprovider" if mode == "stock" else "devprovider")


@pytest.fixture(scope="session")
def faulty_proxy(devprovider: DevProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultyProxy]:
    with FaultyProxy(devprovider, tmp_path_factory.mktemp("faulty-provider")) as proxy:
        yield proxy


@pytest.fixture
def proxy(faulty_proxy: FaultyProxy) -> Iterator[FaultyProxy]:
    """A provider behind a fault-injecting proxy (support.faults): sign in with ``proxy.provider``.

    No fault and the provider's own discovery document at the start; both are reset after the test.
    """
    faulty_proxy.fault = None
    faulty_proxy.discovery_overrides = {}
    yield faulty_proxy
    faulty_proxy.fault = None
    faulty_proxy.discovery_overrides = {}


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A throw-away redis-server for the test module (support.servers.RedisServer)."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def rogue_server(devprovider: DevProvider) -> Iterator[MisbehavingProvider]:
    """The misbehaving provider on the devprovider's TLS certificate, which REQUESTS_CA_BUNDLE trusts."""
    with beside(devprovider) as server:
        yield server


@pytest.fixture
def rogue(rogue_server: MisbehavingProvider) -> MisbehavingProvider:
    """The misbehaving provider, reset to correct behaviour: each test switches on its own defects."""
    rogue_server.reset()
    return rogue_server


@pytest.fixture(scope="session")
def local_rogue_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MisbehavingProvider]:
    """The misbehaving provider on a test CA of its own: in-process, started in a moment, no devprovider."""
    ca_path, cert_path, key_path = make_ca(tmp_path_factory.mktemp("local-rogue"))
    with MisbehavingProvider(cert_path, key_path, ca_path) as server:
        yield server


@pytest.fixture
def local_rogue(local_rogue_server: MisbehavingProvider, monkeypatch: pytest.MonkeyPatch) -> MisbehavingProvider:
    """:func:`rogue` without the devprovider: reset, and trusted by requests (``REQUESTS_CA_BUNDLE``) for the test."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(local_rogue_server.ca_path))
    local_rogue_server.reset()
    return local_rogue_server
