"""Rego under OPA's own (Go) engine, to check that policies mean the same there as in regorus.

Users write Rego from OPA's documentation, test it with ``opa test`` and may run it on OPA
servers; the PDP runs regorus. This module runs the same things under OPA's engine through
the optional ``opa-golib-python-bindings`` (import name ``opa_bindings``; ``make install``
installs it). Nothing here imports the bindings until it is used, and the service never
needs them: the upload check uses them in its sandbox process when they are installed.

* ``opa_available()``: whether the bindings can be imported;
* ``opa_compile_error(content)``: OPA's compile error for one module (parse, type and
  safety checks), or None;
* ``OpaPolicy(modules).evaluate(input)``: the value of a document (``result`` by default)
  for one input, ``UNDEFINED`` when OPA leaves it undefined;
* ``OpaTestEngine``: runs ``caracal policies test`` under OPA (``run_opa_tests``).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from controlplane.pdp.contract import PACKAGE
from controlplane.pdp.rego_test_runner import (
    UNDEFINED,
    TestEngineError,
    TestModules,
    TestReport,
    run_rego_tests,
)

if TYPE_CHECKING:
    from opa_bindings import OpaEngine

__all__ = [
    "INSTALL_HINT",
    "RESULT_PATH",
    "UNDEFINED",
    "OpaEvalError",
    "OpaPolicy",
    "OpaTestEngine",
    "as_json",
    "opa_available",
    "opa_compile_error",
    "run_opa_tests",
]

#: The document path ``OpaPolicy.evaluate`` reads by default (``data.caracal.authz.result``).
RESULT_PATH: Final = f"{PACKAGE}.result"

#: How to install the engine (its metadata asks for Python 3.14; the wheel runs on 3.11).
INSTALL_HINT: Final = (
    "pip install --ignore-requires-python opa-golib-python-bindings==0.4.4 (make install does)"
)


class OpaEvalError(TestEngineError):
    """OPA failed to compile or evaluate; ``message`` is OPA's text on one line."""

    __test__ = False


def opa_available() -> bool:
    """True when OPA's bindings (``opa-golib-python-bindings``) can be imported."""
    return importlib.util.find_spec("opa_bindings") is not None


def _clean(message: str) -> str:
    """OPA's error text on one line, without its ``bundle activation failed:`` and
    ``N errors occurred:`` preambles."""
    text = message.removeprefix("bundle activation failed: ")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and lines[0].endswith("occurred:"):
        lines = lines[1:]
    elif lines and "occurred: " in lines[0]:
        lines[0] = lines[0].split("occurred: ", 1)[1]
    return "; ".join(lines) or "unknown OPA error"


class OpaPolicy:
    """Modules compiled once by OPA; evaluate documents of them for any number of inputs.

    The bindings serialise evaluations per engine: use one per thread. ``close()`` (or
    ``with``) releases the Go side.
    """

    def __init__(self, modules: Iterable[tuple[str, str]]) -> None:
        """Compile ``(name, source)`` modules; ``OpaEvalError`` when OPA refuses one (parse
        errors, and the compiler's type and safety errors)."""
        from opa_bindings import OpaEngine, OpaError

        self.prints: list[str] = []
        self._engine: OpaEngine = OpaEngine()
        self._engine.print_handler = lambda message, location: self.prints.append(message)
        try:
            for name, source in modules:
                self._engine.add_policy(name, source)
            self._engine.eval_query("true")  # OPA compiles the modules on first evaluation
        except OpaError as exc:
            self._engine.close()
            raise OpaEvalError(_clean(exc.message)) from None

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


class _OpaModules:
    def __init__(self, modules: list[tuple[str, str]]) -> None:
        self.policy = OpaPolicy(modules)

    def evaluate(self, path: str) -> tuple[Any, list[str]]:
        self.policy.prints.clear()
        value = self.policy.evaluate(None, path)
        return value, list(self.policy.prints)

    def close(self) -> None:
        self.policy.close()


class OpaTestEngine:
    """``TestEngine`` for ``run_rego_tests``: tests run under OPA; a policy module OPA does
    not compile alone is a load error."""

    name = "opa"

    def compile_error(self, name: str, content: str) -> str | None:
        return opa_compile_error(content, name)

    def load(self, modules: list[tuple[str, str]]) -> TestModules:
        return _OpaModules(modules)


def run_opa_tests(directory: Path, *, recursive: bool = False) -> TestReport:
    """``run_rego_tests`` under OPA's engine."""
    return run_rego_tests(directory, recursive=recursive, engine=OpaTestEngine())


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
