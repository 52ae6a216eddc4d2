"""run_rego_tests: discovery, pass/fail/error reporting and contract checks of a directory."""

from __future__ import annotations

from pathlib import Path

from controlplane.pdp import TestReport, run_rego_tests

POLICY = """package caracal.authz

import rego.v1

default result := {"allow": false}

result := {"allow": true} if "admin" in input.subject.roles
"""

POLICY_TESTS = """package caracal.authz_test

import rego.v1

import data.caracal.authz

test_admin_is_allowed if {
	authz.result.allow with input as {"subject": {"roles": ["admin"]}}
}

test_guest_is_allowed_but_is_not if {
	authz.result.allow with input as {"subject": {"roles": ["guest"]}}
}

test_explicit_false := false

test_divides_by_zero if {
	x := 1 / count([])
	x > 0
}

test_returns_a_number := 7

test_prints if {
	print("checking", 42)
	false
}

helper := true
"""


def write(directory: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return directory


def by_name(report: TestReport) -> dict[str, tuple[bool, str | None]]:
    return {r.name: (r.passed, r.error) for r in report.results}


def test_pass_fail_error_and_contract_violation(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "authz.rego": POLICY,
            "authz_test.rego": POLICY_TESTS,
            "wrong_package.rego": "package other\n\nresult := true\n",
            "no_result.rego": "package caracal.authz\n\nallow := true\n",
            "notes.txt": "not rego",
        },
    )
    report = run_rego_tests(tmp_path)
    results = by_name(report)
    assert list(results) == [
        "test_admin_is_allowed",
        "test_guest_is_allowed_but_is_not",
        "test_explicit_false",
        "test_divides_by_zero",
        "test_returns_a_number",
        "test_prints",
    ]
    assert results["test_admin_is_allowed"] == (True, None)
    assert results["test_guest_is_allowed_but_is_not"] == (
        False,
        "test is undefined (a test passes only when it evaluates to true)",
    )
    assert results["test_explicit_false"] == (False, "test evaluated to false")
    passed, error = results["test_divides_by_zero"]
    assert not passed
    assert error == "authz_test.rego:18:12: divide by zero"
    assert "Stack backtrace" not in error
    assert results["test_returns_a_number"] == (False, "test evaluated to 7, expected true")
    prints = next(r for r in report.results if r.name == "test_prints")
    assert prints.output and "checking 42" in prints.output[0]
    assert all(r.file == "authz_test.rego" for r in report.results)
    assert all(r.package == "caracal.authz_test" for r in report.results)

    assert [(e.file, e.error) for e in report.contract_errors] == [
        (
            "no_result.rego",
            'no_result.rego: policy must define a rule named "result" '
            "(result := …, result if …, or default result := …)",
        ),
        ("wrong_package.rego", "wrong_package.rego: package must be caracal.authz, found other"),
    ]
    assert report.load_errors == []
    assert (report.passed, report.failed, report.ok) == (1, 5, False)


def test_all_passing_directory_is_ok(tmp_path: Path) -> None:
    tests = "package caracal.authz_test\n\nimport rego.v1\n\nimport data.caracal.authz\n\n"
    tests += 'test_admin if authz.result.allow with input.subject.roles as ["admin"]\n'
    tests += "test_nobody if not authz.result.allow with input as {}\n"
    report = run_rego_tests(write(tmp_path, {"authz.rego": POLICY, "authz_test.rego": tests}))
    assert report.ok
    assert report.passed == 2
    assert all(r.duration_ms >= 0 for r in report.results)


def test_tests_in_the_policy_package(tmp_path: Path) -> None:
    same_package = "package caracal.authz\n\nimport rego.v1\n\n"
    same_package += 'test_direct if result.allow with input as {"subject": {"roles": ["admin"]}}\n'
    report = run_rego_tests(write(tmp_path, {"p.rego": POLICY, "p_test.rego": same_package}))
    assert by_name(report) == {"test_direct": (True, None)}
    assert report.results[0].package == "caracal.authz"


def test_each_policy_runs_with_its_own_tests(tmp_path: Path) -> None:
    deny_all = "package caracal.authz\n\nresult := false\n"
    allow_tests = "package caracal.authz_test\n\nimport data.caracal.authz\n\n"
    allow_tests += (
        "test_allows if authz.result.allow with input as {'subject': {'roles': ['admin']}}\n"
    )
    allow_tests = allow_tests.replace("'", '"')
    deny_tests = "package caracal.authz_test\n\nimport data.caracal.authz\n\n"
    deny_tests += "test_denies if authz.result == false\n"
    report = run_rego_tests(
        write(
            tmp_path,
            {
                "allow.rego": POLICY,
                "allow_test.rego": allow_tests,
                "deny.rego": deny_all,
                "deny_test.rego": deny_tests,
            },
        )
    )
    assert by_name(report) == {"test_allows": (True, None), "test_denies": (True, None)}
    assert report.ok


def test_unpaired_test_module_uses_the_only_policy(tmp_path: Path) -> None:
    tests = "package caracal.authz_test\n\nimport data.caracal.authz\n\n"
    tests += 'test_admin if authz.result.allow with input.subject.roles as ["admin"]\n'
    report = run_rego_tests(write(tmp_path, {"policy.rego": POLICY, "checks_test.rego": tests}))
    assert by_name(report) == {"test_admin": (True, None)}


def test_unparsable_test_module_is_a_load_error(tmp_path: Path) -> None:
    report = run_rego_tests(
        write(tmp_path, {"authz.rego": POLICY, "authz_test.rego": "package x\ntest_a if {\n"})
    )
    assert report.results == []
    [error] = report.load_errors
    assert error.file == "authz_test.rego"
    assert error.error.startswith("authz_test.rego:")
    assert not report.ok


def test_tests_of_an_unparsable_policy_fail(tmp_path: Path) -> None:
    tests = "package caracal.authz_test\n\nimport data.caracal.authz\n\ntest_a if authz.result\n"
    report = run_rego_tests(
        write(
            tmp_path,
            {"authz.rego": "package caracal.authz\nresult := {\n", "authz_test.rego": tests},
        )
    )
    [result] = report.results
    assert not result.passed
    assert result.error is not None and result.error.startswith(
        "authz.rego did not load: authz.rego:"
    )
    assert [e.file for e in report.contract_errors] == ["authz.rego"]


def test_recursive_reads_subdirectories(tmp_path: Path) -> None:
    tests = "package caracal.authz_test\n\nimport data.caracal.authz\n\n"
    tests += 'test_admin if authz.result.allow with input.subject.roles as ["admin"]\n'
    write(tmp_path, {"team/authz.rego": POLICY, "team/authz_test.rego": tests})
    assert run_rego_tests(tmp_path).results == []
    report = run_rego_tests(tmp_path, recursive=True)
    assert by_name(report) == {"test_admin": (True, None)}
    assert report.results[0].file == "team/authz_test.rego"


def test_empty_directory(tmp_path: Path) -> None:
    report = run_rego_tests(tmp_path)
    assert report.results == [] and report.ok
