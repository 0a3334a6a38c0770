"""Fixtures the conformance suites use. Nouns: the target, its token, a session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .crosscheck import Keys
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


@pytest.fixture
def token(target: Target) -> Any:
    return target.token  # a new object after a re-initialization (keys.reinitialize_every)


@pytest.fixture(scope="session")
def session(target: Target) -> Any:
    """This worker's logged-in read/write session (python-pkcs11), shared by its tests."""
    return target.current_session()


@pytest.fixture
def own_session(target: Target, token: Any) -> Iterator[Any]:
    """A session of the test's own (the login, made by the shared session, is shared), for
    tests that provoke errors: an operation the module wrongly leaves active ends with it."""
    target.login_session()
    opened = token.open(rw=True)
    yield opened
    opened.close()


@pytest.fixture(autouse=True)
def _end_operations(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test, end what it left active in the shared session (see
    Target.end_operations): a module that keeps an operation after an error must cost
    the test that met the error, not the tests after it."""
    yield
    run = request.config.stash.get(RUN, None)
    if run is not None and run.target is not None:
        run.target.end_operations()


@pytest.fixture
def keys(target: Target) -> Keys:
    """Keys generated once per worker (until a re-initialization), for tests that are not
    about key generation."""
    return target.keys


@pytest.fixture
def raw(target: Target) -> Iterator[RawModule]:
    """The module loaded afresh in a child process, driven through the ctypes layer.

    For checks that python-pkcs11 cannot express (exact CKR codes, C_GetSessionInfo) and
    for state the test changes (login, logout): the child's state dies with it.
    """
    with raw_module(target) as module:
        yield module
