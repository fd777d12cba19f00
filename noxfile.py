"""The whole test suite on each supported Python this machine has: ``./scripts/test`` runs ``python -m nox``.

The supported versions are the ``Programming Language :: Python :: 3.X`` classifiers of
setup.cfg (tests/test_packaging.py checks that ``python_requires`` starts at the oldest).
An interpreter is pyenv's newest release of that version, else ``python3.X`` on PATH; a
version the machine lacks has no session. The version of ``.venv`` (made by
``./scripts/bootstrap test``) runs the suite there, with nothing to install; each other
version has its own virtual environment in ``.nox/``, installed once and again only when
setup.cfg or pyproject.toml changes. The sessions run one after another, the ``.venv``
one first::

    ./scripts/test                                      # every version
    .venv/bin/python -m nox -l                          # the sessions this machine has
    .venv/bin/python -m nox -s tests-3.9 -- tests/test_sign_in.py   # one version, one file
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
_CONFIG = configparser.ConfigParser()
_CONFIG.read(ROOT / "setup.cfg")
SUPPORTED = re.findall(r"Programming Language :: Python :: (3\.\d+)$", _CONFIG["metadata"]["classifiers"], re.MULTILINE)

nox.options.download_python = "never"  # only the interpreters this machine has
nox.options.reuse_venv = "yes"


def version_of(python: Path | str) -> str | None:
    """``3.X`` of a working interpreter, else None (a pyenv shim of an inactive version fails here)."""
    try:
        found = subprocess.run([str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return None
    return found.stdout.strip() if found.returncode == 0 else None


def find_interpreter(version: str) -> str | None:
    """pyenv's newest ``version.N``, else ``python<version>`` on PATH, if it runs and is that version."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    releases = [path for path in pyenv.glob(f"{version}.*") if re.fullmatch(rf"{re.escape(version)}\.\d+", path.name)]
    releases.sort(key=lambda path: int(path.name.rsplit(".", 1)[1]), reverse=True)
    candidates = [str(path / "bin" / f"python{version}") for path in releases]
    candidates += [found] if (found := shutil.which(f"python{version}")) else []
    return next((python for python in candidates if version_of(python) == version), None)


#: Under CI (``CI`` set), tracebacks are short (each frame's failing line, then the error): CI's report of a
#: run keeps only the first lines of each failure, and a long traceback starts with the test's whole source.
TRACEBACK = ["--tb=short"] if os.environ.get("CI") else []


def tests_in_venv(session: nox.Session) -> None:
    """The suite in ``.venv``, as ``./scripts/bootstrap test`` installed it; the whole suite (no
    arguments) also measures msal_wsgi's branch coverage and fails below 95 % (pyproject.toml)."""
    coverage = [] if session.posargs else ["--cov=msal_wsgi", "--cov-report=term", "--cov-fail-under=95"]
    session.run(str(VENV_PYTHON), "-m", "pytest", *TRACEBACK, *coverage, *session.posargs, external=True)


#: Left out of the other versions' sessions when the whole suite runs: the soak loads the deployment (gunicorn,
#: Redis, the provider) for two minutes and tests it, not the interpreter, so it runs once, in .venv's session.
ONCE = ["--ignore=tests/test_soak.py"]


def tests(session: nox.Session) -> None:
    """The suite in this version's own virtual environment (the soak only in .venv's session: ONCE)."""
    stamp = Path(session.virtualenv.location) / ".msal_wsgi-installed"
    sources = [ROOT / "setup.cfg", ROOT / "pyproject.toml"]
    if not stamp.exists() or any(source.stat().st_mtime > stamp.stat().st_mtime for source in sources):
        session.install("--disable-pip-version-check", "-e", ".[test]")
        stamp.touch()
    session.run("python", "-m", "pytest", *TRACEBACK, *(session.posargs or ONCE), external=True)


_venv_version = version_of(VENV_PYTHON)
if _venv_version in SUPPORTED:
    nox.session(name=f"tests-{_venv_version}", venv_backend="none")(tests_in_venv)
elif VENV_PYTHON.exists():
    print(f"noxfile: .venv is Python {_venv_version}, which setup.cfg does not support", file=sys.stderr)
for _version in sorted(set(SUPPORTED) - {_venv_version}, key=lambda v: tuple(map(int, v.split(".")))):
    _python = find_interpreter(_version)
    if _python is not None:
        nox.session(name=f"tests-{_version}", python=_python)(tests)
