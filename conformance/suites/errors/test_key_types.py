"""A key of the wrong type: each C_*Init refuses a key whose type does not fit the
mechanism with CKR_KEY_TYPE_INCONSISTENT, for every key type / mechanism family pair.

Each key gets every usage its type allows (common.SECRET_USAGES and the pairs' usages),
so the key type is the only thing wrong; by §5.1.6 CKR_KEY_TYPE_INCONSISTENT takes
precedence over CKR_KEY_FUNCTION_NOT_PERMITTED anyway.
"""

import pytest

from conformance.names import mechanism
from conformance.suite import expect_code
from conformance.suites.errors.common import INITS, any_aes_key, ec_pair, logged_in, rsa_pair

# The key each kind names, made in the test's child, and the mechanism that makes it.
KEYS = {
    "aes": ("CKM_AES_KEY_GEN", lambda raw, target, h: any_aes_key(raw, target, h)),
    "ec-private": ("CKM_EC_KEY_PAIR_GEN", lambda raw, target, h: ec_pair(raw, h)[1]),
    "ec-public": ("CKM_EC_KEY_PAIR_GEN", lambda raw, target, h: ec_pair(raw, h)[0]),
    "rsa-private": ("CKM_RSA_PKCS_KEY_PAIR_GEN",
                    lambda raw, target, h: rsa_pair(raw, target, h)[1]),
    "rsa-public": ("CKM_RSA_PKCS_KEY_PAIR_GEN",
                   lambda raw, target, h: rsa_pair(raw, target, h)[0]),
}
# (function, mechanism, key): the key is of a type the mechanism's section does not
# take. The private half of a pair goes to C_SignInit/C_DecryptInit, the public half to
# C_VerifyInit/C_EncryptInit, as a caller would use it.
MISMATCHES = sorted([
    ("C_DecryptInit", "CKM_AES_ECB", "ec-private"),
    ("C_DecryptInit", "CKM_AES_ECB", "rsa-private"),
    ("C_DecryptInit", "CKM_RSA_PKCS", "aes"),
    ("C_DecryptInit", "CKM_RSA_PKCS", "ec-private"),
    ("C_EncryptInit", "CKM_AES_ECB", "ec-public"),
    ("C_EncryptInit", "CKM_AES_ECB", "rsa-public"),
    ("C_EncryptInit", "CKM_RSA_PKCS", "aes"),
    ("C_EncryptInit", "CKM_RSA_PKCS", "ec-public"),
    ("C_SignInit", "CKM_ECDSA", "aes"),
    ("C_SignInit", "CKM_ECDSA", "rsa-private"),
    ("C_SignInit", "CKM_RSA_PKCS", "aes"),
    ("C_SignInit", "CKM_RSA_PKCS", "ec-private"),
    ("C_SignInit", "CKM_SHA256_RSA_PKCS", "ec-private"),
    ("C_VerifyInit", "CKM_ECDSA", "aes"),
    ("C_VerifyInit", "CKM_ECDSA", "rsa-public"),
    ("C_VerifyInit", "CKM_RSA_PKCS", "aes"),
    ("C_VerifyInit", "CKM_RSA_PKCS", "ec-public"),
    ("C_VerifyInit", "CKM_SHA256_RSA_PKCS", "ec-public"),
])


def mismatch(function, mech, kind):
    return pytest.param(function, mech, kind, id=f"{function}-{mech}-{kind}-key", marks=[
        pytest.mark.function(function), pytest.mark.mechanism(mech, KEYS[kind][0])])


@pytest.mark.parametrize(("function", "mechanism_name", "kind"),
                         [mismatch(*case) for case in MISMATCHES])
def test_init_with_key_of_wrong_type_is_refused(raw, target, function, mechanism_name, kind):
    """PKCS#11 v2.40 base §5.1.6 CKR_KEY_TYPE_INCONSISTENT, §5.8.1 C_EncryptInit, §5.9.1
    C_DecryptInit, §5.11.1 C_SignInit, §5.12.1 C_VerifyInit: a key that is not the
    correct type of key for the mechanism (an RSA key with CKM_ECDSA, an EC key with an
    RSA mechanism, an AES key with either, an asymmetric key with CKM_AES_ECB) gives
    CKR_KEY_TYPE_INCONSISTENT, which each of these functions lists."""
    session = logged_in(raw)
    key = KEYS[kind][1](raw, target, session)
    expect_code("key-type-inconsistent", function, INITS[function], raw, session,
                int(mechanism(mechanism_name)), key,
                what=f"{function}({mechanism_name}) with an {kind} key")
