"""On upload, a module that OPA's compiler refuses is ``422 invalid_rego`` with OPA's message
(when OPA's engine is installed and ``CARACAL_OPA_COMPILE_CHECK`` is not ``off``)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from controlplane.app import create_app
from controlplane.pdp.contract import check_contract
from controlplane.pdp.opa_engine import opa_available
from controlplane.pdp.sandbox import check_in_sandbox
from tests.conftest import ADMIN_TOKEN, TEST_KEK, make_settings
from tests.without_opa import python_without_opa

needs_opa = pytest.mark.skipif(not opa_available(), reason="OPA's engine is not installed")

#: regorus loads it and, with no ``input.n``, never evaluates the sum; OPA's type checker
#: refuses ``1 + "a"`` at compile time.
TYPE_ERROR = """package caracal.authz

default result := {"decision": "deny"}

result := {"decision": "allow"} if input.n == 1 + "a"
"""
OPA_MESSAGE = (
    "OPA's compiler refuses policy.rego: policy.rego:5: rego_type_error: plus: invalid"
    " argument(s); have: (number, string, ???); want: (x: number, y: number, z: number)"
)
BROKEN = "package caracal.authz\nresult := {\n"
GOOD = 'package caracal.authz\n\nresult := {"decision": "allow"}\n'


def test_regorus_accepts_the_module() -> None:
    check_contract(TYPE_ERROR, "policy.rego")  # raises if regorus refused it
    assert check_in_sandbox(TYPE_ERROR) is None


@needs_opa
def test_the_sandbox_reports_opas_compile_error() -> None:
    error = check_in_sandbox(TYPE_ERROR, opa=True)
    assert error is not None and error.message == OPA_MESSAGE
    assert check_in_sandbox(GOOD, opa=True) is None
    error = check_in_sandbox('package caracal.authz\nresult := {"decision": "allow"\n', opa=True)
    assert error is not None and error.message.startswith("policy.rego:3:")  # regorus' text


@needs_opa
def test_upload_of_a_module_opa_refuses_is_422(client: TestClient, zone: dict[str, Any]) -> None:
    url = f"/v1/zones/{zone['id']}/policies"
    response = client.post(url, json={"name": "typed", "content": TYPE_ERROR})
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_rego"
    assert response.json()["detail"] == OPA_MESSAGE
    assert client.get(url).json() == []  # nothing stored

    created = client.post(url, json={"name": "ok", "content": GOOD})
    assert created.status_code == 201, created.text
    versions = f"{url}/{created.json()['id']}/versions"
    response = client.post(versions, json={"content": TYPE_ERROR})
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_rego"
    assert response.json()["detail"] == OPA_MESSAGE
    assert len(client.get(f"{url}/{created.json()['id']}").json()["versions"]) == 1


@pytest.fixture
def client_without_opa_check(database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(database_url, tmp_path, opa_compile_check="off")
    with TestClient(create_app(settings, kek=TEST_KEK), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield client


def test_the_check_can_be_turned_off(client_without_opa_check: TestClient) -> None:
    client = client_without_opa_check
    zone = client.post("/v1/zones", json={"name": "z"}).json()
    url = f"/v1/zones/{zone['id']}/policies"
    response = client.post(url, json={"name": "typed", "content": TYPE_ERROR})
    assert response.status_code == 201, response.text


def test_without_opa_installed_only_regorus_checks(tmp_path: Path) -> None:
    python, env = python_without_opa(tmp_path)
    script = (
        "import asyncio\n"
        "from controlplane.pdp.opa_engine import opa_available\n"
        "from controlplane.policies.policies import validate_rego\n"
        "assert not opa_available()\n"
        f"for content in {[TYPE_ERROR, BROKEN]!r}:\n"
        "    print(asyncio.run(validate_rego(content, 'auto')))\n"
    )
    run = subprocess.run(
        [*python, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert run.returncode == 0, run.stderr
    accepted, refused = run.stdout.splitlines()
    assert accepted == "None"
    assert refused.startswith("policy.rego:3:")  # regorus refuses the broken module
