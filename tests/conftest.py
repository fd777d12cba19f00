"""Shared fixtures: real OpenID Connect providers for the whole test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devprovider import DevProvider


@pytest.fixture(scope="session")
def _ca_bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One REQUESTS_CA_BUNDLE for the session, holding the CA of every provider started."""
    bundle = tmp_path_factory.mktemp("trust") / "ca-bundle.pem"
    bundle.write_text("")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
        yield bundle


def _started(tmp_path_factory: pytest.TempPathFactory, bundle: Path, mode: str) -> DevProvider:
    provider = DevProvider().start(tmp_path_factory.mktemp(f"devprovider-{mode}"), mode=mode)
    assert provider.ca_path is not None
    with bundle.open("a") as out:
        out.write(provider.ca_path.read_text())
    return provider


@pytest.fixture(scope="session")
def devprovider(tmp_path_factory: pytest.TempPathFactory, _ca_bundle: Path) -> Iterator[DevProvider]:
    """panva's oidc-provider on loopback over TLS, Entra-like; REQUESTS_CA_BUNDLE trusts its CA."""
    with _started(tmp_path_factory, _ca_bundle, "entra") as provider:
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
def stock_devprovider(tmp_path_factory: pytest.TempPathFactory, _ca_bundle: Path) -> Iterator[DevProvider]:
    """The same provider with oidc-provider's stock consent and refresh-token rules (``mode="stock"``)."""
    with _started(tmp_path_factory, _ca_bundle, "stock") as provider:
        yield provider
# -- end of both provider modes -------------------------------------------------------


@pytest.fixture
def provider(request: pytest.FixtureRequest) -> DevProvider:
    """The Entra-like provider, or the one of the mode a ``both_provider_modes`` module is run in."""
    mode = getattr(request, "param", "entra")
    return request.getfixturevalue("stock_devprovider" if mode == "stock" else "devprovider")
