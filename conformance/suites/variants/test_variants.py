"""Refuse or be right: parameter variants of claimed mechanisms that the vendor does not
claim (other PSS hashes, MGF1 hashes and salt lengths, key sizes and curves outside the
claim, short HMAC keys, GCM IV lengths, CTR counter widths).

A clean refusal, with the code PKCS#11 v2.40 base §5.1.6 names for a value the token does
not support (CKR_MECHANISM_PARAM_INVALID for a mechanism parameter,
CKR_ATTRIBUTE_VALUE_INVALID for a template value, CKR_CURVE_NOT_SUPPORTED or
CKR_DOMAIN_PARAMS_INVALID for a curve, CKR_KEY_SIZE_RANGE for a key an operation cannot
use), means "not supported" and passes; another refusal code is judged by
conformance.returncodes (a permitted but less precise code is a `should` finding). A call
that succeeds must give the result an independent implementation (cryptography, hashlib,
hmac) computes, or the case fails. Where a variant is in fact claimed (the fixed lists
below do not know the vendor), a refusal fails: the claim says it works.

The encrypt and sign areas already try OAEP hashes and labels, GCM tag lengths and PSS salts
that cannot fit a claimed modulus; this area does not repeat them.
"""

import ctypes
import hmac

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.exceptions import AttributeSensitive, PKCS11Error

from conformance import keypolicy
from conformance.crosscheck import (
    DIGEST_INFO,
    EC_CURVES,
    HASH_MECHANISMS,
    HASHES,
    MGF1,
    as_cryptography,
    big,
    ec_params,
    hash_len,
)
from conformance.names import mechanism
from conformance.returncodes import judge
from conformance.suite import ENCRYPT, SIGN, expect_refusal, returned

MESSAGE = bytes(i * 7 % 251 for i in range(1000))
AAD = bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
PLAINTEXT = bytes((i * 31 + 7) % 251 for i in range(100))  # 7 AES blocks, the last partial
SIGNS = MechanismFlag.SIGN | MechanismFlag.VERIFY

# The RSA-PSS family and the hash each hash-and-sign mechanism applies (None: the raw
# mechanism, which signs a hash value with the hashAlg of its parameter).
PSS = {
    "CKM_RSA_PKCS_PSS": None,
    "CKM_SHA1_RSA_PKCS_PSS": "sha1", "CKM_SHA224_RSA_PKCS_PSS": "sha224",
    "CKM_SHA256_RSA_PKCS_PSS": "sha256", "CKM_SHA384_RSA_PKCS_PSS": "sha384",
    "CKM_SHA512_RSA_PKCS_PSS": "sha512", "CKM_SHA3_224_RSA_PKCS_PSS": "sha3-224",
    "CKM_SHA3_256_RSA_PKCS_PSS": "sha3-256", "CKM_SHA3_384_RSA_PKCS_PSS": "sha3-384",
    "CKM_SHA3_512_RSA_PKCS_PSS": "sha3-512",
}
HMAC = {
    "CKM_MD5_HMAC": "md5", "CKM_SHA_1_HMAC": "sha1", "CKM_SHA224_HMAC": "sha224",
    "CKM_SHA256_HMAC": "sha256", "CKM_SHA384_HMAC": "sha384", "CKM_SHA512_HMAC": "sha512",
    "CKM_SHA3_224_HMAC": "sha3_224", "CKM_SHA3_256_HMAC": "sha3_256",
    "CKM_SHA3_384_HMAC": "sha3_384", "CKM_SHA3_512_HMAC": "sha3_512",
}
# DER DigestInfo prefix for SHA-256 (RFC 8017 §9.2, note 1), for CKM_RSA_PKCS.

# Fixed lists of variants; what the vendor claims among them must simply work.
RSA_MODULUS_BITS = [1536, 2560]
# CKA_VALUE_LEN in bytes: no AES key has these lengths (FIPS 197: 128, 192, 256 bits).
AES_IMPOSSIBLE_BYTES = [8, 12, 64]
GENERIC_SECRET_BITS = [64, 192, 384, 2048]
# Key lengths shorter than the hash output, as functions of the output length in bytes.
SHORT_HMAC_KEYS = {
    "1-byte": lambda h_len: 1,
    "half-hash-length": lambda h_len: h_len // 2,
    "hash-length-minus-1": lambda h_len: h_len - 1,
}
PSS_SALTS = ["hash-length", "maximum", "zero"]
GCM_IV_BYTES = [1, 8, 16, 64]  # 12 bytes is the ordinary case (encrypt area)
CTR_COUNTER_BITS = [8, 32, 64, 96]  # 128 bits is the ordinary case (encrypt area)
CTR_COUNTER_NONCE = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")

# No function markers here: a variant says nothing about whether a profile's required
# function works, and a refusal passes.
RSA_KEYS = pytest.mark.mechanism("CKM_RSA_PKCS_KEY_PAIR_GEN")
AES_KEYS = pytest.mark.mechanism("CKM_AES_KEY_GEN")


def ids(prefix, suffix=""):
    return lambda value: f"{prefix}{value}{suffix}"


# --- claims -------------------------------------------------------------------------------


def claimed(target, name, **values):
    """True when the vendor claims mechanism `name` with every one of these parameter
    values (key_sizes=2048, salt_lengths=32, ...)."""
    variants = target.vendor.claims.get(name)
    return variants is not None and all(v in variants.get(k, ()) for k, v in values.items())


def chosen(target, name, key, preferred):
    """The value of parameter `key` the variants of `name` are tried with: `preferred`
    when it is claimed or nothing is listed, otherwise the smallest claimed value."""
    values = sorted(target.vendor.claims.get(name, {}).get(key, ()))
    return preferred if not values or preferred in values else values[0]


def attempt(what, claimed_variant, refusal, call, *args, **kwargs):
    """The result of a python-pkcs11 call, or None when the module refused it with the
    code the spec names (not supported: the case passes). `refusal` is (condition,
    function) for conformance.returncodes.judge; a claimed variant must succeed."""
    try:
        return call(*args, **kwargs)
    except PKCS11Error as exc:
        if claimed_variant:
            pytest.fail(f"{what} is claimed, so it must succeed: returned {returned(exc)}")
        condition, function = refusal
        judge(function, condition, returned(exc), what)
        return None


# The refusals of an unsupported variant (see the module docstring).
PARAMETER = ("mechanism-param-invalid", "C_SignInit")
ENCRYPT_PARAMETER = ("mechanism-param-invalid", "C_EncryptInit")
DECRYPT_PARAMETER = ("mechanism-param-invalid", "C_DecryptInit")
KEY_PAIR_TEMPLATE = ("attribute-value-invalid", "C_GenerateKeyPair")
KEY_TEMPLATE = ("attribute-value-invalid", "C_GenerateKey")
OBJECT_TEMPLATE = ("attribute-value-invalid", "C_CreateObject")
CURVE = ("curve-not-supported", "C_GenerateKeyPair")
KEY_SIZE = ("key-size-range", "C_SignInit")


def destroy(*objects):
    for made in objects:
        made.destroy()


# --- RSA-PSS ------------------------------------------------------------------------------


class CK_RSA_PKCS_PSS_PARAMS(ctypes.Structure):
    """PKCS#11 v2.40 curr, PKCS #1 RSA PSS mechanism parameters."""

    _fields_ = [("hashAlg", ctypes.c_ulong), ("mgf", ctypes.c_ulong), ("sLen", ctypes.c_ulong)]


def pss_param(hash_name, mgf_hash, salt):
    """CK_RSA_PKCS_PSS_PARAMS in native layout (python-pkcs11 passes bytes unchanged, and
    builds the structure itself only for SHA-1 and SHA-2 mechanisms)."""
    return bytes(CK_RSA_PKCS_PSS_PARAMS(HASH_MECHANISMS[hash_name], MGF1[mgf_hash], salt))


def digest(hash_name, data):
    context = hashes.Hash(HASHES[hash_name]())
    context.update(data)
    return context.finalize()


def pss_hash(target, mechanism_name):
    """The hashAlg a PSS mechanism is tried with: its own hash, or for CKM_RSA_PKCS_PSS a
    claimed one (SHA-256 when claimed)."""
    return PSS[mechanism_name] or chosen(target, mechanism_name, "hashes", "sha256")


def pss_max_salt(key_bits, hash_name):
    """RFC 8017 §9.1.1: sLen <= emLen - hLen - 2, emLen = ceil((modBits - 1) / 8)."""
    return (key_bits + 6) // 8 - hash_len(hash_name) - 2


def pss_claimed(target, mechanism_name, key_bits, hash_name, mgf_hash, salt):
    """Claims have no MGF axis: only MGF1 over hashAlg itself can be claimed."""
    values = {"key_sizes": key_bits, "salt_lengths": salt}
    if PSS[mechanism_name] is None:
        values["hashes"] = hash_name
    return mgf_hash == hash_name and claimed(target, mechanism_name, **values)


def sign_pss(target, keys, own_session, mechanism_name, hash_name, mgf_hash, salt):
    """C_Sign with these PSS parameters, on the test's own session: refused, or verified by
    cryptography with exactly this hash, MGF1 hash and salt length."""
    key_bits = chosen(target, mechanism_name, "key_sizes", 2048)
    public, private = keys.rsa(key_bits)
    private = keys.on(own_session, private)
    raw = PSS[mechanism_name] is None
    data = digest(hash_name, MESSAGE) if raw else MESSAGE
    what = (f"C_Sign({mechanism_name}, hashAlg {hash_name}, MGF1-{mgf_hash}, sLen {salt}) "
            f"with a {key_bits}-bit key")
    signature = attempt(what, pss_claimed(target, mechanism_name, key_bits, hash_name,
                                          mgf_hash, salt), PARAMETER,
                        private.sign, data, mechanism=mechanism(mechanism_name),
                        mechanism_param=pss_param(hash_name, mgf_hash, salt))
    if signature is None:
        return  # a clean refusal: not supported
    algorithm = HASHES[hash_name]()
    try:
        as_cryptography(public).verify(
            signature, data, padding.PSS(padding.MGF1(HASHES[mgf_hash]()), salt),
            utils.Prehashed(algorithm) if raw else algorithm)
    except (InvalidSignature, ValueError) as exc:
        pytest.fail(f"{what} succeeded, so the signature must verify with cryptography with "
                    f"exactly that hash, MGF1 hash and salt length: {type(exc).__name__}")


@pytest.mark.parametrize("digest_name", sorted(HASHES))
@RSA_KEYS
@pytest.mark.mechanism("CKM_RSA_PKCS_PSS")
def test_sign_rsa_pss_any_hash_is_refused_or_right(target, keys, own_session, digest_name):
    """PKCS#11 v2.40 curr, PKCS #1 RSA PSS (refuse or be right): CKM_RSA_PKCS_PSS with any
    hashAlg (MGF1 over the same hash, sLen = hLen) either is refused with
    CKR_MECHANISM_PARAM_INVALID (base §5.1.6) or gives an RSASSA-PSS signature of the hash
    value that cryptography verifies."""
    sign_pss(target, keys, own_session, "CKM_RSA_PKCS_PSS", digest_name, digest_name,
             hash_len(digest_name))


@pytest.mark.parametrize("mgf_hash", sorted(HASHES), ids=ids("mgf1-"))
@RSA_KEYS
@pytest.mark.mechanisms(*PSS)
def test_sign_rsa_pss_any_mgf1_hash_is_refused_or_right(target, keys, own_session,
                                                         mechanism_name, mgf_hash):
    """PKCS#11 v2.40 curr, PKCS #1 RSA PSS (refuse or be right): CK_RSA_PKCS_PSS_PARAMS
    names the MGF1 hash apart from hashAlg, and RFC 8017 allows them to differ; with any
    MGF1 hash the module either refuses (CKR_MECHANISM_PARAM_INVALID, base §5.1.6) or signs
    so that cryptography verifies with exactly that MGF1 hash (sLen = hLen)."""
    hash_name = pss_hash(target, mechanism_name)
    sign_pss(target, keys, own_session, mechanism_name, hash_name, mgf_hash,
             hash_len(hash_name))


@pytest.mark.parametrize("salt", PSS_SALTS)
@RSA_KEYS
@pytest.mark.mechanisms(*PSS)
def test_sign_rsa_pss_salt_length_is_refused_or_right(target, keys, own_session,
                                                      mechanism_name, salt):
    """PKCS#11 v2.40 curr, PKCS #1 RSA PSS (refuse or be right): RFC 8017 §9.1.1 allows any
    salt length from 0 to emLen - hLen - 2; with no salt, a salt of the hash length or the
    largest salt that fits, the module either refuses (CKR_MECHANISM_PARAM_INVALID, base
    §5.1.6) or signs so that cryptography verifies with exactly that salt length."""
    hash_name = pss_hash(target, mechanism_name)
    key_bits = chosen(target, mechanism_name, "key_sizes", 2048)
    length = {"zero": 0, "hash-length": hash_len(hash_name),
              "maximum": pss_max_salt(key_bits, hash_name)}[salt]
    sign_pss(target, keys, own_session, mechanism_name, hash_name, hash_name, length)


@RSA_KEYS
@pytest.mark.mechanisms(*PSS)
def test_sign_rsa_pss_salt_beyond_maximum_is_refused(target, keys, own_session,
                                                     mechanism_name):
    """PKCS#11 v2.40 curr, PKCS #1 RSA PSS, with RFC 8017 §9.1.1 step 3: a salt one byte
    longer than emLen - hLen - 2 cannot be encoded ("encoding error"), so no correct
    signature exists: C_SignInit or C_Sign returns CKR_MECHANISM_PARAM_INVALID or
    CKR_KEY_SIZE_RANGE (base §5.1.6: a parameter that cannot be used, a key too small for
    it)."""
    hash_name = pss_hash(target, mechanism_name)
    key_bits = chosen(target, mechanism_name, "key_sizes", 2048)
    salt = pss_max_salt(key_bits, hash_name) + 1
    private = keys.on(own_session, keys.rsa(key_bits)[1])
    data = digest(hash_name, MESSAGE) if PSS[mechanism_name] is None else MESSAGE
    expect_refusal("pss-salt-too-long-for-key", SIGN, private.sign, data,
                   what=f"C_Sign({mechanism_name}, hashAlg {hash_name}, sLen {salt}) with a "
                   f"{key_bits}-bit key (the largest salt that fits is {salt - 1} bytes)",
                   mechanism=mechanism(mechanism_name),
                   mechanism_param=pss_param(hash_name, hash_name, salt))


# --- key sizes and curves outside the claim ----------------------------------------------


@pytest.mark.parametrize("modulus_bits", RSA_MODULUS_BITS, ids=ids("", "-bits"))
@pytest.mark.mechanism("CKM_RSA_PKCS")
@pytest.mark.mechanism("CKM_RSA_PKCS_KEY_PAIR_GEN")
def test_generate_key_pair_rsa_unclaimed_size_is_refused_or_right(target, session,
                                                                  modulus_bits):
    """PKCS#11 v2.40 curr, PKCS #1 RSA key pair generation (refuse or be right): with a
    CKA_MODULUS_BITS outside the claim the module either refuses (CKR_ATTRIBUTE_VALUE_INVALID,
    base §5.1.6; C_Sign with the pair: CKR_KEY_SIZE_RANGE) or makes a pair whose modulus has
    exactly that many bits and whose CKM_RSA_PKCS signature cryptography verifies."""
    claim = claimed(target, "CKM_RSA_PKCS_KEY_PAIR_GEN", key_sizes=modulus_bits)
    what = f"C_GenerateKeyPair(CKM_RSA_PKCS_KEY_PAIR_GEN, CKA_MODULUS_BITS {modulus_bits})"
    pair = attempt(what, claim, KEY_PAIR_TEMPLATE, session.generate_keypair, KeyType.RSA,
                   modulus_bits, store=keypolicy.on_token(),
                   capabilities=keypolicy.usages(SIGNS),
                   public_template={Attribute.PUBLIC_EXPONENT: big(65537)})
    if pair is None:
        return  # a clean refusal: not supported
    public, private = pair
    try:
        got = int.from_bytes(public[Attribute.MODULUS], "big").bit_length()
        assert got == modulus_bits, (
            f"{what} succeeded, so CKA_MODULUS must have {modulus_bits} bits: it has {got}")
        data = bytes.fromhex(DIGEST_INFO["sha256"]) + digest("sha256", MESSAGE)
        signature = attempt(f"C_Sign(CKM_RSA_PKCS) with the {modulus_bits}-bit key", claim,
                            KEY_SIZE, private.sign, data, mechanism=Mechanism.RSA_PKCS)
        if signature is None:
            return
        try:
            as_cryptography(public).verify(signature, digest("sha256", MESSAGE),
                                           padding.PKCS1v15(),
                                           utils.Prehashed(hashes.SHA256()))
        except InvalidSignature:
            pytest.fail(f"C_Sign(CKM_RSA_PKCS) with the key pair from {what} must verify "
                        f"with cryptography: InvalidSignature")
    finally:
        destroy(public, private)


@pytest.mark.parametrize("value_len", AES_IMPOSSIBLE_BYTES, ids=lambda n: f"{8 * n}-bits")
@pytest.mark.mechanism("CKM_AES_KEY_GEN")
def test_generate_key_aes_impossible_length_is_refused(session, value_len):
    """PKCS#11 v2.40 curr, AES key generation, with FIPS 197: AES keys are 128, 192 or 256
    bits long, so CKM_AES_KEY_GEN with a CKA_VALUE_LEN of 8, 12 or 64 bytes cannot make an
    AES key: an invalid value for an attribute of the template, CKR_ATTRIBUTE_VALUE_INVALID
    (base §5.1.6)."""
    what = f"C_GenerateKey(CKM_AES_KEY_GEN, CKA_VALUE_LEN {value_len})"
    try:
        key = session.generate_key(KeyType.AES, 8 * value_len, store=keypolicy.on_token(),
                                   capabilities=MechanismFlag.ENCRYPT)
    except PKCS11Error as exc:
        judge("C_GenerateKey", "attribute-value-invalid", returned(exc), what)
        return
    try:
        got = key[Attribute.VALUE_LEN]
    except PKCS11Error as exc:
        got = f"unreadable ({returned(exc)})"
    finally:
        key.destroy()
    judge("C_GenerateKey", "attribute-value-invalid", "CKR_OK",
          f"{what} (FIPS 197 AES keys are 16, 24 or 32 bytes; it made a key with "
          f"CKA_VALUE_LEN {got})")


@pytest.mark.parametrize("bits", GENERIC_SECRET_BITS, ids=ids("", "-bits"))
@pytest.mark.mechanism("CKM_GENERIC_SECRET_KEY_GEN")
def test_generate_key_generic_secret_unclaimed_length_is_refused_or_right(target, session,
                                                                          bits):
    """PKCS#11 v2.40 curr, Generic secret key generation (refuse or be right): with a
    CKA_VALUE_LEN outside the claim the module either refuses (CKR_ATTRIBUTE_VALUE_INVALID,
    base §5.1.6) or makes a key whose CKA_VALUE_LEN, and readable CKA_VALUE, have exactly
    the requested length."""
    length = bits // 8
    what = f"C_GenerateKey(CKM_GENERIC_SECRET_KEY_GEN, CKA_VALUE_LEN {length})"
    key = attempt(what, claimed(target, "CKM_GENERIC_SECRET_KEY_GEN", key_sizes=bits),
                  KEY_TEMPLATE, session.generate_key, KeyType.GENERIC_SECRET, bits,
                  store=keypolicy.on_token(), capabilities=SIGNS,
                  mechanism=Mechanism.GENERIC_SECRET_KEY_GEN,
                  template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True})
    if key is None:
        return  # a clean refusal: not supported
    try:
        got = key[Attribute.VALUE_LEN]
        assert got == length, (
            f"{what} succeeded, so CKA_VALUE_LEN must be {length}: got {got}")
        try:
            value = key[Attribute.VALUE]
        except AttributeSensitive:
            return  # the template asked for a readable value; that rule is not this test's
        assert len(value) == length, (
            f"{what} succeeded, so CKA_VALUE must be {length} bytes: got {len(value)}")
    finally:
        key.destroy()


@pytest.mark.parametrize("curve_name", sorted(EC_CURVES))
@pytest.mark.mechanism("CKM_EC_KEY_PAIR_GEN")
def test_generate_key_pair_ec_unclaimed_curve_is_refused_or_right(target, own_session,
                                                                  curve_name):
    """PKCS#11 v2.40 curr, Elliptic curve key pair generation (refuse or be right): on a
    named curve outside the claim the module either refuses (CKR_CURVE_NOT_SUPPORTED or
    CKR_DOMAIN_PARAMS_INVALID, base §5.1.6) or makes a pair whose public CKA_EC_PARAMS is
    the requested curve's OID and whose CKA_EC_POINT is a point on that curve (cryptography
    loads it)."""
    params = ec_params(curve_name)
    what = f"C_GenerateKeyPair(CKM_EC_KEY_PAIR_GEN, {curve_name})"

    def generate():
        domain = own_session.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: params}, local=True)
        return domain.generate_keypair(store=keypolicy.on_token(),
                                       capabilities=keypolicy.usages(SIGNS))

    pair = attempt(what, claimed(target, "CKM_EC_KEY_PAIR_GEN", curves=curve_name), CURVE,
                   generate)
    if pair is None:
        return  # a clean refusal: not supported
    public, private = pair
    try:
        got = public[Attribute.EC_PARAMS]
        assert got == params, (
            f"{what} succeeded, so CKA_EC_PARAMS must be the {curve_name} OID "
            f"{params.hex()}: got {got.hex()}")
        try:
            as_cryptography(public)
        except ValueError as exc:
            pytest.fail(f"{what} succeeded, so CKA_EC_POINT must be a DER OCTET STRING "
                        f"holding a point on {curve_name}: {exc}")
    finally:
        destroy(public, private)


# --- HMAC with keys shorter than the hash ------------------------------------------------


@pytest.mark.parametrize("short_key", sorted(SHORT_HMAC_KEYS))
@pytest.mark.mechanisms(*HMAC)
def test_sign_hmac_short_key_is_refused_or_right(target, session, mechanism_name, short_key):
    """PKCS#11 v2.40 curr, HMAC mechanisms, with RFC 2104 §3 (refuse or be right): keys
    shorter than the hash output are allowed by HMAC but may be refused by the module
    (C_CreateObject: CKR_ATTRIBUTE_VALUE_INVALID; C_SignInit: CKR_KEY_SIZE_RANGE; base
    §5.1.6); if C_Sign succeeds the MAC equals Python's hmac with that key."""
    algorithm = HMAC[mechanism_name]
    length = SHORT_HMAC_KEYS[short_key](hmac.new(b"", b"", algorithm).digest_size)
    value = bytes((i * 13 + 5) % 256 for i in range(length))
    claim = claimed(target, mechanism_name, key_sizes=8 * length)
    what = f"C_Sign({mechanism_name}) with a {length}-byte key"
    key = attempt(f"C_CreateObject of a {length}-byte generic secret for {what}", claim,
                  OBJECT_TEMPLATE, session.create_object, {
                      Attribute.CLASS: ObjectClass.SECRET_KEY,
                      Attribute.KEY_TYPE: KeyType.GENERIC_SECRET, Attribute.VALUE: value,
                      Attribute.TOKEN: False, Attribute.SIGN: True, Attribute.VERIFY: True})
    if key is None:
        return  # a clean refusal: not supported
    try:
        mac = attempt(what, claim, KEY_SIZE, key.sign, MESSAGE,
                      mechanism=mechanism(mechanism_name))
    finally:
        key.destroy()
    if mac is None:
        return  # a clean refusal: not supported
    expected = hmac.new(value, MESSAGE, algorithm).digest()
    assert mac == expected, (
        f"{what} succeeded, so it must equal Python's hmac: got {mac.hex()}, expected "
        f"{expected.hex()}")


# --- AES-GCM IV lengths -------------------------------------------------------------------


class CK_GCM_PARAMS(ctypes.Structure):
    """PKCS#11 v2.40 curr, AES-GCM mechanism parameters."""

    _fields_ = [("pIv", ctypes.c_void_p), ("ulIvLen", ctypes.c_ulong),
                ("ulIvBits", ctypes.c_ulong), ("pAAD", ctypes.c_void_p),
                ("ulAADLen", ctypes.c_ulong), ("ulTagBits", ctypes.c_ulong)]


class GcmParam:
    """CK_GCM_PARAMS in native layout as bytes (python-pkcs11's GCMParams takes IVs of at
    most 12 bytes); keep the object alive during the call, its buffers are pointed to."""

    def __init__(self, iv, aad, tag_bits):
        self._iv = ctypes.create_string_buffer(iv, max(len(iv), 1))
        self._aad = ctypes.create_string_buffer(aad, max(len(aad), 1))
        self.raw = bytes(CK_GCM_PARAMS(
            ctypes.addressof(self._iv), len(iv), 8 * len(iv), ctypes.addressof(self._aad),
            len(aad), tag_bits))


def _gf_mult(x, y):
    """Multiplication in GF(2^128) with GCM's bit order (SP 800-38D §6.3)."""
    z, v = 0, y
    for i in range(127, -1, -1):
        if (x >> i) & 1:
            z ^= v
        v = (v >> 1) ^ (0xE1 << 120) if v & 1 else v >> 1
    return z


def _ghash(h, data):
    y = 0
    for i in range(0, len(data), 16):
        y = _gf_mult(y ^ int.from_bytes(data[i:i + 16], "big"), h)
    return y


def _padded(data):
    return data + bytes(-len(data) % 16)


def _sp800_38d_encrypt(key, iv, data, aad):
    """GCM-AE_K(IV, P, A) of SP 800-38D §7.1 for any IV length, with a 128-bit tag."""
    aes = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    h = int.from_bytes(aes.update(bytes(16)), "big")
    j0 = _ghash(h, _padded(iv) + bytes(8) + (8 * len(iv)).to_bytes(8, "big"))
    out, counter = bytearray(), j0
    for i in range(0, len(data), 16):
        counter = (counter & ~0xFFFFFFFF) | ((counter + 1) & 0xFFFFFFFF)  # inc32
        stream = aes.update(counter.to_bytes(16, "big"))
        out += bytes(a ^ b for a, b in zip(data[i:i + 16], stream, strict=False))
    s = _ghash(h, _padded(aad) + _padded(bytes(out)) + (8 * len(aad)).to_bytes(8, "big")
               + (8 * len(out)).to_bytes(8, "big"))
    tag = int.from_bytes(aes.update(j0.to_bytes(16, "big")), "big") ^ s
    return bytes(out) + tag.to_bytes(16, "big")


def gcm_reference(key, iv, data, aad, tag_bits):
    """Ciphertext || tag truncated to tag_bits: cryptography's GCM for IVs of 8 bytes or
    more (its lower limit), SP 800-38D §7.1 computed here for shorter ones."""
    if len(iv) >= 8:
        encryptor = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
        encryptor.authenticate_additional_data(aad)
        sealed = encryptor.update(data) + encryptor.finalize() + encryptor.tag
    else:
        sealed = _sp800_38d_encrypt(key, iv, data, aad)
    return sealed[:len(data) + tag_bits // 8]


def iv_of(length):
    return bytes((i * 11 + 1) % 256 for i in range(length))


def gcm_setup(target, keys):
    """(key object, its value, tag bits) for the GCM variants: a claimed key size and tag
    length, so only the IV is outside the claim."""
    key = keys.secret(KeyType.AES, chosen(target, "CKM_AES_GCM", "key_sizes", 128))
    return key, key[Attribute.VALUE], chosen(target, "CKM_AES_GCM", "tag_bits", 128)


GCM_IVS = pytest.mark.parametrize("iv_len", GCM_IV_BYTES,
                                  ids=lambda n: f"iv-{n}-byte" + "s" * (n > 1))


@GCM_IVS
@AES_KEYS
@pytest.mark.mechanism("CKM_AES_GCM")
def test_encrypt_aes_gcm_iv_length_is_refused_or_right(target, keys, iv_len):
    """PKCS#11 v2.40 curr, AES-GCM (refuse or be right): CK_GCM_PARAMS takes IVs of other
    lengths than 12 bytes, which SP 800-38D §7.1 turns into J0 with GHASH; C_Encrypt with
    such an IV either is refused with CKR_MECHANISM_PARAM_INVALID (base §5.1.6, a parameter
    the token does not support) or equals that GCM ciphertext and tag."""
    key, value, tag_bits = gcm_setup(target, keys)
    iv = iv_of(iv_len)
    param = GcmParam(iv, AAD, tag_bits)
    what = f"C_Encrypt(CKM_AES_GCM, ulIvLen {iv_len}, ulTagBits {tag_bits})"
    got = attempt(what, False, ENCRYPT_PARAMETER, key.encrypt, PLAINTEXT,
                  mechanism=Mechanism.AES_GCM, mechanism_param=param.raw)
    if got is None:
        return  # a clean refusal: not supported
    expected = gcm_reference(value, iv, PLAINTEXT, AAD, tag_bits)
    assert got == expected, (
        f"{what} succeeded, so it must equal SP 800-38D GCM with that IV: got {got.hex()}, "
        f"expected {expected.hex()}")


@GCM_IVS
@AES_KEYS
@pytest.mark.mechanism("CKM_AES_GCM")
def test_decrypt_aes_gcm_iv_length_is_refused_or_right(target, keys, iv_len):
    """PKCS#11 v2.40 curr, AES-GCM (refuse or be right): C_Decrypt of the SP 800-38D
    ciphertext and tag made with an IV of other length than 12 bytes either is refused with
    CKR_MECHANISM_PARAM_INVALID (base §5.1.6) or returns the plaintext."""
    key, value, tag_bits = gcm_setup(target, keys)
    iv = iv_of(iv_len)
    param = GcmParam(iv, AAD, tag_bits)
    sealed = gcm_reference(value, iv, PLAINTEXT, AAD, tag_bits)
    what = f"C_Decrypt(CKM_AES_GCM, ulIvLen {iv_len}, ulTagBits {tag_bits})"
    got = attempt(what, False, DECRYPT_PARAMETER, key.decrypt, sealed,
                  mechanism=Mechanism.AES_GCM, mechanism_param=param.raw)
    if got is None:
        return  # a clean refusal: not supported
    assert got == PLAINTEXT, (
        f"{what} of the reference ciphertext succeeded, so it must return the plaintext: "
        f"got {got.hex()}")


@AES_KEYS
@pytest.mark.mechanism("CKM_AES_GCM")
def test_encrypt_aes_gcm_empty_iv_is_refused(target, keys):
    """PKCS#11 v2.40 curr, AES-GCM, with SP 800-38D §5.2.1.1: the IV is at least 1 bit long
    (CK_GCM_PARAMS ulIvLen at least 1), so GCM with an empty IV is undefined: an invalid
    mechanism parameter, CKR_MECHANISM_PARAM_INVALID (base §5.1.6)."""
    key, _, tag_bits = gcm_setup(target, keys)
    param = GcmParam(b"", AAD, tag_bits)
    expect_refusal("mechanism-param-invalid", ENCRYPT, key.encrypt, PLAINTEXT,
                   what=f"C_Encrypt(CKM_AES_GCM, ulIvLen 0, ulTagBits {tag_bits})",
                   mechanism=Mechanism.AES_GCM, mechanism_param=param.raw)


# --- AES-CTR counter widths ---------------------------------------------------------------


class CK_AES_CTR_PARAMS(ctypes.Structure):
    """PKCS#11 v2.40 curr, AES with Counter: {CK_ULONG ulCounterBits; CK_BYTE cb[16]}."""

    _fields_ = [("ulCounterBits", ctypes.c_ulong), ("cb", ctypes.c_ubyte * 16)]


def ctr_param(counter_bits, block):
    return bytes(CK_AES_CTR_PARAMS(counter_bits, (ctypes.c_ubyte * 16)(*block)))


def counter_block(counter_bits, start):
    """CTR_COUNTER_NONCE with its low `counter_bits` bits set to `start` (mod 2^bits)."""
    mask = (1 << counter_bits) - 1
    value = int.from_bytes(CTR_COUNTER_NONCE, "big") & ~mask | (start & mask)
    return value.to_bytes(16, "big")


def ctr_reference(key, block, data):
    """SP 800-38A CTR from counter block `block`, for data that does not overflow the
    counter bits (then incrementing only those bits is incrementing the whole block)."""
    encryptor = Cipher(algorithms.AES(key), modes.CTR(block)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


CTR_COUNTERS = pytest.mark.parametrize("counter_bits", CTR_COUNTER_BITS,
                                       ids=ids("counter-", "-bits"))


@CTR_COUNTERS
@AES_KEYS
@pytest.mark.mechanism("CKM_AES_CTR")
def test_encrypt_aes_ctr_counter_bits_is_refused_or_right(target, keys, counter_bits):
    """PKCS#11 v2.40 curr, AES with Counter (refuse or be right): ulCounterBits is the
    number of low bits of cb that are incremented (0 < ulCounterBits <= 128); with a
    counter narrower than the block that does not overflow within the data, C_Encrypt
    either is refused with CKR_MECHANISM_PARAM_INVALID (base §5.1.6) or equals SP 800-38A
    CTR, and C_Decrypt of that ciphertext either is refused so or returns the plaintext."""
    key = keys.secret(KeyType.AES, chosen(target, "CKM_AES_CTR", "key_sizes", 128))
    block = counter_block(counter_bits, 1)
    param = ctr_param(counter_bits, block)
    expected = ctr_reference(key[Attribute.VALUE], block, PLAINTEXT)
    what = f"C_Encrypt(CKM_AES_CTR, ulCounterBits {counter_bits}, cb {block.hex()})"
    got = attempt(what, False, ENCRYPT_PARAMETER, key.encrypt, PLAINTEXT,
                  mechanism=Mechanism.AES_CTR, mechanism_param=param)
    if got is not None:
        assert got == expected, (
            f"{what} of {len(PLAINTEXT)} bytes succeeded, so it must equal SP 800-38A CTR: "
            f"got {got.hex()}, expected {expected.hex()}")
    what = what.replace("C_Encrypt", "C_Decrypt")
    plain = attempt(what, False, DECRYPT_PARAMETER, key.decrypt, expected,
                    mechanism=Mechanism.AES_CTR, mechanism_param=param)
    if plain is not None:
        assert plain == PLAINTEXT, (
            f"{what} of the reference ciphertext succeeded, so it must return the plaintext: "
            f"got {plain.hex()}")


@pytest.mark.parametrize("operation", ["C_Encrypt", "C_Decrypt"])
@CTR_COUNTERS
@AES_KEYS
@pytest.mark.mechanism("CKM_AES_CTR")
def test_encrypt_aes_ctr_counter_overflow_is_refused(target, keys, counter_bits, operation):
    """PKCS#11 v2.40 curr, AES with Counter: an encryption or decryption that would
    overflow the counter bits "shall return CKR_DATA_LEN_RANGE" (only the final post
    increment may overflow; for C_Decrypt, whose return values do not list it,
    CKR_ENCRYPTED_DATA_LEN_RANGE is right too); here the counter starts three blocks before
    its end and the input has seven. A token that does not support this ulCounterBits
    refuses it at C_EncryptInit/C_DecryptInit with CKR_MECHANISM_PARAM_INVALID (base §5.1.6)
    instead."""
    key = keys.secret(KeyType.AES, chosen(target, "CKM_AES_CTR", "key_sizes", 128))
    block = counter_block(counter_bits, -3)
    call, condition = ((key.encrypt, "ctr-counter-overflow") if operation == "C_Encrypt"
                       else (key.decrypt, "ctr-counter-overflow-decrypt"))
    expect_refusal(condition, operation, call, PLAINTEXT,
                   what=f"{operation}(CKM_AES_CTR, ulCounterBits {counter_bits}, cb "
                   f"{block.hex()}) of {len(PLAINTEXT)} bytes",
                   mechanism=Mechanism.AES_CTR, mechanism_param=ctr_param(counter_bits, block))


@pytest.mark.parametrize("counter_bits", [0, 129], ids=ids("counter-", "-bits"))
@AES_KEYS
@pytest.mark.mechanism("CKM_AES_CTR")
def test_encrypt_aes_ctr_counter_bits_out_of_range_is_refused(target, keys, counter_bits):
    """PKCS#11 v2.40 curr, AES with Counter: ulCounterBits must satisfy 0 < ulCounterBits
    <= 128; "for any values outside this range the mechanism shall return
    CKR_MECHANISM_PARAM_INVALID"."""
    key = keys.secret(KeyType.AES, chosen(target, "CKM_AES_CTR", "key_sizes", 128))
    block = counter_block(64, 1)
    expect_refusal("mechanism-param-invalid", ENCRYPT, key.encrypt, PLAINTEXT,
                   what=f"C_Encrypt(CKM_AES_CTR, ulCounterBits {counter_bits}, outside 1..128)",
                   mechanism=Mechanism.AES_CTR, mechanism_param=ctr_param(counter_bits, block))
