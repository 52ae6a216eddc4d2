"""``GET /metrics`` (Prometheus text format) and the background sampler of this process.

Public by default, like OPA's and Cerbos's; with ``CARACAL_METRICS_TOKEN`` set it requires
``Authorization: Bearer <token>`` (401 ``invalid_metrics_token`` otherwise). The route is
left out entirely when ``CARACAL_METRICS_ENABLED=false``.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from typing import Any

from litestar import Request, Response, get
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from controlplane.background import background
from controlplane.db.pool import Database
from controlplane.http.errors import ApiError
from controlplane.metrics.pool import sample_pool
from controlplane.metrics.workers import mark_worker_stopped, multiprocess_dir, reap_dead_workers
from controlplane.settings import Settings

#: How often each process refreshes the gauges it samples (pool) and reaps dead workers.
SAMPLE_SECONDS = 5.0


@cache
def _registry(path: str | None) -> CollectorRegistry:
    """What a scrape renders: the default registry (with process and GC metrics) in
    single-process mode, every worker's files in multiprocess mode."""
    if path is None:
        return REGISTRY
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path)
    return registry


def render_metrics() -> bytes:
    """The exposition text of this service (all workers in multiprocess mode)."""
    return generate_latest(_registry(multiprocess_dir()))


def _authorized(request: Request[Any, Any, Any], token: str) -> bool:
    for name, value in request.scope["headers"]:
        if name == b"authorization":
            return hmac.compare_digest(value, b"Bearer " + token.encode("ascii"))
    return False


@get("/metrics", opt={"scope": "public"}, tags=["health"], include_in_schema=False)
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus text exposition of every metric (docs/observability.md)."""
    services = request.app.state.services
    token = services.settings.metrics_token
    if token is not None and not _authorized(request, token):
        raise ApiError(401, "invalid_metrics_token")
    sample_pool(services.db.pool)
    body = await asyncio.to_thread(render_metrics)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@asynccontextmanager
async def metrics_component(db: Database, settings: Settings) -> AsyncIterator[None]:
    """Sample this process's pool every ``SAMPLE_SECONDS`` (a scrape of another worker
    reads it from file), reap crashed workers' gauges, and take this worker's gauges out
    of the sums at shutdown."""
    if not settings.metrics_enabled:
        yield
        return

    async def loop() -> None:
        while True:
            sample_pool(db.pool)
            reap_dead_workers()
            await asyncio.sleep(SAMPLE_SECONDS)

    try:
        async with background(loop(), "metrics-sampler"):
            yield
    finally:
        mark_worker_stopped()
