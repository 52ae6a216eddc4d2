"""Rego under OPA's own (Go) engine, to check that policies mean the same there as in regorus.

Users write Rego from OPA's documentation, test it with ``opa test`` and may run it on OPA
servers; the PDP runs regorus. This module runs the same things under OPA's engine through
``opa-golib-python-bindings`` (import name ``opa_bindings``, a development dependency):

* ``run_opa_tests(directory)``: like ``controlplane.pdp.rego_tests.run_rego_tests`` (same
  pairing of ``X_test.rego`` with ``X.rego``, same ``TestReport``), every ``test_`` rule
  evaluated by OPA; a policy module OPA does not compile is a load error;
* ``OpaPolicy(modules).evaluate(input)``: the value of a document (``result`` by default)
  for one input, ``UNDEFINED`` when OPA leaves it undefined;
* ``opa_available()``: whether the bindings can be imported (they are optional).

Test rules are found with regorus' parser (``rule_heads``), which is what tells a rule from
a function; OPA's bindings have no AST API. Everything here is written to move unchanged
into ``controlplane/pdp/`` later.
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from controlplane.pdp.contract import PACKAGE, RegoContractError, check_contract
from controlplane.pdp.rego_test_runner import (
    FileError,
    TestReport,
    TestResult,
    _discover,
    _partner,
    read_rego,
)

if TYPE_CHECKING:
    from opa_bindings import OpaEngine

__all__ = [
    "RESULT_PATH",
    "UNDEFINED",
    "OpaEvalError",
    "OpaPolicy",
    "as_json",
    "opa_available",
    "opa_compile_error",
    "run_opa_tests",
]

#: The document path ``OpaPolicy.evaluate`` reads by default (``data.caracal.authz.result``).
RESULT_PATH: Final = f"{PACKAGE}.result"


class _Undefined:
    """The type of ``UNDEFINED``: OPA gave no value (distinct from JSON ``null``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False


#: What ``OpaPolicy.evaluate`` returns for an undefined document.
UNDEFINED: Final = _Undefined()


class OpaEvalError(Exception):
    """OPA failed to compile or evaluate; ``message`` is OPA's text, one line per error."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def opa_available() -> bool:
    """True when OPA's bindings (``opa-golib-python-bindings``) can be imported."""
    return importlib.util.find_spec("opa_bindings") is not None


def _new_engine(modules: Iterable[tuple[str, str]]) -> OpaEngine:
    """An OPA engine holding ``(name, source)`` modules; ``OpaEvalError`` if one fails."""
    from opa_bindings import OpaEngine, OpaError

    engine = OpaEngine()
    engine.print_handler = lambda message, location: None  # print() output is not wanted
    for name, source in modules:
        try:
            engine.add_policy(name, source)
        except OpaError as exc:
            engine.close()
            raise OpaEvalError(_clean(exc.message)) from None
    return engine


def _clean(message: str) -> str:
    """OPA's error text without its ``N errors occurred:`` preamble, on one line."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if lines and lines[0].endswith("occurred:"):
        lines = lines[1:]
    return "; ".join(lines) or "unknown OPA error"


class OpaPolicy:
    """Modules compiled once by OPA; evaluate documents of them for any number of inputs.

    Not thread-safe in spirit (the bindings serialise evaluations per engine): use one per
    thread. ``close()`` (or ``with``) releases the Go side.
    """

    def __init__(self, modules: Iterable[tuple[str, str]]) -> None:
        """Compile ``(name, source)`` modules; ``OpaEvalError`` when OPA refuses one."""
        self._engine = _new_engine(modules)

    def evaluate(self, input: Any = None, path: str = RESULT_PATH) -> Any:
        """The value of ``data.<path>`` (dotted) for ``input`` (``None``: no input at all).

        Returns JSON values (sets become arrays, as OPA encodes them), ``UNDEFINED`` when
        the document is undefined; raises ``OpaEvalError`` for an evaluation error.
        """
        from opa_bindings import OpaError, OpaUndefinedError

        try:
            return self._engine.eval_document(path, input=input)
        except OpaUndefinedError:
            return UNDEFINED
        except OpaError as exc:
            raise OpaEvalError(_clean(exc.message)) from None

    def close(self) -> None:
        """Release the engine (further calls fail)."""
        self._engine.close()

    def __enter__(self) -> OpaPolicy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def opa_compile_error(content: str, name: str = "policy.rego") -> str | None:
    """OPA's compile error for one module alone, or ``None`` when OPA compiles it."""
    try:
        OpaPolicy([(name, content)]).close()
    except OpaEvalError as exc:
        return exc.message
    return None


def run_opa_tests(directory: Path, *, recursive: bool = False) -> TestReport:
    """``run_rego_tests`` with OPA's engine: every ``test_`` rule must evaluate to ``true``.

    Policy modules are checked against the Caracal contract as ``run_rego_tests`` does
    (``contract_errors``); one that OPA does not compile alone is a ``load_errors`` entry,
    and the tests of a test module that OPA does not compile (with its policy) fail.
    """
    directory = Path(directory)
    files = sorted(directory.rglob("*.rego") if recursive else directory.glob("*.rego"))
    sources = {path: read_rego(path) for path in files if path.is_file()}

    def label(path: Path) -> str:
        return path.relative_to(directory).as_posix()

    policies = [p for p in sources if not p.name.endswith("_test.rego")]
    tests = [p for p in sources if p.name.endswith("_test.rego")]

    contract_errors: list[FileError] = []
    load_errors: list[FileError] = []
    for path in policies:
        try:
            check_contract(sources[path], label(path))
        except RegoContractError as exc:
            contract_errors.append(FileError(label(path), exc.message))
        error = opa_compile_error(sources[path], label(path))
        if error is not None:
            load_errors.append(FileError(label(path), error))

    results: list[TestResult] = []
    for test_path in tests:
        partner = _partner(test_path, policies)
        modules = [(label(test_path), sources[test_path])]
        if partner is not None:
            modules.insert(0, (label(partner), sources[partner]))
        try:
            found = _discover(*modules[-1])
        except RegoContractError as exc:
            load_errors.append(FileError(label(test_path), exc.message))
            continue
        try:
            policy = OpaPolicy(modules)
        except OpaEvalError as exc:
            reason = f"OPA did not compile {label(test_path)}: {exc.message}"
            results.extend(
                TestResult(
                    file=label(test_path), package=pkg, name=name, passed=False, error=reason
                )
                for pkg, name in found
            )
            continue
        with policy:
            results.extend(_run(policy, label(test_path), pkg, name) for pkg, name in found)
    return TestReport(results=results, contract_errors=contract_errors, load_errors=load_errors)


def _run(policy: OpaPolicy, file: str, package: str, name: str) -> TestResult:
    start = time.perf_counter()
    error: str | None = None
    try:
        value = policy.evaluate(None, f"{package}.{name}")
    except OpaEvalError as exc:
        error = exc.message
    else:
        if value is UNDEFINED:
            error = "test is undefined (a test passes only when it evaluates to true)"
        elif value is False:
            error = "test evaluated to false"
        elif value is not True:
            error = f"test evaluated to {value!r}, expected true"
    return TestResult(
        file=file,
        package=package,
        name=name,
        passed=error is None,
        error=error,
        duration_ms=(time.perf_counter() - start) * 1000,
    )


def as_json(value: Any) -> Any:
    """``value`` as OPA's JSON would carry it: sets as sorted arrays, tuples as arrays."""
    if isinstance(value, set | frozenset):
        return sorted((as_json(v) for v in value), key=_order_key)
    if isinstance(value, list | tuple):
        return [as_json(v) for v in value]
    if isinstance(value, Mapping):
        return {k: as_json(v) for k, v in value.items()}
    return value


def _order_key(value: Any) -> tuple[int, Any]:
    """Rego's order of types (null, boolean, number, string, array, object), then value."""
    if value is None:
        return 0, 0
    if isinstance(value, bool):
        return 1, value
    if isinstance(value, int | float):
        return 2, value
    if isinstance(value, str):
        return 3, value
    return (4 if isinstance(value, list) else 5), json.dumps(value, sort_keys=True)
