"""Fixtures the conformance suites use. Nouns: the target, its token, a session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .interop import Keys
from .isolation import RawModule, raw_module
from .model import Profile
from .plugin import RUN
from .target import Target


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Target:
    return request.config.stash[RUN].target


@pytest.fixture(scope="session")
def profiles(request: pytest.FixtureRequest) -> tuple[Profile, ...]:
    """The profiles this run judges against."""
    return request.config.stash[RUN].profiles


@pytest.fixture(scope="session")
def token(target: Target) -> Any:
    return target.token


@pytest.fixture(scope="session")
def session(target: Target) -> Any:
    """This worker's logged-in read/write session (python-pkcs11), shared by its tests."""
    return target.login_session()


@pytest.fixture(scope="session")
def keys(session: Any) -> Keys:
    """Keys generated once per worker, for tests that are not about key generation."""
    return Keys(session)


@pytest.fixture
def raw(target: Target) -> Iterator[RawModule]:
    """The module loaded afresh in a child process, driven through the ctypes layer.

    For checks that python-pkcs11 cannot express (exact CKR codes, C_GetSessionInfo) and
    for state the test changes (login, logout): the child's state dies with it.
    """
    with raw_module(target) as module:
        yield module
