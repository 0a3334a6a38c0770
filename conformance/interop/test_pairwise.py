"""Keys and data moving between two modules, in both directions for every pair given.

A case `A->B` makes something in module A (a signature, a ciphertext, a wrapped key, a
public key read attribute by attribute) and uses it in module B. Each runs when both
modules claim the mechanism with the parameter values (the values both claim), and what
else each side has to do. Every check compares bytes or outcomes across the modules and
fails when they do not interoperate; where an altered input must be refused, that is
checked too, so a module that accepts anything does not pass.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from pkcs11 import Attribute, GCMParams, KeyType, MechanismFlag, ObjectClass
from pkcs11._pkcs11 import UnwrapMixin, WrapMixin  # type: ignore[attr-defined]
from pkcs11.attributes import ALL_CAPABILITIES
from pkcs11.constants import DEFAULT
from pkcs11.exceptions import PKCS11Error

from conformance import keypolicy
from conformance.crosscheck import (
    DIGEST_INFO,
    as_cryptography,
    hash_len,
    hash_of,
    oaep_capacity,
    oaep_param,
    pss_params,
)
from conformance.interop.plugin import Needs, Side, parametrize_routes
from conformance.names import mechanism as constant
from conformance.suite import not_applicable, returned

MESSAGE = bytes(i * 7 % 251 for i in range(3000))
RSA_PKCS_HASHES = {f"CKM_{h.upper()}_RSA_PKCS": h
                   for h in ("sha1", "sha224", "sha256", "sha384", "sha512")}
RSA_PSS_HASHES = {f"CKM_{h.upper()}_RSA_PKCS_PSS": h
                  for h in ("sha1", "sha224", "sha256", "sha384", "sha512")}
ECDSA_HASHES = {f"CKM_ECDSA_{h.upper()}": h for h in ("sha1", "sha224", "sha256", "sha384",
                                                      "sha512")}
SIGNATURES: dict[str, tuple[str, ...]] = {
    "CKM_RSA_PKCS": ("key_sizes",),
    **{name: ("key_sizes",) for name in RSA_PKCS_HASHES},
    "CKM_RSA_PKCS_PSS": ("key_sizes", "hashes", "salt_lengths"),
    **{name: ("key_sizes", "salt_lengths") for name in RSA_PSS_HASHES},
    "CKM_ECDSA": ("curves",),
    **{name: ("curves",) for name in ECDSA_HASHES},
    "CKM_EDDSA": ("curves",),
}
AES_MODES = ("CKM_AES_ECB", "CKM_AES_CBC", "CKM_AES_CBC_PAD", "CKM_AES_CTR")
ENCRYPTIONS: dict[str, tuple[str, ...]] = {
    "CKM_RSA_PKCS": ("key_sizes",),
    "CKM_RSA_PKCS_OAEP": ("key_sizes", "hashes", "labels"),
    **{name: ("key_sizes",) for name in AES_MODES},
    "CKM_AES_GCM": ("key_sizes", "tag_bits"),
}
AES_WRAPS = ("CKM_AES_KEY_WRAP", "CKM_AES_KEY_WRAP_KWP", "CKM_AES_KEY_WRAP_PAD")
WRAPS: dict[str, tuple[str, ...]] = {
    **{name: ("key_sizes",) for name in AES_WRAPS},
    "CKM_RSA_PKCS_OAEP": ("key_sizes", "hashes", "labels"),
}
# The flags the unwrap template in B asks for; the key made in A follows them too.
TEMPLATES = [("sensitive", {"sensitive": True}), ("extractable", {"sensitive": False})]
LABEL = b"pkcs11-conformance interop"
IV = bytes(range(16))
GCM_IV = bytes.fromhex("cafebabefacedbaddecaf888")
AAD = b"associated data"
# An unwrap template with only the attributes a case names: python-pkcs11 otherwise adds
# its default usage flags, some of which a module may refuse for the key class.
UNSET = {capability: DEFAULT for capability in ALL_CAPABILITIES}


def _pair_generation(name: str) -> str:
    if name.startswith(("CKM_ECDSA",)):
        return "CKM_EC_KEY_PAIR_GEN"
    if name == "CKM_EDDSA":
        return "CKM_EC_EDWARDS_KEY_PAIR_GEN"
    return "CKM_RSA_PKCS_KEY_PAIR_GEN"


def _signature_needs(name: str) -> Needs:
    return Needs(source=(_pair_generation(name), "C_GenerateKeyPair", "C_Sign"),
                 destination=("C_CreateObject", "C_Verify"))


def _encryption_needs(name: str) -> Needs:
    if name.startswith("CKM_RSA"):
        return Needs(source=("C_CreateObject", "C_Encrypt"),
                     destination=("CKM_RSA_PKCS_KEY_PAIR_GEN", "C_GenerateKeyPair", "C_Decrypt"))
    return Needs(source=("C_Encrypt",), destination=("C_Decrypt",), both=("C_CreateObject",))


def _wrap_needs(name: str) -> Needs:
    source = ("CKM_AES_KEY_GEN", "C_GenerateKey", "C_WrapKey")
    if name.startswith("CKM_RSA"):
        return Needs(source=(*source, "C_CreateObject"),
                     destination=("CKM_RSA_PKCS_KEY_PAIR_GEN", "C_GenerateKeyPair",
                                  "C_UnwrapKey"),
                     both=("CKM_AES_ECB", "C_Encrypt"))
    return Needs(source=source, destination=("C_UnwrapKey",),
                 both=("C_CreateObject", "CKM_AES_ECB", "C_Encrypt"))


def _private_wrap_needs(name: str) -> Needs:
    return Needs(source=("CKM_RSA_PKCS_KEY_PAIR_GEN", "C_GenerateKeyPair", "C_WrapKey"),
                 destination=("C_UnwrapKey", "CKM_SHA256_RSA_PKCS", "C_Sign"),
                 both=("C_CreateObject",))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    name = metafunc.definition.name
    if name == "test_signature_verifies_in_other_module":
        parametrize_routes(metafunc, SIGNATURES, _signature_needs)
    elif name == "test_ciphertext_decrypts_in_other_module":
        parametrize_routes(metafunc, ENCRYPTIONS, _encryption_needs)
    elif name == "test_wrapped_key_unwraps_in_other_module":
        parametrize_routes(metafunc, WRAPS, _wrap_needs, TEMPLATES)
    elif name == "test_wrapped_private_key_signs_in_other_module":
        parametrize_routes(metafunc, {n: ("key_sizes",) for n in AES_WRAPS[1:]},
                           _private_wrap_needs)


# ---- calls that fail the case with the module and the CKR ---------------------------------

def _call(side: Side, what: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return call(*args, **kwargs)
    except PKCS11Error as exc:
        pytest.fail(f"{side.id}: {what} must succeed: returned {returned(exc)}")


def _verifies(side: Side, key: Any, data: bytes, signature: bytes, name: str,
              param: Any) -> bool:
    try:
        return bool(key.verify(data, signature, mechanism=constant(name),
                               mechanism_param=param))
    except PKCS11Error as exc:
        pytest.fail(f"{side.id}: C_Verify({name}) must return CKR_OK, CKR_SIGNATURE_INVALID "
                    f"or CKR_SIGNATURE_LEN_RANGE: returned {returned(exc)}")


def _flipped(data: bytes) -> bytes:
    altered = bytearray(data)
    altered[len(altered) // 2] ^= 0x01
    return bytes(altered)


# ---- keys -------------------------------------------------------------------------------

def _key_pair(side: Side, name: str, variant: dict[str, Any]) -> tuple[Any, Any]:
    """(public, private) made in `side` for mechanism `name`, once per module."""
    with side.policy():
        if name.startswith("CKM_ECDSA"):
            return side.keys.ec(variant["curves"])  # type: ignore[no-any-return]
        if name == "CKM_EDDSA":
            return side.keys.edwards(variant["curves"])  # type: ignore[no-any-return]
        return side.keys.rsa(variant["key_sizes"])  # type: ignore[no-any-return]


def _copy_public(source: Side, destination: Side, public: Any, usage: Attribute) -> Any:
    """`public`, read from the source module attribute by attribute (modulus and exponent,
    or curve parameters and point, as the source encodes them), made a public key object
    in the destination; once per key and destination."""
    def make() -> Any:
        key_type = public[Attribute.KEY_TYPE]
        copied = ((Attribute.MODULUS, Attribute.PUBLIC_EXPONENT) if key_type == KeyType.RSA
                  else (Attribute.EC_PARAMS, Attribute.EC_POINT))
        template = {Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: key_type,
                    Attribute.TOKEN: keypolicy.on_token(), usage: True,
                    **{attribute: _call(source, f"C_GetAttributeValue({attribute.name})",
                                        public.__getitem__, attribute)
                       for attribute in copied}}
        return _call(destination, "C_CreateObject of a public key read from "
                     f"{source.id}", destination.session.create_object, template)
    return destination.once(("public", source.id, public.handle, usage), make)


def _shared_secret(source: Side, destination: Side, bits: int) -> tuple[Any, Any]:
    """The same AES key value created in both modules (C_CreateObject), for every use."""
    value = source.once(("shared value", destination.id, bits), lambda: os.urandom(bits // 8))

    def make(side: Side) -> Callable[[], Any]:
        template = {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES,
                    Attribute.VALUE: value, Attribute.TOKEN: keypolicy.on_token(),
                    Attribute.ENCRYPT: True, Attribute.DECRYPT: True, Attribute.WRAP: True,
                    Attribute.UNWRAP: True}
        return lambda: _call(side, f"C_CreateObject of a {bits}-bit AES key",
                             side.session.create_object, template)
    pair = tuple(side.once(("shared", source.id, destination.id, bits), make(side))
                 for side in (source, destination))
    return pair[0], pair[1]


# ---- signatures -------------------------------------------------------------------------

def _signed(name: str, variant: dict[str, Any]) -> tuple[bytes, Any]:
    """(what C_Sign is given, the mechanism parameter) for MESSAGE."""
    if name == "CKM_RSA_PKCS":
        return bytes.fromhex(DIGEST_INFO["sha256"]) + hash_of("sha256", MESSAGE), None
    if name == "CKM_RSA_PKCS_PSS":
        hash_name = variant["hashes"]
        return hash_of(hash_name, MESSAGE), pss_params(hash_name, variant["salt_lengths"])
    if name in RSA_PSS_HASHES:
        return MESSAGE, pss_params(RSA_PSS_HASHES[name], variant["salt_lengths"])
    if name == "CKM_ECDSA":
        return hash_of("sha256", MESSAGE), None
    if name == "CKM_EDDSA":
        return MESSAGE, None if variant["curves"] == "ed25519" else (False, None)
    return MESSAGE, None


def test_signature_verifies_in_other_module(sides: tuple[Side, Side], mechanism: str,
                                            variant: dict[str, Any]) -> None:
    """PKCS#11 v2.40 sections 5.11 (C_Sign), 5.12 (C_Verify), 4.8 (public key objects):
    a signature made in module A verifies in module B with A's public key, read from A
    (CKA_MODULUS and CKA_PUBLIC_EXPONENT, or CKA_EC_PARAMS and CKA_EC_POINT) and created
    in B as a public key object; the same signature with one bit flipped is refused."""
    source, destination = sides
    hash_name = variant.get("hashes") or RSA_PSS_HASHES.get(mechanism)
    if hash_name and "salt_lengths" in variant:
        em_len = (variant["key_sizes"] - 1 + 7) // 8
        if em_len < hash_len(hash_name) + variant["salt_lengths"] + 2:
            not_applicable(f"a {variant['salt_lengths']}-byte salt does not fit a "
                           f"{variant['key_sizes']}-bit key with {hash_name}")
    public, private = _key_pair(source, mechanism, variant)
    data, param = _signed(mechanism, variant)
    signature = _call(source, f"C_Sign({mechanism})", private.sign, data,
                      mechanism=constant(mechanism), mechanism_param=param)
    with destination.policy():
        imported = _copy_public(source, destination, public, Attribute.VERIFY)
    assert _verifies(destination, imported, data, signature, mechanism, param), (
        f"{destination.id}: C_Verify({mechanism}) must accept the signature made by "
        f"{source.id}: CKR_SIGNATURE_INVALID")
    assert not _verifies(destination, imported, data, _flipped(signature), mechanism, param), (
        f"{destination.id}: C_Verify({mechanism}) must refuse {source.id}'s signature with "
        "one bit flipped: returned CKR_OK")


# ---- ciphertexts ------------------------------------------------------------------------

class _CtrParams(ctypes.Structure):
    """CK_AES_CTR_PARAMS (v2.40 curr, AES with Counter): ulCounterBits, cb[16]."""

    _fields_ = [("ulCounterBits", ctypes.c_ulong), ("cb", ctypes.c_ubyte * 16)]


def _cipher_param(name: str, variant: dict[str, Any]) -> Any:
    if name in ("CKM_AES_CBC", "CKM_AES_CBC_PAD"):
        return IV
    if name == "CKM_AES_CTR":  # python-pkcs11 passes bytes through as pParameter
        return bytes(_CtrParams(128, (ctypes.c_ubyte * 16)(*IV)))
    if name == "CKM_AES_GCM":
        return GCMParams(GCM_IV, AAD, variant["tag_bits"])
    if name == "CKM_RSA_PKCS_OAEP":
        return oaep_param(variant["hashes"], LABEL if variant["labels"] else None)
    return None


def test_ciphertext_decrypts_in_other_module(sides: tuple[Side, Side], mechanism: str,
                                             variant: dict[str, Any]) -> None:
    """PKCS#11 v2.40 sections 5.8 (C_Encrypt) and 5.9 (C_Decrypt): data encrypted in module
    A decrypts in module B to the same bytes. RSA: B's key pair, its public key read from
    B and created in A; AES: the same key value created in both. An AES-GCM ciphertext
    with one bit flipped must not decrypt."""
    source, destination = sides
    param = _cipher_param(mechanism, variant)
    if mechanism.startswith("CKM_RSA"):
        public, private = _key_pair(destination, mechanism, variant)
        with source.policy():
            encrypting = _copy_public(destination, source, public, Attribute.ENCRYPT)
        k = variant["key_sizes"] // 8
        size = oaep_capacity(k, variant["hashes"]) if "hashes" in variant else k - 11
        if size < 1:
            not_applicable(f"no message fits OAEP with {variant['hashes']} and a "
                           f"{variant['key_sizes']}-bit key")
        plaintext, decrypting = os.urandom(min(size, 32)), private
    else:
        encrypting, decrypting = _shared_secret(source, destination, variant["key_sizes"])
        plaintext = os.urandom(64)
    ciphertext = _call(source, f"C_Encrypt({mechanism})", encrypting.encrypt, plaintext,
                       mechanism=constant(mechanism), mechanism_param=param)
    decrypted = _call(destination, f"C_Decrypt({mechanism}) of {source.id}'s ciphertext",
                      decrypting.decrypt, ciphertext, mechanism=constant(mechanism),
                      mechanism_param=param)
    assert decrypted == plaintext, (
        f"{destination.id}: C_Decrypt({mechanism}) of the ciphertext {source.id} made must "
        f"give the plaintext: {len(decrypted)} bytes that differ")
    if mechanism == "CKM_AES_GCM":
        try:
            forged = decrypting.decrypt(_flipped(ciphertext), mechanism=constant(mechanism),
                                        mechanism_param=param)
        except PKCS11Error:
            return
        pytest.fail(f"{destination.id}: C_Decrypt(CKM_AES_GCM) must refuse a ciphertext "
                    f"with one bit flipped: returned CKR_OK and {len(forged)} bytes")


# ---- key migration ----------------------------------------------------------------------

def _aes_target_bits(source: Side, destination: Side) -> int:
    """The largest AES key size A generates and both encrypt with (ECB)."""
    sizes = (set(source.vendor.claims["CKM_AES_KEY_GEN"].get("key_sizes", ()))
             & set(source.vendor.claims["CKM_AES_ECB"].get("key_sizes", ()))
             & set(destination.vendor.claims["CKM_AES_ECB"].get("key_sizes", ())))
    if not sizes:
        not_applicable(f"no AES key size {source.id} generates and both encrypt with")
    return int(max(sizes))


def _wrapping_pair(source: Side, destination: Side, mechanism: str,
                   variant: dict[str, Any]) -> tuple[Any, Any]:
    """(wrapping key in A, unwrapping key in B) for the mechanism."""
    if mechanism.startswith("CKM_RSA"):
        public, private = _key_pair(destination, mechanism, variant)
        with source.policy():
            return _copy_public(destination, source, public, Attribute.WRAP), private
    return _shared_secret(source, destination, variant["key_sizes"])


def test_wrapped_key_unwraps_in_other_module(sides: tuple[Side, Side], mechanism: str,
                                             variant: dict[str, Any]) -> None:
    """PKCS#11 v2.40 sections 5.14 (C_WrapKey, C_UnwrapKey) and 4.9 (CKA_SENSITIVE,
    CKA_EXTRACTABLE): an AES key generated in module A and wrapped there unwraps in module
    B into a key that encrypts a block to the same ciphertext as the original, with the
    CKA_SENSITIVE and CKA_EXTRACTABLE the unwrap template gives; when the template makes
    it readable, its CKA_VALUE equals the original's."""
    source, destination = sides
    sensitive = variant["sensitive"]
    bits = _aes_target_bits(source, destination)
    wrapping, unwrapping = _wrapping_pair(source, destination, mechanism, variant)
    param = _cipher_param(mechanism, variant)
    with source.policy():
        original = _call(source, f"C_GenerateKey(CKM_AES_KEY_GEN, {bits} bits)",
                         source.session.generate_key, KeyType.AES, bits,
                         store=keypolicy.on_token(), capabilities=MechanismFlag.ENCRYPT,
                         template={Attribute.SENSITIVE: sensitive, Attribute.EXTRACTABLE: True})
    made = [(source, original)]
    try:
        wrapped = _call(source, f"C_WrapKey({mechanism}) of a {bits}-bit AES key",
                        WrapMixin.wrap_key, wrapping, original, mechanism=constant(mechanism),
                        mechanism_param=param)
        with destination.policy():
            template = {**UNSET, Attribute.SENSITIVE: sensitive,
                        Attribute.EXTRACTABLE: not sensitive,
                        Attribute.TOKEN: keypolicy.on_token(), Attribute.ENCRYPT: True}
            migrated = _call(destination, f"C_UnwrapKey({mechanism}) of {source.id}'s "
                             f"wrapped {bits}-bit AES key", UnwrapMixin.unwrap_key, unwrapping,
                             ObjectClass.SECRET_KEY, KeyType.AES, wrapped,
                             mechanism=constant(mechanism), mechanism_param=param,
                             capabilities=0, template=template)
        made.append((destination, migrated))
        for attribute, wanted in ((Attribute.SENSITIVE, sensitive),
                                  (Attribute.EXTRACTABLE, not sensitive)):
            got = _call(destination, f"C_GetAttributeValue({attribute.name})",
                        migrated.__getitem__, attribute)
            assert got is wanted, (
                f"{destination.id}: {attribute.name} of the unwrapped key must be {wanted} as "
                f"the unwrap template says: got {got!r}")
        block = os.urandom(16)
        expected = _call(source, "C_Encrypt(CKM_AES_ECB)", original.encrypt, block,
                         mechanism=constant("CKM_AES_ECB"))
        got_block = _call(destination, "C_Encrypt(CKM_AES_ECB) with the unwrapped key",
                          migrated.encrypt, block, mechanism=constant("CKM_AES_ECB"))
        assert got_block == expected, (
            f"{destination.id}: the key unwrapped from {source.id}'s {mechanism} blob must "
            "encrypt like the original: a different AES-ECB ciphertext")
        if not sensitive:
            assert migrated[Attribute.VALUE] == original[Attribute.VALUE], (
                f"{destination.id}: CKA_VALUE of the unwrapped key must equal the original's "
                f"in {source.id}")
    finally:
        for side, key in reversed(made):
            _destroy(side, key)


def _destroy(side: Side, key: Any) -> None:
    try:
        key.destroy()
    except PKCS11Error as exc:
        pytest.fail(f"{side.id}: C_DestroyObject of a key the case made must succeed: "
                    f"returned {returned(exc)}")


def test_wrapped_private_key_signs_in_other_module(sides: tuple[Side, Side], mechanism: str,
                                                   variant: dict[str, Any]) -> None:
    """PKCS#11 v2.40 section 5.14 and v3.0 curr, AES Key Wrap with padding: an extractable
    RSA-2048 private key made in module A, wrapped there under an AES key both modules
    hold, unwraps in module B into a private key whose CKM_SHA256_RSA_PKCS signatures
    verify (with cryptography) against A's public key."""
    source, destination = sides
    if 2048 not in source.vendor.claims["CKM_RSA_PKCS_KEY_PAIR_GEN"].get("key_sizes", ()):
        not_applicable(f"{source.id} does not claim 2048-bit RSA key pairs")
    kek, unwrapping = _shared_secret(source, destination, variant["key_sizes"])
    ident = os.urandom(8)
    with source.policy():
        public, private = _call(
            source, "C_GenerateKeyPair(CKM_RSA_PKCS_KEY_PAIR_GEN, 2048 bits, extractable)",
            source.session.generate_keypair, KeyType.RSA, 2048, store=keypolicy.on_token(),
            capabilities=keypolicy.usages(MechanismFlag.SIGN | MechanismFlag.VERIFY),
            public_template={Attribute.ID: ident},
            private_template={Attribute.ID: ident, Attribute.SENSITIVE: True,
                              Attribute.EXTRACTABLE: True})
    made = [(source, private), (source, public)]
    try:
        try:
            wrapped = WrapMixin.wrap_key(kek, private, mechanism=constant(mechanism))
        except PKCS11Error as exc:
            if returned(exc) == "CKR_KEY_NOT_WRAPPABLE":  # a module may keep private keys in
                not_applicable(f"{source.id} does not wrap private keys with {mechanism} "
                               "(CKR_KEY_NOT_WRAPPABLE)")
            pytest.fail(f"{source.id}: C_WrapKey({mechanism}) of an extractable RSA private "
                        f"key must succeed: returned {returned(exc)}")
        with destination.policy():
            migrated = _call(destination, f"C_UnwrapKey({mechanism}) of {source.id}'s wrapped "
                             "RSA private key", UnwrapMixin.unwrap_key, unwrapping,
                             ObjectClass.PRIVATE_KEY, KeyType.RSA, wrapped,
                             mechanism=constant(mechanism), capabilities=0,
                             template={**UNSET, Attribute.TOKEN: keypolicy.on_token(),
                                       Attribute.SIGN: True, Attribute.SENSITIVE: True})
        made.append((destination, migrated))
        signature = _call(destination, "C_Sign(CKM_SHA256_RSA_PKCS) with the unwrapped key",
                          migrated.sign, MESSAGE, mechanism=constant("CKM_SHA256_RSA_PKCS"))
        try:
            as_cryptography(public).verify(signature, MESSAGE, padding.PKCS1v15(),
                                           hashes.SHA256())
        except InvalidSignature:
            pytest.fail(f"{destination.id}: a signature by the private key unwrapped from "
                        f"{source.id} must verify against {source.id}'s public key")
    finally:
        for side, key in reversed(made):
            _destroy(side, key)
