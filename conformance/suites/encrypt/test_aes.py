"""AES encryption and decryption (ECB, CBC, CBC-PAD, CTR, GCM), cross-checked with
cryptography in both directions.

The keys are known values imported with C_CreateObject (session objects, destroyed at the
end of the module), so cryptography computes the same result: the module's ciphertext must
equal cryptography's, and the module must decrypt cryptography's ciphertext.
"""

import ctypes

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pkcs11 import Attribute, GCMParams, KeyType, ObjectClass
from pkcs11.exceptions import PKCS11Error

from conformance.crosscheck import Keys
from conformance.names import mechanism
from conformance.suite import DECRYPT, ENCRYPT, expect_refusal, returned
from conformance.suites.encrypt.encryption import (
    module_decrypt,
    module_encrypt,
    result_or_refusal,
)

BLOCK = 16
IV = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
GCM_IV = bytes.fromhex("cafebabefacedbaddecaf888")  # 96 bits, the length SP 800-38D favours
AAD = bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
# Not a repetition of the block size, so block-order and chunking mistakes show.
PLAINTEXT = bytes((i * 31 + 7) % 251 for i in range(4096))

# CK_AES_CTR_PARAMS counter blocks (ulCounterBits = 128: the whole block is the counter).
# "rfc3686": nonce || IV || 32-bit block counter starting at 1 (RFC 3686 §4).
# "carry": the low 64 bits overflow after two blocks, so the carry must reach the high half.
COUNTER_BLOCKS = {
    "rfc3686": bytes.fromhex("00000030" "0000000000000000" "00000001"),
    "carry": bytes.fromhex("f0f1f2f3f4f5f6f7" "fffffffffffffffe"),
}

BLOCK_SIZES = {"1-block": 16, "4-blocks": 64, "256-blocks": 4096}
ANY_SIZES = {"empty": 0, "1-byte": 1, "15-bytes": 15, "17-bytes": 17, "100-bytes": 100}
# Multi-part: block-aligned parts of unequal length for every mode; uneven parts only for
# the modes that take any input length.
BLOCK_PARTS = (16, 48, 32, 4000)
UNEVEN_PARTS = (1, 15, 17, 100, 3, 3000)
GCM_SIZES = {"empty": 0, "1-block": 16, "33-bytes": 33}
GCM_AAD = {"aad": AAD, "no-aad": b""}
# SP 800-38D §5.2.1.2: 128, 120, 112, 104, 96 and, for some applications, 64 and 32 bits.
STANDARD_TAG_BITS = [32, 64, 96, 104, 112, 120, 128]

ALL_MODES = pytest.mark.mechanisms("CKM_AES_ECB", "CKM_AES_CBC", "CKM_AES_CBC_PAD",
                                   "CKM_AES_CTR")
ANY_LENGTH_MODES = pytest.mark.mechanisms("CKM_AES_CBC_PAD", "CKM_AES_CTR")
GCM = pytest.mark.mechanism("CKM_AES_GCM")
IMPORTS = pytest.mark.function("C_CreateObject")
MULTI_PART = pytest.mark.function("C_EncryptUpdate", "C_EncryptFinal", "C_DecryptUpdate",
                                  "C_DecryptFinal")


def sizes(table):
    return pytest.mark.parametrize("size", list(table.values()), ids=list(table))


def key_value(bits):
    return bytes((i * 7 + 3) % 256 for i in range(bits // 8))


@pytest.fixture(scope="module")
def aes_key(target, session):
    """The AES key of `bits` bits with the known value key_value(bits), imported once per
    module as a session object able to encrypt and decrypt."""
    made = target.cache()

    def key(bits):
        if bits not in made:
            try:
                made[bits] = session.create_object({
                    Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES,
                    Attribute.VALUE: key_value(bits), Attribute.TOKEN: False,
                    Attribute.ENCRYPT: True, Attribute.DECRYPT: True,
                    Attribute.ID: f"conformance-aes-{bits}".encode()})
            except PKCS11Error as exc:
                pytest.fail(f"C_CreateObject of a {bits}-bit AES key with CKA_VALUE must "
                            f"succeed: {returned(exc)}")
        return made[bits]

    yield key
    for made_key in made.values():
        made_key.destroy()


class CK_AES_CTR_PARAMS(ctypes.Structure):
    """PKCS#11 v2.40 curr, AES with Counter: {CK_ULONG ulCounterBits; CK_BYTE cb[16]}."""

    _fields_ = [("ulCounterBits", ctypes.c_ulong), ("cb", ctypes.c_ubyte * BLOCK)]


def ctr_param(counter_block):
    """CK_AES_CTR_PARAMS with ulCounterBits 128, in native layout: python-pkcs11 passes a
    bytes mechanism_param through unchanged as pParameter/ulParameterLen."""
    return bytes(CK_AES_CTR_PARAMS(128, (ctypes.c_ubyte * BLOCK)(*counter_block)))


def mode_of(mechanism_name, counter_block=COUNTER_BLOCKS["rfc3686"]):
    """(cryptography mode, python-pkcs11 mechanism_param, PKCS#7 padding?) for a mode."""
    return {
        "CKM_AES_ECB": (modes.ECB(), None, False),
        "CKM_AES_CBC": (modes.CBC(IV), IV, False),
        "CKM_AES_CBC_PAD": (modes.CBC(IV), IV, True),
        "CKM_AES_CTR": (modes.CTR(counter_block), ctr_param(counter_block), False),
    }[mechanism_name]


def reference_encrypt(mechanism_name, key, data, counter_block=COUNTER_BLOCKS["rfc3686"]):
    cipher_mode, _, pads = mode_of(mechanism_name, counter_block)
    if pads:
        padder = padding.PKCS7(128).padder()
        data = padder.update(data) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), cipher_mode).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def check_encrypt(aes_key, key_bits, mechanism_name, data):
    _, param, _ = mode_of(mechanism_name)
    got = module_encrypt(aes_key(key_bits), data, mechanism_name, param)
    expected = reference_encrypt(mechanism_name, key_value(key_bits), data)
    assert got == expected, (
        f"C_Encrypt({mechanism_name}) of {len(data)} bytes must equal cryptography's "
        f"ciphertext: got {len(got)} bytes {got[:32].hex()}..., expected {len(expected)} "
        f"bytes {expected[:32].hex()}...")


def check_decrypt(aes_key, key_bits, mechanism_name, data):
    _, param, _ = mode_of(mechanism_name)
    ciphertext = reference_encrypt(mechanism_name, key_value(key_bits), data)
    got = module_decrypt(aes_key(key_bits), ciphertext, mechanism_name, param)
    assert got == data, (
        f"C_Decrypt({mechanism_name}) of cryptography's {len(ciphertext)}-byte ciphertext "
        f"must return the {len(data)}-byte plaintext: got {len(got)} bytes {got[:32].hex()}...")


def check_multi_part(aes_key, own_session, key_bits, mechanism_name, parts):
    """On the test's own session: a module that keeps a multi-part operation after an
    error (or CKR_BUFFER_TOO_SMALL from C_EncryptUpdate) must not disturb later tests."""
    data = PLAINTEXT[:sum(parts)]
    chunks, offset = [], 0
    for part in parts:
        chunks.append(data[offset:offset + part])
        offset += part
    _, param, _ = mode_of(mechanism_name)
    key = Keys.on(own_session, aes_key(key_bits))
    expected = reference_encrypt(mechanism_name, key_value(key_bits), data)
    what = f"{mechanism_name} in parts of {', '.join(map(str, parts))} bytes"
    try:
        got = b"".join(key.encrypt(iter(chunks), mechanism=mechanism(mechanism_name),
                                   mechanism_param=param))
    except PKCS11Error as exc:
        pytest.fail(f"C_EncryptUpdate/C_EncryptFinal({what}) must succeed: {returned(exc)}")
    assert got == expected, (
        f"C_EncryptUpdate/C_EncryptFinal({what}) must equal cryptography's ciphertext: got "
        f"{len(got)} bytes {got[:32].hex()}..., expected {len(expected)} bytes "
        f"{expected[:32].hex()}...")
    cipher_parts, offset = [], 0
    for part in parts:
        cipher_parts.append(expected[offset:offset + part])
        offset += part
    cipher_parts.append(expected[offset:])  # the padding block, for CBC-PAD
    try:
        plain = b"".join(key.decrypt(iter(cipher_parts), mechanism=mechanism(mechanism_name),
                                     mechanism_param=param))
    except PKCS11Error as exc:
        pytest.fail(f"C_DecryptUpdate/C_DecryptFinal({what}) must succeed: {returned(exc)}")
    assert plain == data, (
        f"C_DecryptUpdate/C_DecryptFinal({what}) of cryptography's ciphertext must return "
        f"the plaintext: got {len(plain)} bytes {plain[:32].hex()}...")


@sizes(BLOCK_SIZES)
@ALL_MODES
@IMPORTS
@pytest.mark.function("C_Encrypt")
def test_aes_encrypt_matches_cryptography(aes_key, mechanism_name, key_bits, size):
    """PKCS#11 v2.40 curr, AES-ECB, AES-CBC, AES-CBC with PKCS padding and AES with Counter:
    the ciphertext of block-aligned data equals FIPS 197 AES in that mode (SP 800-38A; CBC-PAD
    adds PKCS #7 padding; CTR with ulCounterBits 128), as cryptography computes it."""
    check_encrypt(aes_key, key_bits, mechanism_name, PLAINTEXT[:size])


@sizes(BLOCK_SIZES)
@ALL_MODES
@IMPORTS
@pytest.mark.function("C_Decrypt")
def test_aes_decrypt_recovers_cryptography_plaintext(aes_key, mechanism_name, key_bits, size):
    """PKCS#11 v2.40 curr, AES-ECB, AES-CBC, AES-CBC with PKCS padding and AES with Counter:
    the module decrypts cryptography's ciphertext of block-aligned data to the plaintext."""
    check_decrypt(aes_key, key_bits, mechanism_name, PLAINTEXT[:size])


@sizes(ANY_SIZES)
@ANY_LENGTH_MODES
@IMPORTS
@pytest.mark.function("C_Encrypt")
def test_aes_encrypt_any_length_matches_cryptography(aes_key, mechanism_name, key_bits, size):
    """PKCS#11 v2.40 curr, AES-CBC with PKCS padding and AES with Counter: data of any
    length (empty and not block-aligned) is encrypted as cryptography does it (CBC-PAD pads
    to the next block boundary with PKCS #7, a full block for aligned data; CTR output has
    the input's length)."""
    check_encrypt(aes_key, key_bits, mechanism_name, PLAINTEXT[:size])


@sizes(ANY_SIZES)
@ANY_LENGTH_MODES
@IMPORTS
@pytest.mark.function("C_Decrypt")
def test_aes_decrypt_any_length_recovers_cryptography_plaintext(aes_key, mechanism_name,
                                                                 key_bits, size):
    """PKCS#11 v2.40 curr, AES-CBC with PKCS padding and AES with Counter: the module
    decrypts cryptography's ciphertext of data of any length and removes the PKCS #7
    padding (CBC-PAD)."""
    check_decrypt(aes_key, key_bits, mechanism_name, PLAINTEXT[:size])


@ALL_MODES
@IMPORTS
@MULTI_PART
def test_aes_multi_part_matches_cryptography(aes_key, own_session, mechanism_name, key_bits):
    """PKCS#11 v2.40 base §5.8.3 C_EncryptUpdate, §5.9.3 C_DecryptUpdate: a multi-part
    operation fed block-aligned parts of unequal length gives the single-part result
    (cryptography's ciphertext), and decrypts it back."""
    check_multi_part(aes_key, own_session, key_bits, mechanism_name, BLOCK_PARTS)


@ANY_LENGTH_MODES
@IMPORTS
@MULTI_PART
def test_aes_multi_part_uneven_parts_match_cryptography(aes_key, own_session, mechanism_name,
                                                        key_bits):
    """PKCS#11 v2.40 base §5.8.3 C_EncryptUpdate, §5.9.3 C_DecryptUpdate: with CBC-PAD and
    CTR, parts that are not block-aligned are buffered, and the result equals cryptography's
    ciphertext; decryption in uneven parts returns the plaintext."""
    check_multi_part(aes_key, own_session, key_bits, mechanism_name, UNEVEN_PARTS)


@pytest.mark.parametrize("counter", sorted(COUNTER_BLOCKS))
@pytest.mark.mechanism("CKM_AES_CTR")
@IMPORTS
@pytest.mark.function("C_Encrypt")
def test_aes_ctr_counter_block_is_a_128_bit_counter(aes_key, key_bits, counter):
    """PKCS#11 v2.40 curr, AES with Counter: with ulCounterBits 128 the whole counter block
    cb is a big-endian counter incremented once per block (SP 800-38A), carries included;
    encryption equals cryptography's CTR and the module decrypts cryptography's output."""
    block = COUNTER_BLOCKS[counter]
    data = PLAINTEXT[:100]
    key = aes_key(key_bits)
    expected = reference_encrypt("CKM_AES_CTR", key_value(key_bits), data, block)
    got = module_encrypt(key, data, "CKM_AES_CTR", ctr_param(block))
    assert got == expected, (
        f"C_Encrypt(CKM_AES_CTR, cb={block.hex()}) must equal cryptography's CTR: got "
        f"{got.hex()}, expected {expected.hex()}")
    plain = module_decrypt(key, expected, "CKM_AES_CTR", ctr_param(block))
    assert plain == data, (
        f"C_Decrypt(CKM_AES_CTR, cb={block.hex()}) of cryptography's ciphertext must return "
        f"the plaintext: got {plain.hex()}")


@pytest.mark.mechanisms("CKM_AES_CBC", "CKM_AES_ECB")
@IMPORTS
@pytest.mark.function("C_Encrypt")
def test_aes_encrypt_unaligned_input_is_refused(aes_key, mechanism_name, key_bits):
    """PKCS#11 v2.40 curr, AES-ECB and AES-CBC: the input length must be a multiple of the
    block size; otherwise C_Encrypt returns CKR_DATA_LEN_RANGE (base §5.1 return values)."""
    _, param, _ = mode_of(mechanism_name)
    expect_refusal("data-len-range", ENCRYPT, aes_key(key_bits).encrypt, PLAINTEXT[:17],
                   what=f"C_Encrypt({mechanism_name}) of 17 bytes",
                   mechanism=mechanism(mechanism_name), mechanism_param=param)


@pytest.mark.mechanisms("CKM_AES_CBC", "CKM_AES_CBC_PAD", "CKM_AES_ECB")
@IMPORTS
@pytest.mark.function("C_Decrypt")
def test_aes_decrypt_unaligned_ciphertext_is_refused(aes_key, mechanism_name, key_bits):
    """PKCS#11 v2.40 curr, AES-ECB, AES-CBC and AES-CBC with PKCS padding: ciphertext must
    be a multiple of the block size; otherwise C_Decrypt returns
    CKR_ENCRYPTED_DATA_LEN_RANGE or CKR_ENCRYPTED_DATA_INVALID (base §5.9.2 C_Decrypt: for
    ciphertext of an inappropriate length either may be returned)."""
    _, param, _ = mode_of(mechanism_name)
    expect_refusal("encrypted-data-len-range", DECRYPT, aes_key(key_bits).decrypt,
                   PLAINTEXT[:17], what=f"C_Decrypt({mechanism_name}) of 17 bytes",
                   mechanism=mechanism(mechanism_name), mechanism_param=param)


# ---- AES-GCM ---------------------------------------------------------------------------

def gcm_reference(key_bits, data, aad, tag_bits):
    """cryptography's AES-GCM: ciphertext || the tag truncated to its leftmost tag_bits
    (SP 800-38D §7.1 step 6, MSB_t)."""
    full = AESGCM(key_value(key_bits)).encrypt(GCM_IV, data, aad or None)
    return full[:len(data)] + full[len(data):][:tag_bits // 8]


def gcm_encrypt(key, data, aad, tag_bits):
    try:
        return key.encrypt(data, mechanism=mechanism("CKM_AES_GCM"),
                           mechanism_param=GCMParams(GCM_IV, aad or None, tag_bits))
    except PKCS11Error as exc:
        pytest.fail(f"C_Encrypt(CKM_AES_GCM, ulTagBits={tag_bits}) of {len(data)} bytes must "
                    f"succeed: {returned(exc)}")


def gcm_decrypt(key, data, aad, tag_bits):
    return key.decrypt(data, mechanism=mechanism("CKM_AES_GCM"),
                       mechanism_param=GCMParams(GCM_IV, aad or None, tag_bits))


def check_gcm_encrypt(key, key_bits, data, aad, tag_bits):
    got = gcm_encrypt(key, data, aad, tag_bits)
    tag_len = tag_bits // 8
    what = (f"C_Encrypt(CKM_AES_GCM, ulTagBits={tag_bits}) of {len(data)} bytes with "
            f"{len(aad)} bytes of AAD")
    assert len(got) == len(data) + tag_len, (
        f"{what} must return the ciphertext followed by a {tag_len}-byte tag: got {len(got)} "
        f"bytes")
    ciphertext, tag = got[:len(data)], got[len(data):]
    decryptor = Cipher(algorithms.AES(key_value(key_bits)),
                       modes.GCM(GCM_IV, tag, min_tag_length=tag_len)).decryptor()
    decryptor.authenticate_additional_data(aad)
    try:
        plain = decryptor.update(ciphertext) + decryptor.finalize()
    except Exception as exc:  # noqa: BLE001 - InvalidTag, reported as a FAIL
        pytest.fail(f"{what} must verify with cryptography's GCM (ciphertext then tag): "
                    f"{type(exc).__name__}; got {got.hex()}, expected "
                    f"{gcm_reference(key_bits, data, aad, tag_bits).hex()}")
    assert plain == data, f"{what}: cryptography decrypts it to {plain.hex()}"


@pytest.mark.parametrize("aad", list(GCM_AAD.values()), ids=list(GCM_AAD))
@sizes(GCM_SIZES)
@GCM
@IMPORTS
@pytest.mark.function("C_Encrypt")
def test_aes_gcm_encrypt_matches_cryptography(aes_key, key_bits, tag_bits, size, aad):
    """PKCS#11 v2.40 curr, AES-GCM: C_Encrypt returns the GCM ciphertext followed by the tag
    (its leftmost ulTagBits bits), which cryptography's GCM (SP 800-38D) verifies, with a
    96-bit IV, with and without AAD, for empty and non-aligned data."""
    check_gcm_encrypt(aes_key(key_bits), key_bits, PLAINTEXT[:size], aad, tag_bits)


@pytest.mark.parametrize("aad", list(GCM_AAD.values()), ids=list(GCM_AAD))
@sizes(GCM_SIZES)
@GCM
@IMPORTS
@pytest.mark.function("C_Decrypt")
def test_aes_gcm_decrypt_recovers_cryptography_plaintext(aes_key, key_bits, tag_bits, size,
                                                          aad):
    """PKCS#11 v2.40 curr, AES-GCM: C_Decrypt of cryptography's ciphertext followed by its
    tag (truncated to ulTagBits) returns the plaintext."""
    data = PLAINTEXT[:size]
    sealed = gcm_reference(key_bits, data, aad, tag_bits)
    try:
        got = gcm_decrypt(aes_key(key_bits), sealed, aad, tag_bits)
    except PKCS11Error as exc:
        pytest.fail(f"C_Decrypt(CKM_AES_GCM, ulTagBits={tag_bits}) of cryptography's "
                    f"{len(sealed)} bytes must succeed: {returned(exc)}")
    assert got == data, (
        f"C_Decrypt(CKM_AES_GCM, ulTagBits={tag_bits}) of cryptography's ciphertext must "
        f"return the plaintext: got {got.hex()}, expected {data.hex()}")


def tampered(sealed, aad, where):
    """(sealed input, AAD) with one bit flipped in the tag, the ciphertext or the AAD."""
    if where == "tag":
        return sealed[:-1] + bytes([sealed[-1] ^ 0x01]), aad
    if where == "ciphertext":
        return bytes([sealed[0] ^ 0x80]) + sealed[1:], aad
    return sealed, bytes([aad[0] ^ 0x01]) + aad[1:]


# A flipped bit in the tag itself is test_aes_gcm_wrong_tag_is_reported_as_invalid_ciphertext.
@pytest.mark.parametrize("where", ["aad", "ciphertext"])
@GCM
@IMPORTS
@pytest.mark.function("C_Decrypt")
def test_aes_gcm_tampered_input_is_rejected(aes_key, key_bits, tag_bits, where):
    """PKCS#11 v2.40 base §5.9.2 C_Decrypt and §5.1.6 return values, with SP 800-38D §7.2:
    when the tag does not verify (one bit flipped in the ciphertext or the AAD), decryption
    returns no plaintext but CKR_ENCRYPTED_DATA_INVALID, the code C_Decrypt's list has for
    invalid ciphertext (3.x's CKR_AEAD_DECRYPT_FAILED belongs to C_DecryptMessage)."""
    data = PLAINTEXT[:16]
    sealed, aad = tampered(gcm_reference(key_bits, data, AAD, tag_bits), AAD, where)
    expect_refusal("aead-tag-mismatch", "C_Decrypt", gcm_decrypt, aes_key(key_bits), sealed,
                   aad, tag_bits, what=f"C_Decrypt(CKM_AES_GCM, ulTagBits={tag_bits}) with a "
                   f"flipped bit in the {where}")


@GCM
@IMPORTS
@pytest.mark.function("C_Decrypt")
def test_aes_gcm_wrong_tag_is_reported_as_invalid_ciphertext(aes_key, key_bits, tag_bits):
    """PKCS#11 v2.40 base §5.9.2 C_Decrypt and §5.1.6 return values: a GCM tag that does not
    verify is invalid ciphertext, reported as CKR_ENCRYPTED_DATA_INVALID (3.x's
    CKR_AEAD_DECRYPT_FAILED belongs to C_DecryptMessage, not C_Decrypt)."""
    sealed, aad = tampered(gcm_reference(key_bits, PLAINTEXT[:16], AAD, tag_bits), AAD, "tag")
    expect_refusal("aead-tag-mismatch", "C_Decrypt", gcm_decrypt, aes_key(key_bits), sealed,
                   aad, tag_bits, what=f"C_Decrypt(CKM_AES_GCM, ulTagBits={tag_bits}) with a "
                   f"wrong tag")


@pytest.mark.parametrize("tag_length", STANDARD_TAG_BITS, ids=lambda t: f"tag-{t}-bits")
@GCM
@IMPORTS
@pytest.mark.function("C_Encrypt")
def test_aes_gcm_any_standard_tag_length_is_refused_or_right(aes_key, key_bits, tag_length):
    """PKCS#11 v2.40 curr, AES-GCM (refuse or be right): with any SP 800-38D tag length,
    claimed or not, C_Encrypt either refuses the parameter with CKR_MECHANISM_PARAM_INVALID
    (base §5.1.6, a parameter the token does not support) or returns the ciphertext and the
    correctly truncated tag, and C_Decrypt then returns the plaintext."""
    data = PLAINTEXT[:33]
    key = aes_key(key_bits)
    sealed = result_or_refusal(
        "mechanism-param-invalid", ENCRYPT,
        f"C_Encrypt(CKM_AES_GCM, ulTagBits={tag_length})", key.encrypt, data,
        mechanism=mechanism("CKM_AES_GCM"), mechanism_param=GCMParams(GCM_IV, AAD, tag_length))
    if sealed is None:
        return  # a clean refusal: this tag length is not supported
    expected = gcm_reference(key_bits, data, AAD, tag_length)
    assert sealed == expected, (
        f"C_Encrypt(CKM_AES_GCM, ulTagBits={tag_length}) succeeded, so it must equal "
        f"cryptography's ciphertext and truncated tag: got {sealed.hex()}, expected "
        f"{expected.hex()}")
    try:
        plain = gcm_decrypt(key, sealed, AAD, tag_length)
    except PKCS11Error as exc:
        pytest.fail(f"C_Decrypt(CKM_AES_GCM, ulTagBits={tag_length}) must decrypt what "
                    f"C_Encrypt made with the same parameters: {returned(exc)}")
    assert plain == data, (
        f"C_Decrypt(CKM_AES_GCM, ulTagBits={tag_length}) must return the plaintext: got "
        f"{plain.hex()}")
