"""KEK rotation: ``python -m controlplane rotate-kek --new-kek-file F``.

Every zone DEK is unwrapped with the current KEK (loaded from the settings as at start-up)
and wrapped again under the new one, in one transaction: either every DEK moves or none does.
The DEKs themselves do not change, so provider secrets and signing keys stay as they are.
Re-running is safe: DEKs already under the new KEK are left alone (after checking they open).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass, field
from pathlib import Path

from controlplane.db.migrations import migrate
from controlplane.db.pool import Conn, Database
from controlplane.keys import crypto
from controlplane.settings import Settings, load_settings


class RotationError(Exception):
    """The rotation cannot be done; nothing was changed."""


@dataclass
class RotationResult:
    """Zone ids whose DEK was rewrapped, and those already under the new KEK."""

    rewrapped: list[str] = field(default_factory=list)
    already_new: list[str] = field(default_factory=list)


async def rewrap_all_deks(conn: Conn, current: crypto.Kek, new: crypto.Kek) -> RotationResult:
    """Rewrap every zone DEK from ``current`` to ``new`` inside the caller's transaction.

    Writers of ``zone_deks`` (zone creation) wait until the transaction ends. Raises
    `RotationError` (the caller rolls back) when a DEK opens under neither key.
    """
    await conn.execute("LOCK TABLE zone_deks IN EXCLUSIVE MODE")
    cur = await conn.execute("SELECT zone_id, kek_id, wrapped_dek FROM zone_deks ORDER BY zone_id")
    result = RotationResult()
    for row in await cur.fetchall():
        zone_id, wrapped = row["zone_id"], bytes(row["wrapped_dek"])
        try:
            if row["kek_id"] == new.key_id:
                crypto.unwrap_dek(new, wrapped, zone_id)
                result.already_new.append(zone_id)
                continue
            rewrapped = crypto.rewrap_dek(current, new, wrapped, zone_id)
        except crypto.DecryptionError:
            raise RotationError(
                f"the DEK of zone {zone_id!r} (KEK id {row['kek_id']}) does not open"
                f" under the {'new' if row['kek_id'] == new.key_id else 'current'} KEK"
            ) from None
        await conn.execute(
            "UPDATE zone_deks SET wrapped_dek = %s, kek_id = %s, rotated_at = now()"
            " WHERE zone_id = %s",
            (rewrapped, new.key_id, zone_id),
        )
        result.rewrapped.append(zone_id)
    return result


def current_kek(settings: Settings) -> crypto.Kek:
    """The KEK the service uses now (env > file > data dir), never a newly generated one."""
    if (
        not settings.kek
        and not settings.kek_file
        and not (Path(settings.data_dir) / "kek").exists()
    ):
        raise crypto.KekError("no current KEK: set CARACAL_KEK or CARACAL_KEK_FILE")
    return crypto.load_kek(settings.kek, settings.kek_file, settings.data_dir, settings.production)


async def _rotate(url: str, current: crypto.Kek, new: crypto.Kek) -> RotationResult:
    db = Database(url, 1, 1)
    await db.open()
    try:
        async with db.transaction() as conn:
            return await rewrap_all_deks(conn, current, new)
    finally:
        await db.close()


def cmd_rotate_kek(args: argparse.Namespace) -> int:
    """Rewrap every zone DEK under the KEK in ``--new-kek-file`` and say what was done."""
    from controlplane.db.embedded_postgres import database_url_for

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
            result = asyncio.run(_rotate(url, current, new))
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
