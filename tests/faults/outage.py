"""Load during a database outage: concurrent clients against a served process, with timings.

``run_load`` keeps ``clients`` concurrent clients posting decisions (and reading) while
``during`` runs the fault, and returns every answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from uuid6 import uuid7

from tests.served import AUTH


@dataclass(frozen=True)
class Answer:
    """One request: what was asked, when, and what came back."""

    kind: str
    request_id: str
    started: float
    finished: float
    status: int
    error: str | None
    retry_after: str | None

    @property
    def seconds(self) -> float:
        return self.finished - self.started


async def _one(
    client: httpx.AsyncClient, kind: str, method: str, url: str, body: Any | None
) -> Answer:
    request_id = str(uuid7())
    started = time.monotonic()
    try:
        response = await client.request(
            method, url, json=body, headers={**AUTH, "X-Request-Id": request_id}
        )
        status = response.status_code
        error = response.json().get("error") if status >= 400 else None
        retry_after = response.headers.get("retry-after")
    except httpx.TransportError as exc:
        status, error, retry_after = 0, type(exc).__name__, None
    return Answer(kind, request_id, started, time.monotonic(), status, error, retry_after)


async def _load(
    base: str,
    zone_id: str,
    clients: int,
    during: Callable[[], Awaitable[None]],
) -> list[Answer]:
    answers: list[Answer] = []
    stop = asyncio.Event()
    decide = f"/v1/zones/{zone_id}/decisions"
    body = {"input": {"subject": {"id": "u1", "roles": ["admin"]}}}
    requests = [
        ("decision", "POST", decide, body),
        ("decision", "POST", decide, body),
        ("decision", "POST", decide, body),
        ("read", "GET", f"/v1/zones/{zone_id}", None),
        ("ready", "GET", "/ready", None),
    ]
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(base_url=base, timeout=20, limits=limits) as client:

        async def worker(index: int) -> None:
            n = index
            while not stop.is_set():
                kind, method, url, data = requests[n % len(requests)]
                n += 1
                answers.append(await _one(client, kind, method, url, data))
                await asyncio.sleep(0.1)  # concurrency, not throughput: the suite runs beside

        tasks = [asyncio.create_task(worker(i)) for i in range(clients)]
        try:
            await during()
        finally:
            stop.set()
            await asyncio.gather(*tasks)
    return answers


def run_load(
    base: str, zone_id: str, during: Callable[[], Awaitable[None]], clients: int = 16
) -> list[Answer]:
    """Every answer of ``clients`` concurrent clients while ``during`` runs."""
    return asyncio.run(_load(base, zone_id, clients, during))
