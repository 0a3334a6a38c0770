"""What each mechanism is for, as C_GetMechanismInfo's flags express it, and in which
unit its key sizes count.

One table for every place that judges mechanism information: the module honesty checks
(suites/mechanisms) and `pkcs11-conformance probe`, which flags suspicious mechanism
information while drafting a vendor file.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import raw as ck

# The v2.40 mechanism information flags that name a function (CK_MECHANISM_INFO, base
# §3.5). CKF_HW, CKF_EXTENSION, the CKF_EC_* capability flags and the 3.x message flags
# are not judged here.
FUNCTION_FLAGS: dict[str, int] = {
    "CKF_ENCRYPT": ck.CKF_ENCRYPT, "CKF_DECRYPT": ck.CKF_DECRYPT,
    "CKF_DIGEST": ck.CKF_DIGEST, "CKF_SIGN": ck.CKF_SIGN,
    "CKF_SIGN_RECOVER": ck.CKF_SIGN_RECOVER, "CKF_VERIFY": ck.CKF_VERIFY,
    "CKF_VERIFY_RECOVER": ck.CKF_VERIFY_RECOVER, "CKF_GENERATE": ck.CKF_GENERATE,
    "CKF_GENERATE_KEY_PAIR": ck.CKF_GENERATE_KEY_PAIR, "CKF_WRAP": ck.CKF_WRAP,
    "CKF_UNWRAP": ck.CKF_UNWRAP, "CKF_DERIVE": ck.CKF_DERIVE,
}
FUNCTION_MASK = sum(FUNCTION_FLAGS.values())
CRYPT = ck.CKF_ENCRYPT | ck.CKF_DECRYPT
SIGN_VERIFY = ck.CKF_SIGN | ck.CKF_VERIFY
RECOVER = ck.CKF_SIGN_RECOVER | ck.CKF_VERIFY_RECOVER
WRAP = ck.CKF_WRAP | ck.CKF_UNWRAP


@dataclass(frozen=True)
class Kind:
    """What a mechanism is for, as the flags of C_GetMechanismInfo express it."""

    what: str
    needs: tuple[int, ...]  # a claim implies every flag of at least one of these sets
    allows: int  # the function flags the spec's mechanisms-vs-functions tables allow


GENERATE = Kind("key or domain parameter generation", (ck.CKF_GENERATE,), ck.CKF_GENERATE)
KEY_PAIR = Kind("key pair generation", (ck.CKF_GENERATE_KEY_PAIR,), ck.CKF_GENERATE_KEY_PAIR)
DIGEST = Kind("digest", (ck.CKF_DIGEST,), ck.CKF_DIGEST)
SIGN = Kind("signature or MAC", (SIGN_VERIFY,), SIGN_VERIFY)
# Ciphers the spec also marks for wrapping: a claim implies encryption, not wrapping.
CIPHER = Kind("cipher", (CRYPT,), CRYPT | WRAP)
KEY_WRAP = Kind("key wrapping", (WRAP,), CRYPT | WRAP)
# CKM_RSA_PKCS and CKM_RSA_X_509 serve signatures and encryption; a claim implies one.
RSA_RAW = Kind("RSA signature and encryption", (SIGN_VERIFY, CRYPT),
               CRYPT | SIGN_VERIFY | RECOVER | WRAP)
DERIVE = Kind("key derivation", (ck.CKF_DERIVE,), ck.CKF_DERIVE)

HASHES = ("SHA1", "SHA224", "SHA256", "SHA384", "SHA512")
SHA2 = ("SHA224", "SHA256", "SHA384", "SHA512")
SHA3 = ("SHA3_224", "SHA3_256", "SHA3_384", "SHA3_512")

KINDS: dict[str, Kind] = {
    # PKCS#11 v2.40 curr, RSA
    "CKM_RSA_PKCS_KEY_PAIR_GEN": KEY_PAIR,
    "CKM_RSA_PKCS": RSA_RAW, "CKM_RSA_X_509": RSA_RAW,
    "CKM_RSA_PKCS_OAEP": CIPHER, "CKM_RSA_PKCS_PSS": SIGN,
    **{f"CKM_{h}_RSA_PKCS": SIGN for h in ("MD5", *HASHES)},
    **{f"CKM_{h}_RSA_PKCS_PSS": SIGN for h in HASHES},
    # DSA
    "CKM_DSA_KEY_PAIR_GEN": KEY_PAIR, "CKM_DSA_PARAMETER_GEN": GENERATE, "CKM_DSA": SIGN,
    **{f"CKM_DSA_{h}": SIGN for h in HASHES},
    # Elliptic curves (Edwards curves: v3.0 curr)
    "CKM_EC_KEY_PAIR_GEN": KEY_PAIR, "CKM_EC_EDWARDS_KEY_PAIR_GEN": KEY_PAIR,
    "CKM_ECDSA": SIGN, **{f"CKM_ECDSA_{h}": SIGN for h in HASHES}, "CKM_EDDSA": SIGN,
    "CKM_ECDH1_DERIVE": DERIVE, "CKM_ECDH1_COFACTOR_DERIVE": DERIVE,
    # Diffie-Hellman
    "CKM_DH_PKCS_KEY_PAIR_GEN": KEY_PAIR, "CKM_DH_PKCS_PARAMETER_GEN": GENERATE,
    "CKM_DH_PKCS_DERIVE": DERIVE,
    # AES (CKM_AES_KEY_WRAP_KWP: v3.0 curr)
    "CKM_AES_KEY_GEN": GENERATE,
    **{f"CKM_AES_{m}": CIPHER for m in ("ECB", "CBC", "CBC_PAD", "CTR", "GCM", "CCM")},
    "CKM_AES_CMAC": SIGN, "CKM_AES_CMAC_GENERAL": SIGN,
    "CKM_AES_KEY_WRAP": KEY_WRAP, "CKM_AES_KEY_WRAP_PAD": KEY_WRAP,
    "CKM_AES_KEY_WRAP_KWP": KEY_WRAP,
    "CKM_AES_ECB_ENCRYPT_DATA": DERIVE, "CKM_AES_CBC_ENCRYPT_DATA": DERIVE,
    # DES and triple DES
    "CKM_DES_KEY_GEN": GENERATE, "CKM_DES2_KEY_GEN": GENERATE, "CKM_DES3_KEY_GEN": GENERATE,
    **{f"CKM_{c}_{m}": CIPHER for c in ("DES", "DES3") for m in ("ECB", "CBC", "CBC_PAD")},
    "CKM_DES3_CMAC": SIGN,
    **{f"CKM_{c}_{m}_ENCRYPT_DATA": DERIVE for c in ("DES", "DES3") for m in ("ECB", "CBC")},
    # Generic secret keys, digests and HMAC
    "CKM_GENERIC_SECRET_KEY_GEN": GENERATE,
    **{f"CKM_{h}": DIGEST for h in ("MD5", "SHA_1", *SHA2, *SHA3)},
    **{f"CKM_{h}_HMAC": SIGN for h in ("MD5", "SHA_1", *SHA2, *SHA3)},
}

# Mechanisms whose section says in which unit ulMinKeySize and ulMaxKeySize count:
# RSA modulus, DSA and Diffie-Hellman prime and generic secret key sizes in bits, AES key
# sizes in bytes. Left out because the spec gives no unit or says the fields are not
# used: DES and triple DES, HMAC, the *_ENCRYPT_DATA derivations, and the AES modes
# whose sections do not state it (CTR, GCM, CCM, key wrap).
BITS, BYTES = "bits", "bytes"
KEY_SIZE_UNITS: dict[str, str] = {
    **{name: BITS for name in KINDS if "RSA" in name or name.startswith(("CKM_DSA", "CKM_DH"))},
    "CKM_GENERIC_SECRET_KEY_GEN": BITS,
    **{f"CKM_AES_{m}": BYTES for m in ("KEY_GEN", "ECB", "CBC", "CBC_PAD", "CMAC",
                                       "CMAC_GENERAL")},
}
# Elliptic curve mechanisms count field sizes in bits. For the Edwards and Montgomery
# curves the field sizes are 255 and 448 bits; several modules report the key sizes
# 256 and 456 instead, which is accepted too.
CURVE_MECHANISMS = sorted(
    name for name in KINDS if name.startswith(("CKM_EC", "CKM_EDDSA"))
)
CURVE_BITS: dict[str, tuple[int, ...]] = {
    "brainpoolP256r1": (256,), "brainpoolP384r1": (384,), "brainpoolP512r1": (512,),
    "ed25519": (255, 256), "ed448": (448, 456), "secp192r1": (192,), "secp224r1": (224,),
    "secp256k1": (256,), "secp256r1": (256,), "secp384r1": (384,), "secp521r1": (521,),
    "x25519": (255, 256), "x448": (448,),
}
SIZED = sorted({*KEY_SIZE_UNITS, *CURVE_MECHANISMS})

# The other CK_MECHANISM_INFO flag bits (v2.40 base §3.5; v3.0 §3.6 adds the message
# and curve-name flags and CKF_FIND_OBJECTS, v3.2 the encapsulation flags).
EC_CAPABILITIES = (ck.CKF_EC_F_P | ck.CKF_EC_F_2M | ck.CKF_EC_ECPARAMETERS | ck.CKF_EC_OID
                   | ck.CKF_EC_UNCOMPRESS | ck.CKF_EC_COMPRESS | ck.CKF_EC_CURVENAME)
MESSAGE_CRYPT = ck.CKF_MESSAGE_ENCRYPT | ck.CKF_MESSAGE_DECRYPT | ck.CKF_MULTI_MESSAGE
MESSAGE_SIGN = ck.CKF_MESSAGE_SIGN | ck.CKF_MESSAGE_VERIFY | ck.CKF_MULTI_MESSAGE
DEFINED_FLAGS = (ck.CKF_HW | MESSAGE_CRYPT | MESSAGE_SIGN | ck.CKF_FIND_OBJECTS | FUNCTION_MASK
                 | EC_CAPABILITIES | ck.CKF_ENCAPSULATE | ck.CKF_DECAPSULATE
                 | ck.CKF_EXTENSION)


def defined_flags(name: str) -> int:
    """The flag bits C_GetMechanismInfo may set for mechanism `name`: for one of KINDS,
    the function flags its kind allows, CKF_HW, CKF_EXTENSION, the message flags of the
    functions it serves and, for an elliptic curve mechanism, the curve capability flags;
    for any other mechanism every bit a PKCS#11 version defines."""
    kind = KINDS.get(name)
    if kind is None:
        return DEFINED_FLAGS
    flags = kind.allows | ck.CKF_HW | ck.CKF_EXTENSION
    if kind.allows & CRYPT:
        flags |= MESSAGE_CRYPT
    if kind.allows & SIGN_VERIFY:
        flags |= MESSAGE_SIGN
    if name in CURVE_MECHANISMS:
        flags |= EC_CAPABILITIES
    return flags


def flag_names(flags: int) -> str:
    names = [name for name, bit in FUNCTION_FLAGS.items() if flags & bit]
    return "|".join(names) or "no function flag"
