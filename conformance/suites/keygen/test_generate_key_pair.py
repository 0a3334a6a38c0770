"""Key pair generation (C_GenerateKeyPair): RSA, EC and Edwards key pairs, cross-checked
with cryptography.

Each key pair is generated once per worker and parameter set (a module-scoped cache of
session objects, destroyed at the end of the module) and checked by several tests, one
rule each, so an RSA-4096 pair costs one generation however many rules it is held to.
"""

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass

from conformance import keypolicy
from conformance.crosscheck import EC_CURVES, ec_params, field_bytes
from conformance.suite import expect_refusal
from conformance.suites.keygen.generation import Generated

MESSAGE = b"pkcs11-conformance key generation check"
# The curveName choice of CKA_EC_PARAMS for Edwards curves (PKCS#11 v3.0 curr).
EDWARDS_CURVE_NAMES = {"ed25519": "edwards25519", "ed448": "edwards448"}
EDWARDS_KEYS = {"ed25519": (32, ed25519.Ed25519PublicKey), "ed448": (57, ed448.Ed448PublicKey)}

# The usage flags every pair asks for: some true, some false, so a module that ignores the
# template (or sets every flag) shows. The private key can sign, nothing else.
PUBLIC_FLAGS = {Attribute.VERIFY: True, Attribute.ENCRYPT: False, Attribute.WRAP: False}
PRIVATE_FLAGS = {Attribute.SIGN: True, Attribute.DECRYPT: False, Attribute.UNWRAP: False,
                 Attribute.DERIVE: False}
PROTECTION = {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False, Attribute.PRIVATE: True}
# The private value a sensitive key of each type must not reveal (footnote 7 of the
# private key attribute tables).
PRIVATE_VALUE = {KeyType.RSA: Attribute.PRIVATE_EXPONENT, KeyType.EC: Attribute.VALUE,
                 KeyType.EC_EDWARDS: Attribute.VALUE}

RSA_GEN = pytest.mark.mechanism("CKM_RSA_PKCS_KEY_PAIR_GEN")
EC_GEN = pytest.mark.mechanism("CKM_EC_KEY_PAIR_GEN")
EDWARDS_GEN = pytest.mark.mechanism("CKM_EC_EDWARDS_KEY_PAIR_GEN")
GENERATES = pytest.mark.function("C_GenerateKeyPair")


def ck(attribute):
    """The spec name of a python-pkcs11 attribute or mechanism constant."""
    prefix = "CKA_" if isinstance(attribute, Attribute) else "CKM_"
    return prefix + attribute.name.lstrip("_")


class Pair:
    """A generated key pair and the request that made it."""

    def __init__(self, mechanism, key_type, what, public, private, label, key_id):
        self.mechanism, self.key_type, self.what = mechanism, key_type, what
        self.public, self.private = public, private
        self.label, self.key_id = label, key_id

    def read(self, which, attribute):
        """One attribute of the public or private key (read alone: python-pkcs11 drops
        unavailable attributes from multi-attribute reads), or a FAIL naming it."""
        key = self.public if which == "public" else self.private
        try:
            return key[attribute]
        except Exception as exc:  # noqa: BLE001 - any failure is the module's
            pytest.fail(f"C_GetAttributeValue({ck(attribute)}) of the {which} key from "
                        f"{self.what} must succeed: {type(exc).__name__}: {exc}")

    def destroy(self):
        self.public.destroy()
        self.private.destroy()


class Generator(Generated):
    """Generates each key pair once (session objects). A failed generation is remembered
    and reported by every test that needs that pair, without retrying it."""

    function = "C_GenerateKeyPair"

    def pair(self, mechanism, key_type, what, key_length=None, public_template=None):
        def generate(label, key_id):
            public, private = self.session.generate_keypair(
                key_type, key_length, id=key_id, label=label, store=keypolicy.on_token(),
                capabilities=keypolicy.usages(MechanismFlag.SIGN | MechanismFlag.VERIFY),
                mechanism=mechanism,
                public_template={**(public_template or {}),
                                 **keypolicy.usage_values(PUBLIC_FLAGS)},
                private_template={**PROTECTION, **keypolicy.usage_values(PRIVATE_FLAGS)})
            return Pair(mechanism, key_type, what, public, private, label, key_id)

        return self.once(what, generate)


@pytest.fixture(scope="module")
def generator(target, session):
    with Generator(target, session) as made:
        yield made


def rsa_pair(generator, key_bits, public_exponent):
    """RSA pair; python-pkcs11 puts key_bits into the public template as
    CKA_MODULUS_BITS."""
    exponent = public_exponent.to_bytes((public_exponent.bit_length() + 7) // 8, "big")
    return generator.pair(Mechanism.RSA_PKCS_KEY_PAIR_GEN, KeyType.RSA,
                          f"CKM_RSA_PKCS_KEY_PAIR_GEN {key_bits} bits e={public_exponent}",
                          key_bits, {Attribute.PUBLIC_EXPONENT: exponent})


def ec_pair(generator, curve):
    return generator.pair(Mechanism.EC_KEY_PAIR_GEN, KeyType.EC,
                          f"CKM_EC_KEY_PAIR_GEN {curve}",
                          public_template={Attribute.EC_PARAMS: ec_params(curve)})


def edwards_pair(generator, curve):
    return generator.pair(Mechanism.EC_EDWARDS_KEY_PAIR_GEN, KeyType.EC_EDWARDS,
                          f"CKM_EC_EDWARDS_KEY_PAIR_GEN {curve}",
                          public_template={Attribute.EC_PARAMS: ec_params(curve)})


def der_octet_string(value, what):
    """The contents of a DER OCTET STRING (definite length, minimal length octets), or a
    FAIL saying why `value` is not one."""
    problem = None
    if len(value) < 2:
        problem = f"it has {len(value)} bytes, too few for a tag and a length"
    elif value[0] != 0x04:
        problem = "it does not start with the OCTET STRING tag 0x04"
    else:
        length, offset = value[1], 2
        if length & 0x80:
            size = length & 0x7F
            length, offset = int.from_bytes(value[2:2 + size], "big"), 2 + size
            if size == 0 or value[2] == 0 or length < 0x80:
                problem = "its length is not in minimal DER form"
        if problem is None and offset + length != len(value):
            problem = f"its length field says {length} bytes, {len(value) - offset} follow"
        if problem is None:
            return value[offset:]
    pytest.fail(f"{what} must be a DER OCTET STRING: {problem} ({value[:8].hex()}...)")


# Rules every generated pair is held to, applied by the per-mechanism tests below.

def check_local(pair):
    for which in ("public", "private"):
        local = pair.read(which, Attribute.LOCAL)
        assert local is True, (
            f"CKA_LOCAL of the {which} key from {pair.what} must be CK_TRUE: got {local!r}")


def check_generating_mechanism(pair):
    for which in ("public", "private"):
        got = pair.read(which, Attribute.KEY_GEN_MECHANISM)
        assert got == pair.mechanism, (
            f"CKA_KEY_GEN_MECHANISM of the {which} key from {pair.what} must be "
            f"{ck(pair.mechanism)}: got {got!r}")


def check_template(pair):
    expected = {
        "public": {Attribute.CLASS: ObjectClass.PUBLIC_KEY},
        "private": {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.PRIVATE: True},
    }
    for which, wanted in expected.items():
        wanted.update({Attribute.KEY_TYPE: pair.key_type,
                       Attribute.TOKEN: keypolicy.on_token(),
                       Attribute.LABEL: pair.label, Attribute.ID: pair.key_id})
        for attribute, value in wanted.items():
            got = pair.read(which, attribute)
            assert got == value, (
                f"{ck(attribute)} of the {which} key from {pair.what} must be {value!r} "
                f"as requested (or implied by the mechanism): got {got!r}")


def check_usage_flags(pair):
    for which, flags in (("public", PUBLIC_FLAGS), ("private", PRIVATE_FLAGS)):
        for attribute, value in keypolicy.usage_values(flags).items():
            got = pair.read(which, attribute)
            assert got is value, (
                f"{ck(attribute)} of the {which} key from {pair.what} must be {value} as "
                f"requested: got {got!r}")


def check_never_revealed(pair):
    for attribute in (Attribute.ALWAYS_SENSITIVE, Attribute.NEVER_EXTRACTABLE):
        got = pair.read("private", attribute)
        assert got is True, (
            f"{ck(attribute)} of a private key generated with CKA_SENSITIVE true and "
            f"CKA_EXTRACTABLE false ({pair.what}) must be CK_TRUE: got {got!r}")


def check_private_value_unreadable(pair):
    attribute = PRIVATE_VALUE[pair.key_type]
    expect_refusal("attribute-sensitive", "C_GetAttributeValue", pair.private.__getitem__,
                   attribute, what=f"C_GetAttributeValue({ck(attribute)}) of a sensitive "
                   f"private key ({pair.what})")


# RSA (CKM_RSA_PKCS_KEY_PAIR_GEN)

@RSA_GEN
@GENERATES
def test_generate_key_pair_rsa_modulus_has_requested_bits(generator, key_bits, public_exponent):
    """PKCS#11 v2.40 curr §2.1.4 PKCS #1 RSA key pair generation, §2.1.2 and §2.1.3 RSA key
    objects: the modulus of the generated pair has exactly CKA_MODULUS_BITS bits; the
    public key reports that CKA_MODULUS_BITS, and both keys hold the same CKA_MODULUS."""
    pair = rsa_pair(generator, key_bits, public_exponent)
    modulus = int.from_bytes(pair.read("public", Attribute.MODULUS), "big")
    assert modulus.bit_length() == key_bits, (
        f"CKA_MODULUS from {pair.what} must have {key_bits} bits: it has "
        f"{modulus.bit_length()}")
    bits = pair.read("public", Attribute.MODULUS_BITS)
    assert bits == key_bits, (
        f"CKA_MODULUS_BITS of the public key from {pair.what} must be {key_bits}: got {bits}")
    private_modulus = int.from_bytes(pair.read("private", Attribute.MODULUS), "big")
    assert private_modulus == modulus, (
        f"CKA_MODULUS of the private key from {pair.what} must equal the public key's: "
        f"{private_modulus:#x} != {modulus:#x}")


@RSA_GEN
@GENERATES
def test_generate_key_pair_rsa_public_exponent_is_requested(generator, key_bits,
                                                            public_exponent):
    """PKCS#11 v2.40 curr §2.1.4 PKCS #1 RSA key pair generation: the public exponent is
    taken from the public key template, so CKA_PUBLIC_EXPONENT of the new public key
    equals the requested value."""
    pair = rsa_pair(generator, key_bits, public_exponent)
    got = int.from_bytes(pair.read("public", Attribute.PUBLIC_EXPONENT), "big")
    assert got == public_exponent, (
        f"CKA_PUBLIC_EXPONENT from {pair.what} must be {public_exponent}: got {got}")


@pytest.mark.mechanism("CKM_SHA256_RSA_PKCS")
@pytest.mark.function("C_Sign")
@GENERATES
@RSA_GEN
def test_generate_key_pair_rsa_signature_verifies_with_cryptography(generator, key_bits,
                                                                    public_exponent):
    """PKCS#11 v2.40 curr §2.1.4 PKCS #1 RSA key pair generation: the two keys form one
    RSA key pair, so a CKM_SHA256_RSA_PKCS signature made with the private key verifies
    with cryptography under the modulus and exponent read from the public key."""
    pair = rsa_pair(generator, key_bits, public_exponent)
    public = rsa.RSAPublicNumbers(
        int.from_bytes(pair.read("public", Attribute.PUBLIC_EXPONENT), "big"),
        int.from_bytes(pair.read("public", Attribute.MODULUS), "big")).public_key()
    try:
        signature = pair.private.sign(MESSAGE, mechanism=Mechanism.SHA256_RSA_PKCS)
    except Exception as exc:  # noqa: BLE001 - any failure is the module's
        pytest.fail(f"C_Sign(CKM_SHA256_RSA_PKCS) with the private key from {pair.what} must "
                    f"succeed: {type(exc).__name__}: {exc}")
    try:
        public.verify(signature, MESSAGE, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        pytest.fail(f"C_Sign(CKM_SHA256_RSA_PKCS) signature from the private key of "
                    f"{pair.what} must verify with cryptography under the public key: it "
                    f"does not")


@pytest.mark.mechanism("CKM_SHA256_RSA_PKCS")
@pytest.mark.function("C_Verify")
@GENERATES
@RSA_GEN
def test_generate_key_pair_rsa_public_key_verifies_in_module(generator, key_bits,
                                                             public_exponent):
    """PKCS#11 v2.40 curr §2.1.4 PKCS #1 RSA key pair generation: the generated public key
    object verifies (C_Verify, CKM_SHA256_RSA_PKCS) a signature made with its private
    key."""
    pair = rsa_pair(generator, key_bits, public_exponent)
    try:
        signature = pair.private.sign(MESSAGE, mechanism=Mechanism.SHA256_RSA_PKCS)
        valid = pair.public.verify(MESSAGE, signature, mechanism=Mechanism.SHA256_RSA_PKCS)
    except Exception as exc:  # noqa: BLE001 - any failure is the module's
        pytest.fail(f"C_Sign/C_Verify(CKM_SHA256_RSA_PKCS) with the pair from {pair.what} "
                    f"must succeed: {type(exc).__name__}: {exc}")
    assert valid, (f"C_Verify(CKM_SHA256_RSA_PKCS) with the public key from {pair.what} must "
                   f"accept its private key's signature: it rejects it")


@RSA_GEN
@GENERATES
def test_generate_key_pair_rsa_keys_are_local(generator, key_bits, public_exponent):
    """PKCS#11 v2.40 base §4.7 Common key attributes, §5.14.2 C_GenerateKeyPair: both keys
    of a generated pair have CKA_LOCAL true."""
    check_local(rsa_pair(generator, key_bits, public_exponent))


@RSA_GEN
@GENERATES
def test_generate_key_pair_rsa_keys_record_generating_mechanism(generator, key_bits,
                                                                public_exponent):
    """PKCS#11 v2.40 base §4.7 Common key attributes: CKA_KEY_GEN_MECHANISM of both keys is
    the mechanism that generated them, CKM_RSA_PKCS_KEY_PAIR_GEN."""
    check_generating_mechanism(rsa_pair(generator, key_bits, public_exponent))


@RSA_GEN
@GENERATES
def test_generate_key_pair_rsa_template_is_honoured(generator, key_bits, public_exponent):
    """PKCS#11 v2.40 base §5.14.2 C_GenerateKeyPair: the new keys carry the requested
    CKA_LABEL, CKA_ID, CKA_TOKEN false and (private key) CKA_PRIVATE true, and the class
    and key type the mechanism implies."""
    check_template(rsa_pair(generator, key_bits, public_exponent))


@RSA_GEN
@GENERATES
def test_generate_key_pair_rsa_usage_flags_are_honoured(generator, key_bits, public_exponent):
    """PKCS#11 v2.40 base §5.14.2 C_GenerateKeyPair, §4.8 and §4.9 public and private key
    objects: the usage flags asked for in the templates (CKA_VERIFY and CKA_SIGN true,
    CKA_ENCRYPT, CKA_WRAP, CKA_DECRYPT, CKA_UNWRAP and CKA_DERIVE false) are the keys'."""
    check_usage_flags(rsa_pair(generator, key_bits, public_exponent))


@RSA_GEN
@GENERATES
def test_generate_key_pair_rsa_private_key_never_revealed(generator, key_bits,
                                                          public_exponent):
    """PKCS#11 v2.40 base §4.9 Private key objects: a private key generated with
    CKA_SENSITIVE true and CKA_EXTRACTABLE false has CKA_ALWAYS_SENSITIVE and
    CKA_NEVER_EXTRACTABLE true."""
    check_never_revealed(rsa_pair(generator, key_bits, public_exponent))


@RSA_GEN
@GENERATES
def test_generate_key_pair_rsa_private_exponent_is_unreadable(generator, key_bits,
                                                              public_exponent):
    """PKCS#11 v2.40 base §5.7.5 C_GetAttributeValue, curr §2.1.3 RSA private key objects:
    CKA_PRIVATE_EXPONENT of a sensitive private key cannot be revealed
    (CKR_ATTRIBUTE_SENSITIVE)."""
    check_private_value_unreadable(rsa_pair(generator, key_bits, public_exponent))


# EC (CKM_EC_KEY_PAIR_GEN)

@EC_GEN
@GENERATES
def test_generate_key_pair_ec_params_are_requested_curve(generator, curve):
    """PKCS#11 v2.40 curr §2.3.5 Elliptic curve key pair generation: the pair is on the
    curve named by CKA_EC_PARAMS of the public template, and both keys hold that
    CKA_EC_PARAMS (the curve's OBJECT IDENTIFIER)."""
    pair = ec_pair(generator, curve)
    for which in ("public", "private"):
        got = pair.read(which, Attribute.EC_PARAMS)
        assert got == ec_params(curve), (
            f"CKA_EC_PARAMS of the {which} key from {pair.what} must be the {curve} OID "
            f"{ec_params(curve).hex()}: got {got.hex()}")


@EC_GEN
@GENERATES
def test_generate_key_pair_ec_point_is_on_curve(generator, curve):
    """PKCS#11 v2.40 curr §2.3.3 ECDSA public key objects: CKA_EC_POINT is the DER
    encoding of an ANSI X9.62 ECPoint (an OCTET STRING) holding a point of the requested
    curve, uncompressed (0x04 || X || Y) or compressed (0x02/0x03 || X), that cryptography
    accepts as a point on that curve."""
    pair = ec_pair(generator, curve)
    point = der_octet_string(pair.read("public", Attribute.EC_POINT),
                             f"CKA_EC_POINT from {pair.what}")
    size = field_bytes(curve)
    lengths = {0x04: 1 + 2 * size, 0x02: 1 + size, 0x03: 1 + size}
    assert point[:1] and point[0] in lengths, (
        f"CKA_EC_POINT from {pair.what} must hold an X9.62 uncompressed (0x04) or compressed "
        f"(0x02/0x03) point: it starts with {point[:1].hex() or 'nothing'}")
    assert len(point) == lengths[point[0]], (
        f"CKA_EC_POINT from {pair.what} must hold a {lengths[point[0]]}-byte point "
        f"(form 0x{point[0]:02x}, {size}-byte coordinates on {curve}): got {len(point)} bytes")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(EC_CURVES[curve](), point)
    except ValueError as exc:
        pytest.fail(f"CKA_EC_POINT from {pair.what} must be a point on {curve}: cryptography "
                    f"refuses it: {exc}")


@EC_GEN
@GENERATES
def test_generate_key_pair_ec_keys_are_local(generator, curve):
    """PKCS#11 v2.40 base §4.7 Common key attributes, §5.14.2 C_GenerateKeyPair: both keys
    of a generated pair have CKA_LOCAL true."""
    check_local(ec_pair(generator, curve))


@EC_GEN
@GENERATES
def test_generate_key_pair_ec_keys_record_generating_mechanism(generator, curve):
    """PKCS#11 v2.40 base §4.7 Common key attributes: CKA_KEY_GEN_MECHANISM of both keys is
    the mechanism that generated them, CKM_EC_KEY_PAIR_GEN."""
    check_generating_mechanism(ec_pair(generator, curve))


@EC_GEN
@GENERATES
def test_generate_key_pair_ec_template_is_honoured(generator, curve):
    """PKCS#11 v2.40 base §5.14.2 C_GenerateKeyPair: the new keys carry the requested
    CKA_LABEL, CKA_ID, CKA_TOKEN false and (private key) CKA_PRIVATE true, and the class
    and key type the mechanism implies."""
    check_template(ec_pair(generator, curve))


@EC_GEN
@GENERATES
def test_generate_key_pair_ec_usage_flags_are_honoured(generator, curve):
    """PKCS#11 v2.40 base §5.14.2 C_GenerateKeyPair, §4.8 and §4.9 public and private key
    objects: the usage flags asked for in the templates (CKA_VERIFY and CKA_SIGN true,
    CKA_ENCRYPT, CKA_WRAP, CKA_DECRYPT, CKA_UNWRAP and CKA_DERIVE false) are the keys'."""
    check_usage_flags(ec_pair(generator, curve))


@EC_GEN
@GENERATES
def test_generate_key_pair_ec_private_key_never_revealed(generator, curve):
    """PKCS#11 v2.40 base §4.9 Private key objects: a private key generated with
    CKA_SENSITIVE true and CKA_EXTRACTABLE false has CKA_ALWAYS_SENSITIVE and
    CKA_NEVER_EXTRACTABLE true."""
    check_never_revealed(ec_pair(generator, curve))


@EC_GEN
@GENERATES
def test_generate_key_pair_ec_private_value_is_unreadable(generator, curve):
    """PKCS#11 v2.40 base §5.7.5 C_GetAttributeValue, curr §2.3.4 Elliptic curve private key
    objects: CKA_VALUE of a sensitive private key cannot be revealed
    (CKR_ATTRIBUTE_SENSITIVE)."""
    check_private_value_unreadable(ec_pair(generator, curve))


# Edwards (CKM_EC_EDWARDS_KEY_PAIR_GEN)

@EDWARDS_GEN
def test_generate_key_pair_edwards_params_are_requested_curve(generator, curve):
    """PKCS#11 v3.0 curr, Edwards Elliptic curve key pair generation: the pair is on the
    curve named by CKA_EC_PARAMS of the public template; the public key holds that
    CKA_EC_PARAMS (the RFC 8410 OBJECT IDENTIFIER given) and the private key names the
    same curve (by that OID or by the curveName PrintableString the spec also allows)."""
    pair = edwards_pair(generator, curve)
    got = pair.read("public", Attribute.EC_PARAMS)
    assert got == ec_params(curve), (
        f"CKA_EC_PARAMS of the public key from {pair.what} must be the {curve} OID "
        f"{ec_params(curve).hex()} given in the template: got {got.hex()}")
    name = EDWARDS_CURVE_NAMES[curve].encode()
    accepted = (ec_params(curve), bytes([0x13, len(name)]) + name)
    got = pair.read("private", Attribute.EC_PARAMS)
    assert got in accepted, (
        f"CKA_EC_PARAMS of the private key from {pair.what} must name {curve}, as its OID "
        f"{accepted[0].hex()} or the PrintableString {name.decode()!r}: got {got.hex()}")


@EDWARDS_GEN
def test_generate_key_pair_edwards_point_loads_in_cryptography(generator, curve):
    """PKCS#11 v3.0 curr, Edwards Elliptic curve public key objects: CKA_EC_POINT is the
    DER encoding (an OCTET STRING) of the RFC 8032 public key, 32 bytes for Ed25519 and 57
    for Ed448, which cryptography loads."""
    pair = edwards_pair(generator, curve)
    point = der_octet_string(pair.read("public", Attribute.EC_POINT),
                             f"CKA_EC_POINT from {pair.what}")
    size, key_class = EDWARDS_KEYS[curve]
    assert len(point) == size, (
        f"CKA_EC_POINT from {pair.what} must hold a {size}-byte {curve} public key: got "
        f"{len(point)} bytes")
    try:
        key_class.from_public_bytes(point)
    except ValueError as exc:
        pytest.fail(f"CKA_EC_POINT from {pair.what} must be a {curve} public key: "
                    f"cryptography refuses it: {exc}")


@pytest.mark.mechanism("CKM_EDDSA")
@EDWARDS_GEN
def test_generate_key_pair_edwards_signature_verifies_with_cryptography(generator, curve):
    """PKCS#11 v3.0 curr, Edwards Elliptic curve key pair generation: the two keys form one
    EdDSA key pair, so a CKM_EDDSA signature made with the private key verifies with
    cryptography under the public key read from CKA_EC_POINT."""
    pair = edwards_pair(generator, curve)
    point = der_octet_string(pair.read("public", Attribute.EC_POINT),
                             f"CKA_EC_POINT from {pair.what}")
    try:
        public = EDWARDS_KEYS[curve][1].from_public_bytes(point)
    except ValueError as exc:
        pytest.fail(f"CKA_EC_POINT from {pair.what} must be a {curve} public key: "
                    f"cryptography refuses it: {exc}")
    try:
        signature = pair.private.sign(MESSAGE, mechanism=Mechanism.EDDSA)
    except Exception as exc:  # noqa: BLE001 - any failure is the module's
        pytest.fail(f"C_Sign(CKM_EDDSA) with the private key from {pair.what} must succeed: "
                    f"{type(exc).__name__}: {exc}")
    try:
        public.verify(signature, MESSAGE)
    except InvalidSignature:
        pytest.fail(f"C_Sign(CKM_EDDSA) signature from the private key of {pair.what} must "
                    f"verify with cryptography under CKA_EC_POINT: it does not")


@EDWARDS_GEN
def test_generate_key_pair_edwards_keys_are_local(generator, curve):
    """PKCS#11 v2.40 base §4.7 Common key attributes, §5.14.2 C_GenerateKeyPair: both keys
    of a generated pair have CKA_LOCAL true."""
    check_local(edwards_pair(generator, curve))


@EDWARDS_GEN
def test_generate_key_pair_edwards_keys_record_generating_mechanism(generator, curve):
    """PKCS#11 v2.40 base §4.7 Common key attributes: CKA_KEY_GEN_MECHANISM of both keys is
    the mechanism that generated them, CKM_EC_EDWARDS_KEY_PAIR_GEN."""
    check_generating_mechanism(edwards_pair(generator, curve))


@EDWARDS_GEN
def test_generate_key_pair_edwards_template_is_honoured(generator, curve):
    """PKCS#11 v2.40 base §5.14.2 C_GenerateKeyPair: the new keys carry the requested
    CKA_LABEL, CKA_ID, CKA_TOKEN false and (private key) CKA_PRIVATE true, and the class
    and key type the mechanism implies."""
    check_template(edwards_pair(generator, curve))


@EDWARDS_GEN
def test_generate_key_pair_edwards_usage_flags_are_honoured(generator, curve):
    """PKCS#11 v2.40 base §5.14.2 C_GenerateKeyPair, §4.8 and §4.9 public and private key
    objects: the usage flags asked for in the templates (CKA_VERIFY and CKA_SIGN true,
    CKA_ENCRYPT, CKA_WRAP, CKA_DECRYPT, CKA_UNWRAP and CKA_DERIVE false) are the keys'."""
    check_usage_flags(edwards_pair(generator, curve))


@EDWARDS_GEN
def test_generate_key_pair_edwards_private_key_never_revealed(generator, curve):
    """PKCS#11 v2.40 base §4.9 Private key objects: a private key generated with
    CKA_SENSITIVE true and CKA_EXTRACTABLE false has CKA_ALWAYS_SENSITIVE and
    CKA_NEVER_EXTRACTABLE true."""
    check_never_revealed(edwards_pair(generator, curve))


@EDWARDS_GEN
def test_generate_key_pair_edwards_private_value_is_unreadable(generator, curve):
    """PKCS#11 v2.40 base §5.7.5 C_GetAttributeValue, v3.0 curr Edwards Elliptic curve
    private key objects: CKA_VALUE of a sensitive private key cannot be revealed
    (CKR_ATTRIBUTE_SENSITIVE)."""
    check_private_value_unreadable(edwards_pair(generator, curve))
