"""``caracal policies test|push``: test Rego policies locally and ship them from CI.

Exit codes: 0 success, 1 a Rego test failed or a module breaks the contract, 2 usage
error, 3 the API rejected a request, 4 the API could not be reached.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from controlplane.policies.manifest import content_sha256, manifest_sha256

if TYPE_CHECKING:
    from controlplane.pdp.rego_test_runner import TestReport, TestResult

EXIT_OK, EXIT_TESTS_FAILED, EXIT_USAGE, EXIT_API_REJECTED, EXIT_CONNECTION = 0, 1, 2, 3, 4
DEFAULT_URL = "http://localhost:3000"


class ApiRejected(Exception):
    """The API answered with an error envelope."""

    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        code = body.get("error", "unknown_error") if isinstance(body, dict) else "unknown_error"
        detail = body.get("detail") if isinstance(body, dict) else None
        issues = body.get("issues") if isinstance(body, dict) else None
        message = f"{method} {path} -> {status} {code}"
        if detail:
            message += f": {detail}"
        for issue in issues or []:
            message += f"\n  {'.'.join(map(str, issue.get('path', []))) or '(body)'}: "
            message += str(issue.get("message"))
        super().__init__(message)
        self.code = code


def _print(message: str) -> None:
    print(message, flush=True)


# ---- test -------------------------------------------------------------------------------


def run_tests(
    directory: Path, *, recursive: bool = False, verbose: bool = False, engine: str = "regorus"
) -> bool:
    """Run the directory's Rego tests under ``engine`` (``regorus``, ``opa`` or ``both``),
    print a line per test and a summary; True when all pass (and, for ``both``, when no test's
    outcome differs between the engines). ``both`` prints each engine's report, then the tests
    whose outcome differs."""
    from controlplane.pdp.rego_test_runner import run_rego_tests

    reports: dict[str, TestReport] = {}
    for name in ("regorus", "opa") if engine == "both" else (engine,):
        if engine == "both":
            _print(f"== {name}")
        if name == "opa":
            from controlplane.pdp.opa_engine import run_opa_tests

            reports[name] = run_opa_tests(directory, recursive=recursive)
        else:
            reports[name] = run_rego_tests(directory, recursive=recursive)
        _print_report(reports[name], verbose=verbose)
    if engine != "both":
        return reports[engine].ok
    differing = _differences(reports["regorus"], reports["opa"])
    if differing:
        _print("== differences")
    for line in differing:
        _print(line)
    _print(f"{len(differing)} test(s) differ between regorus and opa")
    return not differing and all(report.ok for report in reports.values())


def _print_report(report: TestReport, *, verbose: bool) -> None:
    """A line per contract or load error and per test, then the summary line."""
    for error in report.contract_errors:
        _print(f"CONTRACT {error.file}: {error.error}")
    for error in report.load_errors:
        _print(f"ERROR    {error.file}: {error.error}")
    for result in report.results:
        status = "PASS" if result.passed else "FAIL"
        line = f"{status}     {result.file}: {result.package}.{result.name}"
        if verbose or not result.passed:
            line += f" ({result.duration_ms:.2f} ms)"
        if result.error:
            line += f"\n         {result.error}"
        _print(line)
    _print(
        f"{report.passed} passed, {report.failed} failed, "
        f"{len(report.contract_errors)} contract error(s), {len(report.load_errors)} load error(s)"
    )


def _differences(regorus: TestReport, opa: TestReport) -> list[str]:
    """``DIFFERS`` lines for the tests that pass under one engine and not the other (or run
    under one only)."""

    def outcomes(report: TestReport) -> dict[tuple[str, str], TestResult]:
        return {(r.file, f"{r.package}.{r.name}"): r for r in report.results}

    ours, theirs = outcomes(regorus), outcomes(opa)
    lines = []
    for key in dict.fromkeys([*ours, *theirs]):
        a, b = ours.get(key), theirs.get(key)
        if a is not None and b is not None and a.passed == b.passed:
            continue
        lines.append(
            f"DIFFERS  {key[0]}: {key[1]}\n         regorus: {_outcome(a)}\n"
            f"         opa:     {_outcome(b)}"
        )
    return lines


def _outcome(result: TestResult | None) -> str:
    if result is None:
        return "not run"
    return "PASS" if result.passed else f"FAIL ({result.error})"


def cmd_test(args: argparse.Namespace) -> int:
    """``caracal policies test DIR [--engine regorus|opa|both]``."""
    directory = Path(args.directory)
    if not directory.is_dir():
        print(f"error: {directory} is not a directory", file=sys.stderr)
        return EXIT_USAGE
    if args.engine != "regorus":
        from controlplane.pdp.opa_engine import INSTALL_HINT, opa_available

        if not opa_available():
            print(f"error: the OPA engine is not installed: {INSTALL_HINT}", file=sys.stderr)
            return EXIT_USAGE
    try:
        passed = run_tests(
            directory, recursive=args.recursive, verbose=args.verbose, engine=args.engine
        )
    except ValueError as exc:  # a file that is not UTF-8
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK if passed else EXIT_TESTS_FAILED


# ---- push -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalPolicy:
    """A policy module found in the directory: its name is the file name without ``.rego``."""

    name: str
    content: str


def local_policies(directory: Path) -> list[LocalPolicy]:
    """The directory's policy modules (not ``*_test.rego``), ordered by name."""
    from controlplane.pdp.rego_test_runner import read_rego

    return [
        LocalPolicy(path.stem, read_rego(path))
        for path in sorted(directory.glob("*.rego"))
        if not path.name.endswith("_test.rego")
    ]


class Api:
    """A thin client of the control-plane REST API for one zone."""

    def __init__(self, url: str, token: str, zone: str) -> None:
        self.client = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        self.zone = zone

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """Send one request under the zone; raise ApiRejected on an error answer."""
        full = f"/v1/zones/{self.zone}{path}"
        response = self.client.request(method, full, json=body)
        try:
            payload = response.json() if response.content else None
        except ValueError:
            payload = None
        if response.status_code >= 400:
            raise ApiRejected(method, full, response.status_code, payload)
        return payload


def push(
    api: Api, directory: Path, set_name: str, *, activate: bool, shadow: bool
) -> dict[str, Any]:
    """Make the zone's policies and policy set match the directory; return what was done."""
    policies = local_policies(directory)
    if not policies:
        raise ValueError(f"{directory} holds no policy modules")
    existing = {p["name"]: p for p in api.call("GET", "/policies")}
    entries: list[tuple[str, str]] = []
    for policy in policies:
        digest = content_sha256(policy.content)
        remote = existing.get(policy.name)
        if remote is None:
            created = api.call(
                "POST", "/policies", {"name": policy.name, "content": policy.content}
            )
            version = created["version"]
            _print(f"created  policy {policy.name} (version {version['version']})")
        else:
            versions = api.call("GET", f"/policies/{remote['id']}")["versions"]
            latest = max(versions, key=lambda v: v["version"])
            if latest["content_sha256"] == digest:
                version = latest
                _print(f"unchanged policy {policy.name} (version {version['version']})")
            else:
                version = api.call(
                    "POST", f"/policies/{remote['id']}/versions", {"content": policy.content}
                )
                _print(f"updated  policy {policy.name} (version {version['version']})")
        entries.append((version["id"], version["content_sha256"]))

    sets = {s["name"]: s for s in api.call("GET", "/policy-sets")}
    policy_set = sets.get(set_name) or api.call("POST", "/policy-sets", {"name": set_name})
    if set_name not in sets:
        _print(f"created  policy set {set_name}")
    detail = api.call("GET", f"/policy-sets/{policy_set['id']}")
    wanted = manifest_sha256(entries)
    same = [v for v in detail.get("versions", []) if v["manifest_sha256"] == wanted]
    if same:
        set_version = max(same, key=lambda v: v["version"])
        _print(f"unchanged policy set {set_name} (version {set_version['version']})")
    else:
        set_version = api.call(
            "POST",
            f"/policy-sets/{policy_set['id']}/versions",
            {"manifest": [{"policy_version_id": vid} for vid, _ in entries]},
        )
        _print(f"created  policy set {set_name} version {set_version['version']}")

    result: dict[str, Any] = {"policy_set_version_id": set_version["id"], "activated": False}
    if activate or shadow:
        active_id, shadow_id = _zone_active_versions(api)
        if activate:
            if active_id == set_version["id"]:
                _print(f"already active: {set_name} version {set_version['version']}")
            else:
                body = {"version_id": set_version["id"]}
                answer = api.call("POST", f"/policy-sets/{policy_set['id']}/activate", body)
                _print(
                    f"activated {set_name} version {set_version['version']}"
                    f" (outbox {answer['outbox_id']})"
                )
                result["activated"] = True
        else:
            if active_id is None:
                raise ApiRejected("POST", "activate", 409, {
                    "error": "no_active_policy_set",
                    "detail": "a shadow needs an active version in the zone; push --activate first",
                })  # fmt: skip
            if shadow_id == set_version["id"]:
                _print(f"already shadow: {set_name} version {set_version['version']}")
            else:
                owner = _owner_of(api, active_id)
                body = {"version_id": active_id, "shadow_version_id": set_version["id"]}
                answer = api.call("POST", f"/policy-sets/{owner}/activate", body)
                _print(
                    f"shadowing with {set_name} version {set_version['version']}"
                    f" (outbox {answer['outbox_id']})"
                )
                result["activated"] = True
    return result


def _zone_active_versions(api: Api) -> tuple[str | None, str | None]:
    """The zone's active and shadow set-version ids, read from the policy-set list."""
    active = shadow = None
    for item in api.call("GET", "/policy-sets"):
        active = active or item.get("active_version_id")
        shadow = shadow or item.get("shadow_version_id")
    return active, shadow


def _owner_of(api: Api, version_id: str) -> str:
    """The id of the policy set that owns a set version."""
    for item in api.call("GET", "/policy-sets"):
        if item.get("active_version_id") == version_id:
            return item["id"]
    raise ApiRejected("GET", "/policy-sets", 404, {"error": "version_not_found"})


_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")


def cmd_push(args: argparse.Namespace) -> int:
    """``caracal policies push DIR --zone Z --set NAME [--activate|--shadow]``."""
    directory = Path(args.directory)
    if not directory.is_dir():
        print(f"error: {directory} is not a directory", file=sys.stderr)
        return EXIT_USAGE
    token = args.token or os.environ.get("CARACAL_ADMIN_TOKEN")
    if not token:
        print("error: set CARACAL_ADMIN_TOKEN (or pass --token)", file=sys.stderr)
        return EXIT_USAGE
    if not _VISIBLE_ASCII.fullmatch(token):
        print("error: the admin token must be visible ASCII characters", file=sys.stderr)
        return EXIT_USAGE
    if args.wait_fleet and (not args.activate or not 0 < args.timeout <= 86_400):
        print("error: --wait-fleet needs --activate and a --timeout up to 1 day", file=sys.stderr)
        return EXIT_USAGE
    for option, value in (("--set", args.set), ("--zone", args.zone)):
        if not value.strip():
            print(f"error: {option} must not be empty", file=sys.stderr)
            return EXIT_USAGE
    try:
        if not args.skip_tests and not run_tests(directory):
            print("error: Rego tests failed; nothing was pushed", file=sys.stderr)
            return EXIT_TESTS_FAILED
    except ValueError as exc:  # a file that is not UTF-8
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    url = args.url or os.environ.get("CARACAL_URL") or DEFAULT_URL
    api = Api(url, token, args.zone)
    try:
        result = push(api, directory, args.set, activate=args.activate, shadow=args.shadow)
        if args.wait_fleet:
            return _wait_fleet(api, result["policy_set_version_id"], args.timeout)
    except ApiRejected as exc:
        print(f"error: API rejected the request: {exc}", file=sys.stderr)
        return EXIT_API_REJECTED
    except httpx.TransportError as exc:
        print(f"error: cannot reach {url}: {exc}", file=sys.stderr)
        return EXIT_CONNECTION
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        api.client.close()
    return EXIT_OK


def _wait_fleet(api: Api, version_id: str, timeout: float) -> int:
    """Wait for the zone's OPA instances to load ``version_id``; name the laggards."""
    from controlplane.cli.fleet_wait import EXIT_FLEET_LAGGING, wait_for_fleet

    lagging = wait_for_fleet(api, version_id, timeout)
    if lagging:
        names = ", ".join(
            f"{i['instance_id']} (at {i.get('active_revision') or 'nothing'})" for i in lagging
        )
        print(f"error: after {timeout:g} s, OPA instances lag: {names}", file=sys.stderr)
        return EXIT_FLEET_LAGGING
    _print(f"every live OPA instance runs set version {version_id}")
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``policies test`` and ``policies push`` to the CLI."""
    policies = sub.add_parser("policies", help="test and ship Rego policies")
    commands = policies.add_subparsers(dest="policies_command", required=True)

    test = commands.add_parser("test", help="run the test_* rules of DIR's .rego files")
    test.add_argument("directory")
    test.add_argument("--recursive", action="store_true", help="also read subdirectories")
    test.add_argument("-v", "--verbose", action="store_true")
    test.add_argument(
        "--engine",
        choices=("regorus", "opa", "both"),
        default="regorus",
        help="the engine that runs the tests: regorus (the PDP's, default), opa (OPA's own,"
        " optional) or both (reports the tests whose outcome differs)",
    )
    test.set_defaults(func=cmd_test)

    push_cmd = commands.add_parser("push", help="create policies/versions and a set version")
    push_cmd.add_argument("directory")
    push_cmd.add_argument("--zone", required=True)
    push_cmd.add_argument("--set", required=True, help="policy set name (created if missing)")
    mode = push_cmd.add_mutually_exclusive_group()
    mode.add_argument("--activate", action="store_true", help="make it the active version")
    mode.add_argument("--shadow", action="store_true", help="run it as the shadow version")
    push_cmd.add_argument("--skip-tests", action="store_true", help="do not run Rego tests first")
    push_cmd.add_argument("--url", help=f"API base URL (default $CARACAL_URL or {DEFAULT_URL})")
    push_cmd.add_argument("--token", help="admin token (default $CARACAL_ADMIN_TOKEN)")
    push_cmd.add_argument(
        "--wait-fleet",
        action="store_true",
        help="with --activate: wait until every live OPA instance of the zone runs it",
    )
    push_cmd.add_argument(
        "--timeout", type=float, default=60, help="seconds --wait-fleet waits (default 60)"
    )
    push_cmd.set_defaults(func=cmd_push)
