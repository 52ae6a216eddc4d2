"""The OpenAPI document and its Swagger UI, whose JavaScript, CSS and icon the service
serves itself (from the pinned ``swagger-ui-bundle-v2`` wheel, Apache-2.0), so the page
works on a machine without internet access. Litestar's default loads them from a CDN."""

from __future__ import annotations

from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.router import Router
from litestar.static_files import create_static_files_router
from swagger_ui_bundle import swagger_ui_path

from controlplane import __version__
from controlplane.http.openapi import ContractOpenAPI

SCHEMA_PATH = "/schema"
#: Where the Swagger UI files are served (public, like the page itself).
ASSETS_PATH = f"{SCHEMA_PATH}/assets/swagger-ui"
FAVICON = f"{ASSETS_PATH}/favicon-32x32.png"


def openapi_config() -> OpenAPIConfig:
    """``/schema`` (the Swagger UI), ``/schema/swagger`` and ``/schema/openapi.{json,yaml}``
    (the JSON one is ``controlplane.http.openapi``'s document)."""
    return OpenAPIConfig(
        title="Caracal control plane",
        version=__version__,
        path=SCHEMA_PATH,
        render_plugins=[
            SwaggerRenderPlugin(
                js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
                css_url=f"{ASSETS_PATH}/swagger-ui.css",
                standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
                favicon=f"<link rel='icon' type='image/png' href='{FAVICON}'>",
            ),
            ContractOpenAPI(),
        ],
    )


def swagger_ui_assets() -> Router:
    """The route serving the Swagger UI files."""
    return create_static_files_router(
        path=ASSETS_PATH,
        directories=[str(swagger_ui_path)],
        opt={"scope": "public"},
        include_in_schema=False,
        name="swagger-ui-assets",
    )
