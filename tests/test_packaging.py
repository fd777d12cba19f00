"""What goes to PyPI: the sdist and the wheel pass ``twine check``, hold the package, its LICENSE
and its documents, and leave the tests out; setup.cfg claims the Python versions the suite runs on.

The sdist leaves tests/, devprovider/, benchmarks/ and the sample out on purpose (MANIFEST.in):
the tests need the local provider's npm packages, Chromium and Redis, so they run from a clone.
"""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from support.environment import ROOT

PACKAGE_MODULES = sorted(path.name for path in (ROOT / "msal_wsgi").glob("*.py"))


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist, and the wheel built from it, as ``python -m build`` makes them for an upload."""
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
                           capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    return out


def only(dist: Path, pattern: str) -> Path:
    (path,) = dist.glob(pattern)
    return path


def test_both_artifacts_pass_twine_check(dist):
    checked = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, sorted(dist.iterdir()))],
                             capture_output=True, text=True, timeout=120, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert len(re.findall(r"PASSED", checked.stdout)) == 2, checked.stdout


def test_sdist_holds_the_package_and_documents_and_no_tests(dist):
    with tarfile.open(only(dist, "*.tar.gz")) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {f"msal_wsgi/{module}" for module in PACKAGE_MODULES} | {"msal_wsgi/py.typed"} <= names
    assert {"LICENSE", "README.md", "CHANGELOG.md", "SECURITY.md", "setup.cfg", "pyproject.toml"} <= names
    left_out = ("tests/", "devprovider/", "benchmarks/", "examples/", "scripts/", "sample_app.py")
    assert not [name for name in names if name.startswith(left_out)]


def test_wheel_holds_the_package_its_license_and_py_typed(dist):
    with zipfile.ZipFile(only(dist, "*.whl")) as wheel:
        names = set(wheel.namelist())
        metadata = next(wheel.read(name).decode() for name in names if name.endswith(".dist-info/METADATA"))
    assert {f"msal_wsgi/{module}" for module in PACKAGE_MODULES} | {"msal_wsgi/py.typed"} <= names
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert "License: MIT" in metadata
    for extra in ("beaker", "redis", "examples", "sample", "test"):
        assert f"Provides-Extra: {extra}" in metadata


def test_setup_cfg_claims_the_versions_the_suite_runs_on():
    """The classifiers list consecutive versions from python_requires's, and this interpreter is one of them.

    noxfile.py runs the suite on each classified version the machine has; a version the
    suite has not passed on must not be claimed, nor a version it runs on left out.
    """
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    versions = re.findall(r"Programming Language :: Python :: 3\.(\d+)$", config["metadata"]["classifiers"],
                          re.MULTILINE)
    minors = [int(minor) for minor in versions]
    assert minors == list(range(minors[0], minors[-1] + 1))
    assert config["options"]["python_requires"] == f">=3.{minors[0]}"
    assert sys.version_info[:2] in [(3, minor) for minor in minors]
    assert f"Python 3.{minors[0]} to 3.{minors[-1]}" in (ROOT / "README.md").read_text()
