"""``caracal serve``: run the HTTP API (embedded PostgreSQL when ``DATABASE_URL`` is unset)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from controlplane.db.embedded_postgres import database_url_for
from controlplane.db.migrations import migrate
from controlplane.keys.crypto import load_kek
from controlplane.metrics.workers import metrics_processes
from controlplane.settings import load_settings

log = logging.getLogger("controlplane")


def _stopped_by_signal(signum: int, frame: object) -> None:
    """Signal handler left in place after the server has shut down gracefully."""


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the HTTP service."""
    import uvicorn

    overrides = {k: v for k, v in (("port", args.port), ("host", args.host)) if v is not None}
    if args.workers is not None:
        overrides["workers"] = args.workers
    settings = load_settings(**overrides)
    load_kek(settings.kek, settings.kek_file, settings.data_dir, settings.production)
    with database_url_for(settings) as url, metrics_processes(settings):
        os.environ["DATABASE_URL"] = url
        migrate(url)
        log.info(
            "serving",
            extra={"host": settings.host, "port": settings.port, "workers": settings.workers},
        )
        if settings.local_bootstrap_enabled:
            shown_host = "localhost" if settings.host in {"0.0.0.0", "127.0.0.1"} else settings.host
            base = f"http://{shown_host}:{settings.port}"
            print(
                "local bootstrap: curl -s -X POST "
                f'-H "Authorization: Bearer $CARACAL_ADMIN_TOKEN" {base}/v1/local/bootstrap',
                file=sys.stderr,
                flush=True,
            )
        # uvicorn re-raises the signal that stopped it once it has shut down; with this
        # handler in place the `with` block ends normally (stopping the embedded
        # PostgreSQL) and exit code 0, instead of death by SIGTERM.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, _stopped_by_signal)
        uvicorn.run(
            "controlplane.app:create_app_from_env",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=30,
            http="controlplane.http.server_protocol:GuardedHttpToolsProtocol",
            # The service never reads the client's address, so X-Forwarded-* rewriting is
            # work for nothing on every request; no ``server: uvicorn`` header either.
            proxy_headers=False,
            server_header=False,
        )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``serve`` subcommand."""
    serve = sub.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.set_defaults(func=cmd_serve)
