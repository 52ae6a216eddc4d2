"""Settings: defaults, parsing, and one clear line naming the variable on a bad value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from controlplane.settings import SettingsError, load_settings, parse_duration


def test_defaults() -> None:
    settings = load_settings({})
    assert settings.port == 3000
    assert settings.database_url is None
    assert settings.local_bootstrap_enabled is False
    assert settings.local_zone_id == "zone1"
    assert settings.data_dir == Path(".caracal")
    assert settings.key_overlap_seconds == 86_400
    assert settings.opa_compile_check == "auto"


def test_values_are_parsed() -> None:
    settings = load_settings(
        {
            "CARACAL_PORT": "8080",
            "CARACAL_LOCAL_BOOTSTRAP_ENABLED": "true",
            "CARACAL_KEY_OVERLAP": "2h",
            "CARACAL_DB_POOL_MAX": "20",
            "DATABASE_URL": "postgresql://x/y",
            "CARACAL_ENV": "production",
            "CARACAL_OPA_COMPILE_CHECK": "OFF",
        }
    )
    assert settings.opa_compile_check == "off"
    assert settings.port == 8080
    assert settings.local_bootstrap_enabled is True
    assert settings.key_overlap_seconds == 7200
    assert settings.pool_max_size == 20
    assert settings.production


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CARACAL_PORT", "abc"),
        ("CARACAL_PORT", "70000"),
        ("CARACAL_LOCAL_BOOTSTRAP_ENABLED", "maybe"),
        ("CARACAL_ENV", "staging"),
        ("CARACAL_KEY_OVERLAP", "soon"),
        ("CARACAL_DB_POOL_MIN", "0"),
        ("CARACAL_LOCAL_ZONE_ID", "has space"),
        ("CARACAL_ADMIN_TOKEN", "short"),
        ("CARACAL_TOKEN_CACHE_SECONDS", "nan"),
        ("CARACAL_DRAIN_SECONDS", "inf"),
        ("CARACAL_KEY_OVERLAP", "99999999999d"),
        ("CARACAL_REDIS_URL", "notaurl"),
        ("CARACAL_OPA_COMPILE_CHECK", "on"),
    ],
)
def test_a_bad_value_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({variable: value})
    message = str(info.value)
    assert message.startswith(variable)
    assert "\n" not in message
    if variable == "CARACAL_ADMIN_TOKEN":
        assert value not in message


def test_production_needs_a_database_url() -> None:
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        load_settings({"CARACAL_ENV": "production"})


def test_durations() -> None:
    assert [parse_duration(t) for t in ("90", "90s", "15m", "24h", "30d")] == [
        90, 90, 900, 86_400, 2_592_000,
    ]  # fmt: skip
    with pytest.raises(ValueError):
        parse_duration("1w")
    assert parse_duration("36500d") == 36_500 * 86_400
    with pytest.raises(ValueError):
        parse_duration("36501d")  # over 100 years: PostgreSQL's timestamps would overflow


def test_command_line_values_obey_the_same_rules() -> None:
    for overrides in ({"port": 70000}, {"workers": 0}):
        with pytest.raises(SettingsError) as info:
            load_settings({}, **overrides)
        assert "is invalid" in str(info.value)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"CARACAL_PORT": "nope"}, "CARACAL_PORT"),
        ({"CARACAL_KEK": "not-base64-of-32-bytes"}, "CARACAL_KEK"),
        ({"CARACAL_ENV": "production", "DATABASE_URL": "postgresql://h/db"}, "CARACAL_KEK"),
        ({"CARACAL_LOG_LEVEL": "loud"}, "CARACAL_LOG_LEVEL"),
        ({"CARACAL_REDIS_URL": "notaurl"}, "CARACAL_REDIS_URL"),
        ({"CARACAL_DATA_DIR": "/proc/nope"}, "/proc/nope"),
        (
            {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x", "CARACAL_KEK": "A" * 43 + "="},
            "cannot use the database",
        ),
        ({"_ARGS": "serve --port 70000"}, "port 70000 is invalid"),
        ({"_ARGS": "serve --workers 0"}, "workers 0 is invalid"),
        ({"_ARGS": "admin-token create --scope global --ttl 10s"}, "--ttl"),
        ({"_ARGS": "admin-token create --scope global --name="}, "--name"),
        ({"_ARGS": "audit prune --older-than 99999999999d"}, "100 years"),
    ],
)
def test_cli_stops_with_one_line_and_no_traceback(
    tmp_path: Path, env: dict[str, str], needle: str
) -> None:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CARACAL_")}
    full_env.pop("DATABASE_URL", None)
    env = dict(env)
    args = env.pop("_ARGS", "serve").split(" ")
    full_env.update({"CARACAL_DATA_DIR": str(tmp_path), **env})
    result = subprocess.run(
        [sys.executable, "-m", "controlplane", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == (1 if "database" in needle else 2), result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]
    assert "Traceback" not in result.stderr
