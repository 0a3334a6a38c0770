"""RSA encryption and decryption (PKCS #1 v1.5 and OAEP), cross-checked with cryptography in
both directions.

Module encrypts: cryptography generates the key pair, its public key is imported into the
module (a session object), the module encrypts and cryptography decrypts. Module decrypts:
the module's generated key pair (the shared `keys` fixture), cryptography encrypts with its
public key and the module decrypts. Both paddings are randomized, so only decryption can
check a ciphertext.
"""

import pytest
from cryptography.hazmat.primitives.asymmetric import padding
from pkcs11 import Attribute, MechanismFlag
from pkcs11.exceptions import PKCS11Error

from conformance.crosscheck import (
    HASH_MECHANISMS,
    as_cryptography,
    import_public,
    oaep_capacity,
    oaep_decrypt,
    oaep_encrypt,
    oaep_param,
    rsa_private,
)
from conformance.model import parameter_values
from conformance.names import mechanism
from conformance.plugin import RUN
from conformance.suite import DECRYPT, ENCRYPT, expect_refusal, returned
from conformance.suites.encrypt.encryption import (
    module_decrypt,
    module_encrypt,
    result_or_refusal,
)

MESSAGE = bytes((i * 29 + 11) % 256 for i in range(2048))  # room for 16384-bit keys
LABEL = b"pkcs11-conformance OAEP label"
SIZES = {"1-byte": 1, "maximum": None}  # None: the longest message the key can carry
EACH_SIZE = pytest.mark.parametrize("size", list(SIZES.values()), ids=list(SIZES))
# The refuse-or-be-right checks use one key size every RSA module supports.
PROBE_BITS = 2048

# The mechanism marker nearest the function is the one under test (its claims give the
# parameters); the key pair generation mechanism above it is a prerequisite.
PKCS1 = pytest.mark.mechanism("CKM_RSA_PKCS")
OAEP = pytest.mark.mechanism("CKM_RSA_PKCS_OAEP")
KEYGEN = pytest.mark.mechanism("CKM_RSA_PKCS_KEY_PAIR_GEN")
IMPORTS = pytest.mark.function("C_CreateObject")
ENCRYPTS = pytest.mark.function("C_Encrypt")
DECRYPTS = pytest.mark.function("C_Decrypt")


@pytest.fixture(scope="module")
def foreign_pair(target, session):
    """(cryptography private key, module public key object) of `bits` bits: the key pair is
    cryptography's, its public key imported once per module with CKA_ENCRYPT."""
    made = target.cache()

    def pair(bits):
        if bits not in made:
            private = rsa_private(bits)
            try:
                public = import_public(session, private.public_key(), MechanismFlag.ENCRYPT)
            except PKCS11Error as exc:
                pytest.fail(f"C_CreateObject of a {bits}-bit RSA public key must succeed: "
                            f"{returned(exc)}")
            made[bits] = (private, public)
        return made[bits]

    yield pair
    for _, public in made.values():
        public.destroy()


@pytest.fixture
def labels_claimed(request):
    """True when the vendor claims (or a profile lists) CKM_RSA_PKCS_OAEP with a label."""
    run = request.config.stash[RUN]
    return True in parameter_values(run.vendor, run.profiles, "CKM_RSA_PKCS_OAEP", "labels")


def modulus_bytes(public):
    return len(public[Attribute.MODULUS].lstrip(b"\0"))


# ---- PKCS #1 v1.5 -----------------------------------------------------------------------

@EACH_SIZE
@PKCS1
@IMPORTS
@ENCRYPTS
def test_rsa_pkcs_encrypt_decrypts_with_cryptography(foreign_pair, key_bits, size):
    """PKCS#11 v2.40 curr, PKCS #1 v1.5 RSA: C_Encrypt with CKM_RSA_PKCS gives an
    RSAES-PKCS1-v1_5 ciphertext (RFC 8017 §7.2) of k bytes that cryptography decrypts to
    the message, for 1 byte and for the maximum of k - 11 bytes."""
    private, public = foreign_pair(key_bits)
    k = modulus_bytes(public)
    message = MESSAGE[:size or k - 11]
    ciphertext = module_encrypt(public, message, "CKM_RSA_PKCS")
    assert len(ciphertext) == k, (
        f"C_Encrypt(CKM_RSA_PKCS) must return k = {k} bytes: got {len(ciphertext)}")
    try:
        plain = private.decrypt(ciphertext, padding.PKCS1v15())
    except ValueError as exc:
        pytest.fail(f"C_Encrypt(CKM_RSA_PKCS) of {len(message)} bytes must decrypt with "
                    f"cryptography: {exc}")
    assert plain == message, (
        f"C_Encrypt(CKM_RSA_PKCS) must carry the message: cryptography decrypts it to "
        f"{len(plain)} bytes {plain[:16].hex()}..., expected {message[:16].hex()}...")


@EACH_SIZE
@KEYGEN
@PKCS1
@DECRYPTS
def test_rsa_pkcs_decrypt_recovers_cryptography_plaintext(keys, key_bits, size):
    """PKCS#11 v2.40 curr, PKCS #1 v1.5 RSA: C_Decrypt with CKM_RSA_PKCS returns the message
    of cryptography's RSAES-PKCS1-v1_5 ciphertext (RFC 8017 §7.2), for 1 byte and for the
    maximum of k - 11 bytes."""
    public, private = keys.rsa(key_bits)
    k = modulus_bytes(public)
    message = MESSAGE[:size or k - 11]
    ciphertext = as_cryptography(public).encrypt(message, padding.PKCS1v15())
    got = module_decrypt(private, ciphertext, "CKM_RSA_PKCS")
    assert got == message, (
        f"C_Decrypt(CKM_RSA_PKCS) of cryptography's ciphertext must return the "
        f"{len(message)}-byte message: got {len(got)} bytes {got[:16].hex()}...")


@PKCS1
@IMPORTS
@ENCRYPTS
def test_rsa_pkcs_encryption_is_randomized(foreign_pair, key_bits):
    """PKCS#11 v2.40 curr, PKCS #1 v1.5 RSA, with RFC 8017 §7.2.1: the padding string PS is
    pseudo-randomly generated, so two encryptions of one message differ."""
    _, public = foreign_pair(key_bits)
    first = module_encrypt(public, MESSAGE[:16], "CKM_RSA_PKCS")
    second = module_encrypt(public, MESSAGE[:16], "CKM_RSA_PKCS")
    assert first != second, (
        f"two C_Encrypt(CKM_RSA_PKCS) of one message must differ: both {first[:16].hex()}...")


@PKCS1
@IMPORTS
@ENCRYPTS
def test_rsa_pkcs_encrypt_too_long_data_is_refused(foreign_pair, key_bits):
    """PKCS#11 v2.40 curr, PKCS #1 v1.5 RSA: the input holds at most k - 11 bytes; longer
    data gives CKR_DATA_LEN_RANGE (base §5.1 return values)."""
    _, public = foreign_pair(key_bits)
    k = modulus_bytes(public)
    expect_refusal("data-len-range", ENCRYPT, public.encrypt, MESSAGE[:k - 10],
                   what=f"C_Encrypt(CKM_RSA_PKCS) of k - 10 = {k - 10} bytes",
                   mechanism=mechanism("CKM_RSA_PKCS"))


@KEYGEN
@PKCS1
@DECRYPTS
def test_rsa_pkcs_decrypt_wrong_length_is_refused(keys, key_bits):
    """PKCS#11 v2.40 curr, PKCS #1 v1.5 RSA: the ciphertext has exactly k bytes; a longer
    one gives CKR_ENCRYPTED_DATA_LEN_RANGE or CKR_ENCRYPTED_DATA_INVALID (base §5.9.2
    C_Decrypt: for ciphertext of an inappropriate length either may be returned)."""
    public, private = keys.rsa(key_bits)
    k = modulus_bytes(public)
    expect_refusal("encrypted-data-len-range", DECRYPT, private.decrypt,
                   b"\x01" * (k + 1), what=f"C_Decrypt(CKM_RSA_PKCS) of k + 1 = {k + 1} bytes",
                   mechanism=mechanism("CKM_RSA_PKCS"))


# ---- OAEP -------------------------------------------------------------------------------

@EACH_SIZE
@OAEP
@IMPORTS
@ENCRYPTS
def test_rsa_oaep_encrypt_decrypts_with_cryptography(foreign_pair, key_bits, hash_name, size):
    """PKCS#11 v2.40 curr, PKCS #1 RSA OAEP: C_Encrypt with CKM_RSA_PKCS_OAEP (hashAlg and
    MGF1 over the claimed hash, no label) gives an RSAES-OAEP ciphertext (RFC 8017 §7.1) of
    k bytes that decrypts to the message, for 1 byte and for the maximum of k - 2hLen - 2
    bytes; when no message fits the key, C_Encrypt returns CKR_DATA_LEN_RANGE (or
    C_EncryptInit CKR_KEY_SIZE_RANGE, base §5.1.6)."""
    private, public = foreign_pair(key_bits)
    k = modulus_bytes(public)
    capacity = oaep_capacity(k, hash_name)
    what = f"C_Encrypt(CKM_RSA_PKCS_OAEP, {hash_name})"
    if capacity < 1:  # no room for a message: a correct module refuses
        expect_refusal("key-too-short-for-oaep-encrypt", ENCRYPT, public.encrypt,
                       MESSAGE[:1], what=f"{what} of 1 byte with a {key_bits}-bit key",
                       mechanism=mechanism("CKM_RSA_PKCS_OAEP"),
                       mechanism_param=oaep_param(hash_name))
        return
    message = MESSAGE[:size or capacity]
    ciphertext = module_encrypt(public, message, "CKM_RSA_PKCS_OAEP", oaep_param(hash_name))
    assert len(ciphertext) == k, f"{what} must return k = {k} bytes: got {len(ciphertext)}"
    try:
        plain = oaep_decrypt(private, ciphertext, hash_name)
    except ValueError as exc:
        pytest.fail(f"{what} of {len(message)} bytes must decrypt as RSAES-OAEP with "
                    f"{hash_name}: {exc}")
    assert plain == message, (
        f"{what} must carry the message: it decrypts to {len(plain)} bytes "
        f"{plain[:16].hex()}..., expected {message[:16].hex()}...")


@EACH_SIZE
@KEYGEN
@OAEP
@DECRYPTS
def test_rsa_oaep_decrypt_recovers_cryptography_plaintext(keys, key_bits, hash_name, size):
    """PKCS#11 v2.40 curr, PKCS #1 RSA OAEP: C_Decrypt with CKM_RSA_PKCS_OAEP (hashAlg and
    MGF1 over the claimed hash, no label) returns the message of an RSAES-OAEP ciphertext
    (RFC 8017 §7.1), for 1 byte and for the maximum of k - 2hLen - 2 bytes; when no message
    fits the key, a k-byte input gives CKR_ENCRYPTED_DATA_INVALID (or C_DecryptInit
    CKR_KEY_SIZE_RANGE, base §5.1.6)."""
    public, private = keys.rsa(key_bits)
    k = modulus_bytes(public)
    capacity = oaep_capacity(k, hash_name)
    if capacity < 1:  # no valid ciphertext exists: a correct module refuses any input
        expect_refusal("key-too-short-for-oaep-decrypt", DECRYPT, private.decrypt,
                       b"\0" * (k - 1) + b"\x02",
                       what=f"C_Decrypt(CKM_RSA_PKCS_OAEP, {hash_name}) of k = {k} bytes",
                       mechanism=mechanism("CKM_RSA_PKCS_OAEP"),
                       mechanism_param=oaep_param(hash_name))
        return
    message = MESSAGE[:size or capacity]
    ciphertext = oaep_encrypt(as_cryptography(public), message, hash_name)
    got = module_decrypt(private, ciphertext, "CKM_RSA_PKCS_OAEP", oaep_param(hash_name))
    assert got == message, (
        f"C_Decrypt(CKM_RSA_PKCS_OAEP, {hash_name}) of an RSAES-OAEP ciphertext must return "
        f"the {len(message)}-byte message: got {len(got)} bytes {got[:16].hex()}...")


@OAEP
@IMPORTS
@ENCRYPTS
def test_rsa_oaep_encryption_is_randomized(foreign_pair, key_bits, hash_name):
    """PKCS#11 v2.40 curr, PKCS #1 RSA OAEP, with RFC 8017 §7.1.1: the seed is a random
    octet string, so two encryptions of one message differ (with no room for a message,
    CKR_DATA_LEN_RANGE or CKR_KEY_SIZE_RANGE, base §5.1.6)."""
    _, public = foreign_pair(key_bits)
    if oaep_capacity(modulus_bytes(public), hash_name) < 1:  # no room: must refuse
        expect_refusal("key-too-short-for-oaep-encrypt", ENCRYPT, public.encrypt,
                       MESSAGE[:1], what=f"C_Encrypt(CKM_RSA_PKCS_OAEP, {hash_name}) of 1 "
                       f"byte with a {key_bits}-bit key",
                       mechanism=mechanism("CKM_RSA_PKCS_OAEP"),
                       mechanism_param=oaep_param(hash_name))
        return
    first, second = (module_encrypt(public, MESSAGE[:1], "CKM_RSA_PKCS_OAEP",
                                    oaep_param(hash_name)) for _ in range(2))
    assert first != second, (
        f"two C_Encrypt(CKM_RSA_PKCS_OAEP, {hash_name}) of one message must differ: both "
        f"{first[:16].hex()}...")


@OAEP
@IMPORTS
@ENCRYPTS
def test_rsa_oaep_encrypt_too_long_data_is_refused(foreign_pair, key_bits, hash_name):
    """PKCS#11 v2.40 curr, PKCS #1 RSA OAEP: the input holds at most k - 2hLen - 2 bytes;
    longer data gives CKR_DATA_LEN_RANGE (base §5.1 return values)."""
    _, public = foreign_pair(key_bits)
    capacity = oaep_capacity(modulus_bytes(public), hash_name)
    too_long = max(capacity + 1, 1)
    # With no room for any message (a hash too long for the key), C_EncryptInit may refuse
    # the key for these parameters instead (CKR_KEY_SIZE_RANGE, base §5.8).
    expect_refusal("key-too-short-for-oaep-encrypt" if capacity < 1 else "data-len-range",
                   ENCRYPT, public.encrypt, MESSAGE[:too_long],
                   what=f"C_Encrypt(CKM_RSA_PKCS_OAEP, {hash_name}) of {too_long} bytes",
                   mechanism=mechanism("CKM_RSA_PKCS_OAEP"),
                   mechanism_param=oaep_param(hash_name))


@KEYGEN
@OAEP
@DECRYPTS
def test_rsa_oaep_decrypt_wrong_length_is_refused(keys, key_bits, hash_name):
    """PKCS#11 v2.40 curr, PKCS #1 RSA OAEP: the ciphertext has exactly k bytes; a longer
    one gives CKR_ENCRYPTED_DATA_LEN_RANGE or CKR_ENCRYPTED_DATA_INVALID (base §5.9.2
    C_Decrypt: for ciphertext of an inappropriate length either may be returned). With a
    hash too long for the key, C_DecryptInit may refuse the key for these parameters
    (CKR_KEY_SIZE_RANGE) instead."""
    public, private = keys.rsa(key_bits)
    k = modulus_bytes(public)
    no_room = oaep_capacity(k, hash_name) < 1
    expect_refusal("key-too-short-for-oaep-decrypt" if no_room
                   else "encrypted-data-len-range", DECRYPT, private.decrypt,
                   b"\x01" * (k + 1),
                   what=f"C_Decrypt(CKM_RSA_PKCS_OAEP, {hash_name}) of k + 1 = {k + 1} bytes",
                   mechanism=mechanism("CKM_RSA_PKCS_OAEP"),
                   mechanism_param=oaep_param(hash_name))


# ---- Refuse or be right: labels and hashes the vendor may not claim ----------------------

def no_room_for_message(k, hash_name):
    """The label checks use a 16-byte message; with a claimed hash too long for a claimed
    key size (k - 2hLen - 2 < 16, e.g. SHA-512 with RSA-1024) no such ciphertext exists, and
    the refusal itself is checked by the capacity checks above."""
    if oaep_capacity(k, hash_name) < 16:
        pytest.skip(f"a {k * 8}-bit key holds no 16-byte RSAES-OAEP message with {hash_name}")


@OAEP
@IMPORTS
@ENCRYPTS
def test_rsa_oaep_label_encrypt_is_refused_or_right(foreign_pair, labels_claimed, key_bits,
                                                     hash_name):
    """PKCS#11 v2.40 curr, PKCS #1 RSA OAEP mechanism parameters (refuse or be right): with
    a non-empty label (CKZ_DATA_SPECIFIED, pSourceData), C_Encrypt either is refused with
    CKR_MECHANISM_PARAM_INVALID (base §5.1.6, a parameter the token does not support),
    which is allowed only when no label is claimed, or gives a ciphertext that decrypts with
    that label as the label hash lHash (RFC 8017 §7.1.1)."""
    private, public = foreign_pair(key_bits)
    no_room_for_message(modulus_bytes(public), hash_name)
    what = f"C_Encrypt(CKM_RSA_PKCS_OAEP, {hash_name}, {len(LABEL)}-byte label)"
    if labels_claimed:
        ciphertext = module_encrypt(public, MESSAGE[:16], "CKM_RSA_PKCS_OAEP",
                                    oaep_param(hash_name, LABEL))
    else:
        ciphertext = result_or_refusal(
            "mechanism-param-invalid", ENCRYPT, what, public.encrypt,
            MESSAGE[:16], mechanism=mechanism("CKM_RSA_PKCS_OAEP"),
            mechanism_param=oaep_param(hash_name, LABEL))
        if ciphertext is None:
            return  # a clean refusal: labels are not supported
    try:
        plain = oaep_decrypt(private, ciphertext, hash_name, LABEL)
    except ValueError as exc:
        pytest.fail(f"{what} succeeded, so it must decrypt with that label: {exc}")
    assert plain == MESSAGE[:16], f"{what}: decrypts to {plain.hex()}"


@KEYGEN
@OAEP
@DECRYPTS
def test_rsa_oaep_label_decrypt_is_refused_or_right(keys, labels_claimed, key_bits,
                                                     hash_name):
    """PKCS#11 v2.40 curr, PKCS #1 RSA OAEP mechanism parameters (refuse or be right): given
    a ciphertext made with a non-empty label and that label in pSourceData, C_Decrypt
    either is refused with CKR_MECHANISM_PARAM_INVALID (base §5.1.6), which is allowed only
    when no label is claimed, or returns the message; given the wrong label the ciphertext
    is invalid (RFC 8017 §7.1.2 step 3g): CKR_ENCRYPTED_DATA_INVALID (base §5.1.6)."""
    public, private = keys.rsa(key_bits)
    no_room_for_message(modulus_bytes(public), hash_name)
    ciphertext = oaep_encrypt(as_cryptography(public), MESSAGE[:16], hash_name, LABEL)
    what = f"C_Decrypt(CKM_RSA_PKCS_OAEP, {hash_name}, {len(LABEL)}-byte label)"
    if labels_claimed:
        got = module_decrypt(private, ciphertext, "CKM_RSA_PKCS_OAEP",
                             oaep_param(hash_name, LABEL))
    else:  # None: a clean refusal, labels are not supported
        got = result_or_refusal(
            "mechanism-param-invalid", DECRYPT, what, private.decrypt, ciphertext,
            mechanism=mechanism("CKM_RSA_PKCS_OAEP"),
            mechanism_param=oaep_param(hash_name, LABEL))
    if got is not None:
        assert got == MESSAGE[:16], f"{what} must return the message: got {got.hex()}"
    expect_refusal("encrypted-data-invalid", DECRYPT, private.decrypt, ciphertext,
                   what=f"C_Decrypt(CKM_RSA_PKCS_OAEP, {hash_name}) without the label the "
                   f"ciphertext was made with", mechanism=mechanism("CKM_RSA_PKCS_OAEP"),
                   mechanism_param=oaep_param(hash_name))


EVERY_HASH = pytest.mark.parametrize("oaep_hash", sorted(HASH_MECHANISMS))


@EVERY_HASH
@OAEP
@IMPORTS
@ENCRYPTS
def test_rsa_oaep_any_hash_encrypt_is_refused_or_right(foreign_pair, oaep_hash):
    """PKCS#11 v2.40 curr, PKCS #1 RSA OAEP mechanism parameters (refuse or be right): with
    any hashAlg and MGF1 over the same hash, claimed or not, C_Encrypt with a 2048-bit key
    either is refused with CKR_MECHANISM_PARAM_INVALID (base §5.1.6, a parameter the token
    does not support) or gives an RSAES-OAEP ciphertext that decrypts with that hash."""
    private, public = foreign_pair(PROBE_BITS)
    what = f"C_Encrypt(CKM_RSA_PKCS_OAEP, {oaep_hash})"
    ciphertext = result_or_refusal(
        "mechanism-param-invalid", ENCRYPT, what, public.encrypt, MESSAGE[:16],
        mechanism=mechanism("CKM_RSA_PKCS_OAEP"), mechanism_param=oaep_param(oaep_hash))
    if ciphertext is None:
        return  # a clean refusal: this hash is not supported
    try:
        plain = oaep_decrypt(private, ciphertext, oaep_hash)
    except ValueError as exc:
        pytest.fail(f"{what} succeeded, so it must decrypt as RSAES-OAEP with {oaep_hash}: "
                    f"{exc}")
    assert plain == MESSAGE[:16], f"{what}: decrypts to {plain.hex()}"


@EVERY_HASH
@KEYGEN
@OAEP
@DECRYPTS
def test_rsa_oaep_any_hash_decrypt_is_refused_or_right(keys, oaep_hash):
    """PKCS#11 v2.40 curr, PKCS #1 RSA OAEP mechanism parameters (refuse or be right): with
    any hashAlg and MGF1 over the same hash, claimed or not, C_Decrypt of an RSAES-OAEP
    ciphertext made with that hash (2048-bit key) either is refused with
    CKR_MECHANISM_PARAM_INVALID (base §5.1.6) or returns the message."""
    public, private = keys.rsa(PROBE_BITS)
    ciphertext = oaep_encrypt(as_cryptography(public), MESSAGE[:16], oaep_hash)
    got = result_or_refusal(
        "mechanism-param-invalid", DECRYPT,
        f"C_Decrypt(CKM_RSA_PKCS_OAEP, {oaep_hash})", private.decrypt, ciphertext,
        mechanism=mechanism("CKM_RSA_PKCS_OAEP"), mechanism_param=oaep_param(oaep_hash))
    if got is None:
        return  # a clean refusal: this hash is not supported
    assert got == MESSAGE[:16], (
        f"C_Decrypt(CKM_RSA_PKCS_OAEP, {oaep_hash}) succeeded, so it must return the "
        f"message: got {got.hex()}")
