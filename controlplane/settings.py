"""Service settings: one frozen object read from ``CARACAL_*`` variables and ``DATABASE_URL``."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from controlplane.errors import OperatorError


class SettingsError(OperatorError):
    """A configuration value is invalid; the message is one line naming the variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the service reads from its environment."""

    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 3000
    workers: int = 1
    admin_token: str | None = None
    local_bootstrap_enabled: bool = False
    local_zone_id: str = "zone1"
    kek: str | None = None
    kek_file: str | None = None
    data_dir: Path = Path(".caracal")
    env: Literal["development", "production"] = "development"
    pool_min_size: int = 2
    pool_max_size: int = 10
    db_acquire_timeout_seconds: float = 2.0
    max_header_bytes: int = 64 * 1024
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    cors_origins: tuple[str, ...] = ()
    log_level: str = "INFO"
    drain_seconds: float = 2.0
    redis_url: str | None = None
    key_overlap_seconds: int = 86_400
    argon2_time_cost: int = 2
    argon2_memory_cost: int = 19_456
    argon2_parallelism: int = 1
    pdp_reconcile_seconds: float = 0.5
    #: OPA instances not heard from for this long are left out of ``GET …/pdp-instances``.
    pdp_instance_ttl_seconds: int = 600
    relay_enabled: bool = True
    token_cache_seconds: float = 1.0
    http_fast_path: bool = True
    audit_writer_connections: int = 1
    dcr_rate_limit: int = 10
    metrics_enabled: bool = True
    metrics_token: str | None = None
    metrics_dir: Path | None = None
    #: ``auto``: uploaded policies are compiled by OPA's compiler too when its engine is
    #: installed; ``off``: regorus' checks only
    opa_compile_check: Literal["auto", "off"] = "auto"

    @property
    def production(self) -> bool:
        """True when ``CARACAL_ENV=production``."""
        return self.env == "production"


_DURATION_RE = re.compile(r"^(\d+)\s*([smhd]?)$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


#: Longest duration accepted anywhere (100 years): beyond it PostgreSQL's timestamps overflow.
MAX_DURATION_SECONDS = 100 * 365 * 86_400


def parse_duration(text: str) -> int:
    """Parse ``90``, ``90s``, ``15m``, ``24h`` or ``30d`` into seconds (at most 100 years)."""
    match = _DURATION_RE.match(text.strip())
    if not match:
        raise ValueError("expected a duration such as 90s, 15m, 24h or 30d")
    seconds = int(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError("must be at most 100 years")
    return seconds


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


def _positive_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _seconds_in(low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = _positive_float(text)
        if not low <= value <= high:
            raise ValueError(f"must be between {low:g} and {high:g} seconds")
        return value

    return parse


_ORIGIN_RE = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$|^\*$")


def _origins(text: str) -> tuple[str, ...]:
    origins = tuple(o.strip() for o in text.split(",") if o.strip())
    for origin in origins:
        if not _ORIGIN_RE.match(origin):
            raise ValueError(
                f"{origin!r} is not an origin: expected scheme://host[:port] (no path) or *"
            )
    return origins


def _redis_url(text: str) -> str:
    if not text.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must start with redis://, rediss:// or unix://")
    return text


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected true or false")


def _auto_or_off(text: str) -> str:
    lowered = text.strip().lower()
    if lowered not in {"auto", "off"}:
        raise ValueError("expected auto or off")
    return lowered


def _env_name(text: str) -> str:
    if text not in {"development", "production"}:
        raise ValueError("expected development or production")
    return text


def _zone_id(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", text):
        raise ValueError("expected 1-64 characters of letters, digits, '_' or '-'")
    return text


def _log_level(text: str) -> str:
    level = text.upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("expected DEBUG, INFO, WARNING or ERROR")
    return level


def _admin_token(text: str) -> str:
    if not re.fullmatch(r"[\x21-\x7e]{16,512}", text):
        raise ValueError("expected 16-512 visible ASCII characters")
    return text


def _nonempty(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text


# variable name -> (settings field, parser)
_VARIABLES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "DATABASE_URL": ("database_url", _nonempty),
    "CARACAL_HOST": ("host", _nonempty),
    "CARACAL_PORT": ("port", _int_in(1, 65_535)),
    "CARACAL_WORKERS": ("workers", _int_in(1, 64)),
    "CARACAL_ADMIN_TOKEN": ("admin_token", _admin_token),
    "CARACAL_LOCAL_BOOTSTRAP_ENABLED": ("local_bootstrap_enabled", _bool),
    "CARACAL_LOCAL_ZONE_ID": ("local_zone_id", _zone_id),
    "CARACAL_KEK": ("kek", _nonempty),
    "CARACAL_KEK_FILE": ("kek_file", _nonempty),
    "CARACAL_DATA_DIR": ("data_dir", lambda text: Path(_nonempty(text))),
    "CARACAL_ENV": ("env", _env_name),
    "CARACAL_DB_POOL_MIN": ("pool_min_size", _int_in(1, 1000)),
    "CARACAL_DB_POOL_MAX": ("pool_max_size", _int_in(1, 1000)),
    "CARACAL_DB_ACQUIRE_TIMEOUT_SECONDS": ("db_acquire_timeout_seconds", _seconds_in(0.1, 60)),
    "CARACAL_MAX_HEADER_BYTES": ("max_header_bytes", _int_in(4096, 1024 * 1024)),
    "CARACAL_HEADER_TIMEOUT_SECONDS": ("header_timeout_seconds", _seconds_in(0.1, 3600)),
    "CARACAL_BODY_TIMEOUT_SECONDS": ("body_timeout_seconds", _seconds_in(0.1, 3600)),
    "CARACAL_CORS_ORIGINS": ("cors_origins", _origins),
    "CARACAL_LOG_LEVEL": ("log_level", _log_level),
    "CARACAL_DRAIN_SECONDS": ("drain_seconds", _positive_float),
    "CARACAL_REDIS_URL": ("redis_url", _redis_url),
    "CARACAL_KEY_OVERLAP": ("key_overlap_seconds", parse_duration),
    "CARACAL_ARGON2_TIME_COST": ("argon2_time_cost", _int_in(1, 100)),
    "CARACAL_ARGON2_MEMORY_COST": ("argon2_memory_cost", _int_in(1024, 4_194_304)),
    "CARACAL_ARGON2_PARALLELISM": ("argon2_parallelism", _int_in(1, 64)),
    "CARACAL_PDP_RECONCILE_SECONDS": ("pdp_reconcile_seconds", _positive_float),
    "CARACAL_PDP_INSTANCE_TTL_SECONDS": ("pdp_instance_ttl_seconds", _int_in(1, 31_536_000)),
    "CARACAL_RELAY_ENABLED": ("relay_enabled", _bool),
    "CARACAL_TOKEN_CACHE_SECONDS": ("token_cache_seconds", _positive_float),
    "CARACAL_HTTP_FAST_PATH": ("http_fast_path", _bool),
    "CARACAL_AUDIT_WRITER_CONNECTIONS": ("audit_writer_connections", _int_in(1, 16)),
    "CARACAL_DCR_RATE_LIMIT": ("dcr_rate_limit", _int_in(1, 1_000_000)),
    "CARACAL_METRICS_ENABLED": ("metrics_enabled", _bool),
    "CARACAL_METRICS_TOKEN": ("metrics_token", _admin_token),
    "CARACAL_METRICS_DIR": ("metrics_dir", lambda text: Path(_nonempty(text))),
    "CARACAL_OPA_COMPILE_CHECK": ("opa_compile_check", _auto_or_off),
}


def _shown(variable: str, value: Any) -> str:
    """A setting's value for an error message; secrets are never shown."""
    hidden = {"CARACAL_ADMIN_TOKEN", "CARACAL_KEK", "CARACAL_METRICS_TOKEN"}
    return "<hidden>" if variable in hidden else repr(value)


_FIELD_VARIABLES = {field: variable for variable, (field, _) in _VARIABLES.items()}


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read settings from ``environ`` (default: ``os.environ``); SettingsError if invalid."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for variable, (field, parse) in _VARIABLES.items():
        raw = env.get(variable)
        if raw is None or (raw == "" and field not in {"local_bootstrap_enabled"}):
            continue
        try:
            values[field] = parse(raw)
        except ValueError as exc:
            raise SettingsError(f"{variable}={_shown(variable, raw)} is invalid: {exc}") from None
    for field, value in overrides.items():  # command-line values obey the same rules
        field_variable = _FIELD_VARIABLES.get(field)
        if field_variable is not None and value is not None:
            text = ",".join(value) if isinstance(value, tuple) else str(value)
            try:
                _VARIABLES[field_variable][1](text)
            except ValueError as exc:
                shown = _shown(field_variable, value)
                raise SettingsError(
                    f"{field.replace('_', '-')} {shown} is invalid: {exc}"
                ) from None
    values.update(overrides)
    settings = Settings(**values)
    if settings.pool_min_size > settings.pool_max_size:
        raise SettingsError("CARACAL_DB_POOL_MIN must not exceed CARACAL_DB_POOL_MAX")
    if settings.production and settings.database_url is None:
        raise SettingsError("DATABASE_URL is required when CARACAL_ENV=production")
    return settings
