"""Unit tests: no database. A test here that asks for one fails at once instead of quietly
starting PostgreSQL; move such a test out of ``tests/unit/``."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """Refused: unit tests run without a database."""
    pytest.fail("tests/unit/ runs without a database; move this test out of tests/unit/")
