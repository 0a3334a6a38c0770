"""AES key wrap known answers: the NIST CAVP SP 800-38F vectors, as shipped in the
`cryptography_vectors` package (keywrap/kwtestvectors): KW_AE_<bits>.txt and
KW_AD_<bits>.txt for CKM_AES_KEY_WRAP (RFC 3394), KWP_AE_<bits>.txt and KWP_AD_<bits>.txt
for CKM_AES_KEY_WRAP_KWP (RFC 5649). The *_inv files (KW with the inverse cipher) have no
PKCS #11 mechanism and are not used.

The key-encryption key (K) is imported with C_CreateObject as an AES key; the key to wrap
(P) as a CKK_GENERIC_SECRET key, extractable and not sensitive, so that C_WrapKey can wrap
it and its value can be read back after C_UnwrapKey. All are session objects, destroyed
after each vector. A case is one mechanism and one claimed KEK size. From each plaintext
length group the first 2 vectors in file order are used (the first 2 valid and the first
2 FAIL ones of the AD files): KW groups of 128, 192, 256 and 320 bits, KWP groups of 64,
72 and 248 bits. The 4096-bit groups and KWP's 8-bit group are left out: a module may
legitimately refuse generic secret keys that large or that small at C_CreateObject.
"""

import pytest
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.exceptions import PKCS11Error

from conformance.names import mechanism
from conformance.suite import not_applicable, returned

from . import nist
from .common import judge_refusals, summary

FILES = {"CKM_AES_KEY_WRAP": "KW", "CKM_AES_KEY_WRAP_KWP": "KWP"}
PLAINTEXT_BITS = {"CKM_AES_KEY_WRAP": ("128", "192", "256", "320"),
                  "CKM_AES_KEY_WRAP_KWP": ("64", "72", "248")}
PER_GROUP = 2

WRAPS = pytest.mark.mechanisms(*FILES)
# Only C_CreateObject is marked, as the prerequisite every case needs: the function under
# test follows from the mechanism.
IMPORTS = pytest.mark.function("C_CreateObject")


def vectors(mechanism_name, kind, key_bits, fail=False):
    """The chosen vectors of <KW|KWP>_<kind>_<key_bits>.txt (see the module docstring)."""
    path = f"keywrap/kwtestvectors/{FILES[mechanism_name]}_{kind}_{key_bits}.txt"
    try:
        loaded = nist.load(path, "COUNT")
    except FileNotFoundError:
        not_applicable(f"the NIST key wrap vectors have no {key_bits}-bit KEK")
    chosen, taken = [], {}
    for vector in loaded:
        group = nist.header(vector, "PLAINTEXT LENGTH")
        if (group not in PLAINTEXT_BITS[mechanism_name] or ("FAIL" in vector.flags) != fail
                or taken.get(group, 0) >= PER_GROUP):
            continue
        taken[group] = taken.get(group, 0) + 1
        chosen.append(vector)
    return chosen


def import_secret(session, vector, name, key_type, template):
    try:
        return session.create_object({
            Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: key_type,
            Attribute.VALUE: vector.hex(name), Attribute.TOKEN: False, **template})
    except PKCS11Error as exc:
        pytest.fail(f"C_CreateObject of the {key_type.name} key {name} of {vector.describe()} "
                    f"must succeed: returned {returned(exc)}")


def import_kek(session, vector):
    return import_secret(session, vector, "K", KeyType.AES,
                         {Attribute.WRAP: True, Attribute.UNWRAP: True})


def unwrap(kek, vector, mechanism_name):
    return kek.unwrap_key(ObjectClass.SECRET_KEY, KeyType.GENERIC_SECRET, vector.hex("C"),
                          mechanism=mechanism(mechanism_name), store=False,
                          template={Attribute.EXTRACTABLE: True, Attribute.SENSITIVE: False})


@WRAPS
@IMPORTS
def test_wrap_aes_key_wrap_matches_nist_vectors(session, mechanism_name, key_bits):
    """PKCS#11 v2.40 curr, AES Key Wrap (v3.0 for CKM_AES_KEY_WRAP_KWP): C_WrapKey of a
    generic secret key holding the vector's plaintext returns the NIST SP 800-38F KW-AE
    (RFC 3394) or KWP-AE (RFC 5649) ciphertext, with the default initial value."""
    chosen = vectors(mechanism_name, "AE", key_bits)
    problems = []
    for vector in chosen:
        kek = import_kek(session, vector)
        key = import_secret(session, vector, "P", KeyType.GENERIC_SECRET,
                            {Attribute.EXTRACTABLE: True, Attribute.SENSITIVE: False})
        try:
            got = kek.wrap_key(key, mechanism=mechanism(mechanism_name))
        except PKCS11Error as exc:
            problems.append(f"{vector.describe()}: returned {returned(exc)}")
            continue
        finally:
            key.destroy()
            kek.destroy()
        if got != vector.hex("C"):
            problems.append(f"{vector.describe()}: got {got.hex()}, expected {vector['C']}")
    assert not problems, (
        f"C_WrapKey({mechanism_name}) with a {key_bits}-bit KEK must return the NIST "
        f"ciphertext: {summary(problems, chosen)}")


@WRAPS
@IMPORTS
def test_unwrap_aes_key_wrap_recovers_nist_key(session, mechanism_name, key_bits):
    """PKCS#11 v2.40 curr, AES Key Wrap (v3.0 for CKM_AES_KEY_WRAP_KWP): C_UnwrapKey of a
    valid NIST SP 800-38F KW-AD or KWP-AD ciphertext into a generic secret key makes a key
    whose CKA_VALUE is the vector's plaintext, no longer and no shorter."""
    chosen = vectors(mechanism_name, "AD", key_bits)
    problems = []
    for vector in chosen:
        kek = import_kek(session, vector)
        try:
            key = unwrap(kek, vector, mechanism_name)
        except PKCS11Error as exc:
            problems.append(f"{vector.describe()}: returned {returned(exc)}")
            continue
        finally:
            kek.destroy()
        try:
            value = key[Attribute.VALUE]
        finally:
            key.destroy()
        if value != vector.hex("P"):
            problems.append(f"{vector.describe()}: CKA_VALUE {value.hex()}, expected "
                            f"{vector['P']}")
    assert not problems, (
        f"C_UnwrapKey({mechanism_name}) with a {key_bits}-bit KEK must recover the NIST "
        f"plaintext key: {summary(problems, chosen)}")


@WRAPS
@IMPORTS
def test_unwrap_aes_key_wrap_refuses_nist_fail_vectors(session, mechanism_name, key_bits):
    """PKCS#11 v2.40 base §5.14.4 C_UnwrapKey and §5.1.6 return values, with SP 800-38F
    KW-AD and KWP-AD (the integrity check; AES Key Wrap, v3.0 for CKM_AES_KEY_WRAP_KWP):
    C_UnwrapKey of a NIST FAIL vector makes no key and returns CKR_WRAPPED_KEY_INVALID, the
    code for a wrapped key that is not valid (the mechanism text names none of its own)."""
    chosen = vectors(mechanism_name, "AD", key_bits, fail=True)
    problems, refusals = [], []
    for vector in chosen:
        kek = import_kek(session, vector)
        try:
            key = unwrap(kek, vector, mechanism_name)
        except PKCS11Error as exc:
            refusals.append((vector.describe(), returned(exc)))
            continue
        finally:
            kek.destroy()
        try:
            value = key[Attribute.VALUE]
        except PKCS11Error:
            value = b""
        finally:
            key.destroy()
        problems.append(f"{vector.describe()}: returned CKR_OK and a key "
                        f"(CKA_VALUE {value.hex() or 'unreadable'})")
    judge_refusals("C_UnwrapKey", "wrapped-key-invalid", problems, refusals, chosen,
                   f"C_UnwrapKey({mechanism_name}) with a {key_bits}-bit KEK")
