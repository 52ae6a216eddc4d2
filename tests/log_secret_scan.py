"""A log handler that looks for secrets in every record the service logs during the suite.

``tests/conftest.py`` attaches it for the whole test session with the service's loggers at
DEBUG, so every log line any test makes the service write is formatted as in production
(JSON, ``extra`` fields included) and searched for secret shapes: generated admin tokens
and client secrets, the test session's admin token and its KEK.
"""

from __future__ import annotations

import logging
import re

from controlplane.keys.crypto import ADMIN_TOKEN_PREFIX, CLIENT_SECRET_PREFIX
from controlplane.logs import JsonFormatter

#: A generated admin token or client secret: prefix + 32 random bytes, url-safe base64.
GENERATED_SECRET = re.compile(
    rf"(?:{re.escape(ADMIN_TOKEN_PREFIX)}|{re.escape(CLIENT_SECRET_PREFIX)})[A-Za-z0-9_-]{{43}}"
)


class SecretScanningHandler(logging.Handler):
    """Formats each record as the service does and keeps the ones carrying a secret."""

    def __init__(self, known_secrets: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.known = [s for s in known_secrets if s]
        self.scanned = 0
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        self.scanned += 1
        if GENERATED_SECRET.search(line) or any(secret in line for secret in self.known):
            self.leaks.append(line)
