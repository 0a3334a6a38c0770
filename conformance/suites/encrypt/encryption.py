"""Helpers shared by the encryption tests: python-pkcs11 encrypt and decrypt calls that fail
the test with the CKR the module returned, and the check that a call is refused with
exactly one CKR."""

import pytest
from pkcs11.exceptions import PKCS11Error

from conformance.names import mechanism
from conformance.suite import returned


def _must_succeed(operation, key, data, name, param, what):
    call = key.encrypt if operation == "Encrypt" else key.decrypt
    try:
        return call(data, mechanism=mechanism(name), mechanism_param=param)
    except PKCS11Error as exc:
        pytest.fail(f"C_{operation}({name}) of {what} must succeed: {returned(exc)}")


def module_encrypt(key, data, name, param=None):
    """C_Encrypt; any CKR error fails the test."""
    return _must_succeed("Encrypt", key, data, name, param, f"{len(data)} bytes")


def module_decrypt(key, data, name, param=None):
    """C_Decrypt; any CKR error fails the test."""
    return _must_succeed("Decrypt", key, data, name, param, f"a {len(data)}-byte ciphertext")


def refuses(expected, what, call, *args, **kwargs):
    """Assert that a python-pkcs11 call fails with exactly the CKR `expected` (a name, or a
    tuple of names any of which is right)."""
    allowed = (expected,) if isinstance(expected, str) else expected
    wanted = " or ".join(allowed)
    try:
        got = call(*args, **kwargs)
    except PKCS11Error as exc:
        assert returned(exc) in allowed, f"{what} must return {wanted}: returned {returned(exc)}"
        return
    pytest.fail(f"{what} must return {wanted}: returned CKR_OK and {len(got)} bytes")
