"""``caracal migrate``: apply pending database migrations and exit."""

from __future__ import annotations

import argparse

from controlplane.db.embedded_postgres import database_url_for
from controlplane.db.migrations import migrate
from controlplane.settings import load_settings


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply pending migrations and exit."""
    settings = load_settings()
    with database_url_for(settings) as url:
        applied = migrate(url)
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``migrate`` subcommand."""
    mig = sub.add_parser("migrate", help="apply database migrations and exit")
    mig.set_defaults(func=cmd_migrate)
