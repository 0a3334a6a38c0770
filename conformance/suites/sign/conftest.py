"""Fixtures shared by the signature and MAC tests."""

import pytest


@pytest.fixture
def own_session(token):
    """A session of the test's own (the login is shared), so an operation the module
    wrongly leaves active ends with it and cannot disturb other tests."""
    opened = token.open(rw=True)
    yield opened
    opened.close()
