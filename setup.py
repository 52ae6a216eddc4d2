"""The wheel carries the repo's top-level ``sql/`` and ``policies/templates/`` as data of the
``controlplane`` package; all other packaging settings are in ``pyproject.toml``."""

from setuptools import find_packages, setup

DATA_PACKAGES = {"controlplane.sql": "sql", "controlplane.policy_templates": "policies/templates"}

setup(
    packages=[*find_packages(include=["controlplane", "controlplane.*"]), *DATA_PACKAGES],
    package_dir=DATA_PACKAGES,
    package_data={"controlplane.sql": ["*.sql"], "controlplane.policy_templates": ["*.rego"]},
)
