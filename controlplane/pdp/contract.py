"""The policy contract: a module parses, declares ``package caracal.authz`` and defines ``result``.

``check_contract`` is cheap enough to run on every ``POST …/policies``: one parse, one
evaluation of ``result`` against an empty input (microseconds), and a walk of regorus'
AST only in the rare case that cannot tell a rule from a function.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

import regorus

__all__ = [
    "MAX_NESTING",
    "PACKAGE",
    "RESULT_RULE",
    "RegoContractError",
    "RuleHead",
    "check_contract",
    "check_loaded",
    "check_nesting",
    "clean_engine_message",
    "new_engine",
    "rule_heads",
]

PACKAGE = "caracal.authz"
RESULT_RULE = f"data.{PACKAGE}.result"

_LOCATION = re.compile(r"-->\s*(?P<loc>\S+:\d+:\d+)")
_ERROR_LINE = re.compile(r"^\s*error:\s*(?P<msg>.+)$", re.MULTILINE)
_NO_RULE = "not a valid rule path"
# Errors regorus' analyser raises lazily at evaluation, which OPA would report at compile time.
_STATIC_ERRORS = ("is unsafe", "could not find function")
_MAYBE_FUNCTION = re.compile(r"\bresult\s*\(")


#: Deepest nesting of brackets a policy may have. regorus' parser takes time exponential in
#: the nesting of some literals (``[[[…]]]``, ``{"a": {"a": …}}``: about double per level,
#: ~0.2 s at 12 levels, over a minute at 20) while holding the GIL, so deeper sources are
#: refused before it sees them. The templates nest 9 levels at most.
MAX_NESTING = 12
_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|`[^`]*`|#[^\n]*|(?P<open>[\[{(])|(?P<close>[\]})])')


class RegoContractError(Exception):
    """The module breaks the policy contract; ``message`` is one readable line."""

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: regorus' own multi-line text (source line and caret) when there is one.
        self.detail = detail or message


def clean_engine_message(raw: str) -> tuple[str, str]:
    """Return ``(one_line, detail)`` for a regorus error text, without the Rust backtrace.

    ``one_line`` is ``file:line:col: message`` when regorus gave a location; ``detail`` keeps
    regorus' excerpt of the source with the caret.
    """
    cut = raw.find("Stack backtrace")
    detail = (raw if cut < 0 else raw[:cut]).strip()
    loc = _LOCATION.search(detail)
    err = _ERROR_LINE.search(detail)
    if err is not None:
        msg = err.group("msg").strip()
        one_line = f"{loc.group('loc')}: {msg}" if loc else msg
    else:
        one_line = " ".join(line.strip() for line in detail.splitlines() if line.strip())
    return one_line or "unknown engine error", detail or one_line


def new_engine(name: str, content: str) -> regorus.Engine:
    """A regorus engine with ``content`` loaded; parse errors raise ``RegoContractError``."""
    engine = regorus.Engine()
    engine.set_gather_prints(True)
    try:
        engine.add_policy(name, content)
    except RuntimeError as exc:
        raise RegoContractError(*clean_engine_message(str(exc))) from None
    return engine


def check_nesting(content: str, name: str = "policy.rego") -> None:
    """Raise ``RegoContractError`` when brackets nest deeper than ``MAX_NESTING`` (strings and
    comments do not count)."""
    depth = 0
    for token in _TOKEN.finditer(content):
        if token.group("open"):
            depth += 1
            if depth > MAX_NESTING:
                line = content.count("\n", 0, token.start()) + 1
                column = token.start() - (content.rfind("\n", 0, token.start()) + 1) + 1
                raise RegoContractError(
                    f"{name}:{line}:{column}: brackets nested deeper than {MAX_NESTING} levels"
                )
        elif token.group("close"):
            depth -= 1


def check_contract(content: str, name: str = "policy.rego") -> None:
    """Raise ``RegoContractError`` unless ``content`` meets the Caracal policy contract."""
    check_nesting(content, name)
    check_loaded(new_engine(name, content), content, name)


def check_loaded(engine: regorus.Engine, content: str, name: str) -> None:
    """The contract checks ``check_contract`` makes once ``content`` is parsed into ``engine``
    (package, a ``result`` rule that evaluates)."""
    packages = sorted(set(engine.get_packages()))
    if packages != [f"data.{PACKAGE}"]:
        found = ", ".join(p.removeprefix("data.") for p in packages) or "none"
        raise RegoContractError(f"{name}: package must be {PACKAGE}, found {found}")
    engine.set_input({})
    try:
        value = engine.eval_rule(RESULT_RULE)
    except RuntimeError as exc:
        one_line, detail = clean_engine_message(str(exc))
        if one_line == _NO_RULE:
            raise RegoContractError(_missing_result(name)) from None
        if any(marker in one_line for marker in _STATIC_ERRORS):
            raise RegoContractError(one_line, detail) from None
        return  # a runtime error for an empty input: the rule exists, evaluation fails closed
    finally:
        engine.take_prints()
    if value is None and _MAYBE_FUNCTION.search(content) and not _has_result_rule(engine):
        raise RegoContractError(f"{name}: result must be a rule, not a function")


def _missing_result(name: str) -> str:
    return (
        f'{name}: policy must define a rule named "result" '
        "(result := …, result if …, or default result := …)"
    )


def _has_result_rule(engine: regorus.Engine) -> bool:
    """True when some rule (not function) of the loaded modules is named ``result``."""
    return any(h.name == "result" and not h.is_function for h in rule_heads(engine))


class RuleHead(NamedTuple):
    """A rule or function head with a plain name (``p``, not the ref head ``p.q``)."""

    file: str
    name: str
    is_function: bool


def rule_heads(engine: regorus.Engine) -> list[RuleHead]:
    """Every plainly named rule/function head of the engine's modules, in source order.

    Walks regorus' JSON AST, which is large (about 200 bytes per source byte): not for hot paths.
    """
    heads: list[RuleHead] = []
    for module in json.loads(engine.get_ast_as_json()):
        file = module.get("source", {}).get("file", "")
        for rule in module["ast"]["rules"]:
            if "Default" in rule:
                node, is_function = rule["Default"], bool(rule["Default"].get("args"))
            elif "Spec" in rule:
                kind, node = next(iter(rule["Spec"]["head"].items()))
                is_function = kind == "Func"
            else:
                continue
            name = _var_name(node)
            if name is not None:
                heads.append(RuleHead(file, name, is_function))
    return heads


def _var_name(head: dict[str, Any]) -> str | None:
    refr = head.get("refr")
    var = refr.get("Var") if isinstance(refr, dict) else None
    value = var.get("value") if isinstance(var, dict) else None
    return value if isinstance(value, str) else None
