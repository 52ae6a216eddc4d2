"""Where the SQL migrations and the policy templates are, installed from a wheel or not.

In the repo they are the top-level ``sql/`` and ``policies/templates/`` (a checkout and an
editable install read them there); a wheel carries them inside the package as
``controlplane/sql/`` and ``controlplane/policy_templates/`` (the mapping is in ``setup.py``).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def data_dir(in_package: str, in_repo: str) -> Path:
    """``controlplane/<in_package>`` when the package carries it (a wheel install), else
    ``<in_repo>`` beside the package (the repo)."""
    packaged = _PACKAGE / in_package
    return packaged if packaged.is_dir() else _PACKAGE.parent / in_repo


SQL_DIR = data_dir("sql", "sql")
TEMPLATE_DIR = data_dir("policy_templates", "policies/templates")
