"""Header size and slow-client limits of the served process, measured with raw sockets."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.served import AUTH, TOKEN, serve_process


@pytest.fixture
def base(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A served process with 1 s header and body deadlines (10 s / 30 s by default)."""
    with serve_process(
        database_url,
        tmp_path / "data",
        CARACAL_HEADER_TIMEOUT_SECONDS="1",
        CARACAL_BODY_TIMEOUT_SECONDS="1",
    ) as url:
        yield url


def _connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _send_ignoring_reset(sock: socket.socket, data: bytes) -> None:
    # The server may answer and close before reading everything.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


def test_headers_over_64_kib_are_431(base: str) -> None:
    with _connect(base) as sock:
        big = b"x" * (70 * 1024)
        _send_ignoring_reset(
            sock, b"GET /health HTTP/1.1\r\nHost: t\r\nX-Big: " + big + b"\r\n\r\n"
        )
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b'"error":"headers_too_large"' in answer


def test_many_headers_adding_up_over_64_kib_are_431(base: str) -> None:
    headers = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 1000) for i in range(80))
    with _connect(base) as sock:
        _send_ignoring_reset(sock, b"GET /health HTTP/1.1\r\nHost: t\r\n" + headers + b"\r\n")
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]


def test_an_endless_header_is_cut_off(base: str) -> None:
    """A header that never ends is refused once 64 KiB have arrived, not buffered forever."""
    with _connect(base) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\nX-Endless: ")
        sent = 0
        try:
            while sent < 16 * 1024 * 1024:
                sock.sendall(b"y" * 16384)
                sent += 16384
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            answer = _read_all(sock)
        except ConnectionResetError:
            answer = b""
    assert sent < 16 * 1024 * 1024, "the server kept reading the header"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer[:200]


def test_headers_under_the_limit_are_served(base: str) -> None:
    response = httpx.get(f"{base}/health", headers={"X-Big": "x" * (60 * 1024)})
    assert response.status_code == 200


def test_a_request_whose_headers_never_finish_is_closed(base: str) -> None:
    with _connect(base) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n")  # no blank line: headers go on
        started = time.monotonic()
        answer = _read_all(sock)
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b'"error":"request_timeout"' in answer
    assert 0.5 < elapsed < 3


def test_a_connection_that_sends_nothing_is_closed(base: str) -> None:
    socks = [_connect(base) for _ in range(50)]
    try:
        started = time.monotonic()
        for sock in socks:
            assert _read_all(sock) == b""
        assert time.monotonic() - started < 3
    finally:
        for sock in socks:
            sock.close()
    assert httpx.get(f"{base}/health").status_code == 200


def test_a_body_that_never_finishes_is_closed(base: str) -> None:
    with _connect(base) as sock:
        sock.sendall(
            b"POST /v1/zones HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
            b'Content-Length: 100\r\n\r\n{"name":'
        )
        started = time.monotonic()
        answer = _read_all(sock)
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert 0.5 < elapsed < 3


def test_slow_but_steady_requests_on_a_kept_alive_connection_are_served(base: str) -> None:
    with httpx.Client(base_url=base, headers=AUTH) as client:
        for _ in range(3):
            assert client.get("/v1/zones").status_code == 200
            time.sleep(0.6)  # under the 1 s deadlines, between requests
