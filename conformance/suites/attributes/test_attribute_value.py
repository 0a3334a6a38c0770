"""C_GetAttributeValue: what a module reveals, attribute by attribute, and how it reports
the rest; and the protection history keys record (CKA_ALWAYS_SENSITIVE,
CKA_NEVER_EXTRACTABLE).

PKCS#11 v2.40 base §5.7.5 processes every attribute of the template on its own, in this
order: an attribute that cannot be revealed because the object is sensitive or
unextractable (case 1), that the object does not have (case 2), or whose buffer is too
small (case 5) gets ulValueLen = CK_UNAVAILABLE_INFORMATION; a NULL pValue gets the exact
length (case 3), a large enough buffer the value and its exact length (case 4). The call
then returns CKR_ATTRIBUTE_SENSITIVE, CKR_ATTRIBUTE_TYPE_INVALID or CKR_BUFFER_TOO_SMALL
for cases 1, 2 and 5 (any of them when several apply; CKR_OK only when none does), and
every other attribute of the template is still returned.

The checks run through the ctypes layer in a module child (see conftest.py): the exact
return code and each attribute's ulValueLen are what is checked.
"""

import pytest

from conformance import raw as ck

from .support import (
    LABEL,
    ULONG_SIZE,
    UNAVAILABLE,
    check_ok,
    check_returned,
    check_rv,
    check_unavailable,
    describe_length,
    ulong_bytes,
)

# How a key is protected: CKA_VALUE (and an RSA key's private parts) cannot be revealed
# in either case (v2.40 base §4.10 and curr §2.1.3, footnote 7 of the attribute tables).
PROTECTIONS = {"sensitive": {"sensitive": True, "extractable": True},
               "unextractable": {"sensitive": False, "extractable": False}}
EACH_PROTECTION = pytest.mark.parametrize("protection", sorted(PROTECTIONS))
# A buffer, or a NULL pValue (a length query): case 1 comes before case 3.
BUFFERS = {"buffer": 1024, "NULL-pValue": None}
EACH_BUFFER = pytest.mark.parametrize("buffer", sorted(BUFFERS))

GETS = pytest.mark.function("C_GetAttributeValue")
AES_KEYS = pytest.mark.mechanism("CKM_AES_KEY_GEN")
RSA_KEYS = pytest.mark.mechanism("CKM_RSA_PKCS_KEY_PAIR_GEN")
SECRET_KEYS = pytest.mark.object_class("CKO_SECRET_KEY")
PRIVATE_KEYS = pytest.mark.object_class("CKO_PRIVATE_KEY")

RSA_PRIVATE_PARTS = (ck.CKA_PRIME_1, ck.CKA_PRIME_2, ck.CKA_EXPONENT_1, ck.CKA_EXPONENT_2,
                     ck.CKA_COEFFICIENT)
DATA_VALUE = bytes(range(1, 38))  # 37 bytes
DATA_LABEL = b"pkcs11-conformance data object"
BBOOL = {True: b"\x01", False: b"\x00"}


def data_object(child):
    """A public CKO_DATA session object with a known CKA_VALUE and CKA_LABEL."""
    return child.create({ck.CKA_CLASS: ck.CKO_DATA, ck.CKA_PRIVATE: False,
                         ck.CKA_LABEL: DATA_LABEL, ck.CKA_VALUE: DATA_VALUE})


def size(buffer, length):
    """The buffer size to ask with: `length` bytes, or None for a NULL pValue."""
    return None if BUFFERS[buffer] is None else length


# --- values that cannot be revealed (case 1) ------------------------------------------


@EACH_BUFFER
@EACH_PROTECTION
@SECRET_KEYS
@GETS
@AES_KEYS
def test_get_attribute_value_secret_key_value_is_unavailable(child, key_bits, protection,
                                                             buffer):
    """PKCS#11 v2.40 base §5.7.5 C_GetAttributeValue, §4.10 Secret key objects: CKA_VALUE
    of a sensitive or unextractable secret key cannot be revealed, with a buffer or with a
    NULL pValue: its ulValueLen is CK_UNAVAILABLE_INFORMATION, the call returns
    CKR_ATTRIBUTE_SENSITIVE, and the other attributes asked for are still returned."""
    key = child.secret_key("CKM_AES_KEY_GEN", key_bits, **PROTECTIONS[protection])
    rv, results = child.get(key, [(ck.CKA_CLASS, size(buffer, ULONG_SIZE)),
                                  (ck.CKA_VALUE, size(buffer, 64)),
                                  (ck.CKA_VALUE_LEN, size(buffer, ULONG_SIZE)),
                                  (ck.CKA_LABEL, size(buffer, 64))])
    call = f"C_GetAttributeValue of an {protection} AES key ({buffer} for each attribute)"
    check_unavailable(results, [ck.CKA_VALUE], call, f"the key is {protection}")
    check_rv(rv, "attribute-sensitive", call)
    check_returned(results, {ck.CKA_CLASS: ulong_bytes(ck.CKO_SECRET_KEY),
                             ck.CKA_VALUE_LEN: ulong_bytes(key_bits // 8),
                             ck.CKA_LABEL: LABEL}, call)


@EACH_BUFFER
@PRIVATE_KEYS
@GETS
@RSA_KEYS
def test_get_attribute_value_rsa_private_exponent_is_unavailable(child, key_bits, buffer):
    """PKCS#11 v2.40 base §5.7.5 C_GetAttributeValue, curr §2.1.3 RSA private key objects:
    CKA_PRIVATE_EXPONENT of a sensitive RSA private key cannot be revealed, with a buffer
    or with a NULL pValue: its ulValueLen is CK_UNAVAILABLE_INFORMATION, the call returns
    CKR_ATTRIBUTE_SENSITIVE, and the modulus and public exponent (which v2.40 requires
    private keys to store) are still returned."""
    key = child.rsa_private_key(key_bits, sensitive=True, extractable=True)
    rv, results = child.get(key, [(ck.CKA_CLASS, size(buffer, ULONG_SIZE)),
                                  (ck.CKA_MODULUS, size(buffer, 1024)),
                                  (ck.CKA_PRIVATE_EXPONENT, size(buffer, 1024)),
                                  (ck.CKA_PUBLIC_EXPONENT, size(buffer, 16)),
                                  (ck.CKA_KEY_TYPE, size(buffer, ULONG_SIZE))])
    call = (f"C_GetAttributeValue of a sensitive RSA-{key_bits} private key ({buffer} for "
            "each attribute)")
    check_unavailable(results, [ck.CKA_PRIVATE_EXPONENT], call, "the key is sensitive")
    check_rv(rv, "attribute-sensitive", call)
    check_returned(results, {ck.CKA_CLASS: ulong_bytes(ck.CKO_PRIVATE_KEY),
                             ck.CKA_KEY_TYPE: ulong_bytes(ck.CKK_RSA)}, call)
    # Big integers: the length may include leading zero bytes, so compare numbers.
    for kind, length, value in results:
        if kind not in (ck.CKA_MODULUS, ck.CKA_PUBLIC_EXPONENT):
            continue
        attribute = "CKA_MODULUS" if kind == ck.CKA_MODULUS else "CKA_PUBLIC_EXPONENT"
        assert length != UNAVAILABLE and length > 0, (
            f"{call}: {attribute} must still be returned: ulValueLen {describe_length(length)}")
        number = None if value is None else int.from_bytes(value, "big")
        if kind == ck.CKA_MODULUS:
            assert number is None or number.bit_length() == key_bits, (
                f"{call}: CKA_MODULUS must still be returned, a {key_bits}-bit number: got "
                f"{number.bit_length()} bits")
        else:
            assert number is None or number == 65537, (
                f"{call}: CKA_PUBLIC_EXPONENT must still be returned as 65537: got {number}")


@PRIVATE_KEYS
@GETS
@RSA_KEYS
def test_get_attribute_value_rsa_private_factors_are_unavailable(child, key_bits):
    """PKCS#11 v2.40 base §5.7.5 C_GetAttributeValue, curr §2.1.3 RSA private key objects:
    none of CKA_PRIME_1, CKA_PRIME_2, CKA_EXPONENT_1, CKA_EXPONENT_2 and CKA_COEFFICIENT of
    a sensitive RSA private key is revealed: each has ulValueLen CK_UNAVAILABLE_INFORMATION
    and the call returns CKR_ATTRIBUTE_SENSITIVE (or CKR_ATTRIBUTE_TYPE_INVALID, since a
    token need not store them)."""
    key = child.rsa_private_key(key_bits, sensitive=True, extractable=True)
    rv, results = child.get(key, [(kind, 1024) for kind in RSA_PRIVATE_PARTS])
    call = f"C_GetAttributeValue of the CRT parts of a sensitive RSA-{key_bits} private key"
    check_unavailable(results, RSA_PRIVATE_PARTS, call, "the key is sensitive")
    check_rv(rv, "attribute-sensitive-or-absent", call)


# --- the length and buffer conventions (cases 3, 4 and 5) -----------------------------


@pytest.mark.object_class("CKO_DATA")
@GETS
@pytest.mark.function("C_CreateObject")
def test_get_attribute_value_null_pvalue_gives_exact_length(child):
    """PKCS#11 v2.40 base §5.7.5 C_GetAttributeValue: with a NULL pValue, ulValueLen
    receives the exact length of each attribute and the call returns CKR_OK."""
    obj = data_object(child)
    rv, results = child.get(obj, [(ck.CKA_VALUE, None), (ck.CKA_LABEL, None),
                                  (ck.CKA_CLASS, None)])
    call = "C_GetAttributeValue of a data object with NULL pValues"
    check_ok(rv, call)
    check_returned(results, {ck.CKA_VALUE: DATA_VALUE, ck.CKA_LABEL: DATA_LABEL,
                             ck.CKA_CLASS: ulong_bytes(ck.CKO_DATA)}, call)


@pytest.mark.parametrize("extra", [0, 19], ids=["exact-buffer", "larger-buffer"])
@pytest.mark.object_class("CKO_DATA")
@GETS
@pytest.mark.function("C_CreateObject")
def test_get_attribute_value_buffer_gets_value_and_exact_length(child, extra):
    """PKCS#11 v2.40 base §5.7.5 C_GetAttributeValue: a buffer large enough for the value
    receives it, and ulValueLen is set to the exact length of the value (not the size of
    the buffer); the call returns CKR_OK."""
    obj = data_object(child)
    rv, results = child.get(obj, [(ck.CKA_VALUE, len(DATA_VALUE) + extra),
                                  (ck.CKA_LABEL, len(DATA_LABEL) + extra)])
    call = f"C_GetAttributeValue of a data object with buffers {extra} bytes larger than needed"
    check_ok(rv, call)
    check_returned(results, {ck.CKA_VALUE: DATA_VALUE, ck.CKA_LABEL: DATA_LABEL}, call)


@pytest.mark.parametrize("buffer_size", [0, len(DATA_VALUE) - 1],
                         ids=["empty-buffer", "one-byte-short"])
@pytest.mark.object_class("CKO_DATA")
@GETS
@pytest.mark.function("C_CreateObject")
def test_get_attribute_value_too_small_buffer_is_reported(child, buffer_size):
    """PKCS#11 v2.40 base §5.7.5 C_GetAttributeValue: an attribute whose buffer is too
    small for its value gets ulValueLen CK_UNAVAILABLE_INFORMATION, the call returns
    CKR_BUFFER_TOO_SMALL, and the other attributes of the template are still returned."""
    obj = data_object(child)
    rv, results = child.get(obj, [(ck.CKA_CLASS, ULONG_SIZE),
                                  (ck.CKA_VALUE, buffer_size),
                                  (ck.CKA_LABEL, len(DATA_LABEL))])
    call = (f"C_GetAttributeValue of a data object with a {buffer_size}-byte "
            f"buffer for its {len(DATA_VALUE)}-byte CKA_VALUE")
    check_unavailable(results, [ck.CKA_VALUE], call, "its buffer is too small")
    check_rv(rv, "buffer-too-small", call)
    check_returned(results, {ck.CKA_CLASS: ulong_bytes(ck.CKO_DATA),
                             ck.CKA_LABEL: DATA_LABEL}, call)


@pytest.mark.parametrize("kind", [ck.CKA_MODULUS, 0xFFF0],
                         ids=["CKA_MODULUS", "undefined-0xFFF0"])
@pytest.mark.object_class("CKO_DATA")
@GETS
@pytest.mark.function("C_CreateObject")
def test_get_attribute_value_absent_attribute_is_reported(child, kind):
    """PKCS#11 v2.40 base §5.7.5 C_GetAttributeValue: an attribute the object does not
    have (a key attribute of a data object, or a type no specification defines) gets
    ulValueLen CK_UNAVAILABLE_INFORMATION, the call returns CKR_ATTRIBUTE_TYPE_INVALID,
    and the other attributes of the template are still returned."""
    obj = data_object(child)
    rv, results = child.get(obj, [(ck.CKA_CLASS, ULONG_SIZE), (kind, 512),
                                  (ck.CKA_VALUE, 64), (ck.CKA_LABEL, 64)])
    call = f"C_GetAttributeValue of a data object with attribute 0x{kind:X} in the template"
    check_unavailable(results, [kind], call, "data objects do not have it")
    check_rv(rv, "attribute-type-invalid", call)
    check_returned(results, {ck.CKA_CLASS: ulong_bytes(ck.CKO_DATA),
                             ck.CKA_VALUE: DATA_VALUE, ck.CKA_LABEL: DATA_LABEL}, call)


@SECRET_KEYS
@GETS
@AES_KEYS
def test_get_attribute_value_reports_each_unavailable_attribute(child, key_bits):
    """PKCS#11 v2.40 base §5.7.5 C_GetAttributeValue: with a sensitive value, an absent
    attribute and a too-small buffer in one template, each of the three gets ulValueLen
    CK_UNAVAILABLE_INFORMATION, the call returns one of CKR_ATTRIBUTE_SENSITIVE,
    CKR_ATTRIBUTE_TYPE_INVALID and CKR_BUFFER_TOO_SMALL (any may be returned when several
    apply), and the remaining attributes are still returned."""
    key = child.secret_key("CKM_AES_KEY_GEN", key_bits, sensitive=True, extractable=False)
    rv, results = child.get(key, [(ck.CKA_LABEL, 1), (ck.CKA_CLASS, ULONG_SIZE),
                                  (ck.CKA_VALUE, 64), (ck.CKA_MODULUS, 512),
                                  (ck.CKA_KEY_TYPE, ULONG_SIZE)])
    call = ("C_GetAttributeValue of a sensitive AES key with CKA_VALUE, CKA_MODULUS and a "
            "1-byte buffer for CKA_LABEL")
    check_unavailable(results, [ck.CKA_VALUE], call, "the key is sensitive")
    check_unavailable(results, [ck.CKA_MODULUS], call, "secret keys do not have it")
    check_unavailable(results, [ck.CKA_LABEL], call, "its buffer is too small")
    check_rv(rv, "attribute-values-unavailable", call)
    check_returned(results, {ck.CKA_CLASS: ulong_bytes(ck.CKO_SECRET_KEY),
                             ck.CKA_KEY_TYPE: ulong_bytes(ck.CKK_AES)}, call)


# --- CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE ------------------------------------


def check_history(child, key, what, always_sensitive, never_extractable):
    for kind, want in ((ck.CKA_ALWAYS_SENSITIVE, always_sensitive),
                       (ck.CKA_NEVER_EXTRACTABLE, never_extractable)):
        got = child.read(key, kind)
        attribute = "CKA_ALWAYS_SENSITIVE" if kind == ck.CKA_ALWAYS_SENSITIVE else (
            "CKA_NEVER_EXTRACTABLE")
        assert got == BBOOL[want], (
            f"{attribute} of {what} must be {'CK_TRUE' if want else 'CK_FALSE'}: got "
            f"{got.hex()}")


@EACH_PROTECTION
@SECRET_KEYS
@pytest.mark.function("C_GenerateKey")
@AES_KEYS
def test_generate_key_records_protection_history(child, key_bits, protection):
    """PKCS#11 v2.40 base §4.10 Secret key objects: CKA_ALWAYS_SENSITIVE is true exactly
    when the key has always been sensitive and CKA_NEVER_EXTRACTABLE exactly when it has
    never been extractable, independently of each other: a key generated sensitive and
    extractable is always sensitive but not never extractable, one generated neither
    sensitive nor extractable is never extractable but not always sensitive."""
    flags = PROTECTIONS[protection]
    key = child.secret_key("CKM_AES_KEY_GEN", key_bits, **flags)
    what = (f"an AES key generated with CKA_SENSITIVE {flags['sensitive']} and "
            f"CKA_EXTRACTABLE {flags['extractable']}")
    check_history(child, key, what, flags["sensitive"], not flags["extractable"])


@PRIVATE_KEYS
@pytest.mark.function("C_GenerateKeyPair")
@RSA_KEYS
def test_generate_key_pair_records_protection_history(child, key_bits):
    """PKCS#11 v2.40 base §4.9 Private key objects: an RSA private key generated sensitive
    and extractable has CKA_ALWAYS_SENSITIVE true and CKA_NEVER_EXTRACTABLE false (the two
    record different things)."""
    key = child.rsa_private_key(key_bits, sensitive=True, extractable=True)
    check_history(child, key, f"an RSA-{key_bits} private key generated sensitive and "
                  "extractable", True, False)


@SECRET_KEYS
@pytest.mark.function("C_CreateObject")
def test_create_object_key_has_been_revealed(child):
    """PKCS#11 v2.40 base §4.10 Secret key objects: a secret key imported with
    C_CreateObject as neither sensitive nor unextractable has CKA_ALWAYS_SENSITIVE and
    CKA_NEVER_EXTRACTABLE false."""
    key = child.create({ck.CKA_CLASS: ck.CKO_SECRET_KEY, ck.CKA_KEY_TYPE: ck.CKK_AES,
                        ck.CKA_VALUE: bytes(range(16)), ck.CKA_SENSITIVE: False,
                        ck.CKA_EXTRACTABLE: True})
    check_history(child, key, "an AES key imported with C_CreateObject as extractable and "
                  "not sensitive", False, False)
