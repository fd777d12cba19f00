"""Shared fixtures: one real OpenID Connect provider for the whole test session, one behind a fault
injector, and a misbehaving provider of our own (support.misbehaving) beside them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.faults import FaultyProxy
from support.misbehaving import MisbehavingProvider, beside
from support.servers import trusted_provider

from devprovider import DevProvider


@pytest.fixture(scope="session")
def devprovider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProvider]:
    """panva's oidc-provider on loopback over TLS; REQUESTS_CA_BUNDLE points requests at its CA."""
    with trusted_provider(tmp_path_factory.mktemp("devprovider")) as provider:
        yield provider


@pytest.fixture
def provider(devprovider: DevProvider) -> DevProvider:
    return devprovider


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
