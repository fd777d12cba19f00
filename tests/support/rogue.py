"""Fixtures of the misbehaving provider for test modules to import: ``from support.rogue import rogue, rogue_server``.

``rogue_server`` runs once per module beside the devprovider (its TLS certificate, which
REQUESTS_CA_BUNDLE trusts); ``rogue`` is that server reset to correct behaviour for each test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devprovider import DevProvider

from .misbehaving import MisbehavingProvider, beside


@pytest.fixture(scope="module")
def rogue_server(devprovider: DevProvider) -> Iterator[MisbehavingProvider]:
    with beside(devprovider) as server:
        yield server


@pytest.fixture
def rogue(rogue_server: MisbehavingProvider) -> MisbehavingProvider:
    rogue_server.reset()
    return rogue_server
