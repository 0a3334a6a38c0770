"""C_UnwrapKey honours its template and sets the attributes the spec fixes for unwrapped keys.

Every claimed wrapping mechanism is used; the wrapped key is the module's own wrapping of a
16-byte AES key (the mechanisms' formats are checked in test_wrap.py and test_wrap_rsa.py),
so these checks are about the attributes alone.

Not checked: the default of CKA_EXTRACTABLE when the template leaves it out (v3.x C_UnwrapKey
says CK_TRUE, the secret key attribute table says token-specific), and CKA_WRAP_WITH_TRUSTED /
CKA_TRUSTED (vendors cannot claim attribute support yet).
"""

import pytest
from pkcs11 import Attribute
from pkcs11.exceptions import PKCS11Error

from conformance.suite import returned

from .support import ALL_WRAPS, key_value, must_unwrap, must_wrap, refusal, wrap

ALL = pytest.mark.mechanisms(*ALL_WRAPS)
IMPORTS = pytest.mark.function("C_CreateObject")
WRAPS = pytest.mark.function("C_WrapKey")
UNWRAPS = pytest.mark.function("C_UnwrapKey")
LENGTH = 16  # the wrapped key: AES-128


def unwrapped(wrapping, wrap_target, created, mechanism_name, key_bits, **template):
    """A 16-byte AES key wrapped and unwrapped by the module with this template."""
    w = wrapping(mechanism_name, key_bits)
    wrapped = must_wrap(w.wrapping_key, wrap_target(LENGTH), mechanism_name, w.param,
                        what=f"a {LENGTH}-byte AES key")
    return w, must_unwrap(w.unwrapping_key, wrapped, mechanism_name, w.param, keep=created,
                          what=f"its own wrapping of a {LENGTH}-byte AES key", **template)


def attribute(key, name, what):
    try:
        return key[Attribute[name]]
    except PKCS11Error as exc:
        pytest.fail(f"{what}: CKA_{name} of the unwrapped key must be readable: "
                    f"{returned(exc)}")


@ALL
@IMPORTS
@WRAPS
@UNWRAPS
def test_unwrap_template_not_sensitive_reveals_value(wrapping, wrap_target, created,
                                                     mechanism_name, key_bits):
    """PKCS#11 v2.40 base §5.14.4 C_UnwrapKey: a key unwrapped from the module's own
    wrapping with CKA_SENSITIVE false and CKA_EXTRACTABLE true has those attributes and the
    original key value (the control for the sensitive and unextractable cases)."""
    w, key = unwrapped(wrapping, wrap_target, created, mechanism_name, key_bits,
                       SENSITIVE=False, EXTRACTABLE=True)
    what = f"C_UnwrapKey({w}) with CKA_SENSITIVE false, CKA_EXTRACTABLE true"
    for name, expected in (("SENSITIVE", False), ("EXTRACTABLE", True)):
        got = attribute(key, name, what)
        assert got is expected, f"{what}: CKA_{name} must be {expected}: got {got}"
    value = attribute(key, "VALUE", what)
    assert value == key_value(LENGTH), (
        f"{what}: CKA_VALUE must be the wrapped key {key_value(LENGTH).hex()}: got "
        f"{len(value)} bytes {value.hex()}")


@ALL
@IMPORTS
@WRAPS
@UNWRAPS
def test_unwrap_key_value_len_is_key_length(wrapping, wrap_target, created, mechanism_name,
                                            key_bits):
    """PKCS#11 v2.40 curr, AES secret key objects, base §5.14.4 C_UnwrapKey: an unwrapped
    AES key's CKA_VALUE_LEN is the length in bytes of its value (the mechanism contributes
    CKA_VALUE and CKA_VALUE_LEN to the recovered key), here 16 for an AES-128 key whose
    template gave no CKA_VALUE_LEN."""
    w, key = unwrapped(wrapping, wrap_target, created, mechanism_name, key_bits,
                       SENSITIVE=True, EXTRACTABLE=True)
    what = f"C_UnwrapKey({w}) of a {LENGTH}-byte AES key"
    got = attribute(key, "VALUE_LEN", what)
    assert got == LENGTH, f"{what}: CKA_VALUE_LEN must be {LENGTH}: got {got}"


@ALL
@IMPORTS
@WRAPS
@UNWRAPS
def test_unwrap_template_sensitive_hides_value(wrapping, wrap_target, created, mechanism_name,
                                               key_bits):
    """PKCS#11 v2.40 base §5.14.4 C_UnwrapKey and §5.7.5 C_GetAttributeValue: a key
    unwrapped with CKA_SENSITIVE true is sensitive, so reading its CKA_VALUE returns
    CKR_ATTRIBUTE_SENSITIVE."""
    w, key = unwrapped(wrapping, wrap_target, created, mechanism_name, key_bits,
                       SENSITIVE=True, EXTRACTABLE=True)
    what = f"C_UnwrapKey({w}) with CKA_SENSITIVE true"
    got = attribute(key, "SENSITIVE", what)
    assert got is True, f"{what}: CKA_SENSITIVE must be true: got {got}"
    read = refusal(key.__getitem__, Attribute.VALUE)
    assert read == "CKR_ATTRIBUTE_SENSITIVE", (
        f"{what}: C_GetAttributeValue(CKA_VALUE) must return CKR_ATTRIBUTE_SENSITIVE: "
        f"returned {read or 'CKR_OK and the value'}")


@ALL
@IMPORTS
@WRAPS
@UNWRAPS
def test_unwrap_key_is_not_local_always_sensitive_or_never_extractable(
        wrapping, wrap_target, created, mechanism_name, key_bits):
    """PKCS#11 v2.40 base §5.14.4 C_UnwrapKey: an unwrapped key has CKA_LOCAL false, and
    CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE false, even when the template makes it
    sensitive and unextractable (its value has been outside the token)."""
    w, key = unwrapped(wrapping, wrap_target, created, mechanism_name, key_bits,
                       SENSITIVE=True, EXTRACTABLE=False)
    what = f"C_UnwrapKey({w}) with CKA_SENSITIVE true, CKA_EXTRACTABLE false"
    for name in ("LOCAL", "ALWAYS_SENSITIVE", "NEVER_EXTRACTABLE"):
        got = attribute(key, name, what)
        assert got is False, f"{what}: CKA_{name} of the unwrapped key must be false: got {got}"


@ALL
@IMPORTS
@WRAPS
@UNWRAPS
def test_unwrap_template_unextractable_is_honoured(wrapping, wrap_target, created,
                                                   mechanism_name, key_bits):
    """PKCS#11 v2.40 base §5.14.4 C_UnwrapKey, §5.14.3 C_WrapKey, §5.7.5 C_GetAttributeValue:
    a key unwrapped with CKA_EXTRACTABLE false (and CKA_SENSITIVE
    false) is unextractable: CKA_EXTRACTABLE reads false, its CKA_VALUE cannot be revealed
    (CKR_ATTRIBUTE_SENSITIVE) and C_WrapKey of it returns CKR_KEY_UNEXTRACTABLE."""
    w, key = unwrapped(wrapping, wrap_target, created, mechanism_name, key_bits,
                       SENSITIVE=False, EXTRACTABLE=False)
    what = f"C_UnwrapKey({w}) with CKA_EXTRACTABLE false"
    got = attribute(key, "EXTRACTABLE", what)
    assert got is False, f"{what}: CKA_EXTRACTABLE must be false: got {got}"
    read = refusal(key.__getitem__, Attribute.VALUE)
    assert read == "CKR_ATTRIBUTE_SENSITIVE", (
        f"{what}: C_GetAttributeValue(CKA_VALUE) must return CKR_ATTRIBUTE_SENSITIVE: "
        f"returned {read or 'CKR_OK and the value'}")
    wrapped = refusal(wrap, w.wrapping_key, key, mechanism_name, w.param)
    assert wrapped == "CKR_KEY_UNEXTRACTABLE", (
        f"{what}: C_WrapKey({w}) of that key must return CKR_KEY_UNEXTRACTABLE: returned "
        f"{wrapped or 'CKR_OK'}")
