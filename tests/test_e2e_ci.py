"""End to end, as a new user does it: serve, bootstrap, decide, push a changed policy, decide.

Runs the real entry point (embedded PostgreSQL) and the real ``caracal policies push`` CLI in
subprocesses.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from controlplane.pdp.templates import get_template
from tests.conftest import stderr_of
from tests.test_serve import TOKEN, free_port, start, wait_for

VIEWER_READS = {
    "subject": {"id": "dev@example.com", "roles": ["viewer"]},
    "resource": {"identifier": "resource://example", "scopes": ["read"]},
    "requested_scopes": ["read"],
}


VIEWER_TEST = """package caracal.authz_test
import rego.v1
import data.caracal.authz

test_viewer_cannot_read if {
	viewer := {"subject": {"roles": ["viewer"]}, "requested_scopes": ["read"]}
	authz.result.decision == "deny" with input as viewer
}
"""


def cli(*args: str, url: str, token: str = TOKEN) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARACAL_")}
    env.update(CARACAL_URL=url, CARACAL_ADMIN_TOKEN=token)
    return subprocess.run(
        [sys.executable, "-m", "controlplane", "policies", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def decide(base: str, app_id: str) -> dict[str, object]:
    response = httpx.post(
        f"{base}/v1/zones/zone1/decisions",
        json={"input": {**VIEWER_READS, "application": {"id": app_id}}},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_bootstrap_decide_push_decide(tmp_path: Path, data_dir: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start(data_dir, port, CARACAL_LOCAL_BOOTSTRAP_ENABLED="true")
    try:
        wait_for(f"{base}/health")
        boot = httpx.post(
            f"{base}/v1/local/bootstrap", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert boot.status_code == 201, boot.text
        app_id = boot.json()["app_id"]
        assert decide(base, app_id)["decision"] == "allow"

        # The user keeps the policy in a folder, with a test, and takes "read" from viewers.
        template = get_template("role-based")
        assert template is not None
        changed = template.content.replace('"viewer": {"read"}', '"viewer": {"list"}')
        assert changed != template.content
        folder = tmp_path / "policies"
        folder.mkdir()
        (folder / "role-based.rego").write_text(changed)
        (folder / "role-based_test.rego").write_text(VIEWER_TEST)

        pushed = cli(
            "push", str(folder), "--zone", "zone1", "--set", "local", "--activate", url=base
        )
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        assert "PASS" in pushed.stdout
        assert "updated  policy role-based (version 2)" in pushed.stdout
        assert "created  policy set local version 2" in pushed.stdout
        assert "activated local version 2" in pushed.stdout
        # the process that answered the activation decides with the new version at once
        denied = decide(base, app_id)
        assert denied["decision"] == "deny"

        again = cli(
            "push", str(folder), "--zone", "zone1", "--set", "local", "--activate", url=base
        )
        assert again.returncode == 0, again.stderr
        assert "unchanged policy role-based (version 2)" in again.stdout
        assert "unchanged policy set local (version 2)" in again.stdout
        assert "already active" in again.stdout

        # shadow: the active version stays, the new one runs observe-only
        (folder / "role-based.rego").write_text(template.content)
        shadow = cli(
            "push", str(folder), "--zone", "zone1", "--set", "local", "--shadow", "--skip-tests",
            url=base,
        )  # fmt: skip
        assert shadow.returncode == 0, shadow.stdout + shadow.stderr
        assert "shadowing with local version" in shadow.stdout
        assert decide(base, app_id)["decision"] == "deny"
        sets = httpx.get(
            f"{base}/v1/zones/zone1/policy-sets", headers={"Authorization": f"Bearer {TOKEN}"}
        ).json()
        assert sets[0]["shadow_version_id"] is not None

        # exit codes: failing tests 1, API rejection 3 (with the contract's code), no server 4
        failing = cli("push", str(folder), "--zone", "zone1", "--set", "local", url=base)
        assert failing.returncode == 1
        assert "FAIL" in failing.stdout
        (folder / "role-based_test.rego").unlink()
        (folder / "broken.rego").write_text("package other\nresult := true\n")
        rejected = cli(
            "push", str(folder), "--zone", "zone1", "--set", "local", "--skip-tests", url=base
        )
        assert rejected.returncode == 3, rejected.stdout + rejected.stderr
        assert "422 invalid_rego" in rejected.stderr
        assert cli("push", str(folder), "--zone", "zone2", "--set", "x", "--skip-tests",
                   url=base).returncode == 3  # fmt: skip
        unreachable = cli(
            "push", str(folder), "--zone", "zone1", "--set", "local", "--skip-tests",
            url=f"http://127.0.0.1:{free_port()}",
        )  # fmt: skip
        assert unreachable.returncode == 4
        assert "cannot reach" in unreachable.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        stderr_of(proc)
