"""Rego unit tests for policies, like ``opa test`` (backs ``caracal policies test DIR``).

Conventions:

* a file whose name ends in ``_test.rego`` is a test module; every other ``.rego`` file is a
  policy module and must meet the contract (``check_contract``), as it would on upload;
* every policy is ``package caracal.authz``, so policies cannot share one engine (their
  ``result`` rules would conflict). As in production, each policy is evaluated alone: the
  test module ``X_test.rego`` runs in one engine with ``X.rego`` from the same directory, or
  with the directory's only policy when there is no ``X.rego``; otherwise it runs alone;
* a test module may use its own package (``package caracal.authz_test`` with
  ``import data.caracal.authz``) or ``package caracal.authz`` itself;
* every rule of a test module whose name starts with ``test_`` is a test; it passes only
  when it evaluates to ``true`` (``false``, undefined or an error fail). Tests run with no
  input: set it with ``with input as {...}``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Final, Protocol

import msgspec
import regorus

from controlplane.pdp.contract import (
    RegoContractError,
    check_contract,
    clean_engine_message,
    new_engine,
    rule_heads,
)

__all__ = [
    "UNDEFINED",
    "FileError",
    "RegorusTestEngine",
    "TestEngine",
    "TestEngineError",
    "TestModules",
    "TestReport",
    "TestResult",
    "discover_tests",
    "policy_under_test",
    "read_rego",
    "run_rego_tests",
]


class TestResult(msgspec.Struct, frozen=True, kw_only=True):
    """One ``test_`` rule's outcome."""

    __test__ = False  # not a pytest test class

    file: str
    package: str
    name: str
    passed: bool
    error: str | None = None
    duration_ms: float = 0.0
    #: what the rule printed with ``print()`` (gathered, not written to stderr)
    output: list[str] = msgspec.field(default_factory=list)


class FileError(msgspec.Struct, frozen=True):
    """A module that broke the contract or could not be loaded."""

    file: str
    error: str


class TestReport(msgspec.Struct, frozen=True, kw_only=True):
    """Everything ``run_rego_tests`` found."""

    __test__ = False

    results: list[TestResult]
    contract_errors: list[FileError]
    load_errors: list[FileError]

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def failed(self) -> int:
        return len(self.results) - self.passed

    @property
    def ok(self) -> bool:
        """True when every test passed and every module loaded and met the contract."""
        return self.failed == 0 and not self.contract_errors and not self.load_errors


def read_rego(path: Path) -> str:
    """The text of a ``.rego`` file; ``ValueError`` naming the file when it is not UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None


class TestModules(Protocol):
    """A test module loaded with the policy it tests, in one engine."""

    def evaluate(self, path: str) -> tuple[Any, list[str]]:
        """The value of ``data.<path>`` (``UNDEFINED`` when undefined) and what the evaluation
        printed; ``TestEngineError`` for an evaluation error."""
        ...

    def close(self) -> None: ...


class TestEngine(Protocol):
    """A Rego engine that can run tests (regorus here, OPA in ``controlplane.pdp.opa_engine``)."""

    #: shown in reports (``regorus``, ``opa``)
    name: str

    def compile_error(self, name: str, content: str) -> str | None:
        """Why the engine refuses a policy module alone beyond the contract, or None."""
        ...

    def load(self, modules: list[tuple[str, str]]) -> TestModules:
        """The ``(name, source)`` modules in one engine; ``TestEngineError`` when they do
        not load."""
        ...


class TestEngineError(Exception):
    """An engine refused to load or evaluate; ``message`` is its one-line text."""

    __test__ = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Undefined:
    """The type of ``UNDEFINED``: a document with no value (distinct from JSON ``null``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False


#: What ``TestModules.evaluate`` returns for an undefined document.
UNDEFINED: Final = _Undefined()


class _RegorusModules:
    def __init__(self, modules: list[tuple[str, str]]) -> None:
        self.engine = regorus.Engine()
        self.engine.set_gather_prints(True)
        for name, content in modules:
            try:
                self.engine.add_policy(name, content)
            except RuntimeError as exc:
                raise TestEngineError(clean_engine_message(str(exc))[0]) from None

    def evaluate(self, path: str) -> tuple[Any, list[str]]:
        try:
            value = self.engine.eval_rule(f"data.{path}")
        except RuntimeError as exc:
            raise TestEngineError(clean_engine_message(str(exc))[0]) from None
        finally:
            prints = [str(line) for line in self.engine.take_prints()]
        return (UNDEFINED if value is None else value), prints

    def close(self) -> None:
        pass


class RegorusTestEngine:
    """The PDP's own engine."""

    name = "regorus"

    def compile_error(self, name: str, content: str) -> str | None:
        return None  # the contract check parses and evaluates with regorus already

    def load(self, modules: list[tuple[str, str]]) -> TestModules:
        return _RegorusModules(modules)


def run_rego_tests(
    directory: Path, *, recursive: bool = False, engine: TestEngine | None = None
) -> TestReport:
    """Check every policy module of ``directory`` and run every test module's ``test_`` rules
    with ``engine`` (default regorus).

    ``recursive=True`` also reads subdirectories; pairing stays within one directory. A
    policy module the engine does not compile alone is a ``load_errors`` entry; the tests of a
    test module that does not load with its policy fail.
    """
    engine = engine or RegorusTestEngine()
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
        error = engine.compile_error(label(path), sources[path])
        if error is not None:
            load_errors.append(FileError(label(path), error))

    results: list[TestResult] = []
    for test_path in tests:
        partner = policy_under_test(test_path, policies)
        modules = [(label(test_path), sources[test_path])]
        if partner is not None:
            modules.insert(0, (label(partner), sources[partner]))
        try:
            found = discover_tests(*modules[-1])
        except RegoContractError as exc:
            load_errors.append(FileError(label(test_path), exc.message))
            continue
        try:
            loaded = engine.load(modules)
        except TestEngineError as exc:
            reason = f"{modules[0][0]} did not load: {exc.message}"
            results.extend(
                TestResult(
                    file=label(test_path), package=pkg, name=name, passed=False, error=reason
                )
                for pkg, name in found
            )
            continue
        try:
            results.extend(_run(loaded, label(test_path), pkg, name) for pkg, name in found)
        finally:
            loaded.close()
    return TestReport(results=results, contract_errors=contract_errors, load_errors=load_errors)


def policy_under_test(test_path: Path, policies: list[Path]) -> Path | None:
    """The policy a test module tests: ``X.rego`` for ``X_test.rego``, else the only policy
    of its directory, else None."""
    named = test_path.with_name(test_path.name.removesuffix("_test.rego") + ".rego")
    if named in policies:
        return named
    siblings = [p for p in policies if p.parent == test_path.parent]
    return siblings[0] if len(siblings) == 1 else None


def discover_tests(name: str, content: str) -> list[tuple[str, str]]:
    """``(package, rule)`` for each distinct ``test_`` rule of one module, in source order
    (found with regorus' parser, which tells a rule from a function)."""
    engine = new_engine(name, content)
    package = engine.get_packages()[0].removeprefix("data.")
    names = [h.name for h in rule_heads(engine) if h.name.startswith("test_") and not h.is_function]
    return [(package, rule) for rule in dict.fromkeys(names)]


def _run(modules: TestModules, file: str, package: str, name: str) -> TestResult:
    start = time.perf_counter()
    error: str | None = None
    output: list[str] = []
    try:
        value, output = modules.evaluate(f"{package}.{name}")
    except TestEngineError as exc:
        error = exc.message
    else:
        if value is UNDEFINED:
            error = "test is undefined (a test passes only when it evaluates to true)"
        elif value is False:
            error = "test evaluated to false"
        elif value is not True:
            error = f"test evaluated to {value!r}, expected true"
    duration_ms = (time.perf_counter() - start) * 1000
    return TestResult(
        file=file,
        package=package,
        name=name,
        passed=error is None,
        error=error,
        duration_ms=duration_ms,
        output=output,
    )
