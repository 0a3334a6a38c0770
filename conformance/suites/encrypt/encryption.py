"""Helpers shared by the encryption tests: python-pkcs11 encrypt and decrypt calls that fail
the test with the CKR the module returned, and the refuse-or-be-right call whose refusal is
judged by the return-code table."""

import pytest
from pkcs11.exceptions import PKCS11Error

from conformance.names import mechanism
from conformance.returncodes import judge
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


def result_or_refusal(condition, function, what, call, *args, **kwargs):
    """Refuse or be right: the result of a python-pkcs11 call, or None when the module
    refused it with the code the spec names for `condition` (conformance.returncodes);
    another refusal code is judged by the table."""
    try:
        return call(*args, **kwargs)
    except PKCS11Error as exc:
        judge(function, condition, returned(exc), what)
        return None
