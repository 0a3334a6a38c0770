"""The module child the attribute checks share.

Attribute checks need exact per-attribute results of C_GetAttributeValue, so they run
through the ctypes layer in a child process (conformance/isolation.py). Starting a child
and logging in costs about 0.1 s, so one child serves all the tests of a module on a
worker: it logs in once, and every test gets a fresh read/write session whose session
objects die with it at the end of the test. A child that died (a module crash) is
replaced before the next test. RSA key pairs are slow to generate and are made once per
child, in its first session, which stays open.
"""

import contextlib

import pytest

from .support import RW, Child, Children


@pytest.fixture(scope="module")
def children(target):
    holder = Children(target)
    yield holder
    holder.close()


@pytest.fixture
def child(children):
    """The module child, logged in, with a fresh read/write session for this test."""
    module = children.current()
    session = module.open_session(module.slot, RW)
    yield Child(module, session, children)
    with contextlib.suppress(Exception):  # a crashed child is replaced by the next test
        module.close_session(session)
