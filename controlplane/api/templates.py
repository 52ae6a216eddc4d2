"""Policy templates: ``GET /v1/policy-templates`` (public, no auth)."""

from __future__ import annotations

from litestar import get

from controlplane.pdp.templates import Template, load_templates


@get("/v1/policy-templates", opt={"scope": "public", "database": False}, tags=["policy-templates"])
async def list_templates() -> list[Template]:
    """The built-in Rego templates: ``{id, name, description, content}``."""
    return load_templates()
