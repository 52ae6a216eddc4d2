"""The upload-time contract check, run in a child process with memory and time limits.

``check_contract`` parses a module and evaluates its ``result`` once. regorus has no time or
memory limits of its own and holds the GIL while it works, so a module like
``result := count(numbers.range(1, 1000000000)) > 0`` would abort the service (the engine
cannot allocate 24 GB) and one with many deeply nested literals would stall every request
for seconds. The check therefore runs in one long-lived child process (``python -m
controlplane.pdp.sandbox``, started on first use, sharing nothing with the server) whose
address space is capped; a
check that overruns its deadline or kills the child is refused, and a new child is started
for the next check. Once a module has passed here, parsing and checking it again in the
service (activation, zone loads) is bounded by the same limits.

With ``opa=True`` (``CARACAL_OPA_COMPILE_CHECK=auto`` and OPA's engine installed) the child
also compiles a module that regorus accepted with OPA's compiler, which refuses more (type
errors such as ``1 + "a"``, unsafe variables, wrong arities): such a module would fail on an
OPA server and under ``opa test``. OPA's Go runtime is loaded in the child only, never in the
service; the child's address-space cap grows by what that runtime reserves at start and by
``OPA_MEMORY_BYTES`` for its heap.
"""

from __future__ import annotations

import json
import os
import resource
import select
import subprocess
import sys
import threading
import time
from typing import Any

from controlplane.pdp.contract import RegoContractError, check_loaded, check_nesting, new_engine
from controlplane.pdp.opa_engine import opa_compile_error

__all__ = ["CHECK_SECONDS", "MEMORY_BYTES", "PARSE_SECONDS", "check_in_sandbox"]

#: Address space of the child process (the interpreter and regorus need ~150 MB of it).
MEMORY_BYTES = 1024 * 1024 * 1024
#: Address space added for OPA's compiler, beyond what its Go runtime reserves at start (the
#: Go heap grows outside that reservation; compiling a large module takes tens of MB).
OPA_MEMORY_BYTES = 512 * 1024 * 1024
#: Wall-clock deadline of one check: parse, contract and one evaluation of ``result``. The
#: child's time, not the service's: the request waits, nothing else does.
CHECK_SECONDS = 10.0
#: Longest parse accepted. Real policies parse in milliseconds (the templates in under 5 ms);
#: the service parses a module again on activation and on each process's first load of the
#: zone, on its event loop, so this bounds those stalls. Generous, so that a loaded machine
#: does not refuse a legitimate module.
PARSE_SECONDS = 1.0
#: How long a new child may take to start (it imports the engine).
STARTUP_SECONDS = 60.0


def serve(opa: bool) -> None:  # pragma: no cover - runs in the child process
    """The child's loop (``python -m controlplane.pdp.sandbox [--opa]``): one JSON request per
    line on stdin (``[content, name]``), one JSON answer per line on stdout (``null`` or
    ``[message, detail]``)."""
    limit = MEMORY_BYTES
    if opa:
        before = _address_space()
        opa_compile_error("package caracal.authz\n")  # starts OPA's Go runtime
        limit += _address_space() - before + OPA_MEMORY_BYTES
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    out = sys.stdout
    out.write('"ready"\n')
    out.flush()
    for line in sys.stdin:
        content, name = json.loads(line)
        out.write(json.dumps(_check(content, name, opa=opa)) + "\n")
        out.flush()


def _address_space() -> int:
    """This process's virtual memory size in bytes (``VmSize``)."""
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _check(content: str, name: str, *, opa: bool = False) -> tuple[str, str] | None:
    """``None`` when ``content`` meets the contract (and, with ``opa``, compiles under OPA),
    else ``(message, detail)``."""
    try:
        check_nesting(content, name)  # before the parse that deep nesting makes explode
        started = time.perf_counter()
        engine = new_engine(name, content)
        parsed = time.perf_counter() - started
        if parsed > PARSE_SECONDS:
            message = (
                f"{name}: parsing took {parsed * 1000:.0f} ms (the limit is"
                f" {PARSE_SECONDS * 1000:.0f} ms); simplify deeply nested literals"
            )
            return message, message
        check_loaded(engine, content, name)  # what check_contract does after its parse
    except RegoContractError as exc:
        return exc.message, exc.detail
    except MemoryError:
        message = f"{name}: checking the policy needed more memory than allowed"
        return message, message
    if opa:
        error = opa_compile_error(content, name)
        if error is not None:
            message = f"OPA's compiler refuses {name}: {error}"
            return message, message
    return None


class _Child:
    """One sandbox process and the pipes to it."""

    def __init__(self, opa: bool) -> None:
        self.opa = opa
        self.process = subprocess.Popen(
            [sys.executable, "-m", "controlplane.pdp.sandbox", *(["--opa"] if opa else [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        # Start-up (a fresh interpreter importing regorus) is not part of any deadline.
        if self._read(STARTUP_SECONDS) != "ready":
            self.stop()
            raise RuntimeError("the Rego sandbox process did not start")

    def _read(self, seconds: float) -> Any:
        """The next answer, ``"timeout"`` when none comes in time, ``"died"`` at EOF."""
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], seconds)
        if not ready:
            return "timeout"
        line = self.process.stdout.readline()
        return json.loads(line) if line else "died"

    def check(self, content: str, name: str) -> Any:
        """The child's answer, or ``"timeout"`` / ``"died"``."""
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps([content, name]) + "\n")
            self.process.stdin.flush()
        except OSError:
            return "died"
        return self._read(CHECK_SECONDS)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(5)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


_lock = threading.Lock()
_child: _Child | None = None


def check_in_sandbox(
    content: str, name: str = "policy.rego", *, opa: bool = False
) -> RegoContractError | None:
    """The contract violation of ``content`` (``RegoContractError``), or None. With ``opa``
    (when OPA's engine is installed: ``opa_available()``), also OPA's compile error.

    Blocking (call it from a worker thread); checks are serialised on the one child.
    """
    global _child
    with _lock:
        if _child is not None and _child.opa != opa:
            _child.stop()
            _child = None
        if _child is None or not _child.alive():
            _child = _Child(opa)
        answer = _child.check(content, name)
        if answer in ("timeout", "died"):
            _child.stop()
            _child = None
    if answer == "timeout":
        message = f"{name}: checking the policy took longer than {CHECK_SECONDS:g} s"
        return RegoContractError(message)
    if answer == "died":
        message = f"{name}: checking the policy exhausted the engine's memory or crashed it"
        return RegoContractError(message)
    if answer is None:
        return None
    return RegoContractError(*answer)


if __name__ == "__main__":
    serve(opa="--opa" in sys.argv[1:])
