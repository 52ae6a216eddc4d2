"""``caracal audit prune --older-than 90d [--dry-run]``: drop whole monthly audit partitions
(``controlplane.audit.partitions``)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from controlplane.audit.partitions import prune_at
from controlplane.db.embedded_postgres import database_url_for
from controlplane.db.migrations import migrate
from controlplane.settings import load_settings, parse_duration


def cmd_prune(args: argparse.Namespace) -> int:
    """``audit prune``: print what was (or would be) dropped."""
    try:
        seconds = parse_duration(args.older_than)
    except ValueError as exc:
        print(f"error: --older-than: {exc}", file=sys.stderr)
        return 2
    if seconds <= 0:
        print("error: --older-than must be positive", file=sys.stderr)
        return 2
    settings = load_settings()
    with database_url_for(settings) as url:
        migrate(url)
        dropped = asyncio.run(prune_at(url, seconds, args.dry_run))
    verb = "would drop" if args.dry_run else "dropped"
    for name in dropped:
        print(f"{verb} {name}")
    print(f"{verb} {len(dropped)} partition(s)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``audit prune`` to the CLI."""
    audit = sub.add_parser("audit", help="audit log maintenance")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    prune_cmd = audit_sub.add_parser(
        "prune", help="drop whole monthly audit partitions older than a duration"
    )
    prune_cmd.add_argument(
        "--older-than", required=True, help="such as 90d: partitions ending before now - 90d"
    )
    prune_cmd.add_argument("--dry-run", action="store_true", help="list, drop nothing")
    prune_cmd.set_defaults(func=cmd_prune)
