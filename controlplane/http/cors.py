"""Cross-origin requests: off unless ``CARACAL_CORS_ORIGINS`` names the allowed origins."""

from __future__ import annotations

from litestar.config.cors import CORSConfig

from controlplane.settings import Settings

#: What a browser client may send and read (the admin API's own headers).
ALLOWED_HEADERS = ["Authorization", "Content-Type", "X-Request-Id"]
EXPOSED_HEADERS = ["X-Request-Id", "Retry-After", "Allow"]
#: How long a browser may cache a preflight answer.
PREFLIGHT_MAX_AGE_SECONDS = 600


def cors_config(settings: Settings) -> CORSConfig | None:
    """Litestar's CORS for the configured origins, or None (no CORS headers at all)."""
    if not settings.cors_origins:
        return None
    return CORSConfig(
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
        allow_credentials=False,
        max_age=PREFLIGHT_MAX_AGE_SECONDS,
    )
