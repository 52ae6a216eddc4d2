"""``caracal relay``: run the outbox relay alone (``controlplane.outbox.relay``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from controlplane.db.embedded_postgres import database_url_for
from controlplane.db.migrations import migrate
from controlplane.db.pool import Database
from controlplane.outbox.publishers import publishers_for
from controlplane.outbox.relay import Relay
from controlplane.settings import load_settings

log = logging.getLogger("controlplane.relay")


def cmd_relay(args: argparse.Namespace) -> int:
    """Run the outbox relay alone until interrupted."""
    settings = load_settings()

    async def run(url: str) -> None:
        migrate(url)
        db = Database(url, 1, 2)
        await db.open()
        relay = Relay(db, publishers_for(settings))
        loop, me = asyncio.get_running_loop(), asyncio.current_task()
        for signum in (signal.SIGTERM, signal.SIGINT):  # stop cleanly, exit 0
            loop.add_signal_handler(signum, me.cancel)  # type: ignore[union-attr]
        log.info("relay running", extra={"redis": bool(settings.redis_url)})
        try:
            await relay.run()
        except asyncio.CancelledError:
            log.info("relay stopped")
        finally:
            await relay.close()
            await db.close()

    with database_url_for(settings) as url:
        asyncio.run(run(url))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``relay`` subcommand."""
    parser = sub.add_parser("relay", help="run the outbox relay alone")
    parser.set_defaults(func=cmd_relay)
