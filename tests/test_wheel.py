"""The wheel, installed outside the repo, finds its migrations and templates and runs.

The wheel is built from a copy of what the Dockerfile's build stage copies, installed with
``--no-deps`` into a fresh venv that sees this test environment's dependencies through a
``.pth`` file (copying the 230 MB of dependencies would dominate the run), and every command
runs from an empty temporary directory, so nothing can come from the checkout.
"""

from __future__ import annotations

import os
import shutil
import signal
import site
import subprocess
import sys
import venv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql
from uuid6 import uuid7

from controlplane.db.migrations import migration_files
from controlplane.pdp.templates import TEMPLATE_IDS
from tests.conftest import _with_database, stderr_of
from tests.test_serve import free_port, wait_for

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
#: What the wheel is built from (the Dockerfile's build stage copies the same).
SOURCES = ("pyproject.toml", "setup.py", "README.md", "controlplane", "sql", "policies")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin/`` of a fresh venv with the wheel built from the repo installed."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(
                REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", root / "dist", source], check=True)
    [wheel] = (root / "dist").glob("controlplane-*.whl")

    environment = root / "venv"
    venv.EnvBuilder(with_pip=False).create(environment)
    bin_dir = environment / "bin"
    packages = next((environment / "lib").glob("python3.*/site-packages"))
    # A path line of a .pth is only appended to sys.path: the editable install's finder in
    # this environment's site-packages is not loaded, so `controlplane` comes from the wheel.
    (packages / "parent_environment.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [*pip, "--python", bin_dir / "python", "install", "--no-deps", wheel], check=True
    )
    return bin_dir


@pytest.fixture
def elsewhere(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """``subprocess.run`` arguments: an empty working directory and no repo on the path."""
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARACAL_")}
    for name in ("DATABASE_URL", "PYTHONPATH", "VIRTUAL_ENV"):
        env.pop(name, None)
    env.update(CARACAL_DATA_DIR=str(tmp_path / "data"), CARACAL_ARGON2_MEMORY_COST="1024")
    yield {"cwd": workdir, "env": env, "capture_output": True, "text": True, "timeout": 120}


@pytest.fixture
def empty_database(pg_server_url: str) -> Iterator[str]:
    """The URL of a new database without any migration applied."""
    name = f"caracal_wheel_{uuid7().hex}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield _with_database(pg_server_url, name)
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_the_package_comes_from_the_wheel_with_its_data(
    installed: Path, elsewhere: dict[str, Any]
) -> None:
    code = (
        "import controlplane.package_data as p;"
        "print(p.__file__); print(p.SQL_DIR); print(p.TEMPLATE_DIR)"
    )
    done = subprocess.run([installed / "python", "-c", code], **elsewhere)
    assert done.returncode == 0, done.stderr
    module, sql_dir, template_dir = map(Path, done.stdout.split())
    venv_root = installed.parent
    assert module.is_relative_to(venv_root)
    assert sql_dir.is_relative_to(venv_root) and template_dir.is_relative_to(venv_root)
    assert sorted(p.name for p in sql_dir.glob("*.sql")) == sorted(
        p.name for _, _, p in migration_files()
    )
    assert {f"{t}.rego" for t in TEMPLATE_IDS} <= {p.name for p in template_dir.glob("*.rego")}


def test_help_migrate_and_policies_test_run_from_any_directory(
    installed: Path, elsewhere: dict[str, Any], empty_database: str
) -> None:
    caracal = installed / "caracal"
    done = subprocess.run([caracal, "--help"], **elsewhere)
    assert done.returncode == 0, done.stderr
    assert "migrate" in done.stdout and "serve" in done.stdout

    done = subprocess.run(
        [caracal, "migrate"],
        **{**elsewhere, "env": {**elsewhere["env"], "DATABASE_URL": empty_database}},
    )
    assert done.returncode == 0, done.stderr
    assert f"applied {len(migration_files())} migration(s)" in done.stdout
    with psycopg.connect(empty_database) as conn:
        applied = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
    assert applied == (len(migration_files()),)

    template_dir = subprocess.run(
        [
            installed / "python",
            "-c",
            "from controlplane.package_data import *; print(TEMPLATE_DIR)",
        ],
        **elsewhere,
    ).stdout.strip()
    done = subprocess.run([caracal, "policies", "test", template_dir], **elsewhere)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 0 failed" in done.stdout


def test_serve_answers_with_the_packaged_templates(
    installed: Path, elsewhere: dict[str, Any], empty_database: str
) -> None:
    port = free_port()
    env = {**elsewhere["env"], "DATABASE_URL": empty_database}
    proc = subprocess.Popen(
        [installed / "caracal", "serve", "--port", str(port)],
        cwd=elsewhere["cwd"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for(f"http://127.0.0.1:{port}/health").json() == {"ok": True}
        templates = httpx.get(f"http://127.0.0.1:{port}/v1/policy-templates")
        assert templates.status_code == 200
        assert [t["id"] for t in templates.json()] == list(TEMPLATE_IDS)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    stderr = stderr_of(proc)
    assert "Traceback" not in stderr, stderr
