"""Run Python in a subprocess that cannot import OPA's engine (it is optional): the
environment's site-packages, as symlinks, without ``opa_bindings``; run with ``-S``."""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def python_without_opa(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """``(argv prefix, environment)`` for a ``python -S`` that has everything but OPA."""
    site = Path(sysconfig.get_paths()["purelib"])
    trimmed = tmp_path / "site-without-opa"
    trimmed.mkdir()
    for entry in site.iterdir():
        if not entry.name.startswith(("opa_bindings", "opa_golib")):
            (trimmed / entry.name).symlink_to(entry)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{trimmed}"}
    return [sys.executable, "-S"], env
