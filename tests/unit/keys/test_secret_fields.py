"""Tests for controlplane.secret_fields (no database)."""

from __future__ import annotations

import copy

import pytest

from controlplane.keys.secret_fields import is_secret_key, redact, split_secrets


@pytest.mark.parametrize(
    "key",
    [
        "client_secret",
        "secret",
        "password",
        "DB_PASSWORD",
        "access_token",
        "refresh_token",
        "token",
        "apikey",
        "api_key",
        "api-key",
        "API_KEY",
        "x-api-key",
        "private_key",
        "private-key",
        "privateKey",
        "PRIVATEKEY",
        "credentials",
        "client_credential",
        "passphrase",
        "token_url_secret",  # only the end of the key counts
    ],
)
def test_secret_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "client_id",
        "scopes",
        "token_url",
        "TOKEN_URL",
        "revoke_token_uri",
        "token_endpoint",
        "Token_Endpoint",
        "issuer",
        "api",
        "key",
        "public_key",
        "pass",
    ],
)
def test_config_keys(key: str) -> None:
    assert not is_secret_key(key)


def test_split_top_level() -> None:
    config = {"client_id": "abc", "client_secret": "s3", "token_url": "https://idp/token"}
    plain, secrets = split_secrets(config, None)
    assert plain == {"client_id": "abc", "token_url": "https://idp/token"}
    assert secrets == {"client_secret": "s3"}


def test_split_nested_dotted_paths_and_empty_dicts_kept() -> None:
    config = {
        "auth": {"client_id": "abc", "client_secret": "s3", "inner": {"api_key": 7}},
        "headers": {"X-Api-Key": "k"},
    }
    plain, secrets = split_secrets(config, None)
    assert plain == {"auth": {"client_id": "abc", "inner": {}}, "headers": {}}
    assert secrets == {
        "auth.client_secret": "s3",
        "auth.inner.api_key": 7,
        "headers.X-Api-Key": "k",
    }


def test_value_under_secret_key_is_taken_whole() -> None:
    config = {"credentials": {"user": "u", "password": "p"}, "private_key": ["a", "b"]}
    plain, secrets = split_secrets(config, None)
    assert plain == {}
    assert secrets == {"credentials": {"user": "u", "password": "p"}, "private_key": ["a", "b"]}


def test_lists_are_searched_with_index_paths() -> None:
    config = {"items": [{"name": "a", "token": "t0"}, "plain", {"name": "b"}, [{"secret": 1}]]}
    plain, secrets = split_secrets(config, None)
    assert plain == {"items": [{"name": "a"}, "plain", {"name": "b"}, [{}]]}
    assert secrets == {"items.0.token": "t0", "items.3.0.secret": 1}


def test_secret_config_wins_and_merges_recursively() -> None:
    config = {
        "client_id": "from-config",
        "client_secret": "old",
        "auth": {"client_id": "a", "password": "old", "mode": "basic"},
    }
    secret_config = {
        "client_secret": "new",
        "auth": {"password": "new", "realm": "r"},
        "region": "eu",
        "api_key": {"value": 1},
    }
    plain, secrets = split_secrets(config, secret_config)
    assert plain == {"client_id": "from-config", "auth": {"client_id": "a", "mode": "basic"}}
    # every value secret_config gives is secret, whatever its key
    assert secrets == {
        "client_secret": "new",
        "auth.password": "new",
        "auth.realm": "r",
        "region": "eu",
        "api_key": {"value": 1},
    }


def test_secret_config_keys_the_pattern_misses_are_secret_all_the_same() -> None:
    given = {"pwd": "p", "Authorization": "Bearer x", "nested": {"signing": "k"}, "items": [1]}
    plain, secrets = split_secrets({"client_id": "c", "nested": {"url_base": "u"}}, given)
    assert plain == {"client_id": "c", "nested": {"url_base": "u"}}
    assert secrets == {
        "pwd": "p",
        "Authorization": "Bearer x",
        "nested.signing": "k",
        "items": [1],
    }
    # a list given in secret_config is one secret, not its pattern-matched parts
    plain, secrets = split_secrets({}, {"hops": [{"token": "t", "name": "n"}]})
    assert plain == {} and secrets == {"hops": [{"token": "t", "name": "n"}]}


def test_secret_config_replaces_non_dict_value() -> None:
    plain, secrets = split_secrets({"auth": "none"}, {"auth": {"token": "t"}})
    assert plain == {"auth": {}}
    assert secrets == {"auth.token": "t"}


def test_null_secret_is_kept_for_removal() -> None:
    plain, secrets = split_secrets({"client_id": "c"}, {"client_secret": None})
    assert plain == {"client_id": "c"}
    assert secrets == {"client_secret": None}


def test_split_does_not_mutate_inputs() -> None:
    config = {"auth": {"client_secret": "s", "list": [{"token": "t"}]}}
    secret_config = {"auth": {"password": "p"}}
    before = (copy.deepcopy(config), copy.deepcopy(secret_config))
    plain, secrets = split_secrets(config, secret_config)
    plain["auth"]["list"][0]["x"] = 1
    secrets["auth.password"] = "changed"
    assert (config, secret_config) == before


def test_ambiguous_dotted_path_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"a\.b\.token"):
        split_secrets({"a.b": {"token": 1}, "a": {"b": {"token": 2}}}, None)


def test_reference_example_keeps_token_url() -> None:
    config = {
        "client_id": "my-client",
        "authorize_url": "https://idp/authorize",
        "token_url": "https://idp/token",
        "scopes": ["openid"],
    }
    plain, secrets = split_secrets(config, {"client_secret": "shh"})
    assert plain == config
    assert secrets == {"client_secret": "shh"}


def test_redact_at_any_depth() -> None:
    value = {
        "name": "p",
        "client_secret": "s",
        "token_url": "https://idp/token",
        "config": {"password": {"nested": "x"}, "ok": 1},
        "list": [{"api_key": "k", "id": 1}, ["x", {"Passphrase": "pp"}], ("t", {"token": 1})],
        "empty_secret": None,
    }
    original = copy.deepcopy(value)
    redacted = redact(value)
    assert redacted == {
        "name": "p",
        "client_secret": "[REDACTED]",
        "token_url": "https://idp/token",
        "config": {"password": "[REDACTED]", "ok": 1},
        "list": [
            {"api_key": "[REDACTED]", "id": 1},
            ["x", {"Passphrase": "[REDACTED]"}],
            ["t", {"token": "[REDACTED]"}],
        ],
        "empty_secret": "[REDACTED]",
    }
    assert value == original
    redacted["config"]["ok"] = 2
    assert value["config"]["ok"] == 1


def test_redact_scalars_and_lists() -> None:
    assert redact("secret") == "secret"  # only keys make a value secret
    assert redact(None) is None
    assert redact([{"secret": 1}]) == [{"secret": "[REDACTED]"}]
