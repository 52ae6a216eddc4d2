"""The canonical hash of a policy-set manifest (``manifest_sha256``).

Canonical form: for each manifest entry, in manifest order, the UTF-8 line
``"<policy_version_id> <content_sha256>\\n"`` where the id is the lower-case hyphenated UUID
and the content hash the lower-case hex SHA-256 of the policy version's content.
``manifest_sha256`` is the lower-case hex SHA-256 of the concatenated lines. Order matters:
the same versions in another order are another manifest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from uuid import UUID


def manifest_sha256(entries: Iterable[tuple[UUID | str, str]]) -> str:
    """Hash ``(policy_version_id, content_sha256)`` pairs in manifest order."""
    digest = hashlib.sha256()
    for version_id, content_sha256 in entries:
        digest.update(f"{UUID(str(version_id))!s} {content_sha256.lower()}\n".encode())
    return digest.hexdigest()


def content_sha256(content: str) -> str:
    """Hex SHA-256 of a policy's UTF-8 content."""
    return hashlib.sha256(content.encode()).hexdigest()
