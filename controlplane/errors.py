"""The two error families of the service.

``DomainError`` — a refusal by a domain operation (registry, policies, decisions): a stable
``code``, an optional one-line ``detail`` and, for bad input, ``issues``. Each subclass names
a kind of refusal; the HTTP frame turns it into the contract's envelope with the status of
its kind, in one table (``controlplane.http.errors.DOMAIN_STATUS``). Domain code never
picks a status or builds a response.

``OperatorError`` — something the operator must fix (a setting, a key, a changed
migration): the command line reports it in one line and exits 2.
"""

from __future__ import annotations

import msgspec

PathItem = str | int


class Issue(msgspec.Struct, omit_defaults=True):
    """One validation problem: where (``path``) and what (``message``)."""

    path: list[PathItem]
    message: str


class DomainError(Exception):
    """A domain operation refused: ``code`` (stable, machine-readable), ``detail``, ``issues``."""

    def __init__(
        self, code: str, detail: str | None = None, issues: list[Issue] | None = None
    ) -> None:
        super().__init__(code if detail is None else f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.issues = issues


class Invalid(DomainError):
    """The input breaks a rule (``issues`` say where when the input is a request body)."""

    @classmethod
    def body(cls, message: str, path: list[PathItem] | None = None) -> Invalid:
        """``invalid_body`` with a single issue at ``path``."""
        return cls("invalid_body", issues=[Issue(path=path or [], message=message)])


class NotFound(DomainError):
    """The thing named does not exist (or is archived, expired, in another zone)."""


class Forbidden(DomainError):
    """The operation is not allowed in this state (e.g. DCR disabled, scopes not granted)."""


class Conflict(DomainError):
    """The operation clashes with the current state (taken name, reference in use)."""


class Unprocessable(DomainError):
    """The input is well-formed but its content is refused (e.g. Rego breaking the contract)."""


class TooManyRequests(DomainError):
    """A rate or capacity limit is reached."""


class Unavailable(DomainError):
    """A dependency the operation needs is not available now; the caller may retry."""


class OperatorError(Exception):
    """An error the operator fixes (configuration, keys, migrations); its message is one
    line, shown as is by the command line (exit 2)."""
