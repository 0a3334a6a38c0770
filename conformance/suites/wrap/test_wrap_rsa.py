"""RSA key wrapping of AES keys (CKM_RSA_PKCS, CKM_RSA_PKCS_OAEP), cross-checked with
cryptography in both directions.

Module wraps: cryptography makes the RSA key pair and its public key is imported with
CKA_WRAP; the module wraps an AES key of known value and cryptography decrypts the result.
Module unwraps: cryptography encrypts a known AES key value under the public key of a key
pair the module generated (the shared `keys` fixture), and the module unwraps it with the
private key into a key with that value. Both paddings are randomized, so only decryption
can check a wrapped key.
"""

import pytest
from cryptography.hazmat.primitives.asymmetric import padding
from pkcs11 import Attribute
from pkcs11.exceptions import PKCS11Error

from conformance.crosscheck import (
    as_cryptography,
    oaep_capacity,
    oaep_decrypt,
    oaep_encrypt,
    oaep_param,
)
from conformance.suite import expect_refusal, returned

from .support import (
    AES_KEY_LENGTHS,
    key_value,
    length_id,
    must_unwrap,
    must_wrap,
    unwrap,
    wrap,
)

PKCS1 = pytest.mark.mechanism("CKM_RSA_PKCS")
OAEP = pytest.mark.mechanism("CKM_RSA_PKCS_OAEP")
KEYGEN = pytest.mark.mechanism("CKM_RSA_PKCS_KEY_PAIR_GEN")
IMPORTS = pytest.mark.function("C_CreateObject")
WRAPS = pytest.mark.function("C_WrapKey")
UNWRAPS = pytest.mark.function("C_UnwrapKey")
AES_LENGTHS = pytest.mark.parametrize("length", AES_KEY_LENGTHS, ids=length_id)


def modulus_bytes(public):
    return len(public[Attribute.MODULUS].lstrip(b"\0"))


def check_value(key, expected, what):
    try:
        value = key[Attribute.VALUE]
    except PKCS11Error as exc:
        pytest.fail(f"{what}: CKA_VALUE of a key unwrapped with CKA_SENSITIVE false and "
                    f"CKA_EXTRACTABLE true must be readable: {returned(exc)}")
    assert value == expected, (
        f"{what} must give the {len(expected)}-byte AES key {expected.hex()}: got "
        f"{len(value)} bytes {value.hex()}")


@AES_LENGTHS
@PKCS1
@IMPORTS
@WRAPS
def test_wrap_rsa_pkcs_decrypts_with_cryptography(foreign_rsa, wrap_target, key_bits, length):
    """PKCS#11 v2.40 curr, PKCS #1 v1.5 RSA, base §5.14.3 C_WrapKey: wrapping an AES key
    with CKM_RSA_PKCS encrypts its value with RSAES-PKCS1-v1_5 (RFC 8017 §7.2) into k
    bytes, which cryptography decrypts to the key value."""
    pair = foreign_rsa(key_bits)
    wrapped = must_wrap(pair.public_object, wrap_target(length), "CKM_RSA_PKCS",
                        what=f"a {length}-byte AES key")
    assert len(wrapped) == pair.k, (
        f"C_WrapKey(CKM_RSA_PKCS) must return k = {pair.k} bytes: got {len(wrapped)}")
    try:
        value = pair.private.decrypt(wrapped, padding.PKCS1v15())
    except ValueError as exc:
        pytest.fail(f"C_WrapKey(CKM_RSA_PKCS) of a {length}-byte AES key must decrypt with "
                    f"cryptography as RSAES-PKCS1-v1_5: {exc}")
    assert value == key_value(length), (
        f"C_WrapKey(CKM_RSA_PKCS) must carry the key value: cryptography decrypts it to "
        f"{value.hex()}, expected {key_value(length).hex()}")


@AES_LENGTHS
@KEYGEN
@PKCS1
@UNWRAPS
def test_unwrap_rsa_pkcs_recovers_cryptography_key(keys, created, key_bits, length):
    """PKCS#11 v2.40 curr, PKCS #1 v1.5 RSA, base §5.14.4 C_UnwrapKey: C_UnwrapKey with
    CKM_RSA_PKCS of cryptography's RSAES-PKCS1-v1_5 encryption of an AES key value creates
    an AES key with that value."""
    public, private = keys.rsa(key_bits)
    value = key_value(length)
    wrapped = as_cryptography(public).encrypt(value, padding.PKCS1v15())
    key = must_unwrap(private, wrapped, "CKM_RSA_PKCS", keep=created,
                      what=f"an RSAES-PKCS1-v1_5 encrypted {length}-byte AES key",
                      SENSITIVE=False, EXTRACTABLE=True)
    check_value(key, value, "C_UnwrapKey(CKM_RSA_PKCS) of cryptography's encryption")


@AES_LENGTHS
@OAEP
@IMPORTS
@WRAPS
def test_wrap_rsa_oaep_decrypts_with_cryptography(foreign_rsa, wrap_target, key_bits,
                                                  hash_name, length):
    """PKCS#11 v2.40 curr, PKCS #1 RSA OAEP, base §5.14.3 C_WrapKey: wrapping an AES key
    with CKM_RSA_PKCS_OAEP (hashAlg and MGF1 over the claimed hash, no label) encrypts its
    value with RSAES-OAEP (RFC 8017 §7.1) into k bytes, which decrypt to the key value; a key
    longer than k - 2hLen - 2 bytes is refused with CKR_KEY_SIZE_RANGE (§5.14.3: it cannot
    be wrapped solely because of its length)."""
    pair = foreign_rsa(key_bits)
    what = f"C_WrapKey(CKM_RSA_PKCS_OAEP, {hash_name}) of a {length}-byte AES key"
    if oaep_capacity(pair.k, hash_name) < length:  # no room for the key: must refuse
        expect_refusal("key-too-long-to-wrap", "C_WrapKey", wrap, pair.public_object,
                       wrap_target(length), "CKM_RSA_PKCS_OAEP", oaep_param(hash_name),
                       what=f"{what} under a {key_bits}-bit key (no room for it)")
        return
    wrapped = must_wrap(pair.public_object, wrap_target(length), "CKM_RSA_PKCS_OAEP",
                        oaep_param(hash_name), what=f"a {length}-byte AES key")
    assert len(wrapped) == pair.k, f"{what} must return k = {pair.k} bytes: got {len(wrapped)}"
    try:
        value = oaep_decrypt(pair.private, wrapped, hash_name)
    except ValueError as exc:
        pytest.fail(f"{what} must decrypt as RSAES-OAEP with {hash_name}: {exc}")
    assert value == key_value(length), (
        f"{what} must carry the key value: it decrypts to {value.hex()}, expected "
        f"{key_value(length).hex()}")


@AES_LENGTHS
@KEYGEN
@OAEP
@UNWRAPS
def test_unwrap_rsa_oaep_recovers_cryptography_key(keys, created, key_bits, hash_name, length):
    """PKCS#11 v2.40 curr, PKCS #1 RSA OAEP, base §5.14.4 C_UnwrapKey: C_UnwrapKey with
    CKM_RSA_PKCS_OAEP (hashAlg and MGF1 over the claimed hash, no label) of an RSAES-OAEP
    encryption (RFC 8017 §7.1) of an AES key value creates an AES key with that value; when
    the key cannot fit, a k-byte input is not a valid wrapped key: CKR_WRAPPED_KEY_INVALID
    (base §5.1.6)."""
    public, private = keys.rsa(key_bits)
    k = modulus_bytes(public)
    what = f"C_UnwrapKey(CKM_RSA_PKCS_OAEP, {hash_name})"
    if oaep_capacity(k, hash_name) < length:  # no such ciphertext exists: must refuse
        expect_refusal("wrapped-key-invalid", "C_UnwrapKey", unwrap, private,
                       b"\0" * (k - 1) + b"\x02", "CKM_RSA_PKCS_OAEP", oaep_param(hash_name),
                       keep=created,
                       what=f"{what} of a k-byte input (no {length}-byte key fits the key)")
        return
    value = key_value(length)
    wrapped = oaep_encrypt(as_cryptography(public), value, hash_name)
    key = must_unwrap(private, wrapped, "CKM_RSA_PKCS_OAEP", oaep_param(hash_name),
                      keep=created, what=f"an RSAES-OAEP encrypted {length}-byte AES key",
                      SENSITIVE=False, EXTRACTABLE=True)
    check_value(key, value, f"{what} of an RSAES-OAEP encryption")
