"""What a secret field is: provider secret extraction and audit redaction.

A key is secret when it matches `SECRET_KEY_RE` (the contract's pattern, searched anywhere in
the key, case-insensitive) unless it ends in `_url`, `_uri` or `_endpoint` (case-insensitive):
those are configuration (`token_url`, `token_endpoint`).

Audit redaction also leaves alone the few fields of this API whose names match the pattern
but whose values are never secret (`NOT_SECRET_FIELDS`: an application's `credential_type`,
a resource's `credential_provider_id`, a provider's `secret_config_keys`, an admin token's
`token_id`), so that the audit
record keeps what changed. Provider secret extraction follows the contract's rule alone.
"""

from __future__ import annotations

import copy
import functools
import re
from typing import Any

__all__ = [
    "NOT_SECRET_FIELDS",
    "REDACTED",
    "SECRET_KEY_RE",
    "is_redacted_key",
    "is_secret_key",
    "redact",
    "scrub",
    "secret_values",
    "split_secrets",
]

SECRET_KEY_RE = re.compile(
    r"secret|password|token|api[_-]?key|private[_-]?key|credential|passphrase", re.I
)
REDACTED = "[REDACTED]"
_CONFIG_SUFFIXES = ("_url", "_uri", "_endpoint")
NOT_SECRET_FIELDS = frozenset(
    ("credential_type", "credential_provider_id", "secret_config_keys", "token_id")
)
_IMMUTABLE = (str, int, float)


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """True if a field named `key` holds a secret (see the module docstring)."""
    return SECRET_KEY_RE.search(key) is not None and not key.lower().endswith(_CONFIG_SUFFIXES)


def is_redacted_key(key: str) -> bool:
    """True if audit metadata hides the value of a field named `key`."""
    hidden = _REDACTED_KEYS.get(key)
    if hidden is None:
        hidden = is_secret_key(key) and key not in NOT_SECRET_FIELDS
        if len(_REDACTED_KEYS) < _REDACTED_KEYS_MAX:
            _REDACTED_KEYS[key] = hidden
    return hidden


#: key -> `is_redacted_key(key)`, for the keys seen first (a dict lookup is cheaper than a
#: cached function call: `_holds_redacted_key` looks here before calling it).
_REDACTED_KEYS: dict[str, bool] = {}
_REDACTED_KEYS_MAX = 4096


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`base` updated by `override`; where both values are dicts they are merged recursively."""
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            merged[key] = _deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def _add(secrets: dict[str, Any], path: str, value: Any) -> None:
    if path in secrets:
        raise ValueError(f"secret field path {path!r} is ambiguous (a key contains a dot?)")
    secrets[path] = copy.deepcopy(value)


def _extract_dict(node: dict[str, Any], prefix: str, secrets: dict[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(key, str) and is_secret_key(key):
            _add(secrets, path, value)
        else:
            kept[key] = _extract(value, path, secrets)
    return kept


def _extract(value: Any, path: str, secrets: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return _extract_dict(value, f"{path}.", secrets)
    if isinstance(value, list):
        return [_extract(item, f"{path}.{i}", secrets) for i, item in enumerate(value)]
    return copy.deepcopy(value)


def split_secrets(
    config: dict[str, Any], secret_config: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Merge `config` and `secret_config`, then split off every secret field.

    Returns `(plain_config, secrets)`; the inputs are not modified.

    - Merge: `secret_config` wins on conflicts; where both sides hold a dict for the same key
      the dicts are merged recursively.
    - Every field whose key is a secret key, at any depth, is removed from the config and put
      in `secrets` under its dotted path (`auth.client_secret`). Its value is taken whole,
      whatever it is (string, number, object, `None`…); `None` is kept so that a PATCH caller
      can read it as "remove this secret".
    - Dicts inside lists are searched too; the path uses the list index (`items.0.token`).
    - Dicts left empty by the extraction stay in the config as `{}` (the caller's shape is
      kept; an originally empty dict is indistinguishable from an emptied one).
    - Every value `secret_config` gives is a secret too, whatever its key: each non-object
      value under it (a string, a list, `None`…) is taken whole under its dotted path. The
      caller said it was secret; a key the pattern misses (`pwd`, `Authorization`) must not
      leave it in the readable configuration.
    - Raises `ValueError` if two fields map to the same dotted path (a key containing a dot,
      such as `{"a.b": {"token": 1}, "a": {"b": {"token": 2}}}`).
    """
    merged = _deep_merge(config, secret_config or {})
    secrets: dict[str, Any] = {}
    plain = _extract_dict(merged, "", secrets)
    for path, keys, value in _leaves(secret_config or {}, ()):
        if path in secrets or any(path.startswith(f"{s}.") for s in secrets):
            continue  # the pattern took it (or a secret object holding it) already
        for nested in [s for s in secrets if s.startswith(f"{path}.")]:
            del secrets[nested]  # the whole value supersedes secrets found inside it
        _remove(plain, keys)
        secrets[path] = copy.deepcopy(value)
    return plain, secrets


def _leaves(node: dict[str, Any], keys: tuple[str, ...]) -> Any:
    """``(dotted path, keys, value)`` of every non-object value under ``node``."""
    for key, value in node.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, (*keys, key))
        else:
            yield ".".join((*keys, key)), (*keys, key), value


def _remove(config: dict[str, Any], keys: tuple[str, ...]) -> None:
    """Delete ``config[k1][k2]…`` if it is there (the objects around it stay)."""
    node = config
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            return
        node = child
    node.pop(keys[-1], None)


def redact(value: Any) -> Any:
    """`value` in which every value under a secret key is `"[REDACTED]"`.

    Dicts are searched at any depth, including dicts inside lists and tuples. When nothing
    is secret, `value` itself is returned (the usual case, checked without copying: audit
    metadata is encoded right away); otherwise a redacted copy (tuples become lists). Used
    for audit metadata.
    """
    return _redacted_copy(value) if _holds_redacted_key(value) else value


def _holds_redacted_key(value: Any) -> bool:
    """True if a dict in `value`, at any depth, has a key `redact` hides."""
    if isinstance(value, dict):
        for key, item in value.items():
            hidden = _REDACTED_KEYS.get(key)
            if hidden is None:
                hidden = isinstance(key, str) and is_redacted_key(key)
            if hidden:
                return True
            if item.__class__ not in _SCALARS and _holds_redacted_key(item):
                return True
        return False
    if isinstance(value, list | tuple):
        for item in value:
            if item.__class__ not in _SCALARS and _holds_redacted_key(item):
                return True
    return False


#: Values that hold no dict (checked by exact class: one set lookup per value).
_SCALARS = frozenset((str, int, float, bool, type(None)))


def _redacted_copy(value: Any) -> Any:
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(key, str) and is_redacted_key(key):
                out[key] = REDACTED
            elif item is None or isinstance(item, _IMMUTABLE):  # no copy, no call: hot path
                out[key] = item
            else:
                out[key] = _redacted_copy(item)
        return out
    if isinstance(value, list | tuple):
        return [
            item if item is None or isinstance(item, _IMMUTABLE) else _redacted_copy(item)
            for item in value
        ]
    if value is None or isinstance(value, _IMMUTABLE):
        return value
    return copy.deepcopy(value)


#: Shorter secret values are not searched for in free text (replacing "1" or "ab" would
#: mangle the text and hides next to nothing).
MIN_SCRUBBED_LENGTH = 4


def secret_values(value: Any) -> set[str]:
    """Every string and number held under a redacted key of ``value``, at any depth, as text."""
    found: set[str] = set()
    stack = [(value, False)]
    while stack:
        node, hidden = stack.pop()
        if isinstance(node, dict):
            for key, item in node.items():
                stack.append((item, hidden or (isinstance(key, str) and is_redacted_key(key))))
        elif isinstance(node, list | tuple):
            stack.extend((item, hidden) for item in node)
        elif hidden and isinstance(node, str | int | float) and not isinstance(node, bool):
            text = str(node)
            if len(text) >= MIN_SCRUBBED_LENGTH:
                found.add(text)
    return found


def scrub(text: str, secrets: set[str]) -> str:
    """``text`` with every occurrence of the ``secrets`` replaced by ``"[REDACTED]"`` (longest
    first, so a secret containing another is hidden whole)."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
