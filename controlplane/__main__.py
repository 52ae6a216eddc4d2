"""Command line: ``python -m controlplane <command>`` (also installed as ``caracal``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence

from controlplane.db.embedded_postgres import database_url_for
from controlplane.settings import SettingsError, load_settings, parse_duration

log = logging.getLogger("controlplane")

Command = Callable[[argparse.Namespace], int]


def _stopped_by_signal(signum: int, frame: object) -> None:
    """Signal handler left in place after the server has shut down gracefully."""


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the HTTP service."""
    import uvicorn

    from controlplane.db.migrations import migrate
    from controlplane.keys.crypto import load_kek

    overrides = {k: v for k, v in (("port", args.port), ("host", args.host)) if v is not None}
    if args.workers is not None:
        overrides["workers"] = args.workers
    settings = load_settings(**overrides)
    load_kek(settings.kek, settings.kek_file, settings.data_dir, settings.production)
    with database_url_for(settings) as url:
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
        )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply pending migrations and exit."""
    from controlplane.db.migrations import migrate

    settings = load_settings()
    with database_url_for(settings) as url:
        applied = migrate(url)
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))
    return 0


def cmd_admin_token_create(args: argparse.Namespace) -> int:
    """Create an admin token and print it once."""
    from controlplane.auth.admin_tokens import (
        MAX_TOKEN_NAME,
        MAX_TOKEN_TTL,
        MIN_TOKEN_TTL,
        create_token,
        format_expiry,
        record_token_created,
    )
    from controlplane.db.migrations import migrate
    from controlplane.db.pool import Database

    if args.scope == "zone" and not args.zone:
        print("error: --zone is required with --scope zone", file=sys.stderr)
        return 2
    if args.scope == "global" and args.zone:
        print("error: --zone is only allowed with --scope zone", file=sys.stderr)
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="caracal", description="Caracal control plane")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.set_defaults(func=cmd_serve)

    mig = sub.add_parser("migrate", help="apply database migrations and exit")
    mig.set_defaults(func=cmd_migrate)

    token = sub.add_parser("admin-token", help="manage admin tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create", help="create a token and print it once")
    create.add_argument("--scope", choices=["global", "zone"], required=True)
    create.add_argument("--zone")
    create.add_argument("--name")
    create.add_argument("--ttl", help="lifetime such as 3600s, 12h or 30d (default: none)")
    create.set_defaults(func=cmd_admin_token_create)

    for register in EXTRA_COMMANDS:
        register(sub)
    return parser


# Other modules add subcommands here: each takes the subparsers object.
EXTRA_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def _policies_commands(sub: argparse._SubParsersAction) -> None:
    from controlplane.cli.policies import register

    register(sub)


EXTRA_COMMANDS.append(_policies_commands)


def _audit_commands(sub: argparse._SubParsersAction) -> None:
    from controlplane.audit.prune import register

    register(sub)


EXTRA_COMMANDS.append(_audit_commands)


def _kek_commands(sub: argparse._SubParsersAction) -> None:
    from controlplane.keys.kek_rotation import register

    register(sub)


EXTRA_COMMANDS.append(_kek_commands)


def _relay_commands(sub: argparse._SubParsersAction) -> None:
    from controlplane.outbox.relay import register_cli

    register_cli(sub)


EXTRA_COMMANDS.append(_relay_commands)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, configure logging, run; bad settings exit 2 with one line."""
    from controlplane.logs import configure_logging

    args = build_parser().parse_args(argv)
    try:
        level = os.environ.get("CARACAL_LOG_LEVEL", "INFO")
        configure_logging(load_settings({"CARACAL_LOG_LEVEL": level}).log_level)
        return int(args.func(args) or 0)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        import psycopg

        from controlplane.db.migrations import MigrationChanged
        from controlplane.keys.crypto import KekError

        if isinstance(exc, KekError | MigrationChanged):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, psycopg.OperationalError):  # libpq's text names no password
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            print(f"error: cannot use the database: {first_line}", file=sys.stderr)
            return 1
        if isinstance(exc, OSError) and exc.filename is not None:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
