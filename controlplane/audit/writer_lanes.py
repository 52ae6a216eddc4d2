"""Several decision audit writers side by side, so that one slow commit holds fewer decisions.

One ``DecisionAuditWriter`` has one INSERT in flight at a time: while it commits, every new
decision waits for it and then for the next one (under load a decision's time was almost all
commit wait, docs/performance.md). ``DecisionAuditLanes`` runs ``lanes`` writers, each with
its own connection and group commit, and hands each write to an idle writer, else to the one
with the shortest queue: while one batch commits the next is already on its way. Each
decision is still answered only after its own row is committed, and the events of one
``write_all`` (a batch request) still go in one INSERT.
"""

from __future__ import annotations

import asyncio

from controlplane.audit.decision_events import DecisionAuditSink, DecisionAuditWriter, DecisionEvent


def decision_audit_sink(url: str, connections: int) -> DecisionAuditSink:
    """One group-commit writer (the default), or ``connections`` lanes of them."""
    if connections <= 1:
        return DecisionAuditWriter(url)
    return DecisionAuditLanes(url, connections)


class DecisionAuditLanes:
    """``lanes`` group-commit writers behind the ``DecisionAuditWriter`` interface."""

    def __init__(self, url: str, lanes: int = 2) -> None:
        self.writers = [DecisionAuditWriter(url) for _ in range(max(1, lanes))]

    async def write_all(self, events: list[DecisionEvent]) -> None:
        """Return once all ``events`` are committed, in one INSERT."""
        await self._pick().write_all(events)

    def _pick(self) -> DecisionAuditWriter:
        """An idle writer, else the one with the fewest writes waiting."""
        for writer in self.writers:
            if not writer.flushing and not writer.queued:
                return writer
        return min(self.writers, key=lambda writer: writer.queued)

    def start(self) -> None:
        """Start every writer."""
        for writer in self.writers:
            writer.start()

    async def close(self) -> None:
        """Write everything queued, then stop."""
        await asyncio.gather(*(writer.close() for writer in self.writers))
