"""Shared helpers for the project's own tests (not the conformance suites)."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SOFTHSM2 = "/usr/lib/softhsm/libsofthsm2.so"

# The reference module must be installed (.ci/run installs it): a missing module fails
# these tests instead of skipping them.
assert Path(SOFTHSM2).is_file() and shutil.which("softhsm2-util"), (
    "SoftHSM2 is required for the project's tests: apt-get install softhsm2")


@pytest.fixture
def write(tmp_path):
    """Write a dedented text file under tmp_path and return its path."""
    def writer(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path
    return writer
