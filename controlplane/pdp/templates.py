"""The built-in policy templates served by ``GET /v1/policy-templates``.

Each template is ``policies/templates/<id>.rego`` and starts with a header comment::

    # name: Role-Based Access Control
    # description: First line of the description,
    #   continued on lines that start with "#" and two or more spaces.

Files ending in ``_test.rego`` are the templates' Rego unit tests, not templates.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import msgspec

from controlplane.package_data import TEMPLATE_DIR

__all__ = ["TEMPLATE_DIR", "TEMPLATE_IDS", "Template", "get_template", "load_templates"]

#: The contract's template ids, in the order the catalogue lists them.
TEMPLATE_IDS: tuple[str, ...] = (
    "role-based",
    "attribute-based",
    "delegation",
    "baseline-scopes",
    "baseline-resource-constraints",
    "baseline-delegation-constraints",
    "baseline-session-state",
    "baseline-step-up-triggers",
    "baseline-rate-limits",
)

_FIELD = re.compile(r"^#\s*(?P<key>name|description):\s*(?P<value>.*)$")
_CONTINUATION = re.compile(r"^#\s{2,}(?P<value>\S.*)$")


class Template(msgspec.Struct, frozen=True):
    """A built-in template as the catalogue returns it."""

    id: str
    name: str
    description: str
    content: str


def _header(content: str) -> dict[str, str]:
    """``name`` and ``description`` from the leading comment block of a template."""
    fields: dict[str, str] = {}
    current: str | None = None
    for line in content.splitlines():
        if not line.startswith("#"):
            break
        if (m := _FIELD.match(line)) is not None:
            current = m.group("key")
            fields[current] = m.group("value").strip()
        elif current is not None and (m := _CONTINUATION.match(line)) is not None:
            fields[current] = f"{fields[current]} {m.group('value').strip()}".strip()
        else:
            current = None
    return fields


def _order(path: Path) -> tuple[int, str]:
    stem = path.name.removesuffix(".rego")
    index = TEMPLATE_IDS.index(stem) if stem in TEMPLATE_IDS else len(TEMPLATE_IDS)
    return index, stem


@functools.cache
def _load(directory: Path) -> tuple[Template, ...]:
    paths = sorted(
        (p for p in directory.glob("*.rego") if not p.name.endswith("_test.rego")), key=_order
    )
    templates = []
    for path in paths:
        content = path.read_text(encoding="utf-8")
        header = _header(content)
        template_id = path.name.removesuffix(".rego")
        templates.append(
            Template(
                id=template_id,
                name=header.get("name", template_id),
                description=header.get("description", ""),
                content=content,
            )
        )
    return tuple(templates)


def load_templates(directory: Path = TEMPLATE_DIR) -> list[Template]:
    """All templates (read once per process): the contract's ids first, in its order."""
    return list(_load(directory))


def get_template(template_id: str, directory: Path = TEMPLATE_DIR) -> Template | None:
    """The template with ``template_id``, or ``None``."""
    return next((t for t in _load(directory) if t.id == template_id), None)
