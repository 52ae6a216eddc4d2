"""``caracal rotate-kek --new-kek-file F``: rewrap every zone DEK under a new KEK
(``controlplane.keys.kek_rotation``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from controlplane.db.embedded_postgres import database_url_for
from controlplane.db.migrations import migrate
from controlplane.keys import crypto
from controlplane.keys.kek_rotation import RotationError, current_kek, rotate_at
from controlplane.settings import load_settings


def cmd_rotate_kek(args: argparse.Namespace) -> int:
    """Rewrap every zone DEK under the KEK in ``--new-kek-file`` and say what was done."""
    settings = load_settings()
    try:
        current = current_kek(settings)
    except crypto.KekError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        new = crypto.kek_from_file(Path(args.new_kek_file).expanduser(), "--new-kek-file")
    except crypto.KekError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if new.key_id == current.key_id:
        print(f"error: the new KEK is the current KEK (id {current.key_id})", file=sys.stderr)
        return 2
    try:
        with database_url_for(settings) as url:
            migrate(url)
            result = asyncio.run(rotate_at(url, current, new))
    except RotationError as exc:
        print(f"error: {exc}; nothing was changed", file=sys.stderr)
        return 1
    for zone_id in result.rewrapped:
        print(f"rewrapped the DEK of zone {zone_id}")
    print(
        f"KEK {current.key_id} -> {new.key_id}: rewrapped {len(result.rewrapped)} zone DEK(s),"
        f" {len(result.already_new)} already under the new KEK."
    )
    print(
        "next: point CARACAL_KEK or CARACAL_KEK_FILE at the new key and restart every process"
        " (see docs/registry.md, KEK rotation).",
        file=sys.stderr,
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``rotate-kek`` subcommand."""
    parser = sub.add_parser("rotate-kek", help="rewrap every zone DEK under a new KEK")
    parser.add_argument(
        "--new-kek-file",
        required=True,
        help="file holding the new KEK (32 raw bytes or their base64)",
    )
    parser.set_defaults(func=cmd_rotate_kek)
