"""The application factory: routes, guard, error handlers, request context and lifespan."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.types import ASGIApp

from controlplane.api.admin_tokens import AdminTokenController
from controlplane.api.applications import ApplicationController
from controlplane.api.audit import AuditController
from controlplane.api.decisions import DecisionController
from controlplane.api.grants import GrantController
from controlplane.api.health import health, ready
from controlplane.api.jwks import global_jwks, zone_jwks
from controlplane.api.local_bootstrap import local_bootstrap
from controlplane.api.opa import OpaController, pdp_instances
from controlplane.api.policies import PolicyController
from controlplane.api.policy_sets import PolicySetController
from controlplane.api.providers import ProviderController
from controlplane.api.resources import ResourceController
from controlplane.api.sessions import SessionController
from controlplane.api.step_up import StepUpController
from controlplane.api.templates import list_templates
from controlplane.api.zones import ZoneController
from controlplane.audit.decision_events import decision_audit_component
from controlplane.audit.partitions import audit_partitions_component
from controlplane.audit.writer_lanes import decision_audit_sink
from controlplane.auth.admin_tokens import upsert_env_token
from controlplane.auth.guard import admin_guard
from controlplane.auth.token_cache import TokenCache
from controlplane.db.migrations import migrate
from controlplane.db.pool import Database
from controlplane.fleet.service import Fleet
from controlplane.http.api_docs import openapi_config, swagger_ui_assets
from controlplane.http.cors import cors_config
from controlplane.http.errors import EXCEPTION_HANDLERS
from controlplane.http.fast_path import FastPath
from controlplane.http.gc_tuning import tune_gc_after_startup
from controlplane.http.request_context import RequestContextMiddleware
from controlplane.http.strict_input import strict_input
from controlplane.keys.crypto import Kek, SecretHasher, load_kek
from controlplane.logs import configure_logging
from controlplane.metrics.endpoint import metrics, metrics_component
from controlplane.metrics.switch import enable_metrics
from controlplane.outbox.listener import listener_component
from controlplane.outbox.relay import relay_component
from controlplane.pdp.runtime import PdpRuntime, reconciler_component
from controlplane.services import Services
from controlplane.settings import Settings, load_settings

log = logging.getLogger("controlplane")

MAX_BODY_BYTES = 1024 * 1024

# Background parts of the service (relay, PDP listener, …) register here: each is an async
# context manager factory taking the Services, entered at start-up and exited at shutdown.
Component = Callable[[Services], AbstractAsyncContextManager[None]]
COMPONENTS: list[Component] = []

ROUTE_HANDLERS: list[Any] = [
    health,
    ready,
    global_jwks,
    zone_jwks,
    ZoneController,
    AdminTokenController,
]
ROUTE_HANDLERS += [ApplicationController, ResourceController, ProviderController]
ROUTE_HANDLERS += [SessionController, StepUpController, AuditController, GrantController]
ROUTE_HANDLERS += [PolicyController, PolicySetController, DecisionController, list_templates]
ROUTE_HANDLERS += [OpaController, pdp_instances]
COMPONENTS += [
    lambda s: decision_audit_component(s.audit_writer),
    lambda s: listener_component(s.db.url, s.runtime, s.token_cache),
    lambda s: reconciler_component(s.runtime, s.settings.pdp_reconcile_seconds),
    lambda s: relay_component(s.db, s.settings),
    lambda s: audit_partitions_component(s.db),
    lambda s: metrics_component(s.db, s.settings),
]


class ControlPlaneApp(Litestar):
    """Litestar with the request-context middleware outermost, so even 404s carry an id,
    and the fast path of the decision routes (``controlplane.http.fast_path``) inside it."""

    def __init__(self, *args: Any, fast_path: bool = True, **kwargs: Any) -> None:
        self.fast_path = fast_path
        super().__init__(*args, **kwargs)

    def _create_asgi_handler(self) -> ASGIApp:
        handler = super()._create_asgi_handler()
        if self.fast_path:
            handler = FastPath(handler, self)
        return RequestContextMiddleware(handler)


def create_app(
    settings: Settings,
    *,
    kek: Kek | None = None,
    handle_signals: bool = False,
    run_migrations: bool = True,
) -> Litestar:
    """Build the ASGI application for ``settings`` (DATABASE_URL must be set by now)."""
    database_url = settings.database_url
    if database_url is None:
        raise ValueError("create_app needs settings.database_url")
    enable_metrics(settings.metrics_enabled)
    db = Database(
        database_url,
        settings.pool_min_size,
        settings.pool_max_size,
        settings.db_acquire_timeout_seconds,
    )
    kek = kek or load_kek(settings.kek, settings.kek_file, settings.data_dir, settings.production)
    runtime = PdpRuntime(db)
    services = Services(
        settings=settings,
        db=db,
        kek=kek,
        hasher=SecretHasher(
            settings.argon2_time_cost, settings.argon2_memory_cost, settings.argon2_parallelism
        ),
        runtime=runtime,
        audit_writer=decision_audit_sink(db.url, settings.audit_writer_connections),
        token_cache=TokenCache(settings.token_cache_seconds),
        fleet=Fleet.watching(runtime, db, kek),
    )

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if run_migrations:
            await asyncio.to_thread(migrate, database_url)
        await db.open()
        async with AsyncExitStack() as stack:
            stack.push_async_callback(db.close)
            if settings.admin_token:
                async with db.transaction() as conn:
                    await upsert_env_token(conn, settings.admin_token)
            for component in COMPONENTS:
                await stack.enter_async_context(component(services))
            if handle_signals:
                _install_drain_handler(services)
                tune_gc_after_startup()
            yield

    return ControlPlaneApp(
        route_handlers=[
            *ROUTE_HANDLERS,
            *([local_bootstrap] if settings.local_bootstrap_enabled else []),
            *([metrics] if settings.metrics_enabled else []),
            swagger_ui_assets(),
        ],
        guards=[admin_guard],
        exception_handlers=EXCEPTION_HANDLERS,
        before_request=strict_input,
        lifespan=[lifespan],
        state=_state(services),
        request_max_body_size=MAX_BODY_BYTES,
        cors_config=cors_config(settings),
        openapi_config=openapi_config(),
        debug=False,
        logging_config=None,
        fast_path=settings.http_fast_path,
    )


def _state(services: Services) -> Any:
    from litestar.datastructures import State

    return State({"services": services})


def _install_drain_handler(services: Services) -> None:
    """On SIGTERM: turn /ready to 503 at once, keep serving for the drain period, then stop."""
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: Any) -> None:
        if services.draining:
            return
        services.draining = True
        log.info("draining", extra={"seconds": services.settings.drain_seconds})

        def stop() -> None:
            if callable(previous):
                previous(signum, frame)
            else:
                signal.raise_signal(signal.SIGINT)

        loop.call_soon_threadsafe(loop.call_later, services.settings.drain_seconds, stop)

    signal.signal(signal.SIGTERM, on_sigterm)


def create_app_from_env() -> Litestar:
    """Factory for ``uvicorn --factory``: settings from the environment, signals handled.

    With ``--workers N`` each worker is a fresh interpreter, so logging is set up here too.
    """
    settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings, handle_signals=True)
