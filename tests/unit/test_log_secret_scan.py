"""The whole-suite log scan (``tests/log_secret_scan.py``) finds what it is meant to find."""

from __future__ import annotations

import logging

from controlplane.keys.crypto import generate_admin_token, generate_client_secret
from tests.log_secret_scan import SecretScanningHandler


def test_finds_generated_secrets_and_known_ones_in_messages_and_extra_fields() -> None:
    handler = SecretScanningHandler(["known-secret-value"])
    logger = logging.getLogger("log_secret_scan_selftest")  # outside the session's scan
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning("clean line", extra={"zone_id": "z1", "status": 200})
        logger.warning("token %s", generate_admin_token())
        logger.warning("created", extra={"body": {"client_secret": generate_client_secret()}})
        logger.warning("config", extra={"value": "known-secret-value"})
    finally:
        logger.removeHandler(handler)
    assert handler.scanned == 4
    assert len(handler.leaks) == 3
    assert "clean line" not in " ".join(handler.leaks)


def test_the_session_scan_is_attached(no_secrets_in_logs: SecretScanningHandler) -> None:
    before = no_secrets_in_logs.scanned
    logging.getLogger("controlplane.anything").debug("seen by the session scan")
    assert no_secrets_in_logs.scanned == before + 1
