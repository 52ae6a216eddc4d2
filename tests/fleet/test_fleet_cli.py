"""``caracal policies push … --activate --wait-fleet``: waits for the zone's OPA instances."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controlplane.cli.main import main
from tests.conftest import ADMIN_TOKEN, make_settings
from tests.fleet.opa_protocol import Downloader, status_report
from tests.fleet.test_fleet_longpoll import LiveServer, setup_zone

POLICY = "package caracal.authz\n\nimport rego.v1\n\nresult := input.x == 1\n"


@pytest.fixture
def live(database_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(make_settings(database_url, tmp_path)) as server:
        yield server


def push(base: str, directory: Path, zone_id: str, *extra: str) -> int:
    return main(
        [
            "policies", "push", str(directory), "--zone", zone_id, "--set", "main",
            "--url", base, "--token", ADMIN_TOKEN, "--activate", "--wait-fleet", *extra,
        ]
    )  # fmt: skip


class FakeOpa:
    """An OPA instance: downloads the bundle and reports its revision, like OPA's plugins."""

    def __init__(self, live: LiveServer, zone_id: str, token: str, key: str, name: str) -> None:
        self.http = live.client(token)
        self.zone_id, self.name = zone_id, name
        self.downloader = Downloader(
            self.http, f"/v1/zones/{zone_id}/opa/bundles/active", {zone_id: key}, keyid=zone_id
        )

    def sync(self) -> None:
        self.downloader.one_shot()
        report = status_report(self.name, self.downloader.revision)
        response = self.http.post(f"/v1/zones/{self.zone_id}/opa/status", json=report)
        assert response.status_code == 204


def test_wait_fleet_times_out_naming_laggards_then_succeeds(
    live: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    http = live.client()
    zone_id, _, token, key = setup_zone(http)
    opas = [FakeOpa(live, zone_id, token, key, f"opa-{i}") for i in range(2)]
    for opa in opas:
        opa.sync()
    (tmp_path / "authz.rego").write_text(POLICY)

    started = time.monotonic()
    assert push(live.base, tmp_path, zone_id, "--skip-tests", "--timeout", "1.5") == 5
    assert 1.4 <= time.monotonic() - started < 10
    err = capsys.readouterr().err
    assert "opa-0" in err and "opa-1" in err and "lag" in err

    # the instances catch up while the command waits
    def catch_up() -> None:
        time.sleep(0.5)
        for opa in opas:
            opa.sync()

    helper = threading.Thread(target=catch_up)
    helper.start()
    assert push(live.base, tmp_path, zone_id, "--skip-tests", "--timeout", "20") == 0
    helper.join()
    assert "every live OPA instance runs" in capsys.readouterr().out


def test_wait_fleet_needs_activate(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "authz.rego").write_text(POLICY)
    code = main(
        ["policies", "push", str(tmp_path), "--zone", "z", "--set", "s", "--token", "t",
         "--wait-fleet", "--skip-tests"]
    )  # fmt: skip
    assert code == 2
    assert "--wait-fleet needs --activate" in capsys.readouterr().err
