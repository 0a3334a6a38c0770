"""AES key wrapping (CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_PAD, CKM_AES_KEY_WRAP_KWP),
cross-checked with cryptography in both directions.

The wrapping keys and the secret keys to wrap have known values, imported with
C_CreateObject, so the module's wrapped key must equal cryptography's byte for byte (key
wrapping is deterministic) and the module must unwrap cryptography's wrapping.

CKM_AES_KEY_WRAP_PAD is checked against its PKCS#11 definition: PKCS #7 padding of the key
to a multiple of the 8-byte semiblock, then RFC 3394 (v2.40 "the usual padding", named
PKCS #7 in v3.0, which calls RFC 5649 CKM_AES_KEY_WRAP_KWP). A module that produces
RFC 5649 instead fails, and the message names the construction it did use.
"""

from functools import cache

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import Attribute, KeyType, MechanismFlag, ObjectClass
from pkcs11.exceptions import PKCS11Error

from conformance import keypolicy
from conformance.crosscheck import as_cryptography, ec_params, rsa_private
from conformance.suite import returned

from .support import (
    AES_KEY_LENGTHS,
    ANY_KEY_LENGTHS,
    DEFINITION,
    PADDED_WRAPS,
    brief,
    describe_unwrapped,
    describe_wrapped_der,
    identify,
    kek_value,
    key_value,
    length_id,
    must_unwrap,
    must_wrap,
    other_format_hint,
    reference_unwrap,
    reference_wrap,
    secret_key_type,
    unwrap,
)

KW = pytest.mark.mechanism("CKM_AES_KEY_WRAP")
PADDED = pytest.mark.mechanisms(*PADDED_WRAPS)
IMPORTS = pytest.mark.function("C_CreateObject")
WRAPS = pytest.mark.function("C_WrapKey")
UNWRAPS = pytest.mark.function("C_UnwrapKey")
AES_LENGTHS = pytest.mark.parametrize("length", AES_KEY_LENGTHS, ids=length_id)
ANY_LENGTHS = pytest.mark.parametrize("length", ANY_KEY_LENGTHS, ids=length_id)
# Private keys to wrap: one size every module supports.
RSA_BITS = 2048
CURVE = "secp256r1"


def check_value(key, expected, what):
    """The unwrapped key (made with CKA_SENSITIVE false, CKA_EXTRACTABLE true) holds
    exactly `expected`."""
    try:
        value = key[Attribute.VALUE]
    except PKCS11Error as exc:
        pytest.fail(f"{what}: CKA_VALUE of a key unwrapped with CKA_SENSITIVE false and "
                    f"CKA_EXTRACTABLE true must be readable: {returned(exc)}")
    assert value == expected, (
        f"{what} must give the {len(expected)}-byte key {expected.hex()}: got {len(value)} "
        f"bytes {value.hex()}" + (" (the key with trailing zero bytes: padding was kept)"
                                   if value.rstrip(b"\0") == expected.rstrip(b"\0") else ""))


# ---- CKM_AES_KEY_WRAP: RFC 3394 ----------------------------------------------------------

@AES_LENGTHS
@KW
@IMPORTS
@WRAPS
def test_wrap_aes_key_wrap_matches_rfc3394(kek, wrap_target, key_bits, length):
    """PKCS#11 v2.40 curr §2.14 AES Key Wrap: C_WrapKey with CKM_AES_KEY_WRAP (no IV
    parameter: the default initial value) of a 16, 24 or 32-byte AES key is the RFC 3394
    wrapping under the wrapping key, which cryptography's aes_key_unwrap undoes."""
    wrapped = must_wrap(kek(key_bits), wrap_target(length), "CKM_AES_KEY_WRAP",
                        what=f"a {length}-byte AES key")
    expected = reference_wrap("CKM_AES_KEY_WRAP", kek_value(key_bits), key_value(length))
    assert wrapped == expected, (
        f"C_WrapKey(CKM_AES_KEY_WRAP) of a {length}-byte AES key must equal RFC 3394 "
        f"(cryptography aes_key_wrap): got {len(wrapped)} bytes {wrapped.hex()}, expected "
        f"{expected.hex()}; {describe_unwrapped(kek_value(key_bits), wrapped)}")


@AES_LENGTHS
@KW
@IMPORTS
@UNWRAPS
def test_unwrap_aes_key_wrap_recovers_rfc3394_key(kek, created, key_bits, length):
    """PKCS#11 v2.40 curr §2.14 AES Key Wrap, base §5.14.4 C_UnwrapKey: C_UnwrapKey with
    CKM_AES_KEY_WRAP of cryptography's RFC 3394 wrapping of a 16, 24 or 32-byte AES key
    creates an AES key with that value (the length follows from the wrapped key)."""
    value = key_value(length)
    wrapped = reference_wrap("CKM_AES_KEY_WRAP", kek_value(key_bits), value)
    key = must_unwrap(kek(key_bits), wrapped, "CKM_AES_KEY_WRAP", keep=created,
                      what="an RFC 3394 wrapped AES key", SENSITIVE=False, EXTRACTABLE=True)
    check_value(key, value, "C_UnwrapKey(CKM_AES_KEY_WRAP) of an RFC 3394 wrapped AES key")


# ---- CKM_AES_KEY_WRAP_PAD and CKM_AES_KEY_WRAP_KWP -----------------------------------------

@ANY_LENGTHS
@PADDED
@IMPORTS
@WRAPS
def test_wrap_aes_key_wrap_padding_matches_definition(kek, wrap_target, mechanism_name,
                                                      key_bits, length):
    """PKCS#11 v2.40 curr §2.14 AES Key Wrap and v3.0 curr AES Key Wrap: C_WrapKey with
    CKM_AES_KEY_WRAP_PAD pads the key with PKCS #7 to a multiple of 8 bytes (always at least
    one byte) and wraps that with RFC 3394; CKM_AES_KEY_WRAP_KWP is RFC 5649 (SP 800-38F
    KWP). Keys of 16 to 33 bytes, AES and generic secrets; the message names the
    construction a module used instead (RFC 5649 is not CKM_AES_KEY_WRAP_PAD)."""
    kek_bytes, value = kek_value(key_bits), key_value(length)
    wrapped = must_wrap(kek(key_bits), wrap_target(length), mechanism_name,
                        what=f"a {length}-byte key")
    expected = reference_wrap(mechanism_name, kek_bytes, value)
    assert wrapped == expected, (
        f"C_WrapKey({mechanism_name}) of a {length}-byte key must be "
        f"{DEFINITION[mechanism_name]}: got {len(wrapped)} bytes, which is "
        f"{identify(kek_bytes, value, wrapped)}")


@ANY_LENGTHS
@PADDED
@IMPORTS
@UNWRAPS
def test_unwrap_aes_key_wrap_padding_recovers_key(kek, created, mechanism_name, key_bits,
                                                  length):
    """PKCS#11 v2.40 curr §2.14 AES Key Wrap, base §5.14.4 C_UnwrapKey: C_UnwrapKey with
    CKM_AES_KEY_WRAP_PAD (PKCS #7 padding, then RFC 3394) or CKM_AES_KEY_WRAP_KWP
    (RFC 5649) of cryptography's wrapping of a key of 16 to 33 bytes creates a key with
    exactly that value: the padding is removed, and no CKA_VALUE_LEN is needed."""
    kek_bytes, value = kek_value(key_bits), key_value(length)
    wrapped = reference_wrap(mechanism_name, kek_bytes, value)
    what = f"C_UnwrapKey({mechanism_name}) of {DEFINITION[mechanism_name]} of a {length}-byte key"
    arguments = {"key_type": secret_key_type(length), "keep": created, "SENSITIVE": False,
                 "EXTRACTABLE": True}
    try:
        key = unwrap(kek(key_bits), wrapped, mechanism_name, **arguments)
    except PKCS11Error as exc:
        hint = other_format_hint(kek(key_bits), mechanism_name, kek_bytes, value, **arguments)
        pytest.fail(f"{what} must succeed: {returned(exc)}{hint}")
    check_value(key, value, what)


@ANY_LENGTHS
@PADDED
@IMPORTS
@WRAPS
@UNWRAPS
def test_wrap_aes_key_wrap_padding_round_trip_keeps_length(kek, wrap_target, created,
                                                           mechanism_name, key_bits, length):
    """PKCS#11 v2.40 curr §2.14 AES Key Wrap: the padding mechanisms wrap keys of any
    length and recover the length on unwrap, so unwrapping the module's own wrapping of a
    key of 16 to 33 bytes (without CKA_VALUE_LEN) gives the same value and length, whatever
    the construction; trailing zero bytes (zero padding kept) are a failure."""
    wrapped = must_wrap(kek(key_bits), wrap_target(length), mechanism_name,
                        what=f"a {length}-byte key")
    key = must_unwrap(kek(key_bits), wrapped, mechanism_name, key_type=secret_key_type(length),
                      keep=created, what=f"its own wrapping of a {length}-byte key",
                      SENSITIVE=False, EXTRACTABLE=True)
    check_value(key, key_value(length),
                f"C_UnwrapKey({mechanism_name}) of its own wrapping of a {length}-byte key")


# ---- Private keys (PKCS #8 PrivateKeyInfo) -------------------------------------------------

@pytest.fixture(scope="module")
def extractable_pairs(target, session):
    """(public, private) key pairs made by the module with an extractable private key:
    RSA-2048 and EC P-256, once per module."""
    made = target.cache()

    def pair(kind):
        if kind not in made:
            private_template = {Attribute.EXTRACTABLE: True, Attribute.SENSITIVE: True}
            capabilities = keypolicy.usages(MechanismFlag.SIGN | MechanismFlag.VERIFY)
            if kind == "rsa":
                made[kind] = session.generate_keypair(
                    KeyType.RSA, RSA_BITS, store=keypolicy.on_token(), capabilities=capabilities,
                    private_template=private_template)
            else:
                params = session.create_domain_parameters(
                    KeyType.EC, {Attribute.EC_PARAMS: ec_params(CURVE)}, local=True)
                made[kind] = params.generate_keypair(store=keypolicy.on_token(),
                                                     capabilities=capabilities,
                                                     private_template=private_template)
        return made[kind]

    yield pair
    for public, private in made.values():
        public.destroy()
        private.destroy()


def check_wrapped_private_key(kek, pair, mechanism_name, key_bits, kind):
    public, private = pair
    kek_bytes = kek_value(key_bits)
    wrapped = must_wrap(kek(key_bits), private, mechanism_name,
                        what=f"an extractable {kind} private key")
    what = f"C_WrapKey({mechanism_name}) of an {kind} private key"
    try:
        der = reference_unwrap(mechanism_name, kek_bytes, wrapped)
    except ValueError as exc:
        pytest.fail(f"{what} must be {DEFINITION[mechanism_name]} of its PKCS #8 encoding: "
                    f"{exc}; {describe_wrapped_der(kek_bytes, wrapped)}")
    try:
        unwrapped = serialization.load_der_private_key(der, None)
    except ValueError as exc:
        pytest.fail(f"{what} must unwrap to a DER PKCS #8 PrivateKeyInfo: cryptography cannot "
                    f"parse the {len(der)} bytes ({exc}); they end in {der[-8:].hex()}")
    expected = as_cryptography(public).public_numbers()
    got = unwrapped.public_key().public_numbers()
    assert got == expected, (
        f"{what} must hold the private key of its public key: the PKCS #8 key's public "
        f"numbers differ")


@PADDED
@pytest.mark.mechanism("CKM_RSA_PKCS_KEY_PAIR_GEN")
@IMPORTS
@WRAPS
def test_wrap_aes_key_wrap_padding_rsa_private_key_is_pkcs8(kek, extractable_pairs,
                                                            mechanism_name, key_bits):
    """PKCS#11 v2.40 curr §2.14 AES Key Wrap, base §5.14.3 C_WrapKey: an extractable RSA
    private key is wrapped as its DER PKCS #8 PrivateKeyInfo (RFC 5208; curr, wrapping and
    unwrapping private keys), padded and wrapped by the mechanism's definition; cryptography
    unwraps and parses it, and it belongs to the module's public key."""
    check_wrapped_private_key(kek, extractable_pairs("rsa"), mechanism_name, key_bits, "RSA")


@PADDED
@pytest.mark.mechanism("CKM_EC_KEY_PAIR_GEN")
@IMPORTS
@WRAPS
def test_wrap_aes_key_wrap_padding_ec_private_key_is_pkcs8(kek, extractable_pairs,
                                                           mechanism_name, key_bits):
    """PKCS#11 v2.40 curr §2.14 AES Key Wrap, base §5.14.3 C_WrapKey: an extractable EC
    private key (P-256) is wrapped as its DER PKCS #8 PrivateKeyInfo holding an RFC 5915
    ECPrivateKey (curr, wrapping and unwrapping private keys), padded and wrapped by the
    mechanism's definition; cryptography unwraps and parses it, and it belongs to the
    module's public key."""
    check_wrapped_private_key(kek, extractable_pairs("ec"), mechanism_name, key_bits, "EC")


@cache
def foreign_private(kind):
    """A cryptography private key of this kind, made once per process."""
    if kind == "rsa":
        return rsa_private(RSA_BITS)
    return ec.generate_private_key(ec.SECP256R1())


@pytest.mark.parametrize("kind", ["ec", "rsa"])
@PADDED
@IMPORTS
@UNWRAPS
def test_unwrap_aes_key_wrap_padding_private_key_from_pkcs8(kek, created, mechanism_name,
                                                            key_bits, kind):
    """PKCS#11 v2.40 curr §2.14 AES Key Wrap, base §5.14.4 C_UnwrapKey: cryptography's
    wrapping (by the mechanism's definition) of a DER PKCS #8 PrivateKeyInfo (curr, wrapping
    and unwrapping private keys) unwraps to a private key with the same key material (RSA
    modulus and exponents, EC curve and scalar), read back with CKA_SENSITIVE false."""
    private = foreign_private(kind)
    der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    wrapped = reference_wrap(mechanism_name, kek_value(key_bits), der)
    key_type = KeyType.RSA if kind == "rsa" else KeyType.EC
    what = (f"C_UnwrapKey({mechanism_name}) of {DEFINITION[mechanism_name]} of a "
            f"{len(der)}-byte PKCS #8 {kind.upper()} key")
    arguments = {"object_class": ObjectClass.PRIVATE_KEY, "key_type": key_type,
                 "keep": created, "SENSITIVE": False, "EXTRACTABLE": True}
    try:
        key = unwrap(kek(key_bits), wrapped, mechanism_name, **arguments)
    except PKCS11Error as exc:
        hint = other_format_hint(kek(key_bits), mechanism_name, kek_value(key_bits), der,
                                 **arguments)
        pytest.fail(f"{what} must succeed: {returned(exc)}{hint}")
    if kind == "rsa":
        numbers = private.private_numbers()
        expected = {Attribute.MODULUS: numbers.public_numbers.n,
                    Attribute.PUBLIC_EXPONENT: numbers.public_numbers.e,
                    Attribute.PRIVATE_EXPONENT: numbers.d}
        for attribute, number in expected.items():
            got = key[attribute]
            assert int.from_bytes(got, "big") == number, (
                f"{what}: CKA_{attribute.name} must be the PKCS #8 key's: got {brief(got)}")
        return
    params = key[Attribute.EC_PARAMS]
    assert params == ec_params(CURVE), (
        f"{what}: CKA_EC_PARAMS must be the {CURVE} OID {ec_params(CURVE).hex()}: got "
        f"{params.hex()}")
    scalar = key[Attribute.VALUE]
    assert int.from_bytes(scalar, "big") == private.private_numbers().private_value, (
        f"{what}: CKA_VALUE must be the PKCS #8 key's private scalar: got {brief(scalar)}")
