"""What "CI" means for the tests, decided in one place.

Under CI (``CI=true``, as ``.ci/run`` runs) every optional tool is installed, so a test that
finds one missing fails instead of skipping: a skip there would hide a broken install step.
Elsewhere the test is skipped with what to install.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def missing(what: str) -> NoReturn:
    """Skip for lack of ``what`` (a sentence naming it and its install); under CI, fail."""
    if in_ci():
        pytest.fail(f"{what}; CI installs it (.ci/run), so this must not happen there")
    pytest.skip(what)


def require(present: bool, what: str) -> None:
    if not present:
        missing(what)
