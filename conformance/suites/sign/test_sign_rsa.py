"""RSA signatures (PKCS #1 v1.5 and PSS, raw and hash-and-sign), cross-checked with
cryptography in both directions: the module signs and cryptography verifies; cryptography
signs with its own key and the module verifies with the public key imported into it.

The module's keys come from the `keys` fixture (generated once per worker); cryptography's
keys are generated once per key size and worker.
"""

from functools import cache

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
from pkcs11 import MechanismFlag
from pkcs11.exceptions import PKCS11Error

from conformance.crosscheck import (
    DIGEST_INFO,
    HASHES,
    as_cryptography,
    import_public,
    pss_params,
)
from conformance.names import mechanism
from conformance.returncodes import judge
from conformance.suite import SIGN, expect_refusal, returned
from conformance.suites.sign.signing import (
    MESSAGE,
    assert_aes_key_refused,
    assert_all_rejected,
    calls,
    message,
    module_verifies,
    sign,
)

# Hash-and-sign mechanisms and the hash each one applies.
PKCS1_V15 = {
    "CKM_MD5_RSA_PKCS": "md5", "CKM_SHA1_RSA_PKCS": "sha1", "CKM_SHA224_RSA_PKCS": "sha224",
    "CKM_SHA256_RSA_PKCS": "sha256", "CKM_SHA384_RSA_PKCS": "sha384",
    "CKM_SHA512_RSA_PKCS": "sha512", "CKM_SHA3_224_RSA_PKCS": "sha3-224",
    "CKM_SHA3_256_RSA_PKCS": "sha3-256", "CKM_SHA3_384_RSA_PKCS": "sha3-384",
    "CKM_SHA3_512_RSA_PKCS": "sha3-512",
}
PSS = {
    "CKM_SHA1_RSA_PKCS_PSS": "sha1", "CKM_SHA224_RSA_PKCS_PSS": "sha224",
    "CKM_SHA256_RSA_PKCS_PSS": "sha256", "CKM_SHA384_RSA_PKCS_PSS": "sha384",
    "CKM_SHA512_RSA_PKCS_PSS": "sha512", "CKM_SHA3_224_RSA_PKCS_PSS": "sha3-224",
    "CKM_SHA3_256_RSA_PKCS_PSS": "sha3-256", "CKM_SHA3_384_RSA_PKCS_PSS": "sha3-384",
    "CKM_SHA3_512_RSA_PKCS_PSS": "sha3-512",
}
RSA_KEYS = pytest.mark.mechanism("CKM_RSA_PKCS_KEY_PAIR_GEN")
PARTS = pytest.mark.parametrize("parts", ["multi-part", "single-part"])
DIGEST_INFO_HASH = pytest.mark.parametrize("digest_hash", sorted(DIGEST_INFO))


def algorithm(hash_name):
    return hashes.MD5() if hash_name == "md5" else HASHES[hash_name]()


def digest(hash_name, data):
    context = hashes.Hash(algorithm(hash_name))
    context.update(data)
    return context.finalize()


def digest_info(hash_name, data):
    return bytes.fromhex(DIGEST_INFO[hash_name]) + digest(hash_name, data)


def cryptography_verifies(public, signature, data, pad, hash_algorithm, what):
    try:
        as_cryptography(public).verify(signature, data, pad, hash_algorithm)
    except InvalidSignature:
        pytest.fail(f"{what} must verify with cryptography: InvalidSignature")


def assert_length(signature, key_bits, what):
    expected = (key_bits + 7) // 8
    assert len(signature) == expected, (
        f"{what} must return a signature of the modulus length ({expected} bytes): "
        f"got {len(signature)} bytes")


def pss_fits(key_bits, hash_name, salt_length):
    """RFC 8017 §9.1.1: emLen >= hLen + sLen + 2, emLen = ceil((modBits - 1) / 8)."""
    em_len = (key_bits - 1 + 7) // 8
    return salt_length <= em_len - algorithm(hash_name).digest_size - 2


def pss(hash_name, salt_length):
    return padding.PSS(mgf=padding.MGF1(algorithm(hash_name)), salt_length=salt_length)


def assert_salt_refused(key, data, name, params, what):
    """A salt that does not fit the modulus cannot give a valid signature: C_SignInit or
    C_Sign returns CKR_MECHANISM_PARAM_INVALID or CKR_KEY_SIZE_RANGE (base §5.1.6)."""
    expect_refusal("pss-salt-too-long-for-key", SIGN, key.sign, data,
                   what=f"{what} (the salt does not fit the modulus)",
                   mechanism=mechanism(name), mechanism_param=params)


class Peer:
    """cryptography's own RSA keys, one per size, with the public half imported into the
    module as a session object, for the mirror direction."""

    def __init__(self, target, session):
        self.session = session
        self._imported = target.cache()

    def rsa(self, bits):
        private = _cryptography_rsa(bits)
        if bits not in self._imported:
            self._imported[bits] = import_public(self.session, private.public_key(),
                                                 MechanismFlag.VERIFY)
        return private, self._imported[bits]


@cache
def _cryptography_rsa(bits):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@pytest.fixture(scope="module")
def peer(target, session):
    return Peer(target, session)


# --- PKCS #1 v1.5 -------------------------------------------------------------------------


@DIGEST_INFO_HASH
@RSA_KEYS
@pytest.mark.mechanism("CKM_RSA_PKCS")
def test_sign_rsa_pkcs_digest_info_verifies_with_cryptography(keys, key_bits, digest_hash):
    """PKCS#11 v2.40 curr, PKCS #1 v1.5 RSA: CKM_RSA_PKCS signs the DigestInfo it is given
    as RSASSA-PKCS1-v1_5 (block type 1), one modulus-length signature that cryptography
    verifies as PKCS #1 v1.5 over that digest."""
    public, private = keys.rsa(key_bits)
    signature = sign(private, digest_info(digest_hash, MESSAGE), "CKM_RSA_PKCS")
    what = f"C_Sign(CKM_RSA_PKCS) of a {digest_hash} DigestInfo with a {key_bits}-bit key"
    assert_length(signature, key_bits, what)
    cryptography_verifies(public, signature, digest(digest_hash, MESSAGE), padding.PKCS1v15(),
                          utils.Prehashed(algorithm(digest_hash)), what)


@DIGEST_INFO_HASH
@RSA_KEYS
@pytest.mark.mechanism("CKM_RSA_PKCS")
@pytest.mark.function("C_CreateObject")
def test_verify_rsa_pkcs_accepts_cryptography_signature(peer, key_bits, digest_hash):
    """PKCS#11 v2.40 curr, PKCS #1 v1.5 RSA: C_Verify with CKM_RSA_PKCS accepts a
    cryptography RSASSA-PKCS1-v1_5 signature over the DigestInfo."""
    private, public = peer.rsa(key_bits)
    signature = private.sign(digest(digest_hash, MESSAGE), padding.PKCS1v15(),
                             utils.Prehashed(algorithm(digest_hash)))
    assert module_verifies(public, digest_info(digest_hash, MESSAGE), signature,
                           "CKM_RSA_PKCS"), (
        f"C_Verify(CKM_RSA_PKCS) must accept cryptography's {key_bits}-bit signature of a "
        f"{digest_hash} DigestInfo: returned CKR_SIGNATURE_INVALID")


@RSA_KEYS
@pytest.mark.mechanism("CKM_RSA_PKCS")
def test_verify_rsa_pkcs_rejects_altered_signature(keys, key_bits):
    """PKCS#11 v2.40 base §5.12.2 C_Verify: a signature with a flipped bit, over a changed
    DigestInfo, or one byte too long or too short, is rejected: CKR_SIGNATURE_INVALID for a
    wrong signature, CKR_SIGNATURE_LEN_RANGE for one invalid by its length alone."""
    public, private = keys.rsa(key_bits)
    data = digest_info("sha256", MESSAGE)
    assert_all_rejected(public, data, sign(private, data, "CKM_RSA_PKCS"), "CKM_RSA_PKCS")


@PARTS
@pytest.mark.mechanisms(*PKCS1_V15)
def test_sign_rsa_pkcs_hash_verifies_with_cryptography(keys, mechanism_name, key_bits, parts):
    """PKCS#11 v2.40 curr, PKCS #1 v1.5 RSA signature with hashing (v3.0 for SHA-3): the
    signature over the message, single-part or in parts, is RSASSA-PKCS1-v1_5 with the
    mechanism's hash (cryptography verifies it) and, being deterministic, the same either
    way."""
    public, private = keys.rsa(key_bits)
    hash_name = PKCS1_V15[mechanism_name]
    what = f"{calls('Sign', parts)}({mechanism_name}) with a {key_bits}-bit key"
    signature = sign(private, message(parts), mechanism_name, what=calls("Sign", parts))
    assert_length(signature, key_bits, what)
    cryptography_verifies(public, signature, MESSAGE, padding.PKCS1v15(), algorithm(hash_name),
                          what)
    if parts == "multi-part":
        whole = sign(private, MESSAGE, mechanism_name)
        assert signature == whole, (
            f"{what} must equal the single-part signature (PKCS #1 v1.5 is deterministic): "
            f"got {signature[:8].hex()}..., single-part {whole[:8].hex()}...")


@PARTS
@pytest.mark.mechanisms(*PKCS1_V15)
@pytest.mark.function("C_CreateObject")
def test_verify_rsa_pkcs_hash_accepts_cryptography_signature(peer, mechanism_name, key_bits,
                                                             parts):
    """PKCS#11 v2.40 curr, PKCS #1 v1.5 RSA signature with hashing (v3.0 for SHA-3):
    C_Verify, or C_VerifyUpdate + C_VerifyFinal, accepts cryptography's RSASSA-PKCS1-v1_5
    signature with the mechanism's hash."""
    private, public = peer.rsa(key_bits)
    signature = private.sign(MESSAGE, padding.PKCS1v15(),
                             algorithm(PKCS1_V15[mechanism_name]))
    what = calls("Verify", parts)
    assert module_verifies(public, message(parts), signature, mechanism_name, what=what), (
        f"{what}({mechanism_name}) must accept cryptography's {key_bits}-bit signature: "
        "returned CKR_SIGNATURE_INVALID")


@pytest.mark.mechanisms(*PKCS1_V15)
def test_verify_rsa_pkcs_hash_rejects_altered_signature(keys, mechanism_name, key_bits):
    """PKCS#11 v2.40 base §5.12.2 C_Verify: a signature with a flipped bit, over a changed message,
    or one byte too long or too short, is rejected: CKR_SIGNATURE_INVALID for a wrong signature,
    CKR_SIGNATURE_LEN_RANGE for one invalid by its length alone."""
    public, private = keys.rsa(key_bits)
    assert_all_rejected(public, MESSAGE, sign(private, MESSAGE, mechanism_name),
                        mechanism_name)


# --- PSS ----------------------------------------------------------------------------------


@RSA_KEYS
@pytest.mark.mechanism("CKM_RSA_PKCS_PSS")
def test_sign_rsa_pss_digest_verifies_with_cryptography(keys, hash_name, salt_length,
                                                       key_bits):
    """PKCS#11 v2.40 curr, PKCS #1 RSA PSS: CKM_RSA_PKCS_PSS signs the given hash value as
    RSASSA-PSS with CK_RSA_PKCS_PSS_PARAMS (hashAlg, MGF1 with the same hash, sLen), which
    cryptography verifies with exactly that salt length; a salt that cannot fit the modulus
    (sLen > emLen - hLen - 2) is refused with CKR_MECHANISM_PARAM_INVALID or
    CKR_KEY_SIZE_RANGE (base §5.1.6)."""
    public, private = keys.rsa(key_bits)
    params = pss_params(hash_name, salt_length)
    data = digest(hash_name, MESSAGE)
    what = f"C_Sign(CKM_RSA_PKCS_PSS, {hash_name}, sLen {salt_length}) with a {key_bits}-bit key"
    if not pss_fits(key_bits, hash_name, salt_length):
        assert_salt_refused(private, data, "CKM_RSA_PKCS_PSS", params, what)
        return
    signature = sign(private, data, "CKM_RSA_PKCS_PSS", params)
    assert_length(signature, key_bits, what)
    cryptography_verifies(public, signature, data, pss(hash_name, salt_length),
                          utils.Prehashed(algorithm(hash_name)), what)


@RSA_KEYS
@pytest.mark.mechanism("CKM_RSA_PKCS_PSS")
@pytest.mark.function("C_CreateObject")
def test_verify_rsa_pss_digest_accepts_cryptography_signature(peer, hash_name, salt_length,
                                                              key_bits):
    """PKCS#11 v2.40 curr, PKCS #1 RSA PSS: C_Verify with CKM_RSA_PKCS_PSS accepts
    cryptography's RSASSA-PSS signature of a hash value with the same hash, MGF1 and salt
    length; with a salt that cannot fit the modulus it never accepts a signature (it
    returns CKR_SIGNATURE_INVALID, or refuses the parameters with
    CKR_MECHANISM_PARAM_INVALID or CKR_KEY_SIZE_RANGE, base §5.1.6)."""
    private, public = peer.rsa(key_bits)
    params = pss_params(hash_name, salt_length)
    data = digest(hash_name, MESSAGE)
    prehashed = utils.Prehashed(algorithm(hash_name))
    what = (f"C_Verify(CKM_RSA_PKCS_PSS, {hash_name}, sLen {salt_length}) of cryptography's "
            f"{key_bits}-bit signature")
    if not pss_fits(key_bits, hash_name, salt_length):
        signature = private.sign(data, pss(hash_name, padding.PSS.MAX_LENGTH), prehashed)
        verified = _verifies_or_refuses(public, data, signature, "CKM_RSA_PKCS_PSS", params,
                                        what)
        assert not verified, f"{what} must not succeed, the salt does not fit the modulus"
        return
    signature = private.sign(data, pss(hash_name, salt_length), prehashed)
    assert module_verifies(public, data, signature, "CKM_RSA_PKCS_PSS", params), (
        f"{what} must succeed: returned CKR_SIGNATURE_INVALID")


@RSA_KEYS
@pytest.mark.mechanism("CKM_RSA_PKCS_PSS")
def test_verify_rsa_pss_digest_rejects_altered_signature(keys, hash_name, salt_length,
                                                        key_bits):
    """PKCS#11 v2.40 base §5.12.2 C_Verify: a PSS signature with a flipped bit, over a changed hash
    value, or one byte too long or too short, is rejected: CKR_SIGNATURE_INVALID for a wrong
    signature, CKR_SIGNATURE_LEN_RANGE for one invalid by its length alone."""
    public, private = keys.rsa(key_bits)
    params = pss_params(hash_name, salt_length)
    data = digest(hash_name, MESSAGE)
    if not pss_fits(key_bits, hash_name, salt_length):
        assert_salt_refused(private, data, "CKM_RSA_PKCS_PSS", params,
                       f"C_Sign(CKM_RSA_PKCS_PSS, {hash_name}, sLen {salt_length})")
        return
    signature = sign(private, data, "CKM_RSA_PKCS_PSS", params)
    assert_all_rejected(public, data, signature, "CKM_RSA_PKCS_PSS", params)


@PARTS
@pytest.mark.mechanisms(*PSS)
def test_sign_rsa_pss_hash_verifies_with_cryptography(keys, mechanism_name, salt_length,
                                                      key_bits, parts):
    """PKCS#11 v2.40 curr, PKCS #1 RSA PSS signature with hashing (v3.0 for SHA-3): the
    signature over the message, single-part or in parts, with CK_RSA_PKCS_PSS_PARAMS
    (hashAlg of the mechanism, MGF1 with the same hash, sLen) is RSASSA-PSS that
    cryptography verifies with exactly that salt length; a salt that cannot fit the modulus
    is refused with CKR_MECHANISM_PARAM_INVALID or CKR_KEY_SIZE_RANGE (base §5.1.6)."""
    public, private = keys.rsa(key_bits)
    hash_name = PSS[mechanism_name]
    params = pss_params(hash_name, salt_length)
    what = (f"{calls('Sign', parts)}({mechanism_name}, sLen {salt_length}) with a "
            f"{key_bits}-bit key")
    if not pss_fits(key_bits, hash_name, salt_length):
        assert_salt_refused(private, message(parts), mechanism_name, params, what)
        return
    signature = sign(private, message(parts), mechanism_name, params, calls("Sign", parts))
    assert_length(signature, key_bits, what)
    cryptography_verifies(public, signature, MESSAGE, pss(hash_name, salt_length),
                          algorithm(hash_name), what)


@PARTS
@pytest.mark.mechanisms(*PSS)
@pytest.mark.function("C_CreateObject")
def test_verify_rsa_pss_hash_accepts_cryptography_signature(peer, mechanism_name, salt_length,
                                                            key_bits, parts):
    """PKCS#11 v2.40 curr, PKCS #1 RSA PSS signature with hashing (v3.0 for SHA-3): C_Verify,
    or C_VerifyUpdate + C_VerifyFinal, accepts cryptography's RSASSA-PSS signature with
    the same hash, MGF1 and salt length; with a salt that cannot fit the modulus it never
    accepts a signature (CKR_SIGNATURE_INVALID, or CKR_MECHANISM_PARAM_INVALID or
    CKR_KEY_SIZE_RANGE for the parameters, base §5.1.6)."""
    private, public = peer.rsa(key_bits)
    hash_name = PSS[mechanism_name]
    params = pss_params(hash_name, salt_length)
    what = (f"{calls('Verify', parts)}({mechanism_name}, sLen {salt_length}) of "
            f"cryptography's {key_bits}-bit signature")
    if not pss_fits(key_bits, hash_name, salt_length):
        signature = private.sign(MESSAGE, pss(hash_name, padding.PSS.MAX_LENGTH),
                                 algorithm(hash_name))
        verified = _verifies_or_refuses(public, message(parts), signature, mechanism_name,
                                        params, what)
        assert not verified, f"{what} must not succeed, the salt does not fit the modulus"
        return
    signature = private.sign(MESSAGE, pss(hash_name, salt_length), algorithm(hash_name))
    assert module_verifies(public, message(parts), signature, mechanism_name, params,
                           calls("Verify", parts)), (
        f"{what} must succeed: returned CKR_SIGNATURE_INVALID")


@pytest.mark.mechanisms(*PSS)
def test_verify_rsa_pss_hash_rejects_altered_signature(keys, mechanism_name, salt_length,
                                                       key_bits):
    """PKCS#11 v2.40 base §5.12.2 C_Verify: a PSS signature with a flipped bit, over a changed
    message, or one byte too long or too short, is rejected: CKR_SIGNATURE_INVALID for a wrong
    signature, CKR_SIGNATURE_LEN_RANGE for one invalid by its length alone."""
    public, private = keys.rsa(key_bits)
    hash_name = PSS[mechanism_name]
    params = pss_params(hash_name, salt_length)
    if not pss_fits(key_bits, hash_name, salt_length):
        assert_salt_refused(private, MESSAGE, mechanism_name, params,
                       f"C_Sign({mechanism_name}, sLen {salt_length})")
        return
    signature = sign(private, MESSAGE, mechanism_name, params)
    assert_all_rejected(public, MESSAGE, signature, mechanism_name, params)


def _verifies_or_refuses(public, data, signature, name, params, what):
    """Refuse or be right, for a salt that cannot fit the modulus: the module's verdict
    (CKR_SIGNATURE_INVALID reads False), or False for the refusal the spec names
    (CKR_MECHANISM_PARAM_INVALID or CKR_KEY_SIZE_RANGE, base §5.1.6); another refusal code
    is judged by the return-code table."""
    try:
        return public.verify(data, signature, mechanism=mechanism(name), mechanism_param=params)
    except PKCS11Error as exc:
        judge("C_VerifyInit", "pss-salt-too-long-for-key", returned(exc), what)
        return False


# --- keys that must not sign with these mechanisms ----------------------------------------


def _param(name):
    """A valid parameter for each RSA signature mechanism (None when it takes none)."""
    if name == "CKM_RSA_PKCS_PSS":
        return pss_params("sha256", 32)
    if name in PSS:
        return pss_params(PSS[name], algorithm(PSS[name]).digest_size)
    return None


@pytest.mark.mechanisms("CKM_RSA_PKCS", "CKM_RSA_PKCS_PSS", *PKCS1_V15, *PSS)
@pytest.mark.function("C_CreateObject")  # the AES key is imported
def test_sign_init_rsa_mechanism_with_aes_key_is_refused(own_session, mechanism_name):
    """PKCS#11 v2.40 base §5.11.1 C_SignInit: an RSA signature mechanism with an AES key
    (CKA_SIGN true) is refused with CKR_KEY_TYPE_INCONSISTENT."""
    assert_aes_key_refused(own_session, mechanism_name, _param(mechanism_name))
