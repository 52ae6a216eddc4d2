"""``caracal admin-token create``: create an admin token and print it once."""

from __future__ import annotations

import argparse
import asyncio
import sys

from controlplane.auth.admin_tokens import (
    MAX_TOKEN_NAME,
    MAX_TOKEN_TTL,
    MIN_TOKEN_TTL,
    create_token,
    format_expiry,
    record_token_created,
)
from controlplane.db.embedded_postgres import database_url_for
from controlplane.db.migrations import migrate
from controlplane.db.pool import Database
from controlplane.settings import load_settings, parse_duration


def cmd_admin_token_create(args: argparse.Namespace) -> int:
    """Create an admin token and print it once."""
    if args.scope != "global" and not args.zone:
        print(f"error: --zone is required with --scope {args.scope}", file=sys.stderr)
        return 2
    if args.scope == "global" and args.zone:
        print("error: --zone is only allowed with --scope zone or pdp", file=sys.stderr)
        return 2
    try:
        ttl = parse_duration(args.ttl) if args.ttl else None
        if ttl is not None and not MIN_TOKEN_TTL <= ttl <= MAX_TOKEN_TTL:
            raise ValueError(
                f"must be between {MIN_TOKEN_TTL}s and {MAX_TOKEN_TTL // 86_400}d"
                " (the REST API's limits)"
            )
    except ValueError as exc:
        print(f"error: --ttl: {exc}", file=sys.stderr)
        return 2
    if args.name is not None and not 1 <= len(args.name) <= MAX_TOKEN_NAME:
        print(f"error: --name: must be 1 to {MAX_TOKEN_NAME} characters", file=sys.stderr)
        return 2
    settings = load_settings()

    async def run(url: str) -> int:
        migrate(url)
        db = Database(url, 1, 1)
        await db.open()
        try:
            async with db.transaction() as conn:
                if args.zone:
                    cur = await conn.execute(
                        "SELECT 1 FROM zones WHERE id = %s AND archived_at IS NULL", (args.zone,)
                    )
                    if await cur.fetchone() is None:
                        print(f"error: zone {args.zone!r} not found", file=sys.stderr)
                        return 1
                row, token = await create_token(
                    conn, scope=args.scope, zone_id=args.zone, name=args.name, expires_in=ttl
                )
                await record_token_created(conn, row, actor=None)
        finally:
            await db.close()
        print(token)
        print(
            f"id={row['id']} scope={row['scope']} zone={row['zone_id'] or '-'}"
            f" expires={format_expiry(row['expires_at'])}"
            " (store the token now: it is not shown again)",
            file=sys.stderr,
        )
        return 0

    with database_url_for(settings) as url:
        return asyncio.run(run(url))


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``admin-token create``."""
    token = sub.add_parser("admin-token", help="manage admin tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="create a token and print it once")
    create.add_argument("--scope", choices=["global", "zone", "pdp"], required=True)
    create.add_argument("--zone")
    create.add_argument("--name")
    create.add_argument("--ttl", help="lifetime such as 3600s, 12h or 30d (default: none)")
    create.set_defaults(func=cmd_admin_token_create)
