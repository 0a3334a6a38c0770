"""ECDSA (raw and hash-and-sign) and EdDSA signatures, cross-checked with cryptography in
both directions: the module signs and cryptography verifies; cryptography signs with its
own key and the module verifies with the public key imported into it.
"""

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, utils
from pkcs11 import Attribute, KeyType, MechanismFlag

from conformance import keypolicy
from conformance.crosscheck import EC_CURVES, HASHES, as_cryptography, ec_params, field_bytes
from conformance.crosscheck import import_public as import_public_key
from conformance.suites.sign.signing import (
    MESSAGE,
    assert_aes_key_refused,
    assert_all_rejected,
    assert_sign_not_permitted,
    calls,
    message,
    module_verifies,
    sign,
)

ECDSA_HASH = {
    "CKM_ECDSA_SHA1": "sha1", "CKM_ECDSA_SHA224": "sha224", "CKM_ECDSA_SHA256": "sha256",
    "CKM_ECDSA_SHA384": "sha384", "CKM_ECDSA_SHA512": "sha512",
}
EDWARDS = {"ed25519": ed25519.Ed25519PrivateKey, "ed448": ed448.Ed448PrivateKey}
EDWARDS_SIGNATURE_BYTES = {"ed25519": 64, "ed448": 114}

EC_KEYS = pytest.mark.mechanism("CKM_EC_KEY_PAIR_GEN")
EDWARDS_KEYS = pytest.mark.mechanism("CKM_EC_EDWARDS_KEY_PAIR_GEN")
PARTS = pytest.mark.parametrize("parts", ["multi-part", "single-part"])
# CKM_ECDSA signs a hash value of any length (v2.40 curr, ECDSA: "the entire raw digest",
# truncated internally): hashes shorter and longer than the curve order.
DIGEST_HASH = pytest.mark.parametrize("digest_hash", ["sha1", "sha256", "sha384", "sha512"])


def digest(hash_name, data):
    context = hashes.Hash(HASHES[hash_name]())
    context.update(data)
    return context.finalize()


def split(signature, curve, what):
    """(r, s) from the r || s signature PKCS #11 defines; fails unless it is 2 nLen long
    (for these curves the order and the field have the same length)."""
    half = field_bytes(curve)
    assert len(signature) == 2 * half, (
        f"{what} must return r || s of exactly 2 x {half} bytes (not DER): got "
        f"{len(signature)} bytes starting {signature[:4].hex()}")
    return int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")


def r_s(der_signature, curve):
    """cryptography's DER ECDSA signature as PKCS #11's r || s."""
    r, s = utils.decode_dss_signature(der_signature)
    half = field_bytes(curve)
    return r.to_bytes(half, "big") + s.to_bytes(half, "big")


def ecdsa_verifies(public, signature, data, algorithm, curve, what):
    r, s = split(signature, curve, what)
    try:
        as_cryptography(public).verify(utils.encode_dss_signature(r, s), data,
                                       ec.ECDSA(algorithm))
    except InvalidSignature:
        pytest.fail(f"{what} must verify with cryptography: InvalidSignature")


def eddsa_param(curve):
    """No parameter selects pure Ed25519; Ed448 takes CK_EDDSA_PARAMS with phFlag false and
    no context (v3.0 curr, EdDSA: the parameter is required for Ed448)."""
    return None if curve == "ed25519" else (False, None)


class Peer:
    """cryptography's own keys, one per curve, with the public half imported into the module
    as a session object, for the mirror direction."""

    def __init__(self, target, session):
        self.session = session
        self._keys = target.cache()

    def _pair(self, curve, make):
        if curve not in self._keys:
            private = make()
            self._keys[curve] = (private, import_public_key(
                self.session, private.public_key(), MechanismFlag.VERIFY))
        return self._keys[curve]

    def ec(self, curve):
        return self._pair(curve, lambda: ec.generate_private_key(EC_CURVES[curve]()))

    def edwards(self, curve):
        return self._pair(curve, EDWARDS[curve].generate)


@pytest.fixture(scope="module")
def peer(target, session):
    return Peer(target, session)


# --- ECDSA ------------------------------------------------------------------------------


@DIGEST_HASH
@EC_KEYS
@pytest.mark.mechanism("CKM_ECDSA")
def test_sign_ecdsa_digest_verifies_with_cryptography(keys, curve, digest_hash):
    """PKCS#11 v2.40 curr, ECDSA: CKM_ECDSA signs the given hash value; the signature is
    r || s, each of nLen bytes (2 nLen in all for a signature the token makes, not DER),
    and cryptography verifies it as ECDSA over that hash value."""
    public, private = keys.ec(curve)
    data = digest(digest_hash, MESSAGE)
    signature = sign(private, data, "CKM_ECDSA")
    ecdsa_verifies(public, signature, data, utils.Prehashed(HASHES[digest_hash]()), curve,
                   f"C_Sign(CKM_ECDSA) of a {digest_hash} hash on {curve}")


@DIGEST_HASH
@EC_KEYS
@pytest.mark.mechanism("CKM_ECDSA")
@pytest.mark.function("C_CreateObject")
def test_verify_ecdsa_digest_accepts_cryptography_signature(peer, curve, digest_hash):
    """PKCS#11 v2.40 curr, ECDSA: C_Verify with CKM_ECDSA accepts cryptography's ECDSA
    signature of a hash value, given as r || s of nLen bytes each."""
    private, public = peer.ec(curve)
    data = digest(digest_hash, MESSAGE)
    signature = r_s(private.sign(data, ec.ECDSA(utils.Prehashed(HASHES[digest_hash]()))),
                    curve)
    assert module_verifies(public, data, signature, "CKM_ECDSA"), (
        f"C_Verify(CKM_ECDSA) must accept cryptography's {curve} signature of a {digest_hash} "
        "hash: returned CKR_SIGNATURE_INVALID")


@EC_KEYS
@pytest.mark.mechanism("CKM_ECDSA")
def test_verify_ecdsa_digest_rejects_altered_signature(keys, curve):
    """PKCS#11 v2.40 base §5.12.2 C_Verify: an ECDSA signature with a flipped bit, over a changed
    hash value, or one byte too long or too short, is rejected: CKR_SIGNATURE_INVALID for a
    wrong signature, CKR_SIGNATURE_LEN_RANGE for one invalid by its length alone."""
    public, private = keys.ec(curve)
    data = digest("sha256", MESSAGE)
    assert_all_rejected(public, data, sign(private, data, "CKM_ECDSA"), "CKM_ECDSA")


@PARTS
@pytest.mark.mechanisms(*ECDSA_HASH)
def test_sign_ecdsa_hash_verifies_with_cryptography(keys, mechanism_name, curve, parts):
    """PKCS#11 v3.0 curr, ECDSA with hashing: the signature over the message, single-part
    or in parts, is r || s of 2 nLen bytes, ECDSA with the mechanism's hash, which
    cryptography verifies."""
    public, private = keys.ec(curve)
    what = f"{calls('Sign', parts)}({mechanism_name}) on {curve}"
    signature = sign(private, message(parts), mechanism_name, what=calls("Sign", parts))
    ecdsa_verifies(public, signature, MESSAGE, HASHES[ECDSA_HASH[mechanism_name]](), curve,
                   what)


@PARTS
@pytest.mark.mechanisms(*ECDSA_HASH)
@pytest.mark.function("C_CreateObject")
def test_verify_ecdsa_hash_accepts_cryptography_signature(peer, mechanism_name, curve,
                                                          parts):
    """PKCS#11 v3.0 curr, ECDSA with hashing: C_Verify, or C_VerifyUpdate + C_VerifyFinal,
    accepts cryptography's ECDSA signature with the mechanism's hash, as r || s."""
    private, public = peer.ec(curve)
    signature = r_s(private.sign(MESSAGE, ec.ECDSA(HASHES[ECDSA_HASH[mechanism_name]]())),
                    curve)
    what = calls("Verify", parts)
    assert module_verifies(public, message(parts), signature, mechanism_name, what=what), (
        f"{what}({mechanism_name}) must accept cryptography's {curve} signature: returned "
        "CKR_SIGNATURE_INVALID")


@pytest.mark.mechanisms(*ECDSA_HASH)
def test_verify_ecdsa_hash_rejects_altered_signature(keys, mechanism_name, curve):
    """PKCS#11 v2.40 base §5.12.2 C_Verify: an ECDSA signature with a flipped bit, over a changed
    message, or one byte too long or too short, is rejected: CKR_SIGNATURE_INVALID for a wrong
    signature, CKR_SIGNATURE_LEN_RANGE for one invalid by its length alone."""
    public, private = keys.ec(curve)
    assert_all_rejected(public, MESSAGE, sign(private, MESSAGE, mechanism_name),
                        mechanism_name)


# --- EdDSA ------------------------------------------------------------------------------


@EDWARDS_KEYS
@pytest.mark.mechanism("CKM_EDDSA")
def test_sign_eddsa_verifies_with_cryptography(keys, curve):
    """PKCS#11 v3.0 curr, EdDSA: CKM_EDDSA without pre-hashing or context is pure Ed25519
    or Ed448 (RFC 8032): a 64- or 114-byte signature that cryptography verifies."""
    public, private = keys.edwards(curve)
    signature = sign(private, MESSAGE, "CKM_EDDSA", eddsa_param(curve))
    what = f"C_Sign(CKM_EDDSA) on {curve}"
    expected = EDWARDS_SIGNATURE_BYTES[curve]
    assert len(signature) == expected, (
        f"{what} must return a {expected}-byte signature: got {len(signature)} bytes")
    try:
        as_cryptography(public).verify(signature, MESSAGE)
    except InvalidSignature:
        pytest.fail(f"{what} must verify with cryptography: InvalidSignature")


@EDWARDS_KEYS
@pytest.mark.mechanism("CKM_EDDSA")
@pytest.mark.function("C_CreateObject")
def test_verify_eddsa_accepts_cryptography_signature(peer, curve):
    """PKCS#11 v3.0 curr, EdDSA: C_Verify with CKM_EDDSA (pure, no context) accepts
    cryptography's Ed25519 or Ed448 signature."""
    private, public = peer.edwards(curve)
    assert module_verifies(public, MESSAGE, private.sign(MESSAGE), "CKM_EDDSA",
                           eddsa_param(curve)), (
        f"C_Verify(CKM_EDDSA) must accept cryptography's {curve} signature: returned "
        "CKR_SIGNATURE_INVALID")


@EDWARDS_KEYS
@pytest.mark.mechanism("CKM_EDDSA")
def test_verify_eddsa_rejects_altered_signature(keys, curve):
    """PKCS#11 v2.40 base §5.12.2 C_Verify: an EdDSA signature with a flipped bit, over a changed
    message, or one byte too long or too short, is rejected: CKR_SIGNATURE_INVALID for a wrong
    signature, CKR_SIGNATURE_LEN_RANGE for one invalid by its length alone."""
    public, private = keys.edwards(curve)
    param = eddsa_param(curve)
    assert_all_rejected(public, MESSAGE, sign(private, MESSAGE, "CKM_EDDSA", param),
                        "CKM_EDDSA", param)


# --- keys that must not sign with these mechanisms ----------------------------------------


@pytest.mark.mechanisms("CKM_ECDSA", "CKM_EDDSA", *ECDSA_HASH)
@pytest.mark.function("C_CreateObject")  # the AES key is imported
def test_sign_init_ec_mechanism_with_aes_key_is_refused(own_session, mechanism_name):
    """PKCS#11 v2.40 base §5.11.1 C_SignInit: an ECDSA or EdDSA mechanism with an AES key
    (CKA_SIGN true) is refused with CKR_KEY_TYPE_INCONSISTENT."""
    assert_aes_key_refused(own_session, mechanism_name)


@EC_KEYS
@pytest.mark.mechanism("CKM_ECDSA")
def test_sign_init_with_key_not_allowed_to_sign_is_refused(own_session, curve):
    """PKCS#11 v2.40 base §5.11.1 C_SignInit: the CKA_SIGN attribute of the signature key
    must be CK_TRUE; with an EC private key generated with CKA_SIGN false, C_SignInit
    returns CKR_KEY_FUNCTION_NOT_PERMITTED."""
    keypolicy.needs_restricted_usages("an EC private key with CKA_SIGN false")
    parameters = own_session.create_domain_parameters(
        KeyType.EC, {Attribute.EC_PARAMS: ec_params(curve)}, local=True)
    public, private = parameters.generate_keypair(
        store=keypolicy.on_token(), capabilities=MechanismFlag.VERIFY,
        private_template={Attribute.SIGN: False})
    assert_sign_not_permitted(private, "CKM_ECDSA", "generated", public)
