"""KEK rotation (``caracal rotate-kek --new-kek-file F``, ``controlplane.cli.kek``).

Every zone DEK is unwrapped with the current KEK (loaded from the settings as at start-up)
and wrapped again under the new one, in one transaction: either every DEK moves or none does.
The DEKs themselves do not change, so provider secrets and signing keys stay as they are.
Re-running is safe: DEKs already under the new KEK are left alone (after checking they open).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from controlplane.db.pool import Conn, Database
from controlplane.keys import crypto
from controlplane.settings import Settings


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


async def rotate_at(url: str, current: crypto.Kek, new: crypto.Kek) -> RotationResult:
    """Rewrap every zone DEK of the database at ``url`` in one transaction."""
    db = Database(url, 1, 1)
    await db.open()
    try:
        async with db.transaction() as conn:
            return await rewrap_all_deks(conn, current, new)
    finally:
        await db.close()
