"""C_WrapKey and C_UnwrapKey refuse what they must, with the return value the spec names.

Every claimed wrapping mechanism is used (RSA-OAEP with the first claimed hash). The wrapped
keys are the module's own wrappings of a 16-byte AES key, made invalid on purpose.

Not checked: a corrupted CKM_RSA_PKCS wrapped key. A module hardened against Bleichenbacher's
attack (implicit rejection, as OpenSSL 3.2 does for PKCS #1 v1.5 decryption) may turn it into
a pseudo-random key instead of an error, so a correct module could fail such a check.
"""

import pytest

from conformance.suite import expect_refusal

from .support import AES_WRAPS, ALL_WRAPS, must_wrap, unwrap, wrap

ALL = pytest.mark.mechanisms(*ALL_WRAPS)
IMPORTS = pytest.mark.function("C_CreateObject")
WRAPS = pytest.mark.function("C_WrapKey")
UNWRAPS = pytest.mark.function("C_UnwrapKey")
LENGTH = 16  # the wrapped key: AES-128


def own_wrapping(w, wrap_target):
    return must_wrap(w.wrapping_key, wrap_target(LENGTH), w.mechanism_name, w.param,
                     what=f"a {LENGTH}-byte AES key")


@ALL
@IMPORTS
@WRAPS
def test_wrap_unextractable_key_is_refused(wrapping, wrap_target, mechanism_name, key_bits):
    """PKCS#11 v2.40 base §5.14.3 C_WrapKey and §5.1.6 return values: the key to be wrapped
    must have CKA_EXTRACTABLE true; wrapping a key with CKA_EXTRACTABLE false returns
    CKR_KEY_UNEXTRACTABLE."""
    w = wrapping(mechanism_name, key_bits)
    expect_refusal("key-unextractable", "C_WrapKey", wrap, w.wrapping_key,
                   wrap_target(LENGTH, extractable=False), mechanism_name, w.param,
                   what=f"C_WrapKey({w}) of a key with CKA_EXTRACTABLE false")


@ALL
@IMPORTS
@WRAPS
def test_wrap_with_key_without_wrap_permission_is_refused(wrapping, wrap_target,
                                                          mechanism_name, key_bits):
    """PKCS#11 v2.40 base §5.14.3 C_WrapKey and §5.1.6 return values: the wrapping key must
    have CKA_WRAP true; the return value for a key used for a purpose its attributes do not
    allow is CKR_KEY_FUNCTION_NOT_PERMITTED (§5.14.3 lists no more specific code)."""
    w = wrapping(mechanism_name, key_bits, wrap=False)
    expect_refusal("key-function-not-permitted", "C_WrapKey", wrap, w.wrapping_key,
                   wrap_target(LENGTH), mechanism_name, w.param,
                   what=f"C_WrapKey({w}) with a wrapping key whose CKA_WRAP is false")


@ALL
@IMPORTS
@UNWRAPS
def test_unwrap_with_key_without_unwrap_permission_is_refused(wrapping, wrap_target, created,
                                                              mechanism_name, key_bits):
    """PKCS#11 v2.40 base §5.14.4 C_UnwrapKey and §5.1.6 return values: the unwrapping key
    must have CKA_UNWRAP true; the return value for a key used for a purpose its attributes
    do not allow is CKR_KEY_FUNCTION_NOT_PERMITTED (§5.14.4 lists no more specific code)."""
    w = wrapping(mechanism_name, key_bits, unwrap=False)
    expect_refusal("key-function-not-permitted", "C_UnwrapKey", unwrap, w.unwrapping_key,
                   own_wrapping(w, wrap_target), mechanism_name, w.param, keep=created,
                   what=f"C_UnwrapKey({w}) with an unwrapping key whose CKA_UNWRAP is false")


@pytest.mark.mechanisms(*AES_WRAPS, "CKM_RSA_PKCS_OAEP")
@IMPORTS
@UNWRAPS
def test_unwrap_tampered_key_is_refused_as_invalid(wrapping, wrap_target, created,
                                                   mechanism_name, key_bits):
    """PKCS#11 v2.40 base §5.14.4 C_UnwrapKey and §5.1.6 return values: a wrapped key with
    one bit flipped fails the mechanism's integrity check (RFC 3394 and RFC 5649 initial
    value, OAEP decoding) and is refused with CKR_WRAPPED_KEY_INVALID; its length is
    right, so CKR_WRAPPED_KEY_LEN_RANGE does not apply."""
    w = wrapping(mechanism_name, key_bits)
    wrapped = own_wrapping(w, wrap_target)
    tampered = wrapped[:-1] + bytes([wrapped[-1] ^ 0x01])
    expect_refusal("wrapped-key-invalid", "C_UnwrapKey", unwrap, w.unwrapping_key, tampered,
                   mechanism_name, w.param, keep=created,
                   what=f"C_UnwrapKey({w}) of its own wrapped key with the last bit flipped")


@ALL
@IMPORTS
@UNWRAPS
def test_unwrap_wrong_length_is_refused(wrapping, wrap_target, created, mechanism_name,
                                        key_bits):
    """PKCS#11 v2.40 base §5.14.4 C_UnwrapKey and §5.1.6 return values: a wrapped key that
    is invalid by its length alone (AES key wrap output not a multiple of 8 bytes, RSA
    input of k + 1 bytes) is refused with CKR_WRAPPED_KEY_LEN_RANGE, which takes priority
    over CKR_WRAPPED_KEY_INVALID."""
    w = wrapping(mechanism_name, key_bits)
    wrapped = own_wrapping(w, wrap_target)
    if mechanism_name in AES_WRAPS:
        wrong, how = wrapped[:-1], f"{len(wrapped) - 1} bytes (not a multiple of 8)"
    else:
        wrong, how = wrapped + b"\0", f"k + 1 = {len(wrapped) + 1} bytes"
    expect_refusal("wrapped-key-len-range", "C_UnwrapKey", unwrap, w.unwrapping_key, wrong,
                   mechanism_name, w.param, keep=created, what=f"C_UnwrapKey({w}) of {how}")
