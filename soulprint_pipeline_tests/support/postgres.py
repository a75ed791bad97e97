"""A throwaway PostgreSQL 15 server for tests, as reusable pytest fixtures.

The root ``conftest.py`` registers these fixtures for every test (``pytest_plugins``).

``postgres_url`` (session scope) starts one server in a temporary folder and yields the URL of a
database on it; ``postgres_profiles_url`` (function scope) creates a fresh, empty database per
test on that server. The server listens on 127.0.0.1 only, trusts local connections (no
password) and runs with ``fsync=off``: it is for tests, never for data.

The binaries come from ``SOULPRINT_TEST_PG_BINDIR`` if set, else ``/usr/lib/postgresql/15/bin``,
else ``pg_config --bindir``. ``initdb`` refuses to run as root, so under root the server runs as
the ``postgres`` system user (through ``runuser``). Without the binaries the tests are skipped,
except on CI (``CI=true``), where a missing server is a failure rather than a silent skip.

However many modules import the fixtures, one server is started per test process: pytest makes
a separate fixture definition per importing module, so the server itself is shared and
reference-counted here (:class:`SharedServer`, which ``support/pgvector.py`` uses too).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from soulprint_pipeline_tests.support.services import free_port

DEFAULT_BINDIR = Path("/usr/lib/postgresql/15/bin")
SESSION_DATABASE = "soulprint_test"
_COMMAND_TIMEOUT = 120.0


def on_ci() -> bool:
    """Whether this is CI (``CI=true``), where a missing server fails instead of skipping."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> None:
    """Skip (locally) or fail (on CI) because no server can be started."""
    if on_ci():
        pytest.fail(f"{reason} (CI=true, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def find_bindir() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``, or None if none is found."""
    candidates: list[Path] = []
    if os.environ.get("SOULPRINT_TEST_PG_BINDIR"):
        candidates.append(Path(os.environ["SOULPRINT_TEST_PG_BINDIR"]))
    candidates.append(DEFAULT_BINDIR)
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            candidates.append(Path(out))
    for candidate in candidates:
        if all((candidate / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return candidate
    return None


@dataclass
class _Server:
    """One running test server."""

    bindir: Path
    root: Path
    port: int
    as_postgres_user: bool
    users: int = 0
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.root / "postgres.log"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def command(self, *args: str) -> list[str]:
        if self.as_postgres_user:
            return ["runuser", "-u", "postgres", "--", *args]
        return list(args)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            capture_output=True,
            text=True,
            timeout=_COMMAND_TIMEOUT,
            cwd=self.root,
            check=False,
        )

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        initdb = self.run(
            str(self.bindir / "initdb"),
            "-A",
            "trust",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed ({initdb.returncode}): {initdb.stderr.strip()}")
        self.resume()

    def resume(self) -> None:
        """Start the server on its data folder and port (after :meth:`start`'s initdb, or
        again after :meth:`halt`)."""
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        started = self.run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        if started.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"pg_ctl start failed ({started.returncode}): {started.stderr.strip()}\n{log}"
            )

    def halt(self) -> None:
        """Stop the server at once, as a crash or a lost machine would (``pg_ctl stop -m
        immediate``: no shutdown checkpoint, clients cut off), keeping its data for
        :meth:`resume`."""
        stopped = self.run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"
        )
        if stopped.returncode != 0:
            raise RuntimeError(f"pg_ctl stop failed ({stopped.returncode}): {stopped.stderr}")

    def stop(self) -> None:
        try:
            self.run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class SharedServer:
    """One test server per process, started on first use and stopped after its last user.

    ``locate`` finds the bindir (None: skip, or fail on CI, with ``missing`` as the reason);
    ``stage`` may move the binaries somewhere the server's user can run them from, inside the
    server's own temporary folder (so that they go when it does).
    """

    def __init__(
        self,
        locate: Callable[[], Path | None],
        missing: str,
        stage: Callable[[Path, Path, bool], Path] | None = None,
    ) -> None:
        self._locate = locate
        self._missing = missing
        self._stage = stage
        self._lock = threading.Lock()
        self._server: _Server | None = None

    @property
    def running(self) -> _Server:
        """The running server (a session fixture holding it must be active)."""
        assert self._server is not None, "a session fixture keeps the server running"
        return self._server

    def _start(self) -> _Server:
        bindir = self._locate()
        if bindir is None:
            unavailable(self._missing)
            raise AssertionError("unreachable")  # pytest.skip/fail raise
        as_postgres_user = os.geteuid() == 0
        if as_postgres_user:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                unavailable("running as root, but there is no 'postgres' user to run initdb as")
            if shutil.which("runuser") is None:
                unavailable("running as root, but 'runuser' is missing to run initdb as postgres")
        last_error: Exception | None = None
        for _attempt in range(3):  # a port picked as free can be taken before the server binds it
            root = Path(tempfile.mkdtemp(prefix="soulprint-pg-"))
            if as_postgres_user:
                shutil.chown(root, user="postgres", group=None)
            server: _Server | None = None
            try:
                staged = self._stage(bindir, root, as_postgres_user) if self._stage else bindir
                server = _Server(
                    bindir=staged, root=root, port=free_port(), as_postgres_user=as_postgres_user
                )
                server.start()
                server.create_database(SESSION_DATABASE)
            except Exception as error:  # retried, then reported below
                last_error = error
                if server is not None:
                    server.stop()
                shutil.rmtree(root, ignore_errors=True)
                continue
            return server
        pytest.fail(f"could not start a test PostgreSQL server: {last_error}", pytrace=False)
        raise AssertionError("unreachable")

    def acquire(self) -> _Server:
        """The server, started if this is its first user."""
        with self._lock:
            if self._server is None:
                self._server = self._start()
            self._server.users += 1
            return self._server

    def release(self) -> None:
        """Stop the server if this was its last user."""
        with self._lock:
            if self._server is None:
                return
            self._server.users -= 1
            if self._server.users <= 0:
                server, self._server = self._server, None
                server.stop()

    @contextlib.contextmanager
    def session_url(self) -> Iterator[str]:
        """The session database's URL, the server held for as long as the block runs."""
        server = self.acquire()
        try:
            yield server.url(SESSION_DATABASE)
        finally:
            self.release()

    @contextlib.contextmanager
    def fresh_database(self) -> Iterator[str]:
        """A new, empty database (``test_<uuid>``) on the running server, dropped afterwards."""
        server = self.running
        name = f"test_{uuid.uuid4().hex}"
        url = server.create_database(name)
        try:
            yield url
        finally:
            server.drop_database(name)


MISSING = (
    f"PostgreSQL 15 binaries not found at {DEFAULT_BINDIR} (nor via pg_config or "
    "SOULPRINT_TEST_PG_BINDIR): install postgresql-15"
)

POSTGRES = SharedServer(find_bindir, MISSING)


@contextlib.contextmanager
def own_server() -> Iterator[_Server]:
    """A server of the test's own, apart from the session's, for a test that stops and
    starts it (:meth:`_Server.halt`, :meth:`_Server.resume`); removed afterwards."""
    server = SharedServer(find_bindir, MISSING)
    try:
        yield server.acquire()
    finally:
        server.release()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a database on a throwaway PostgreSQL 15 server, for the whole test session."""
    with POSTGRES.session_url() as url:
        yield url


@pytest.fixture
def postgres_profiles_url(postgres_url: str) -> Iterator[str]:
    """URL of a fresh, empty database (``test_<uuid>``) on the session's server, for one test."""
    with POSTGRES.fresh_database() as url:
        yield url
