"""Token objects <-> cryptography objects, and the keys the suites share.

Every result an independent implementation can check is checked with `cryptography`,
in both directions: this module turns module keys into cryptography keys and back.
"""

from __future__ import annotations

import hashlib
import os
from functools import cache
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from pkcs11 import MGF, Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass

from . import keypolicy

# Curve names (as claims spell them) -> cryptography curve classes.
EC_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "brainpoolP256r1": ec.BrainpoolP256R1, "brainpoolP384r1": ec.BrainpoolP384R1,
    "brainpoolP512r1": ec.BrainpoolP512R1, "secp192r1": ec.SECP192R1,
    "secp224r1": ec.SECP224R1, "secp256k1": ec.SECP256K1, "secp256r1": ec.SECP256R1,
    "secp384r1": ec.SECP384R1, "secp521r1": ec.SECP521R1,
}
# Named-curve object identifiers (SEC 2, RFC 5639, RFC 8410): CKA_EC_PARAMS holds one.
CURVE_OIDS = {
    "brainpoolP256r1": "1.3.36.3.3.2.8.1.1.7", "brainpoolP384r1": "1.3.36.3.3.2.8.1.1.11",
    "brainpoolP512r1": "1.3.36.3.3.2.8.1.1.13", "ed25519": "1.3.101.112",
    "ed448": "1.3.101.113", "secp192r1": "1.2.840.10045.3.1.1", "secp224r1": "1.3.132.0.33",
    "secp256k1": "1.3.132.0.10", "secp256r1": "1.2.840.10045.3.1.7",
    "secp384r1": "1.3.132.0.34", "secp521r1": "1.3.132.0.35", "x25519": "1.3.101.110",
    "x448": "1.3.101.111",
}

HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1, "sha224": hashes.SHA224, "sha256": hashes.SHA256,
    "sha384": hashes.SHA384, "sha512": hashes.SHA512, "sha3-224": hashes.SHA3_224,
    "sha3-256": hashes.SHA3_256, "sha3-384": hashes.SHA3_384, "sha3-512": hashes.SHA3_512,
}
# CKM_SHA* digest mechanisms for the hash names, as PSS/OAEP parameters name them.
HASH_MECHANISMS = {
    "sha1": Mechanism.SHA_1, "sha224": Mechanism.SHA224, "sha256": Mechanism.SHA256,
    "sha384": Mechanism.SHA384, "sha512": Mechanism.SHA512,
    "sha3-224": Mechanism.SHA3_224, "sha3-256": Mechanism.SHA3_256,
    "sha3-384": Mechanism.SHA3_384, "sha3-512": Mechanism.SHA3_512,
}

# Session objects usable for every operation of their kind; tests that are about usage
# restrictions make their own keys.
ALL_PUBLIC = (MechanismFlag.VERIFY | MechanismFlag.ENCRYPT | MechanismFlag.WRAP)
# Only the uses each key type has: NSS softokn refuses an RSA private key with CKA_DERIVE.
RSA_PRIVATE = MechanismFlag.SIGN | MechanismFlag.DECRYPT | MechanismFlag.UNWRAP
EC_PRIVATE = MechanismFlag.SIGN | MechanismFlag.DERIVE
ALL_SECRET = (MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT | MechanismFlag.SIGN
              | MechanismFlag.VERIFY | MechanismFlag.WRAP | MechanismFlag.UNWRAP)


def field_bytes(curve: str) -> int:
    """Size in bytes of one ECDSA signature half (r or s) on this curve."""
    return (EC_CURVES[curve]().key_size + 7) // 8


def ec_params(curve: str) -> bytes:
    """DER CKA_EC_PARAMS: the curve's OBJECT IDENTIFIER (the namedCurve choice)."""
    arcs = [int(a) for a in CURVE_OIDS[curve].split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.append(0x80 | (arc & 0x7F))
        body += bytes(reversed(chunk))
    return bytes([0x06, len(body)]) + bytes(body)


def as_cryptography(public: Any) -> Any:
    """A module public key object as a cryptography public key."""
    key_type = public[Attribute.KEY_TYPE]
    if key_type == KeyType.RSA:
        return rsa.RSAPublicNumbers(int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"),
                                    int.from_bytes(public[Attribute.MODULUS], "big")
                                    ).public_key()
    point = _octet_string(public[Attribute.EC_POINT])
    if key_type == KeyType.EC:
        curve = curve_of(public[Attribute.EC_PARAMS])
        return ec.EllipticCurvePublicKey.from_encoded_point(EC_CURVES[curve](), point)
    if key_type == KeyType.EC_EDWARDS:
        if len(point) == 32:
            return ed25519.Ed25519PublicKey.from_public_bytes(point)
        return ed448.Ed448PublicKey.from_public_bytes(point)
    raise ValueError(f"no cryptography counterpart for key type {key_type!r}")


def curve_of(params: bytes) -> str:
    """The curve name whose CKA_EC_PARAMS encoding equals `params`."""
    for name in CURVE_OIDS:
        if ec_params(name) == params:
            return name
    raise ValueError(f"CKA_EC_PARAMS {params.hex()} is not a known named curve")


def _octet_string(value: bytes) -> bytes:
    """CKA_EC_POINT is a DER OCTET STRING (v2.40 §2.3.3); unwrap it."""
    if len(value) >= 2 and value[0] == 0x04:
        length, offset = value[1], 2
        if length & 0x80:
            size = length & 0x7F
            length, offset = int.from_bytes(value[2:2 + size], "big"), 2 + size
        if offset + length == len(value):
            return value[offset:]
    raise ValueError(f"CKA_EC_POINT is not a DER OCTET STRING: {value[:8].hex()}...")


def import_public(session: Any, public: Any, capabilities: MechanismFlag = MechanismFlag.VERIFY
                  ) -> Any:
    """A cryptography public key as a module session object (for the mirror direction:
    cryptography signs or encrypts, the module verifies or decrypts)."""
    flags = {Attribute.VERIFY: bool(capabilities & MechanismFlag.VERIFY),
             Attribute.ENCRYPT: bool(capabilities & MechanismFlag.ENCRYPT),
             Attribute.WRAP: bool(capabilities & MechanismFlag.WRAP)}
    template: dict[Attribute, Any] = {Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                                      Attribute.TOKEN: keypolicy.on_token(), **flags}
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        template.update({Attribute.KEY_TYPE: KeyType.RSA,
                         Attribute.MODULUS: big(numbers.n),
                         Attribute.PUBLIC_EXPONENT: big(numbers.e)})
    elif isinstance(public, ec.EllipticCurvePublicKey):
        point = public.public_bytes(serialization.Encoding.X962,
                                    serialization.PublicFormat.UncompressedPoint)
        template.update({Attribute.KEY_TYPE: KeyType.EC,
                         Attribute.EC_PARAMS: ec_params(public.curve.name),
                         Attribute.EC_POINT: _der_octet_string(point)})
    else:
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        curve = "ed25519" if isinstance(public, ed25519.Ed25519PublicKey) else "ed448"
        template.update({Attribute.KEY_TYPE: KeyType.EC_EDWARDS,
                         Attribute.EC_PARAMS: ec_params(curve),
                         Attribute.EC_POINT: _der_octet_string(raw)})
    return session.create_object(template)


def big(value: int) -> bytes:
    """A non-negative integer as the shortest big-endian byte string (at least one byte),
    as CKA_MODULUS, CKA_PUBLIC_EXPONENT and the other big integer attributes hold it."""
    return value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")


def der_integer(value: int) -> bytes:
    """A non-negative integer as DER (CKA_SERIAL_NUMBER of a certificate holds one)."""
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return bytes([0x02, len(body)]) + body


def _der_octet_string(data: bytes) -> bytes:
    if len(data) < 0x80:
        return bytes([0x04, len(data)]) + data
    size = (len(data).bit_length() + 7) // 8
    return bytes([0x04, 0x80 | size]) + len(data).to_bytes(size, "big") + data


@cache
def rsa_private(bits: int) -> rsa.RSAPrivateKey:
    """A cryptography RSA private key of `bits` bits (public exponent 65537), made once per
    process."""
    return rsa.generate_private_key(65537, bits)


# ---- RSA-OAEP (RFC 8017 §7.1) -------------------------------------------------------------
# cryptography does OAEP with SHA-1 and SHA-2 only; for SHA-3 the encoding is done here
# with hashlib over cryptography's raw RSA numbers.

# MGF1 with the same hash (CK_RSA_PKCS_MGF_TYPE), for the PSS and OAEP parameters.
MGF1 = {name: MGF[name.upper().replace("-", "_")] for name in HASH_MECHANISMS}
# DER DigestInfo prefixes (RFC 8017 §9.2, note 1): CKM_RSA_PKCS signs DigestInfo as given.
DIGEST_INFO = {
    "sha1": "3021300906052b0e03021a05000414",
    "sha224": "302d300d06096086480165030402040500041c",
    "sha256": "3031300d060960864801650304020105000420",
    "sha384": "3041300d060960864801650304020205000430",
    "sha512": "3051300d060960864801650304020305000440",
}


def pss_params(hash_name: str, salt_length: int) -> tuple[Mechanism, MGF, int]:
    """CK_RSA_PKCS_PSS_PARAMS: hashAlg, MGF1 with the same hash, sLen."""
    return (HASH_MECHANISMS[hash_name], MGF1[hash_name], salt_length)


def hash_len(hash_name: str) -> int:
    """hLen: the output size in bytes of the hash."""
    return HASHES[hash_name]().digest_size


def oaep_capacity(k: int, hash_name: str) -> int:
    """The longest OAEP message for a k-byte modulus (RFC 8017 §7.1.1: k - 2hLen - 2)."""
    return k - 2 * hash_len(hash_name) - 2


def oaep_param(hash_name: str, label: bytes | None = None
               ) -> tuple[Mechanism, MGF, bytes | None]:
    """(hashAlg, mgf, source data) for CK_RSA_PKCS_OAEP_PARAMS, MGF1 over the same hash."""
    return (HASH_MECHANISMS[hash_name], MGF1[hash_name], label)


def oaep_encrypt(public: rsa.RSAPublicKey, message: bytes, hash_name: str,
                 label: bytes = b"") -> bytes:
    """RSAES-OAEP-ENCRYPT with MGF1 over the same hash."""
    if hash_name.startswith("sha3"):
        return _rfc8017_encrypt(public, message, hash_name, label)
    return public.encrypt(message, _cryptography_oaep(hash_name, label))


def oaep_decrypt(private: rsa.RSAPrivateKey, ciphertext: bytes, hash_name: str,
                 label: bytes = b"") -> bytes:
    """RSAES-OAEP-DECRYPT with MGF1 over the same hash; ValueError when it does not decode."""
    if hash_name.startswith("sha3"):
        return _rfc8017_decrypt(private, ciphertext, hash_name, label)
    return private.decrypt(ciphertext, _cryptography_oaep(hash_name, label))


def _cryptography_oaep(hash_name: str, label: bytes) -> padding.OAEP:
    algorithm = HASHES[hash_name]()
    return padding.OAEP(padding.MGF1(algorithm), algorithm, label or None)


def hash_of(hash_name: str, data: bytes) -> bytes:
    """The hash value of `data` (hashlib: SHA-1, SHA-2 and SHA-3)."""
    return hashlib.new(hash_name.replace("-", "_"), data).digest()


def _mgf1(hash_name: str, seed: bytes, length: int) -> bytes:
    out, counter = b"", 0
    while len(out) < length:
        out += hash_of(hash_name, seed + counter.to_bytes(4, "big"))
        counter += 1
    return out[:length]


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _rfc8017_encrypt(public: rsa.RSAPublicKey, message: bytes, hash_name: str,
                     label: bytes) -> bytes:
    numbers, h_len = public.public_numbers(), hash_len(hash_name)
    k = (numbers.n.bit_length() + 7) // 8
    db = (hash_of(hash_name, label) + bytes(k - len(message) - 2 * h_len - 2) + b"\x01"
          + message)
    seed = os.urandom(h_len)
    masked_db = _xor(db, _mgf1(hash_name, seed, k - h_len - 1))
    masked_seed = _xor(seed, _mgf1(hash_name, masked_db, h_len))
    encoded = int.from_bytes(b"\0" + masked_seed + masked_db, "big")
    return pow(encoded, numbers.e, numbers.n).to_bytes(k, "big")


def _rfc8017_decrypt(private: rsa.RSAPrivateKey, ciphertext: bytes, hash_name: str,
                     label: bytes) -> bytes:
    numbers, h_len = private.private_numbers(), hash_len(hash_name)
    n = numbers.public_numbers.n
    k = (n.bit_length() + 7) // 8
    if len(ciphertext) != k or int.from_bytes(ciphertext, "big") >= n:
        raise ValueError("ciphertext length or value out of range")
    encoded = pow(int.from_bytes(ciphertext, "big"), numbers.d, n).to_bytes(k, "big")
    masked_seed, masked_db = encoded[1:1 + h_len], encoded[1 + h_len:]
    seed = _xor(masked_seed, _mgf1(hash_name, masked_db, h_len))
    db = _xor(masked_db, _mgf1(hash_name, seed, k - h_len - 1))
    rest = db[h_len:]
    start = rest.find(b"\x01")
    if (encoded[0] != 0 or db[:h_len] != hash_of(hash_name, label) or start < 0
            or rest[:start].strip(b"\0")):
        raise ValueError("decoding error")
    return rest[start + 1:]


class Keys:
    """Keys generated once per worker and reused by tests that are not about key
    generation. They are session objects (CKA_TOKEN false), so nothing stays on the token,
    unless the vendor's key policy says the module makes keys only on the token."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self._cache: dict[tuple[Any, ...], Any] = {}

    def _once(self, key: tuple[Any, ...], make: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def rsa(self, bits: int, exponent: int = 65537) -> Any:
        """(public, private) RSA key pair of `bits` bits, with a CKA_ID of its own."""
        def make() -> Any:
            # Unique: keys.token_objects leaves earlier generations' keys on the token.
            ident = f"conformance-rsa-{bits}-{exponent}-{os.urandom(4).hex()}".encode()
            return self.session.generate_keypair(
                KeyType.RSA, bits, store=keypolicy.on_token(),
                capabilities=keypolicy.usages(ALL_PUBLIC | RSA_PRIVATE),
                public_template={Attribute.PUBLIC_EXPONENT: big(exponent), Attribute.ID: ident},
                private_template={Attribute.ID: ident})
        return self._once(("rsa", bits, exponent), make)

    @staticmethod
    def on(session: Any, key: Any) -> Any:
        """The same key object seen through another session (session objects are visible
        to every session of the application), found by its CKA_ID and class; for tests that
        provoke errors on an own session so a module that leaves the operation active
        cannot disturb the shared one."""
        found = list(session.get_objects({Attribute.ID: key[Attribute.ID],
                                          Attribute.CLASS: key[Attribute.CLASS]}))
        if len(found) != 1:
            raise LookupError(f"{len(found)} objects with this key's CKA_ID and class")
        return found[0]

    def ec(self, curve: str) -> Any:
        """(public, private) EC key pair on a named Weierstrass curve."""
        def make() -> Any:
            params = self.session.create_domain_parameters(
                KeyType.EC, {Attribute.EC_PARAMS: ec_params(curve)}, local=True)
            ident = f"conformance-ec-{curve}-{os.urandom(4).hex()}".encode()
            return params.generate_keypair(
                store=keypolicy.on_token(),
                capabilities=keypolicy.usages(MechanismFlag.VERIFY | EC_PRIVATE),
                public_template={Attribute.ID: ident}, private_template={Attribute.ID: ident})
        return self._once(("ec", curve), make)

    def edwards(self, curve: str) -> Any:
        """(public, private) Edwards key pair (ed25519 or ed448)."""
        def make() -> Any:
            params = self.session.create_domain_parameters(
                KeyType.EC_EDWARDS, {Attribute.EC_PARAMS: ec_params(curve)}, local=True)
            ident = f"conformance-ed-{curve}-{os.urandom(4).hex()}".encode()
            return params.generate_keypair(
                store=keypolicy.on_token(),
                capabilities=keypolicy.usages(MechanismFlag.VERIFY | MechanismFlag.SIGN),
                mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
                public_template={Attribute.ID: ident}, private_template={Attribute.ID: ident})
        return self._once(("edwards", curve), make)

    def secret(self, key_type: KeyType, bits: int, extractable: bool = True) -> Any:
        """A secret key (AES, GENERIC_SECRET, ...) of `bits` bits, extractable by default
        so its value can be compared with cryptography's result."""
        return self._once(("secret", key_type, bits, extractable), lambda: (
            self.session.generate_key(
                key_type, bits, store=keypolicy.on_token(), capabilities=ALL_SECRET,
                template={Attribute.SENSITIVE: not extractable,
                          Attribute.EXTRACTABLE: extractable})))
