"""AES-GCM known answers: the NIST CAVP GCM test vectors (SP 800-38D), as shipped in the
`cryptography_vectors` package (ciphers/AES/GCM/gcmEncryptExtIV<bits>.rsp and
gcmDecrypt<bits>.rsp).

Each vector's key is imported with C_CreateObject (a session object, destroyed after the
vector). A case is one claimed key size and tag length; the vectors are those of the
<key size> files with a 96-bit IV and that tag length (Taglen), and of each of their 25
groups (5 plaintext lengths x 5 AAD lengths) the first vector in file order for
encryption, and the first valid and the first FAIL vector for decryption: 25 vectors per
case.
"""

import pytest
from pkcs11 import Attribute, GCMParams, KeyType, ObjectClass
from pkcs11.exceptions import PKCS11Error

from conformance.names import mechanism
from conformance.suite import not_applicable, returned

from . import nist
from .common import judge_refusals, summary

IV_BITS = "96"  # SP 800-38D §8.2: the IV length it recommends


def vectors(kind, key_bits, tag_bits, fail=False):
    """The chosen vectors of gcm<kind><key_bits>.rsp for this tag length (see the module
    docstring); `fail` picks the FAIL vectors of a decryption file instead of the valid."""
    name = {"encrypt": "gcmEncryptExtIV", "decrypt": "gcmDecrypt"}[kind]
    chosen, seen = [], set()
    for vector in nist.load(f"ciphers/AES/GCM/{name}{key_bits}.rsp", "Count"):
        if (nist.header(vector, "IVlen") != IV_BITS
                or nist.header(vector, "Taglen") != str(tag_bits)
                or ("FAIL" in vector.flags) != fail):
            continue
        group = (nist.header(vector, "PTlen"), nist.header(vector, "AADlen"))
        if group not in seen:
            seen.add(group)
            chosen.append(vector)
    if not chosen:
        not_applicable(f"the NIST GCM vectors have no {key_bits}-bit key with a "
                    f"{tag_bits}-bit tag")
    return chosen


def import_key(session, vector):
    try:
        return session.create_object({
            Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES,
            Attribute.VALUE: vector.hex("Key"), Attribute.TOKEN: False,
            Attribute.ENCRYPT: True, Attribute.DECRYPT: True})
    except PKCS11Error as exc:
        pytest.fail(f"C_CreateObject of the AES key of {vector.describe()} must succeed: "
                    f"returned {returned(exc)}")


def params(vector, tag_bits):
    return GCMParams(vector.hex("IV"), vector.hex("AAD") or None, tag_bits)


GCM = pytest.mark.mechanism("CKM_AES_GCM")
# Only C_CreateObject is marked, as the prerequisite every case needs: the function under
# test follows from the mechanism.
IMPORTS = pytest.mark.function("C_CreateObject")


@GCM
@IMPORTS
def test_encrypt_aes_gcm_matches_nist_vectors(session, key_bits, tag_bits):
    """PKCS#11 v2.40 curr, AES-GCM: C_Encrypt with CK_GCM_PARAMS (96-bit IV, the vector's
    AAD, ulTagBits) returns the NIST known-answer ciphertext followed by the tag truncated
    to ulTagBits (SP 800-38D), for every chosen gcmEncryptExtIV vector."""
    chosen = vectors("encrypt", key_bits, tag_bits)
    problems = []
    for vector in chosen:
        key = import_key(session, vector)
        try:
            got = key.encrypt(vector.hex("PT"), mechanism=mechanism("CKM_AES_GCM"),
                              mechanism_param=params(vector, tag_bits))
        except PKCS11Error as exc:
            problems.append(f"{vector.describe()}: returned {returned(exc)}")
            continue
        finally:
            key.destroy()
        expected = vector.hex("CT") + vector.hex("Tag")
        if got != expected:
            problems.append(f"{vector.describe()}: got {got.hex()}, expected {expected.hex()}")
    assert not problems, (
        f"C_Encrypt(CKM_AES_GCM, ulTagBits={tag_bits}) with a {key_bits}-bit key must return "
        f"the NIST ciphertext || tag: {summary(problems, chosen)}")


@GCM
@IMPORTS
def test_decrypt_aes_gcm_recovers_nist_plaintext(session, key_bits, tag_bits):
    """PKCS#11 v2.40 curr, AES-GCM: C_Decrypt of a valid NIST gcmDecrypt vector's
    ciphertext followed by its tag, with the vector's IV, AAD and ulTagBits, returns the
    vector's plaintext."""
    chosen = vectors("decrypt", key_bits, tag_bits)
    problems = []
    for vector in chosen:
        key = import_key(session, vector)
        try:
            got = key.decrypt(vector.hex("CT") + vector.hex("Tag"),
                              mechanism=mechanism("CKM_AES_GCM"),
                              mechanism_param=params(vector, tag_bits))
        except PKCS11Error as exc:
            problems.append(f"{vector.describe()}: returned {returned(exc)}")
            continue
        finally:
            key.destroy()
        if got != vector.hex("PT"):
            problems.append(f"{vector.describe()}: got {got.hex()}, expected {vector['PT']}")
    assert not problems, (
        f"C_Decrypt(CKM_AES_GCM, ulTagBits={tag_bits}) with a {key_bits}-bit key must return "
        f"the NIST plaintext: {summary(problems, chosen)}")


@GCM
@IMPORTS
def test_decrypt_aes_gcm_refuses_nist_fail_vectors(session, key_bits, tag_bits):
    """PKCS#11 v2.40 base §5.9.2 C_Decrypt and §5.1.6 return values, with SP 800-38D §7.2:
    C_Decrypt(CKM_AES_GCM) of a NIST gcmDecrypt FAIL vector (its tag does not verify)
    returns no plaintext but CKR_ENCRYPTED_DATA_INVALID (3.x's CKR_AEAD_DECRYPT_FAILED
    belongs to C_DecryptMessage, not C_Decrypt)."""
    chosen = vectors("decrypt", key_bits, tag_bits, fail=True)
    accepted, refusals = [], []
    for vector in chosen:
        key = import_key(session, vector)
        try:
            got = key.decrypt(vector.hex("CT") + vector.hex("Tag"),
                              mechanism=mechanism("CKM_AES_GCM"),
                              mechanism_param=params(vector, tag_bits))
        except PKCS11Error as exc:
            refusals.append((vector.describe(), returned(exc)))
            continue
        finally:
            key.destroy()
        accepted.append(f"{vector.describe()}: returned CKR_OK and {got.hex() or 'nothing'}")
    judge_refusals("C_Decrypt", "aead-tag-mismatch", accepted, refusals, chosen,
                   f"C_Decrypt(CKM_AES_GCM, ulTagBits={tag_bits}) with a {key_bits}-bit key")
