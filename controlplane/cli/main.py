"""The command line: ``caracal <command>`` (also ``python -m controlplane <command>``).

One module per command group in this package, each with a ``register(subparsers)``; this
module builds the parser and reports operator errors (``controlplane.errors.OperatorError``)
in one line.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from controlplane.cli import admin_token, audit, kek, migrate, policies, relay, serve
from controlplane.errors import OperatorError
from controlplane.logs import configure_logging
from controlplane.settings import load_settings

#: Command groups, in the order ``--help`` lists them.
GROUPS = (serve, migrate, admin_token, policies, audit, kek, relay)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="caracal", description="Caracal control plane")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, configure logging, run. An operator error (bad settings, KEK,
    changed migration) or a named file that cannot be used exits 2 with one line; a database
    that cannot be reached exits 1 with one line."""
    args = build_parser().parse_args(argv)
    try:
        level = os.environ.get("CARACAL_LOG_LEVEL", "INFO")
        configure_logging(load_settings({"CARACAL_LOG_LEVEL": level}).log_level)
        return int(args.func(args) or 0)
    except OperatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        import psycopg

        if isinstance(exc, psycopg.OperationalError):  # libpq's text names no password
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            print(f"error: cannot use the database: {first_line}", file=sys.stderr)
            return 1
        if isinstance(exc, OSError) and exc.filename is not None:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise
