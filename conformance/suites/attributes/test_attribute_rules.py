"""Attribute rules: the protection changes C_SetAttributeValue may and may not make, and
the usage flags a module enforces when an operation starts.

PKCS#11 v2.40 base §4.10 (secret keys, footnotes 11 and 12 of the attribute table):
CKA_SENSITIVE cannot be changed once CK_TRUE and CKA_EXTRACTABLE cannot be changed once
CK_FALSE, each then "becomes a read only attribute", and §4.1.1 (which §4.1.2 applies to
C_SetAttributeValue) gives CKR_ATTRIBUTE_READ_ONLY for a read-only attribute. The other
direction is allowed by the spec, but §4.1.2 lets a token decline to modify an attribute
the spec calls modifiable, so there CKR_ATTRIBUTE_READ_ONLY is accepted too, as long as
nothing changed.

A key whose usage attribute (CKA_ENCRYPT, ...) is CK_FALSE must not start that operation:
§5.1's CKR_KEY_FUNCTION_NOT_PERMITTED is the code for exactly this case ("to use a key for
performing encryption, that key MUST have its CKA_ENCRYPT attribute set to CK_TRUE").
"""

import pytest

from conformance import raw as ck
from conformance.names import mechanism
from conformance.suite import expect_code

from .support import check_rv, check_unavailable

SECRET_KEYS = pytest.mark.object_class("CKO_SECRET_KEY")
AES_KEYS = pytest.mark.mechanism("CKM_AES_KEY_GEN")
SETS = pytest.mark.function("C_SetAttributeValue")
TRUE, FALSE = b"\x01", b"\x00"


def set_or_decline(child, key, attribute, value, what):
    """C_SetAttributeValue of one attribute that the spec allows to change: True when the
    module made the change, False when it declined with CKR_ATTRIBUTE_READ_ONLY (§4.1.2:
    a token may not support modifying an attribute); any other code fails the test."""
    try:
        child.module.set_attribute_value(child.session, key, {attribute: value})
    except ck.CKRError as exc:
        assert exc.name == "CKR_ATTRIBUTE_READ_ONLY", (
            f"{what} must return CKR_OK (or CKR_ATTRIBUTE_READ_ONLY where the token does not "
            f"support the change): returned {exc.name}")
        return False
    return True


def check_value_hidden(child, key, why):
    rv, results = child.get(key, [(ck.CKA_VALUE, 64)])
    call = "C_GetAttributeValue(CKA_VALUE) of the key"
    check_unavailable(results, [ck.CKA_VALUE], call, why)
    check_rv(rv, "attribute-sensitive", call)


# --- CKA_SENSITIVE and CKA_EXTRACTABLE only become more protective ---------------------


@SECRET_KEYS
@SETS
@AES_KEYS
def test_set_attribute_value_sensitive_cannot_be_cleared(child, key_bits):
    """PKCS#11 v2.40 base §4.10 Secret key objects, §4.1.2 Modifying objects: CKA_SENSITIVE
    cannot be changed once CK_TRUE; setting it to CK_FALSE returns CKR_ATTRIBUTE_READ_ONLY
    and the key stays sensitive."""
    key = child.secret_key("CKM_AES_KEY_GEN", key_bits, sensitive=True, extractable=True)
    expect_code("attribute-read-only", "C_SetAttributeValue", child.module.set_attribute_value,
                child.session, key, {ck.CKA_SENSITIVE: False},
                what="C_SetAttributeValue(CKA_SENSITIVE = CK_FALSE) on a sensitive AES key")
    got = child.read(key, ck.CKA_SENSITIVE)
    assert got == TRUE, (
        f"CKA_SENSITIVE must stay CK_TRUE after the refused change: got {got.hex()}")


@SECRET_KEYS
@SETS
@AES_KEYS
def test_set_attribute_value_extractable_cannot_be_set(child, key_bits):
    """PKCS#11 v2.40 base §4.10 Secret key objects, §4.1.2 Modifying objects:
    CKA_EXTRACTABLE cannot be changed once CK_FALSE; setting it to CK_TRUE returns
    CKR_ATTRIBUTE_READ_ONLY and the key stays unextractable."""
    key = child.secret_key("CKM_AES_KEY_GEN", key_bits, sensitive=False, extractable=False)
    expect_code("attribute-read-only", "C_SetAttributeValue", child.module.set_attribute_value,
                child.session, key, {ck.CKA_EXTRACTABLE: True},
                what="C_SetAttributeValue(CKA_EXTRACTABLE = CK_TRUE) on an unextractable AES "
                "key")
    got = child.read(key, ck.CKA_EXTRACTABLE)
    assert got == FALSE, (
        f"CKA_EXTRACTABLE must stay CK_FALSE after the refused change: got {got.hex()}")


@SECRET_KEYS
@SETS
@AES_KEYS
def test_set_attribute_value_sensitive_can_be_set(child, key_bits):
    """PKCS#11 v2.40 base §4.1.2 Modifying objects, §4.10 Secret key objects: CKA_SENSITIVE
    may be changed from CK_FALSE to CK_TRUE (a token may decline with
    CKR_ATTRIBUTE_READ_ONLY and change nothing); once changed, the key reads as sensitive,
    its CKA_VALUE can no longer be revealed, and CKA_ALWAYS_SENSITIVE stays CK_FALSE."""
    key = child.secret_key("CKM_AES_KEY_GEN", key_bits, sensitive=False, extractable=True)
    what = "C_SetAttributeValue(CKA_SENSITIVE = CK_TRUE) on a non-sensitive AES key"
    changed = set_or_decline(child, key, ck.CKA_SENSITIVE, True, what)
    got = child.read(key, ck.CKA_SENSITIVE)
    assert got == (TRUE if changed else FALSE), (
        f"CKA_SENSITIVE must read {'CK_TRUE after' if changed else 'CK_FALSE after refusing'} "
        f"{what}: got {got.hex()}")
    if changed:
        check_value_hidden(child, key, "the key was made sensitive")
        always = child.read(key, ck.CKA_ALWAYS_SENSITIVE)
        assert always == FALSE, (
            f"CKA_ALWAYS_SENSITIVE must stay CK_FALSE for a key made sensitive after "
            f"generation: got {always.hex()}")


@SECRET_KEYS
@SETS
@AES_KEYS
def test_set_attribute_value_extractable_can_be_cleared(child, key_bits):
    """PKCS#11 v2.40 base §4.1.2 Modifying objects, §4.10 Secret key objects:
    CKA_EXTRACTABLE may be changed from CK_TRUE to CK_FALSE (a token may decline with
    CKR_ATTRIBUTE_READ_ONLY and change nothing); once changed, the key reads as
    unextractable, its CKA_VALUE can no longer be revealed (footnote 7), and
    CKA_NEVER_EXTRACTABLE stays CK_FALSE."""
    key = child.secret_key("CKM_AES_KEY_GEN", key_bits, sensitive=False, extractable=True)
    what = "C_SetAttributeValue(CKA_EXTRACTABLE = CK_FALSE) on an extractable AES key"
    changed = set_or_decline(child, key, ck.CKA_EXTRACTABLE, False, what)
    got = child.read(key, ck.CKA_EXTRACTABLE)
    assert got == (FALSE if changed else TRUE), (
        f"CKA_EXTRACTABLE must read {'CK_FALSE after' if changed else 'CK_TRUE after refusing'} "
        f"{what}: got {got.hex()}")
    if changed:
        check_value_hidden(child, key, "the key was made unextractable")
        never = child.read(key, ck.CKA_NEVER_EXTRACTABLE)
        assert never == FALSE, (
            f"CKA_NEVER_EXTRACTABLE must stay CK_FALSE for a key made unextractable after "
            f"generation: got {never.hex()}")


# --- usage flags ----------------------------------------------------------------------


def check_not_permitted(child, function, mechanism_name, key, why):
    call = getattr(child.module, {"C_EncryptInit": "encrypt_init",
                                  "C_DecryptInit": "decrypt_init",
                                  "C_VerifyInit": "verify_init"}[function])
    expect_code("key-function-not-permitted", function, call, child.session,
                int(mechanism(mechanism_name)), key,
                what=f"{function}({mechanism_name}) with {why}")


@SECRET_KEYS
@pytest.mark.function("C_EncryptInit")
@AES_KEYS
@pytest.mark.mechanism("CKM_AES_ECB")
def test_encrypt_init_needs_cka_encrypt(child, key_bits):
    """PKCS#11 v2.40 base §5.8.1 C_EncryptInit: the CKA_ENCRYPT attribute of the key must be
    CK_TRUE; with an AES key whose CKA_ENCRYPT is CK_FALSE (CKA_DECRYPT CK_TRUE),
    C_EncryptInit returns CKR_KEY_FUNCTION_NOT_PERMITTED."""
    key = child.secret_key("CKM_AES_KEY_GEN", key_bits, encrypt=False, decrypt=True)
    check_not_permitted(child, "C_EncryptInit", "CKM_AES_ECB", key,
                        "an AES key whose CKA_ENCRYPT is CK_FALSE")


@SECRET_KEYS
@pytest.mark.function("C_DecryptInit")
@AES_KEYS
@pytest.mark.mechanism("CKM_AES_ECB")
def test_decrypt_init_needs_cka_decrypt(child, key_bits):
    """PKCS#11 v2.40 base §5.9.1 C_DecryptInit: the CKA_DECRYPT attribute of the key must be
    CK_TRUE; with an AES key whose CKA_DECRYPT is CK_FALSE (CKA_ENCRYPT CK_TRUE),
    C_DecryptInit returns CKR_KEY_FUNCTION_NOT_PERMITTED."""
    key = child.secret_key("CKM_AES_KEY_GEN", key_bits, encrypt=True, decrypt=False)
    check_not_permitted(child, "C_DecryptInit", "CKM_AES_ECB", key,
                        "an AES key whose CKA_DECRYPT is CK_FALSE")


@SECRET_KEYS
@pytest.mark.function("C_VerifyInit")
@pytest.mark.mechanism("CKM_GENERIC_SECRET_KEY_GEN")
@pytest.mark.mechanism("CKM_SHA256_HMAC")
def test_verify_init_needs_cka_verify(child, key_bits):
    """PKCS#11 v2.40 base §5.12.1 C_VerifyInit: the CKA_VERIFY attribute of the key must be
    CK_TRUE; with a generic secret key whose CKA_VERIFY is CK_FALSE (CKA_SIGN CK_TRUE),
    C_VerifyInit(CKM_SHA256_HMAC) returns CKR_KEY_FUNCTION_NOT_PERMITTED."""
    key = child.secret_key("CKM_GENERIC_SECRET_KEY_GEN", key_bits, sign=True, verify=False)
    check_not_permitted(child, "C_VerifyInit", "CKM_SHA256_HMAC", key,
                        "a generic secret key whose CKA_VERIFY is CK_FALSE")


@SECRET_KEYS
@pytest.mark.function("C_WrapKey")
@AES_KEYS
@pytest.mark.mechanism("CKM_AES_KEY_WRAP")
def test_wrap_key_needs_cka_wrap(child, key_bits):
    """PKCS#11 v2.40 base §5.14.3 C_WrapKey: the CKA_WRAP attribute of the wrapping key
    must be CK_TRUE; with an AES wrapping key whose CKA_WRAP is CK_FALSE (CKA_UNWRAP
    CK_TRUE), C_WrapKey of an extractable key returns CKR_KEY_FUNCTION_NOT_PERMITTED and
    no wrapped key."""
    wrapping = child.secret_key("CKM_AES_KEY_GEN", key_bits, wrap=False, unwrap=True)
    key = child.secret_key("CKM_AES_KEY_GEN", key_bits, sensitive=True, extractable=True)
    expect_code("key-function-not-permitted", "C_WrapKey", child.module.wrap_key, child.session,
                int(mechanism("CKM_AES_KEY_WRAP")), wrapping, key,
                what="C_WrapKey(CKM_AES_KEY_WRAP) with a wrapping key whose CKA_WRAP is CK_FALSE")

