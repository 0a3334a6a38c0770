"""Fixtures of the wrap suites: wrapping keys with known values, imported into the module
as session objects once per test module, and the keys each test unwraps, destroyed after it.
"""

from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import pytest
from pkcs11 import Attribute, KeyType, MechanismFlag, ObjectClass
from pkcs11.exceptions import PKCS11Error

from conformance.crosscheck import big, import_public, oaep_param, rsa_private
from conformance.model import parameter_values
from conformance.plugin import RUN
from conformance.suite import returned

from .support import kek_value, key_value, secret_key_type


def _import(session, template, what):
    try:
        return session.create_object({Attribute.TOKEN: False, **template})
    except PKCS11Error as exc:
        pytest.fail(f"C_CreateObject of {what} must succeed: {returned(exc)}")


@pytest.fixture
def created():
    """Keys a test makes (unwrapped keys): destroyed when the test ends."""
    made = []
    yield made
    for key in made:
        with suppress(PKCS11Error):
            key.destroy()


@pytest.fixture(scope="module")
def kek(target, session):
    """kek(bits, wrap=True, unwrap=True): the AES key with value kek_value(bits), imported once
    per module with CKA_WRAP and CKA_UNWRAP as given."""
    made = target.cache()

    def key(bits, wrap=True, unwrap=True):
        if (bits, wrap, unwrap) not in made:
            made[bits, wrap, unwrap] = _import(session, {
                Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES,
                Attribute.VALUE: kek_value(bits), Attribute.WRAP: wrap,
                Attribute.UNWRAP: unwrap}, f"a {bits}-bit AES wrapping key")
        return made[bits, wrap, unwrap]

    yield key
    for made_key in made.values():
        made_key.destroy()


@pytest.fixture(scope="module")
def wrap_target(target, session):
    """wrap_target(length, extractable=True): the secret key with value key_value(length)
    (CKK_AES for 16, 24 and 32 bytes, else CKK_GENERIC_SECRET), not sensitive."""
    made = target.cache()

    def key(length, extractable=True):
        if (length, extractable) not in made:
            made[length, extractable] = _import(session, {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: secret_key_type(length), Attribute.VALUE: key_value(length),
                Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: extractable},
                f"a {length}-byte secret key")
        return made[length, extractable]

    yield key
    for made_key in made.values():
        made_key.destroy()


@dataclass(frozen=True)
class ForeignRsa:
    """A cryptography RSA key pair, its public key imported for wrapping and its private key
    imported for unwrapping."""

    private: Any  # cryptography RSAPrivateKey
    public_object: Any
    private_object: Any

    @property
    def k(self):
        return (self.private.key_size + 7) // 8


@pytest.fixture(scope="module")
def foreign_rsa(target, session):
    """foreign_rsa(bits, wrap=True, unwrap=True) -> ForeignRsa, imported once per module."""
    made = target.cache()

    def pair(bits, wrap=True, unwrap=True):
        if (bits, wrap, unwrap) not in made:
            private = rsa_private(bits)
            capabilities = MechanismFlag.ENCRYPT | (MechanismFlag.WRAP if wrap else 0)
            try:
                public_object = import_public(session, private.public_key(), capabilities)
            except PKCS11Error as exc:
                pytest.fail(f"C_CreateObject of a {bits}-bit RSA public key must succeed: "
                            f"{returned(exc)}")
            numbers = private.private_numbers()
            private_object = _import(session, {
                Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.KEY_TYPE: KeyType.RSA,
                Attribute.DECRYPT: True, Attribute.UNWRAP: unwrap, Attribute.SENSITIVE: True,
                Attribute.MODULUS: big(numbers.public_numbers.n),
                Attribute.PUBLIC_EXPONENT: big(numbers.public_numbers.e),
                Attribute.PRIVATE_EXPONENT: big(numbers.d), Attribute.PRIME_1: big(numbers.p),
                Attribute.PRIME_2: big(numbers.q), Attribute.EXPONENT_1: big(numbers.dmp1),
                Attribute.EXPONENT_2: big(numbers.dmq1),
                Attribute.COEFFICIENT: big(numbers.iqmp)}, f"a {bits}-bit RSA private key")
            made[bits, wrap, unwrap] = ForeignRsa(private, public_object, private_object)
        return made[bits, wrap, unwrap]

    yield pair
    for made_pair in made.values():
        made_pair.public_object.destroy()
        made_pair.private_object.destroy()


@pytest.fixture(scope="session")
def oaep_hash(request):
    """The OAEP hash for checks that are not about OAEP itself: the first hash claimed (or
    required by a profile) for CKM_RSA_PKCS_OAEP, SHA-1 when none is listed."""
    run = request.config.stash[RUN]
    listed = parameter_values(run.vendor, run.profiles, "CKM_RSA_PKCS_OAEP", "hashes")
    return str(listed[0]) if listed else "sha1"


@dataclass(frozen=True)
class Wrapping:
    """One wrapping mechanism with its keys: `wrapping_key` wraps, `unwrapping_key` unwraps
    what it wrapped."""

    mechanism_name: str
    param: Any
    wrapping_key: Any
    unwrapping_key: Any

    def __str__(self):
        if self.param is None:
            return self.mechanism_name
        return f"{self.mechanism_name}, {self.param[0].name}"


@pytest.fixture(scope="module")
def wrapping(kek, foreign_rsa, oaep_hash):
    """wrapping(mechanism_name, key_bits, wrap=True, unwrap=True) -> Wrapping: an AES key
    wrap mechanism with an imported AES key, or an RSA one with an imported key pair (OAEP
    with oaep_hash, MGF1 over it, no label). `wrap` and `unwrap` set CKA_WRAP of the
    wrapping key and CKA_UNWRAP of the unwrapping key; keys of one size share their value."""

    def make(mechanism_name, key_bits, wrap=True, unwrap=True):
        if mechanism_name.startswith("CKM_AES"):
            key = kek(key_bits, wrap, unwrap)
            return Wrapping(mechanism_name, None, key, key)
        pair = foreign_rsa(key_bits, wrap, unwrap)
        param = oaep_param(oaep_hash) if mechanism_name == "CKM_RSA_PKCS_OAEP" else None
        return Wrapping(mechanism_name, param, pair.public_object, pair.private_object)

    return make
