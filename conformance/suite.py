"""Helpers for writing suite tests."""

from __future__ import annotations

from typing import Any

import pytest


def refused(expected: str, function: str, call: Any, *args: Any) -> None:
    """Assert that `call(*args)` (a raw-layer call) returns exactly the CKR `expected`."""
    from .raw import CKRError

    try:
        call(*args)
    except CKRError as exc:
        assert exc.name == expected, f"{function} must return {expected}: returned {exc.name}"
        return
    pytest.fail(f"{function} must return {expected}: returned CKR_OK")
