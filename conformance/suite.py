"""Helpers for writing suite tests: markers and parametrization spelled once."""

from __future__ import annotations

from typing import Any

import pytest


def each_mechanism(*names: str) -> Any:
    """Parametrize `mechanism_name` over spec mechanism names, each case marked with its
    mechanism so the outcome rule gates it on its own."""
    return pytest.mark.parametrize(
        "mechanism_name",
        [pytest.param(name, marks=pytest.mark.mechanism(name), id=name) for name in sorted(names)])


def refused(expected: str, function: str, call: Any, *args: Any) -> None:
    """Assert that `call(*args)` (a raw-layer call) returns exactly the CKR `expected`."""
    from .raw import CKRError

    try:
        call(*args)
    except CKRError as exc:
        assert exc.name == expected, f"{function} must return {expected}: returned {exc.name}"
        return
    pytest.fail(f"{function} must return {expected}: returned CKR_OK")
