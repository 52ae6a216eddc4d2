"""``caracal policies test DIR``: a line per test, a summary, non-zero exit on failure."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from controlplane.__main__ import main

POLICY = """package caracal.authz
import rego.v1

default result := {"allow": false}
result := {"allow": true} if "admin" in input.subject.roles
"""

PASSING = """package caracal.authz_test
import rego.v1
import data.caracal.authz

test_admin_is_allowed if authz.result.allow with input as {"subject": {"roles": ["admin"]}}
"""

FAILING = """package caracal.authz_test
import rego.v1
import data.caracal.authz

test_guest_is_allowed if authz.result.allow with input as {"subject": {"roles": ["guest"]}}
"""


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_text(content)
    return directory


def test_passing_directory_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = write(tmp_path / "p", {"admin.rego": POLICY, "admin_test.rego": PASSING})
    assert main(["policies", "test", str(directory)]) == 0
    out = capsys.readouterr().out
    assert "PASS     admin_test.rego: caracal.authz_test.test_admin_is_allowed" in out
    assert "1 passed, 0 failed" in out


def test_failing_test_exits_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = write(tmp_path / "f", {"admin.rego": POLICY, "admin_test.rego": FAILING})
    assert main(["policies", "test", str(directory)]) == 1
    out = capsys.readouterr().out
    assert "FAIL     admin_test.rego: caracal.authz_test.test_guest_is_allowed" in out
    assert "0 passed, 1 failed" in out


def test_contract_violation_exits_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = write(tmp_path / "c", {"other.rego": "package other\nresult := true\n"})
    assert main(["policies", "test", str(directory)]) == 1
    out = capsys.readouterr().out
    assert "CONTRACT other.rego" in out
    assert "caracal.authz" in out


def test_templates_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "templates"
    shutil.copytree(Path(__file__).resolve().parent.parent / "policies" / "templates", directory)
    assert main(["policies", "test", str(directory)]) == 0
    assert " 0 failed" in capsys.readouterr().out


def test_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["policies", "test", str(tmp_path / "absent")]) == 2
