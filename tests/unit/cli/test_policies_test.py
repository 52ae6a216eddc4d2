"""``caracal policies test DIR``: a line per test, a summary, non-zero exit on failure."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from controlplane.cli.main import main
from controlplane.package_data import TEMPLATE_DIR

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
    shutil.copytree(TEMPLATE_DIR, directory)
    assert main(["policies", "test", str(directory)]) == 0
    assert " 0 failed" in capsys.readouterr().out


def test_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["policies", "test", str(tmp_path / "absent")]) == 2


def test_a_file_that_is_not_utf8_is_named_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "broken.rego").write_bytes(b"package caracal.authz\n# caf\xe9\nresult := true\n")
    assert main(["policies", "test", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "broken.rego: not UTF-8 text" in err
    assert "\n" not in err
    assert (
        main(["policies", "push", str(tmp_path), "--zone", "z", "--set", "s", "--token", "t"]) == 2
    )
    assert "broken.rego: not UTF-8 text" in capsys.readouterr().err


def test_push_checks_its_arguments_before_calling_the_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARACAL_ADMIN_TOKEN", "cpk_token")
    (tmp_path / "p.rego").write_text("package caracal.authz\nresult := true\n")
    # the URL answers nothing: a usage error must come before any request
    base = ["policies", "push", str(tmp_path), "--url", "http://127.0.0.1:1"]
    assert main([*base, "--zone", "z", "--set", ""]) == 2
    assert "--set must not be empty" in capsys.readouterr().err
    assert main([*base, "--zone", "z", "--set", "s", "--token", "t\u00f6ken"]) == 2
    assert "visible ASCII" in capsys.readouterr().err
