"""Shared fixtures: one real OpenID Connect provider for the whole test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devprovider import DevProvider


@pytest.fixture(scope="session")
def devprovider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevProvider]:
    """panva's oidc-provider on loopback over TLS; REQUESTS_CA_BUNDLE points requests at its CA."""
    with (
        DevProvider().start(tmp_path_factory.mktemp("devprovider")) as provider,
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setenv("REQUESTS_CA_BUNDLE", str(provider.ca_path))
        yield provider


@pytest.fixture
def provider(devprovider: DevProvider) -> DevProvider:
    return devprovider
