"""Secret key generation (C_GenerateKey): AES and generic secret keys.

Each key is generated once per worker, mechanism, size and protection (a module-scoped
cache of session objects, destroyed at the end of the module) and checked by several
tests, one rule each.
"""

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass

from conformance import keypolicy
from conformance.names import mechanism
from conformance.suite import expect_refusal
from conformance.suites.keygen.generation import Generated

KEY_TYPES = {"CKM_AES_KEY_GEN": KeyType.AES, "CKM_GENERIC_SECRET_KEY_GEN": KeyType.GENERIC_SECRET}
# The usage flags each key asks for: some true, some false, so a module that ignores the
# template (or sets every flag) shows. AES keys encrypt, generic secrets MAC.
USAGE = {
    "CKM_AES_KEY_GEN": {Attribute.ENCRYPT: True, Attribute.DECRYPT: True,
                        Attribute.SIGN: False, Attribute.VERIFY: False,
                        Attribute.WRAP: False, Attribute.UNWRAP: False,
                        Attribute.DERIVE: False},
    "CKM_GENERIC_SECRET_KEY_GEN": {Attribute.SIGN: True, Attribute.VERIFY: True,
                                   Attribute.ENCRYPT: False, Attribute.DECRYPT: False,
                                   Attribute.WRAP: False, Attribute.UNWRAP: False,
                                   Attribute.DERIVE: False},
}
CAPABILITIES = {Attribute.ENCRYPT: MechanismFlag.ENCRYPT, Attribute.DECRYPT: MechanismFlag.DECRYPT,
                Attribute.SIGN: MechanismFlag.SIGN, Attribute.VERIFY: MechanismFlag.VERIFY,
                Attribute.WRAP: MechanismFlag.WRAP, Attribute.UNWRAP: MechanismFlag.UNWRAP,
                Attribute.DERIVE: MechanismFlag.DERIVE}
# "sensitive": CKA_SENSITIVE true, CKA_EXTRACTABLE false; "extractable": the opposite.
PROTECTION = {"sensitive": {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False},
              "extractable": {Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True}}
BLOCK = bytes(range(16))

SECRET_KEY_GENS = pytest.mark.mechanisms(*KEY_TYPES)
GENERATES = pytest.mark.function("C_GenerateKey")


def ck(attribute):
    """The spec name of a python-pkcs11 attribute constant."""
    return "CKA_" + attribute.name


class Secret:
    """A generated secret key and the request that made it."""

    def __init__(self, mechanism_name, what, key, label, key_id, protection):
        self.mechanism_name, self.what, self.key = mechanism_name, what, key
        self.label, self.key_id, self.protection = label, key_id, protection

    def read(self, attribute):
        """One attribute of the key (read alone: python-pkcs11 drops unavailable
        attributes from multi-attribute reads), or a FAIL naming it."""
        try:
            return self.key[attribute]
        except Exception as exc:  # noqa: BLE001 - any failure is the module's
            pytest.fail(f"C_GetAttributeValue({ck(attribute)}) of the key from {self.what} "
                        f"must succeed: {type(exc).__name__}: {exc}")

    def destroy(self):
        self.key.destroy()


class Generator(Generated):
    """Generates each secret key once (session objects). A failed generation is
    remembered and reported by every test that needs that key, without retrying it."""

    function = "C_GenerateKey"

    def key(self, mechanism_name, key_bits, protection="sensitive"):
        what = f"{mechanism_name} {key_bits} bits {protection}"

        def generate(label, key_id):
            usage = USAGE[mechanism_name]
            capabilities = MechanismFlag(0)
            for attribute, wanted in usage.items():
                if wanted:
                    capabilities |= CAPABILITIES[attribute]
            key = self.session.generate_key(
                KEY_TYPES[mechanism_name], key_bits, id=key_id, label=label,
                store=keypolicy.on_token(),
                capabilities=capabilities, mechanism=mechanism(mechanism_name),
                template={Attribute.PRIVATE: True, **PROTECTION[protection], **usage})
            return Secret(mechanism_name, what, key, label, key_id, protection)

        return self.once(what, generate)


@pytest.fixture(scope="module")
def generator(target, session):
    with Generator(target, session) as made:
        yield made


@SECRET_KEY_GENS
@GENERATES
def test_generate_key_value_len_is_requested(generator, mechanism_name, key_bits):
    """PKCS#11 v2.40 curr, AES key generation and Generic secret key generation: the new
    key has the CKA_VALUE_LEN given in the template (key size in bits / 8 bytes)."""
    secret = generator.key(mechanism_name, key_bits)
    got = secret.read(Attribute.VALUE_LEN)
    assert got == key_bits // 8, (
        f"CKA_VALUE_LEN of the key from {secret.what} must be {key_bits // 8}: got {got}")


@SECRET_KEY_GENS
@GENERATES
def test_generate_key_value_has_value_len_bytes(generator, mechanism_name, key_bits):
    """PKCS#11 v2.40 curr, AES secret key objects and Generic secret key objects: CKA_VALUE
    of a generated, extractable and non-sensitive key has CKA_VALUE_LEN bytes (key size
    in bits / 8)."""
    secret = generator.key(mechanism_name, key_bits, "extractable")
    value = secret.read(Attribute.VALUE)
    assert len(value) == key_bits // 8, (
        f"CKA_VALUE of the key from {secret.what} must have {key_bits // 8} bytes: got "
        f"{len(value)}")


@SECRET_KEY_GENS
@GENERATES
def test_generate_key_key_is_local(generator, mechanism_name, key_bits):
    """PKCS#11 v2.40 base §5.14.1 C_GenerateKey, §4.7 Common key attributes: a generated key
    has CKA_LOCAL true."""
    secret = generator.key(mechanism_name, key_bits)
    local = secret.read(Attribute.LOCAL)
    assert local is True, f"CKA_LOCAL of the key from {secret.what} must be CK_TRUE: got {local!r}"


@SECRET_KEY_GENS
@GENERATES
def test_generate_key_key_records_generating_mechanism(generator, mechanism_name, key_bits):
    """PKCS#11 v2.40 base §4.7 Common key attributes: CKA_KEY_GEN_MECHANISM of a generated
    key is the mechanism that generated it."""
    secret = generator.key(mechanism_name, key_bits)
    got = secret.read(Attribute.KEY_GEN_MECHANISM)
    assert got == mechanism(mechanism_name), (
        f"CKA_KEY_GEN_MECHANISM of the key from {secret.what} must be {mechanism_name}: got "
        f"{got!r}")


@SECRET_KEY_GENS
@GENERATES
def test_generate_key_template_is_honoured(generator, mechanism_name, key_bits):
    """PKCS#11 v2.40 base §5.14.1 C_GenerateKey: the new key carries the requested
    CKA_LABEL, CKA_ID, CKA_TOKEN false and CKA_PRIVATE true, and the class (CKO_SECRET_KEY)
    and key type the mechanism implies."""
    secret = generator.key(mechanism_name, key_bits)
    wanted = {Attribute.CLASS: ObjectClass.SECRET_KEY,
              Attribute.KEY_TYPE: KEY_TYPES[mechanism_name],
              Attribute.TOKEN: keypolicy.on_token(),
              Attribute.PRIVATE: True, Attribute.LABEL: secret.label,
              Attribute.ID: secret.key_id}
    for attribute, value in wanted.items():
        got = secret.read(attribute)
        assert got == value, (
            f"{ck(attribute)} of the key from {secret.what} must be {value!r} as requested "
            f"(or implied by the mechanism): got {got!r}")


@SECRET_KEY_GENS
@GENERATES
def test_generate_key_usage_flags_are_honoured(generator, mechanism_name, key_bits):
    """PKCS#11 v2.40 base §5.14.1 C_GenerateKey, §4.10 Secret key objects: the usage flags
    asked for in the template (some true, some false) are the key's."""
    secret = generator.key(mechanism_name, key_bits)
    for attribute, value in USAGE[mechanism_name].items():
        got = secret.read(attribute)
        assert got is value, (
            f"{ck(attribute)} of the key from {secret.what} must be {value} as requested: "
            f"got {got!r}")


@SECRET_KEY_GENS
@GENERATES
def test_generate_key_sensitive_key_never_revealed(generator, mechanism_name, key_bits):
    """PKCS#11 v2.40 base §4.10 Secret key objects: a key generated with CKA_SENSITIVE true
    and CKA_EXTRACTABLE false has CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE true."""
    secret = generator.key(mechanism_name, key_bits)
    for attribute in (Attribute.ALWAYS_SENSITIVE, Attribute.NEVER_EXTRACTABLE):
        got = secret.read(attribute)
        assert got is True, (
            f"{ck(attribute)} of a key generated with CKA_SENSITIVE true and CKA_EXTRACTABLE "
            f"false ({secret.what}) must be CK_TRUE: got {got!r}")


@SECRET_KEY_GENS
@GENERATES
def test_generate_key_extractable_key_not_always_sensitive(generator, mechanism_name,
                                                           key_bits):
    """PKCS#11 v2.40 base §4.10 Secret key objects: a key generated with CKA_SENSITIVE
    false and CKA_EXTRACTABLE true has CKA_ALWAYS_SENSITIVE and CKA_NEVER_EXTRACTABLE
    false (it has not always been sensitive, and it has been extractable)."""
    secret = generator.key(mechanism_name, key_bits, "extractable")
    for attribute in (Attribute.ALWAYS_SENSITIVE, Attribute.NEVER_EXTRACTABLE):
        got = secret.read(attribute)
        assert got is False, (
            f"{ck(attribute)} of a key generated with CKA_SENSITIVE false and CKA_EXTRACTABLE "
            f"true ({secret.what}) must be CK_FALSE: got {got!r}")


@SECRET_KEY_GENS
@GENERATES
def test_generate_key_sensitive_value_is_unreadable(generator, mechanism_name, key_bits):
    """PKCS#11 v2.40 base §5.7.5 C_GetAttributeValue, §4.10 Secret key objects: CKA_VALUE of
    a sensitive key cannot be revealed (CKR_ATTRIBUTE_SENSITIVE)."""
    secret = generator.key(mechanism_name, key_bits)
    expect_refusal("attribute-sensitive", "C_GetAttributeValue", secret.key.__getitem__,
                   Attribute.VALUE,
                   what=f"C_GetAttributeValue(CKA_VALUE) of a sensitive key ({secret.what})")


@pytest.mark.mechanism("CKM_AES_ECB")
@pytest.mark.function("C_Encrypt")
@pytest.mark.function("C_Decrypt")
@GENERATES
@pytest.mark.mechanism("CKM_AES_KEY_GEN")  # the subject: the marker nearest the function
def test_generate_key_aes_value_is_the_key_in_use(generator, key_bits):
    """PKCS#11 v2.40 curr, AES key generation and AES secret key objects: CKA_VALUE of a
    generated (extractable) AES key is the key the module uses, so CKM_AES_ECB with the
    key object matches AES-ECB in cryptography under CKA_VALUE, in both directions."""
    secret = generator.key("CKM_AES_KEY_GEN", key_bits, "extractable")
    value = secret.read(Attribute.VALUE)
    cipher = Cipher(algorithms.AES(value), modes.ECB())
    expected = cipher.encryptor().update(BLOCK)
    try:
        got = secret.key.encrypt(BLOCK, mechanism=Mechanism.AES_ECB)
    except Exception as exc:  # noqa: BLE001 - any failure is the module's
        pytest.fail(f"C_Encrypt(CKM_AES_ECB) with the key from {secret.what} must succeed: "
                    f"{type(exc).__name__}: {exc}")
    assert got == expected, (
        f"C_Encrypt(CKM_AES_ECB) with the key from {secret.what} must equal AES-ECB under its "
        f"CKA_VALUE: got {got.hex()}, expected {expected.hex()}")
    ciphertext = cipher.encryptor().update(BLOCK[::-1])
    try:
        plain = secret.key.decrypt(ciphertext, mechanism=Mechanism.AES_ECB)
    except Exception as exc:  # noqa: BLE001 - any failure is the module's
        pytest.fail(f"C_Decrypt(CKM_AES_ECB) with the key from {secret.what} must succeed: "
                    f"{type(exc).__name__}: {exc}")
    assert plain == BLOCK[::-1], (
        f"C_Decrypt(CKM_AES_ECB) with the key from {secret.what} must invert cryptography's "
        f"AES-ECB under its CKA_VALUE: got {plain.hex()}, expected {BLOCK[::-1].hex()}")
