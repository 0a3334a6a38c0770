"""Spec names (CKM_*, C_*, CKO_*) and the one place they become binding constants.

People read and write the names as the PKCS#11 specification spells them; only this
module knows how python-pkcs11 spells them.
"""

from __future__ import annotations

from pkcs11.constants import Attribute, ObjectClass
from pkcs11.mechanisms import Mechanism

# python-pkcs11 prefixes deprecated mechanisms with "_" (Mechanism._DES_CBC).
MECHANISMS: dict[str, Mechanism] = {"CKM_" + m.name.lstrip("_"): m for m in Mechanism}

OBJECT_CLASSES: frozenset[str] = frozenset(
    "CKO_" + c.name.lstrip("_") for c in ObjectClass if not c.name.startswith("_")
)

ATTRIBUTES: frozenset[str] = frozenset("CKA_" + a.name.lstrip("_") for a in Attribute)

# PKCS#11 v2.40 §5 and v3.0 §5: every function of the CK_FUNCTION_LIST(_3_0).
FUNCTIONS: frozenset[str] = frozenset(
    """
    C_Initialize C_Finalize C_GetInfo C_GetFunctionList C_GetSlotList C_GetSlotInfo
    C_GetTokenInfo C_GetMechanismList C_GetMechanismInfo C_InitToken C_InitPIN C_SetPIN
    C_OpenSession C_CloseSession C_CloseAllSessions C_GetSessionInfo C_GetOperationState
    C_SetOperationState C_Login C_Logout C_CreateObject C_CopyObject C_DestroyObject
    C_GetObjectSize C_GetAttributeValue C_SetAttributeValue C_FindObjectsInit C_FindObjects
    C_FindObjectsFinal C_EncryptInit C_Encrypt C_EncryptUpdate C_EncryptFinal C_DecryptInit
    C_Decrypt C_DecryptUpdate C_DecryptFinal C_DigestInit C_Digest C_DigestUpdate C_DigestKey
    C_DigestFinal C_SignInit C_Sign C_SignUpdate C_SignFinal C_SignRecoverInit C_SignRecover
    C_VerifyInit C_Verify C_VerifyUpdate C_VerifyFinal C_VerifyRecoverInit C_VerifyRecover
    C_DigestEncryptUpdate C_DecryptDigestUpdate C_SignEncryptUpdate C_DecryptVerifyUpdate
    C_GenerateKey C_GenerateKeyPair C_WrapKey C_UnwrapKey C_DeriveKey C_SeedRandom
    C_GenerateRandom C_GetFunctionStatus C_CancelFunction C_WaitForSlotEvent
    C_GetInterfaceList C_GetInterface C_LoginUser C_SessionCancel C_MessageEncryptInit
    C_EncryptMessage C_EncryptMessageBegin C_EncryptMessageNext C_MessageEncryptFinal
    C_MessageDecryptInit C_DecryptMessage C_DecryptMessageBegin C_DecryptMessageNext
    C_MessageDecryptFinal C_MessageSignInit C_SignMessage C_SignMessageBegin
    C_SignMessageNext C_MessageSignFinal C_MessageVerifyInit C_VerifyMessage
    C_VerifyMessageBegin C_VerifyMessageNext C_MessageVerifyFinal
    """.split()  # noqa: SIM905 - one name per word reads better than a 90-item list
)

# Parameter variants a claim or requirement may list, with the type of one value.
CURVES: tuple[str, ...] = (
    "brainpoolP256r1", "brainpoolP384r1", "brainpoolP512r1", "ed25519", "ed448",
    "secp192r1", "secp224r1", "secp256k1", "secp256r1", "secp384r1", "secp521r1", "x25519",
    "x448",
)
HASHES: tuple[str, ...] = (
    "sha1", "sha224", "sha256", "sha3-224", "sha3-256", "sha3-384", "sha3-512",
    "sha384", "sha512",
)
PARAMETERS: dict[str, type] = {
    "curves": str,
    "hashes": str,
    "key_sizes": int,
    "labels": bool,
    "public_exponents": int,
    "salt_lengths": int,
    "tag_bits": int,
}
ALLOWED_VALUES: dict[str, tuple[str, ...]] = {"curves": CURVES, "hashes": HASHES}


def mechanism(name: str) -> Mechanism:
    """The binding constant for a spec mechanism name such as "CKM_SHA256"."""
    return MECHANISMS[name]


_BY_VALUE: dict[int, str] = {int(m): name for name, m in MECHANISMS.items()}
VENDOR_DEFINED = 0x80000000


def mechanism_name(value: int) -> str:
    """The spec name of a mechanism type as C_GetMechanismList returns it; one the
    binding has no name for is written as CKM_VENDOR_DEFINED+0x... or in hex."""
    number = int(value)
    if number in _BY_VALUE and number != VENDOR_DEFINED:
        return _BY_VALUE[number]
    if number >= VENDOR_DEFINED:
        return f"CKM_VENDOR_DEFINED+0x{number - VENDOR_DEFINED:X}"
    return f"0x{number:08X}"
