"""MACs: HMAC (CKM_*_HMAC, full-length output) and AES CMAC, compared byte for byte with
Python's hmac and cryptography's CMAC, in both directions.

The keys are session objects made with C_CreateObject from known CKA_VALUE bytes, so the
reference implementations can use the same key.
"""

import hmac

import pytest
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC
from pkcs11 import Attribute, KeyType, ObjectClass

from conformance.suites.sign.signing import (
    MESSAGE,
    assert_all_rejected,
    assert_sign_not_permitted,
    calls,
    in_chunks,
    module_verifies,
    sign,
)

HMAC = {
    "CKM_MD5_HMAC": "md5", "CKM_SHA_1_HMAC": "sha1", "CKM_SHA224_HMAC": "sha224",
    "CKM_SHA256_HMAC": "sha256", "CKM_SHA384_HMAC": "sha384", "CKM_SHA512_HMAC": "sha512",
    "CKM_SHA3_224_HMAC": "sha3_224", "CKM_SHA3_256_HMAC": "sha3_256",
    "CKM_SHA3_384_HMAC": "sha3_384", "CKM_SHA3_512_HMAC": "sha3_512",
}
# What is MACed and how: (data, given to the module as one part or as chunks).
INPUTS = {
    "empty": (b"", False),
    "multi-part": (MESSAGE, True),
    "one-block": (MESSAGE[:16], False),
    "single-part": (MESSAGE, False),
}
EACH_INPUT = pytest.mark.parametrize("input_name", sorted(INPUTS))


def key_value(bits):
    return bytes((i * 13 + 5) % 256 for i in range(bits // 8))


def given(input_name):
    """The input as python-pkcs11 takes it: bytes (C_Sign / C_Verify) or an iterator of
    uneven chunks (C_SignUpdate + C_SignFinal, C_VerifyUpdate + C_VerifyFinal)."""
    data, in_parts = INPUTS[input_name]
    if not in_parts:
        return data
    return in_chunks(data)


def reference_mac(name, key, data):
    if name == "CKM_AES_CMAC":
        context = CMAC(algorithms.AES(key))
        context.update(data)
        return context.finalize()
    return hmac.new(key, data, HMAC[name]).digest()


class Secrets:
    """Secret keys with known values, as session objects, created once each."""

    def __init__(self, session, kept=None):
        self.session = session
        self._made = {} if kept is None else kept

    def get(self, name, bits, sign=True):
        key = (name == "CKM_AES_CMAC", bits, sign)
        if key not in self._made:
            self._made[key] = self.session.create_object({
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.AES if key[0] else KeyType.GENERIC_SECRET,
                Attribute.VALUE: key_value(bits), Attribute.TOKEN: False,
                Attribute.SIGN: sign, Attribute.VERIFY: True})
        return self._made[key]


@pytest.fixture(scope="module")
def secrets(target, session):
    return Secrets(session, target.cache())


# --- HMAC ---------------------------------------------------------------------------------


@EACH_INPUT
@pytest.mark.mechanisms(*HMAC)
def test_mac_hmac_equals_python_hmac(secrets, mechanism_name, key_bits, input_name):
    """PKCS#11 v2.40 curr, MD5, SHA-1 and SHA-2 HMAC (v3.0 curr, SHA3 HMAC): CKM_*_HMAC
    (not general-length) returns the full HMAC (RFC 2104)
    of the data under the key value, single-part or in parts; it equals Python's hmac."""
    data = INPUTS[input_name][0]
    key = secrets.get(mechanism_name, key_bits)
    got = sign(key, given(input_name), mechanism_name, what=calls("Sign", input_name))
    expected = reference_mac(mechanism_name, key_value(key_bits), data)
    assert got == expected, (
        f"{calls('Sign', input_name)}({mechanism_name}) with a {key_bits}-bit key over "
        f"{len(data)} bytes must equal Python's hmac: got {got.hex()}, expected "
        f"{expected.hex()}")


@EACH_INPUT
@pytest.mark.mechanisms(*HMAC)
def test_verify_hmac_accepts_python_hmac(secrets, mechanism_name, key_bits, input_name):
    """PKCS#11 v2.40 curr, MD5, SHA-1 and SHA-2 HMAC (v3.0 curr, SHA3 HMAC): C_Verify, or
    C_VerifyUpdate + C_VerifyFinal, accepts the HMAC Python's hmac computes with the same
    key."""
    data = INPUTS[input_name][0]
    mac = reference_mac(mechanism_name, key_value(key_bits), data)
    key = secrets.get(mechanism_name, key_bits)
    what = calls("Verify", input_name)
    assert module_verifies(key, given(input_name), mac, mechanism_name, what=what), (
        f"{what}({mechanism_name}) with a {key_bits}-bit key must accept Python's hmac: "
        "returned CKR_SIGNATURE_INVALID")


@pytest.mark.mechanisms("CKM_AES_CMAC", *HMAC)
def test_verify_mac_rejects_altered_mac(secrets, mechanism_name, key_bits):
    """PKCS#11 v2.40 base §5.12.2 C_Verify: a MAC with a flipped bit, over a changed message, or
    one byte too long or too short, is rejected: CKR_SIGNATURE_INVALID for a wrong signature,
    CKR_SIGNATURE_LEN_RANGE for one invalid by its length alone."""
    key = secrets.get(mechanism_name, key_bits)
    mac = reference_mac(mechanism_name, key_value(key_bits), MESSAGE)
    assert_all_rejected(key, MESSAGE, mac, mechanism_name, source="the reference MAC",
                        noun="MAC")


# --- AES CMAC -----------------------------------------------------------------------------


@EACH_INPUT
@pytest.mark.mechanism("CKM_AES_CMAC")
def test_mac_aes_cmac_equals_cryptography(secrets, key_bits, input_name):
    """PKCS#11 v2.40 curr, AES CMAC: CKM_AES_CMAC (not general-length) returns the full
    16-byte CMAC (NIST SP 800-38B) of the data, single-part or in parts; it equals
    cryptography's CMAC."""
    data = INPUTS[input_name][0]
    key = secrets.get("CKM_AES_CMAC", key_bits)
    got = sign(key, given(input_name), "CKM_AES_CMAC", what=calls("Sign", input_name))
    expected = reference_mac("CKM_AES_CMAC", key_value(key_bits), data)
    assert got == expected, (
        f"{calls('Sign', input_name)}(CKM_AES_CMAC) with a {key_bits}-bit key over "
        f"{len(data)} bytes must equal cryptography's CMAC: got {got.hex()}, expected "
        f"{expected.hex()}")


@EACH_INPUT
@pytest.mark.mechanism("CKM_AES_CMAC")
def test_verify_aes_cmac_accepts_cryptography(secrets, key_bits, input_name):
    """PKCS#11 v2.40 curr, AES CMAC: C_Verify, or C_VerifyUpdate + C_VerifyFinal, accepts
    the CMAC cryptography computes with the same key."""
    data = INPUTS[input_name][0]
    mac = reference_mac("CKM_AES_CMAC", key_value(key_bits), data)
    key = secrets.get("CKM_AES_CMAC", key_bits)
    what = calls("Verify", input_name)
    assert module_verifies(key, given(input_name), mac, "CKM_AES_CMAC", what=what), (
        f"{what}(CKM_AES_CMAC) with a {key_bits}-bit key must accept cryptography's CMAC: "
        "returned CKR_SIGNATURE_INVALID")


# --- keys that must not sign --------------------------------------------------------------


@pytest.mark.mechanisms("CKM_AES_CMAC", *HMAC)
def test_sign_init_with_key_not_allowed_to_sign_is_refused(own_session, mechanism_name,
                                                           key_bits):
    """PKCS#11 v2.40 base §5.11.1 C_SignInit: the CKA_SIGN attribute of the MAC key must be
    CK_TRUE; with a secret key created with CKA_SIGN false, C_SignInit returns
    CKR_KEY_FUNCTION_NOT_PERMITTED."""
    key = Secrets(own_session).get(mechanism_name, key_bits, sign=False)
    assert_sign_not_permitted(key, mechanism_name, "created")
