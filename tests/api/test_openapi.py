"""The OpenAPI document's structural rules: a route that forgets them fails here.

Every error answer is the contract's envelope, every body is as strict as its validation
and has an example that the service accepts, every guarded route documents 401/403, every
body 400/413, every database route 503. (``tests/fuzz/run_schemathesis.py`` checks the
document against the running service.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from controlplane.app import create_app
from controlplane.http import openapi
from tests.conftest import TEST_KEK, make_settings

ENVELOPE = {"$ref": "#/components/schemas/ErrorBody"}
METHODS = ("get", "post", "put", "patch", "delete")
#: Answers that are not the envelope, declared by their routes.
NOT_ENVELOPE = {("/ready", "get", "503")}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Litestar:
    """The app with every route (local bootstrap on); the database is never reached."""
    settings = make_settings(
        "postgresql://nobody@127.0.0.1:1/none",
        Path(tmp_path_factory.mktemp("openapi")),
        local_bootstrap_enabled=True,
    )
    return create_app(settings, kek=TEST_KEK)


@pytest.fixture(scope="module")
def document(app: Litestar) -> dict[str, Any]:
    return openapi.build_document(app)


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with a ``$ref`` (or ``anyOf [ref, null]``) followed."""
    for option in schema.get("anyOf", []):
        if "$ref" in option:
            schema = option
    ref = schema.get("$ref")
    if ref is None:
        return schema
    return document["components"]["schemas"][ref.rsplit("/", 1)[-1]]


def body_types(app: Litestar) -> dict[tuple[str, str], Any]:
    """The request body type of each operation, as the document builder finds it."""
    return {
        (op.path, op.method): op.body_type
        for op in openapi.operations(app, app.openapi_schema.to_schema())
        if op.body_type is not None
    }


def test_the_served_document_is_the_built_one(client: TestClient) -> None:
    served = client.get("/schema/openapi.json")
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("application/vnd.oai.openapi+json")
    assert served.json() == msgspec.json.decode(
        msgspec.json.encode(openapi.build_document(client.app))
    )


def test_every_error_answer_is_the_envelope(document: dict[str, Any]) -> None:
    checked = 0
    for path, method, op in operations(document):
        for status, response in op["responses"].items():
            if int(status) < 400 or (path, method, status) in NOT_ENVELOPE:
                continue
            schema = response["content"]["application/json"]["schema"]
            assert schema == ENVELOPE, (method, path, status)
            checked += 1
    assert checked > 200
    envelope = document["components"]["schemas"]["ErrorBody"]
    assert set(envelope["properties"]) == {"error", "issues", "detail"}
    assert envelope["required"] == ["error"]
    assert "status_code" not in msgspec.json.encode(document).decode()  # Litestar's own shape


def test_every_route_documents_the_statuses_its_shape_implies(
    app: Litestar, document: dict[str, Any]
) -> None:
    handlers = {
        (op.path, op.method): op.handler
        for op in openapi.operations(app, app.openapi_schema.to_schema())
    }
    for path, method, op in operations(document):
        statuses = set(op["responses"])
        where = (method, path)
        handler = handlers[(path, method)]
        if path.startswith("/v1/") and handler.opt.get("scope") != "public":
            assert {"401", "403"} <= statuses, where
            assert op["security"] == [{openapi.SECURITY_SCHEME: []}], where
        if "requestBody" in op:
            assert {"400", "413"} <= statuses, where
        if any(p["in"] == "query" for p in op.get("parameters", [])):
            assert "400" in statuses, where
        if any(p["in"] == "path" for p in op.get("parameters", [])):
            assert "404" in statuses, where
        if handler.opt.get("database", True):
            assert "503" in statuses, where
            assert "Retry-After" in op["responses"]["503"]["headers"], where
        assert {"408", "431"} <= statuses, where
        assert any(200 <= int(s) < 400 for s in statuses), where
    assert handlers[("/health", "get")].opt["database"] is False


def test_every_body_is_strict_and_has_an_accepted_example(
    app: Litestar, document: dict[str, Any]
) -> None:
    types = body_types(app)
    assert len(types) >= 18
    for path, method, op in operations(document):
        if "requestBody" not in op:
            continue
        media = op["requestBody"]["content"]["application/json"]
        kind = types[(path, method)]
        assert "example" in media, (method, path)
        msgspec.json.decode(msgspec.json.encode(media["example"]), type=kind, strict=True)
        assert media["example"], (method, path)
        body = resolve(document, media["schema"])
        struct, _ = openapi._optional(kind)
        config = getattr(struct, "__struct_config__", None)
        if config is not None and config.forbid_unknown_fields:
            assert body["additionalProperties"] is False, (method, path)
        if method == "patch":
            assert body["minProperties"] == 1, (method, path)


def test_forbid_unknown_fields_means_no_additional_properties(
    app: Litestar, document: dict[str, Any]
) -> None:
    structs = openapi.structs(body_types(app).values())
    strict = [cls for cls in structs if cls.__struct_config__.forbid_unknown_fields]
    assert len(strict) >= 18
    for cls in strict:
        assert document["components"]["schemas"][cls.__name__]["additionalProperties"] is False


def test_request_strings_refuse_nul(document: dict[str, Any]) -> None:
    """PostgreSQL stores no NUL: every stored request string says so."""
    schemas = document["components"]["schemas"]
    assert schemas["ZoneCreate"]["properties"]["name"]["pattern"] == "^[^\\x00]*$"
    config = schemas["ProviderCreate"]["properties"]["config_json"]
    assert config["additionalProperties"] == {"$ref": "#/components/schemas/StorableJson"}
    audit = document["paths"]["/v1/zones/{zone_id}/audit"]["get"]["parameters"]
    event_type = next(p for p in audit if p["name"] == "event_type")
    assert event_type["schema"]["pattern"] == "^[^\\x00]*$"


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    names = set(document["components"]["schemas"])

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref is not None:
                assert ref.removeprefix("#/components/schemas/") in names, ref
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)


def test_a_route_declares_its_own_errors(document: dict[str, Any]) -> None:
    register = document["paths"]["/v1/zones/{zone_id}/applications/register"]["post"]
    assert set(register["responses"]["429"]["content"]["application/json"]["examples"]) == {
        "dcr_rate_limit_exceeded",
        "dcr_limit_exceeded",
    }
    bootstrap = document["paths"]["/v1/local/bootstrap"]["post"]["responses"]
    assert {"200", "201", "409"} <= set(bootstrap)
    assert bootstrap["200"]["content"] == bootstrap["201"]["content"]
