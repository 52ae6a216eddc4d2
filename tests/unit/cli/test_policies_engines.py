"""``caracal policies test DIR --engine regorus|opa|both``: the same tests under OPA's engine."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from controlplane.cli.main import main
from controlplane.pdp.opa_engine import opa_available
from tests.without_opa import python_without_opa

needs_opa = pytest.mark.skipif(not opa_available(), reason="OPA's engine is not installed")

#: regorus and OPA disagree on ``not f(undefined)``: regorus treats the call's undefined
#: argument as a false expression (``not`` succeeds), OPA leaves the rule undefined.
POLICY = """package caracal.authz

default result := {"decision": "deny"}

# Allowed when the request carries no "missing" object.
result := {"decision": "allow"} if not is_object(input.missing)
"""

TESTS = """package caracal.authz_test

import data.caracal.authz

test_allows_without_missing if authz.result.decision == "allow" with input as {}

test_denies_with_missing if authz.result.decision == "deny" with input as {"missing": {}}
"""

#: regorus accepts it; OPA's type checker refuses ``1 + "a"`` at compile time.
TYPE_ERROR = """package caracal.authz

default result := {"decision": "deny"}

result := {"decision": "allow"} if input.n == 1 + "a"
"""


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_text(content)
    return directory


def test_regorus_is_the_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = write(tmp_path, {"p.rego": POLICY, "p_test.rego": TESTS})
    assert main(["policies", "test", str(directory)]) == 0
    assert "2 passed, 0 failed" in capsys.readouterr().out


@needs_opa
def test_opa_runs_the_tests_under_opa(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = write(tmp_path, {"p.rego": POLICY, "p_test.rego": TESTS})
    assert main(["policies", "test", str(directory), "--engine", "opa"]) == 1
    out = capsys.readouterr().out
    assert "FAIL     p_test.rego: caracal.authz_test.test_allows_without_missing" in out
    assert "PASS     p_test.rego: caracal.authz_test.test_denies_with_missing" in out
    assert "1 passed, 1 failed" in out


@needs_opa
def test_opa_alone_passes_a_portable_module(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    portable = POLICY.replace("not is_object(input.missing)", 'not "missing" in object.keys(input)')
    directory = write(tmp_path, {"p.rego": portable, "p_test.rego": TESTS})
    assert main(["policies", "test", str(directory), "--engine", "opa"]) == 0
    assert "2 passed, 0 failed" in capsys.readouterr().out


@needs_opa
def test_both_reports_the_tests_that_differ(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = write(tmp_path, {"p.rego": POLICY, "p_test.rego": TESTS})
    assert main(["policies", "test", str(directory), "--engine", "both"]) == 1
    out = capsys.readouterr().out
    regorus, opa = out.split("== opa")
    assert "2 passed, 0 failed" in regorus
    assert "1 passed, 1 failed" in opa
    differences = out.split("== differences")[1]
    assert "DIFFERS  p_test.rego: caracal.authz_test.test_allows_without_missing" in differences
    assert "regorus: PASS" in differences and "opa:     FAIL (test is undefined" in differences
    assert "test_denies_with_missing" not in differences
    assert "1 test(s) differ between regorus and opa" in out


@needs_opa
def test_both_agreeing_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    portable = POLICY.replace("not is_object(input.missing)", 'not "missing" in object.keys(input)')
    directory = write(tmp_path, {"p.rego": portable, "p_test.rego": TESTS})
    assert main(["policies", "test", str(directory), "--engine", "both"]) == 0
    assert "0 test(s) differ" in capsys.readouterr().out


@needs_opa
def test_a_module_opa_does_not_compile_is_a_load_error_under_opa(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = write(tmp_path, {"p.rego": TYPE_ERROR})
    assert main(["policies", "test", str(directory)]) == 0
    capsys.readouterr()
    assert main(["policies", "test", str(directory), "--engine", "opa"]) == 1
    out = capsys.readouterr().out
    assert "ERROR    p.rego: p.rego:5: rego_type_error: plus: invalid argument(s)" in out


@pytest.mark.parametrize("engine", ["opa", "both"])
def test_without_opa_installed_says_how_to_install_it(tmp_path: Path, engine: str) -> None:
    directory = write(tmp_path / "p", {"p.rego": POLICY, "p_test.rego": TESTS})
    python, env = python_without_opa(tmp_path)

    def caracal(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*python, "-m", "controlplane", "policies", "test", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    regorus = caracal(str(directory))  # the trimmed environment works without OPA
    assert regorus.returncode == 0, regorus.stderr
    assert "2 passed, 0 failed" in regorus.stdout
    run = caracal(str(directory), "--engine", engine)
    assert run.returncode == 2, run.stderr
    assert run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert lines == [
        "error: the OPA engine is not installed: pip install --ignore-requires-python"
        " opa-golib-python-bindings==0.4.4 (make install does)"
    ]
