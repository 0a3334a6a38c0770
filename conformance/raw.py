"""A small ctypes layer over a PKCS#11 module's CK_FUNCTION_LIST, for exact checks.

Why this exists: python-pkcs11, the suite's main binding, is fine for readable
positive-path tests but cannot express several things a conformance suite must check:

- it hides return codes: about 70 CKR values map to exception classes and the rest
  (all PKCS#11 3.x codes among them) arrive as "Unmapped error code", so "the module
  returned exactly CKR_X" cannot be asserted through it;
- it does not wrap C_GetSessionInfo, C_InitToken, C_GetObjectSize,
  C_Get/SetOperationState or C_Sign/VerifyRecover;
- it always passes NULL to C_Initialize, so CKF_OS_LOCKING_OK and a pReserved
  configuration string (which NSS softokn needs) cannot be given;
- it never passes a too-small buffer, a NULL pointer or a forged handle, which are
  exactly the cases where modules differ.

This module calls the function list directly, in pure ctypes (no compiled code), and
reports raw CK_RV values. It loads the module itself and calls C_Initialize itself, so
it must run in its own process: never load the same PKCS#11 module through this layer
and python-pkcs11 in one process.

Struct layouts follow the PKCS#11 headers: CK_ULONG is the C ``unsigned long``,
CK_VERSION is two CK_BYTEs, and structures use the platform's natural alignment on
Unix (no packing pragma) and 1-byte packing on Windows, as the headers prescribe.
The function list is laid out in the order of the v2.40 header; a 3.x module's
CK_FUNCTION_LIST_3_0 begins with the same 68 entries, so only those are used here.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
from ctypes import (
    POINTER,
    Structure,
    byref,
    c_ubyte,
    c_ulong,
    c_void_p,
    cast,
    create_string_buffer,
)
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CKR",
    "CKRError",
    "Info",
    "MechanismInfo",
    "Module",
    "ModuleLoadError",
    "NullFunctionError",
    "SessionInfo",
    "TokenInfo",
    "ckr_name",
]

# --------------------------------------------------------------------------------------
# Return values (PKCS#11 v2.40 base spec §5.1 / pkcs11t.h; v3.0, v3.1 and v3.2 additions)
# --------------------------------------------------------------------------------------

CKR: dict[int, str] = {
    0x00000000: "CKR_OK",
    0x00000001: "CKR_CANCEL",
    0x00000002: "CKR_HOST_MEMORY",
    0x00000003: "CKR_SLOT_ID_INVALID",
    0x00000005: "CKR_GENERAL_ERROR",
    0x00000006: "CKR_FUNCTION_FAILED",
    0x00000007: "CKR_ARGUMENTS_BAD",
    0x00000008: "CKR_NO_EVENT",
    0x00000009: "CKR_NEED_TO_CREATE_THREADS",
    0x0000000A: "CKR_CANT_LOCK",
    0x00000010: "CKR_ATTRIBUTE_READ_ONLY",
    0x00000011: "CKR_ATTRIBUTE_SENSITIVE",
    0x00000012: "CKR_ATTRIBUTE_TYPE_INVALID",
    0x00000013: "CKR_ATTRIBUTE_VALUE_INVALID",
    0x0000001B: "CKR_ACTION_PROHIBITED",
    0x00000020: "CKR_DATA_INVALID",
    0x00000021: "CKR_DATA_LEN_RANGE",
    0x00000030: "CKR_DEVICE_ERROR",
    0x00000031: "CKR_DEVICE_MEMORY",
    0x00000032: "CKR_DEVICE_REMOVED",
    0x00000040: "CKR_ENCRYPTED_DATA_INVALID",
    0x00000041: "CKR_ENCRYPTED_DATA_LEN_RANGE",
    0x00000042: "CKR_AEAD_DECRYPT_FAILED",  # v3.2
    0x00000050: "CKR_FUNCTION_CANCELED",
    0x00000051: "CKR_FUNCTION_NOT_PARALLEL",
    0x00000054: "CKR_FUNCTION_NOT_SUPPORTED",
    0x00000060: "CKR_KEY_HANDLE_INVALID",
    0x00000062: "CKR_KEY_SIZE_RANGE",
    0x00000063: "CKR_KEY_TYPE_INCONSISTENT",
    0x00000064: "CKR_KEY_NOT_NEEDED",
    0x00000065: "CKR_KEY_CHANGED",
    0x00000066: "CKR_KEY_NEEDED",
    0x00000067: "CKR_KEY_INDIGESTIBLE",
    0x00000068: "CKR_KEY_FUNCTION_NOT_PERMITTED",
    0x00000069: "CKR_KEY_NOT_WRAPPABLE",
    0x0000006A: "CKR_KEY_UNEXTRACTABLE",
    0x00000070: "CKR_MECHANISM_INVALID",
    0x00000071: "CKR_MECHANISM_PARAM_INVALID",
    0x00000082: "CKR_OBJECT_HANDLE_INVALID",
    0x00000090: "CKR_OPERATION_ACTIVE",
    0x00000091: "CKR_OPERATION_NOT_INITIALIZED",
    0x000000A0: "CKR_PIN_INCORRECT",
    0x000000A1: "CKR_PIN_INVALID",
    0x000000A2: "CKR_PIN_LEN_RANGE",
    0x000000A3: "CKR_PIN_EXPIRED",
    0x000000A4: "CKR_PIN_LOCKED",
    0x000000B0: "CKR_SESSION_CLOSED",
    0x000000B1: "CKR_SESSION_COUNT",
    0x000000B3: "CKR_SESSION_HANDLE_INVALID",
    0x000000B4: "CKR_SESSION_PARALLEL_NOT_SUPPORTED",
    0x000000B5: "CKR_SESSION_READ_ONLY",
    0x000000B6: "CKR_SESSION_EXISTS",
    0x000000B7: "CKR_SESSION_READ_ONLY_EXISTS",
    0x000000B8: "CKR_SESSION_READ_WRITE_SO_EXISTS",
    0x000000C0: "CKR_SIGNATURE_INVALID",
    0x000000C1: "CKR_SIGNATURE_LEN_RANGE",
    0x000000D0: "CKR_TEMPLATE_INCOMPLETE",
    0x000000D1: "CKR_TEMPLATE_INCONSISTENT",
    0x000000E0: "CKR_TOKEN_NOT_PRESENT",
    0x000000E1: "CKR_TOKEN_NOT_RECOGNIZED",
    0x000000E2: "CKR_TOKEN_WRITE_PROTECTED",
    0x000000F0: "CKR_UNWRAPPING_KEY_HANDLE_INVALID",
    0x000000F1: "CKR_UNWRAPPING_KEY_SIZE_RANGE",
    0x000000F2: "CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT",
    0x00000100: "CKR_USER_ALREADY_LOGGED_IN",
    0x00000101: "CKR_USER_NOT_LOGGED_IN",
    0x00000102: "CKR_USER_PIN_NOT_INITIALIZED",
    0x00000103: "CKR_USER_TYPE_INVALID",
    0x00000104: "CKR_USER_ANOTHER_ALREADY_LOGGED_IN",
    0x00000105: "CKR_USER_TOO_MANY_TYPES",
    0x00000110: "CKR_WRAPPED_KEY_INVALID",
    0x00000112: "CKR_WRAPPED_KEY_LEN_RANGE",
    0x00000113: "CKR_WRAPPING_KEY_HANDLE_INVALID",
    0x00000114: "CKR_WRAPPING_KEY_SIZE_RANGE",
    0x00000115: "CKR_WRAPPING_KEY_TYPE_INCONSISTENT",
    0x00000120: "CKR_RANDOM_SEED_NOT_SUPPORTED",
    0x00000121: "CKR_RANDOM_NO_RNG",
    0x00000130: "CKR_DOMAIN_PARAMS_INVALID",
    0x00000140: "CKR_CURVE_NOT_SUPPORTED",
    0x00000150: "CKR_BUFFER_TOO_SMALL",
    0x00000160: "CKR_SAVED_STATE_INVALID",
    0x00000170: "CKR_INFORMATION_SENSITIVE",
    0x00000180: "CKR_STATE_UNSAVEABLE",
    0x00000190: "CKR_CRYPTOKI_NOT_INITIALIZED",
    0x00000191: "CKR_CRYPTOKI_ALREADY_INITIALIZED",
    0x000001A0: "CKR_MUTEX_BAD",
    0x000001A1: "CKR_MUTEX_NOT_LOCKED",
    0x000001B0: "CKR_NEW_PIN_MODE",
    0x000001B1: "CKR_NEXT_OTP",
    # v2.40 values; some third-party headers (p11-kit, Scute) carry 0x1C0..0x1C4 instead.
    0x000001B5: "CKR_EXCEEDED_MAX_ITERATIONS",
    0x000001B6: "CKR_FIPS_SELF_TEST_FAILED",
    0x000001B7: "CKR_LIBRARY_LOAD_FAILED",
    0x000001B8: "CKR_PIN_TOO_WEAK",
    0x000001B9: "CKR_PUBLIC_KEY_INVALID",
    0x00000200: "CKR_FUNCTION_REJECTED",
    0x00000201: "CKR_TOKEN_RESOURCE_EXCEEDED",  # v3.0
    0x00000202: "CKR_OPERATION_CANCEL_FAILED",  # v3.0
    0x00000203: "CKR_KEY_EXHAUSTED",  # v3.1
    0x00000204: "CKR_PENDING",  # v3.2
    0x00000205: "CKR_SESSION_ASYNC_NOT_SUPPORTED",  # v3.2
    0x00000206: "CKR_SEED_RANDOM_REQUIRED",  # v3.2
    0x00000207: "CKR_OPERATION_NOT_VALIDATED",  # v3.2
    0x00000208: "CKR_TOKEN_NOT_INITIALIZED",  # v3.2
    0x00000209: "CKR_PARAMETER_SET_NOT_SUPPORTED",  # v3.2
    0x80000000: "CKR_VENDOR_DEFINED",
}

CKR_OK = 0x00000000
CKR_ARGUMENTS_BAD = 0x00000007
CKR_ATTRIBUTE_SENSITIVE = 0x00000011
CKR_ATTRIBUTE_TYPE_INVALID = 0x00000012
CKR_FUNCTION_NOT_SUPPORTED = 0x00000054
CKR_BUFFER_TOO_SMALL = 0x00000150
CKR_CRYPTOKI_NOT_INITIALIZED = 0x00000190
CKR_CRYPTOKI_ALREADY_INITIALIZED = 0x00000191
CKR_VENDOR_DEFINED = 0x80000000


def ckr_name(rv: int) -> str:
    """The spec name of a CK_RV, e.g. ``CKR_PIN_INCORRECT``.

    An unknown value is shown as ``0x%08X``; one in the vendor-defined range
    (CKR_VENDOR_DEFINED and above) is marked as such.
    """
    name = CKR.get(rv)
    if name is not None:
        return name
    if rv >= CKR_VENDOR_DEFINED:
        return f"0x{rv:08X} (vendor-defined)"
    return f"0x{rv:08X}"


# --------------------------------------------------------------------------------------
# Other constants callers need (PKCS#11 v2.40 §3 and pkcs11t.h)
# --------------------------------------------------------------------------------------

CK_INVALID_HANDLE = 0
CK_EFFECTIVELY_INFINITE = 0
CK_UNAVAILABLE_INFORMATION = 2 ** (8 * ctypes.sizeof(c_ulong)) - 1  # ~0UL

# CK_C_INITIALIZE_ARGS flags
CKF_LIBRARY_CANT_CREATE_OS_THREADS = 0x00000001
CKF_OS_LOCKING_OK = 0x00000002

# CK_SLOT_INFO flags
CKF_TOKEN_PRESENT = 0x00000001
CKF_REMOVABLE_DEVICE = 0x00000002
CKF_HW_SLOT = 0x00000004

# CK_TOKEN_INFO flags
CKF_RNG = 0x00000001
CKF_WRITE_PROTECTED = 0x00000002
CKF_LOGIN_REQUIRED = 0x00000004
CKF_USER_PIN_INITIALIZED = 0x00000008
CKF_RESTORE_KEY_NOT_NEEDED = 0x00000020
CKF_CLOCK_ON_TOKEN = 0x00000040
CKF_PROTECTED_AUTHENTICATION_PATH = 0x00000100
CKF_DUAL_CRYPTO_OPERATIONS = 0x00000200
CKF_TOKEN_INITIALIZED = 0x00000400
CKF_SECONDARY_AUTHENTICATION = 0x00000800
CKF_USER_PIN_COUNT_LOW = 0x00010000
CKF_USER_PIN_FINAL_TRY = 0x00020000
CKF_USER_PIN_LOCKED = 0x00040000
CKF_USER_PIN_TO_BE_CHANGED = 0x00080000
CKF_SO_PIN_COUNT_LOW = 0x00100000
CKF_SO_PIN_FINAL_TRY = 0x00200000
CKF_SO_PIN_LOCKED = 0x00400000
CKF_SO_PIN_TO_BE_CHANGED = 0x00800000
CKF_ERROR_STATE = 0x01000000

# CK_SESSION_INFO flags (and C_OpenSession flags)
CKF_RW_SESSION = 0x00000002
CKF_SERIAL_SESSION = 0x00000004

# CK_MECHANISM_INFO flags
CKF_HW = 0x00000001
CKF_MESSAGE_ENCRYPT = 0x00000002  # v3.0
CKF_MESSAGE_DECRYPT = 0x00000004  # v3.0
CKF_MESSAGE_SIGN = 0x00000008  # v3.0
CKF_MESSAGE_VERIFY = 0x00000010  # v3.0
CKF_MULTI_MESSAGE = 0x00000020  # v3.0
CKF_FIND_OBJECTS = 0x00000040  # v3.0
CKF_ENCRYPT = 0x00000100
CKF_DECRYPT = 0x00000200
CKF_DIGEST = 0x00000400
CKF_SIGN = 0x00000800
CKF_SIGN_RECOVER = 0x00001000
CKF_VERIFY = 0x00002000
CKF_VERIFY_RECOVER = 0x00004000
CKF_GENERATE = 0x00008000
CKF_GENERATE_KEY_PAIR = 0x00010000
CKF_WRAP = 0x00020000
CKF_UNWRAP = 0x00040000
CKF_DERIVE = 0x00080000
CKF_EC_F_P = 0x00100000
CKF_EC_F_2M = 0x00200000
CKF_EC_ECPARAMETERS = 0x00400000
CKF_EC_OID = 0x00800000
CKF_EC_UNCOMPRESS = 0x01000000
CKF_EC_COMPRESS = 0x02000000
CKF_EC_CURVENAME = 0x04000000  # v3.0
CKF_ENCAPSULATE = 0x10000000  # v3.2
CKF_DECAPSULATE = 0x20000000  # v3.2
CKF_EXTENSION = 0x80000000

# Every byte of an output structure is set to this before a call that fills it, so a
# field the module leaves untouched reads as UNSET instead of a plausible zero.
PATTERN_BYTE = 0xA5
UNSET = int.from_bytes(bytes([PATTERN_BYTE]) * ctypes.sizeof(c_ulong), "little")

# User types
CKA_CLASS = 0x00000000
CKA_PROFILE_ID = 0x00000601  # v3.0
CKO_PROFILE = 0x00000009  # v3.0
# v3.0 §4.13 profile ids
CKP_BASELINE_PROVIDER = 1
CKP_EXTENDED_PROVIDER = 2
CKP_AUTHENTICATION_TOKEN = 3
CKP_PUBLIC_CERTIFICATES_TOKEN = 4

CKU_SO = 0
CKU_USER = 1
CKU_CONTEXT_SPECIFIC = 2

# Session states
CKS_RO_PUBLIC_SESSION = 0
CKS_RO_USER_FUNCTIONS = 1
CKS_RW_PUBLIC_SESSION = 2
CKS_RW_USER_FUNCTIONS = 3
CKS_RW_SO_FUNCTIONS = 4

# Digest mechanisms (parameterless, so usable with digest_init)
CKM_MD5 = 0x00000210
CKM_SHA_1 = 0x00000220
CKM_SHA256 = 0x00000250
CKM_SHA224 = 0x00000255
CKM_SHA384 = 0x00000260
CKM_SHA512 = 0x00000270

# Object classes, key types and attributes the object and attribute checks use (pkcs11t.h)
CKO_DATA = 0x00000000
CKO_CERTIFICATE = 0x00000001
CKO_PUBLIC_KEY = 0x00000002
CKO_PRIVATE_KEY = 0x00000003
CKO_SECRET_KEY = 0x00000004
CKK_RSA = 0x00000000
CKK_DSA = 0x00000001
CKK_EC = 0x00000003
CKK_GENERIC_SECRET = 0x00000010
CKK_DES = 0x00000013
CKK_DES3 = 0x00000015
CKK_AES = 0x0000001F
CKK_EC_EDWARDS = 0x00000040  # v3.0
CKA_TOKEN = 0x00000001
CKA_PRIVATE = 0x00000002
CKA_LABEL = 0x00000003
CKA_APPLICATION = 0x00000010
CKA_VALUE = 0x00000011
CKA_OBJECT_ID = 0x00000012
CKA_KEY_TYPE = 0x00000100
CKA_ID = 0x00000102
CKA_SENSITIVE = 0x00000103
CKA_ENCRYPT = 0x00000104
CKA_DECRYPT = 0x00000105
CKA_WRAP = 0x00000106
CKA_UNWRAP = 0x00000107
CKA_SIGN = 0x00000108
CKA_SIGN_RECOVER = 0x00000109
CKA_VERIFY = 0x0000010A
CKA_VERIFY_RECOVER = 0x0000010B
CKA_DERIVE = 0x0000010C
CKA_MODULUS = 0x00000120
CKA_MODULUS_BITS = 0x00000121
CKA_PUBLIC_EXPONENT = 0x00000122
CKA_PRIVATE_EXPONENT = 0x00000123
CKA_PRIME_1 = 0x00000124
CKA_PRIME_2 = 0x00000125
CKA_EXPONENT_1 = 0x00000126
CKA_EXPONENT_2 = 0x00000127
CKA_COEFFICIENT = 0x00000128
CKA_PRIME = 0x00000130
CKA_SUBPRIME = 0x00000131
CKA_BASE = 0x00000132
CKA_VALUE_LEN = 0x00000161
CKA_EXTRACTABLE = 0x00000162
CKA_LOCAL = 0x00000163
CKA_NEVER_EXTRACTABLE = 0x00000164
CKA_ALWAYS_SENSITIVE = 0x00000165
CKA_MODIFIABLE = 0x00000170
CKA_EC_PARAMS = 0x00000180

# --------------------------------------------------------------------------------------
# C structures
# --------------------------------------------------------------------------------------

CK_ULONG = c_ulong
CK_BYTE = c_ubyte
_PACK = 1 if sys.platform == "win32" else 0


class _Struct(Structure):
    if _PACK:
        _pack_ = _PACK


class CK_VERSION(_Struct):
    _fields_ = [("major", CK_BYTE), ("minor", CK_BYTE)]


class CK_INFO(_Struct):
    _fields_ = [
        ("cryptokiVersion", CK_VERSION),
        ("manufacturerID", CK_BYTE * 32),
        ("flags", CK_ULONG),
        ("libraryDescription", CK_BYTE * 32),
        ("libraryVersion", CK_VERSION),
    ]


class CK_SLOT_INFO(_Struct):
    _fields_ = [
        ("slotDescription", CK_BYTE * 64),
        ("manufacturerID", CK_BYTE * 32),
        ("flags", CK_ULONG),
        ("hardwareVersion", CK_VERSION),
        ("firmwareVersion", CK_VERSION),
    ]


class CK_TOKEN_INFO(_Struct):
    _fields_ = [
        ("label", CK_BYTE * 32),
        ("manufacturerID", CK_BYTE * 32),
        ("model", CK_BYTE * 16),
        ("serialNumber", CK_BYTE * 16),
        ("flags", CK_ULONG),
        ("ulMaxSessionCount", CK_ULONG),
        ("ulSessionCount", CK_ULONG),
        ("ulMaxRwSessionCount", CK_ULONG),
        ("ulRwSessionCount", CK_ULONG),
        ("ulMaxPinLen", CK_ULONG),
        ("ulMinPinLen", CK_ULONG),
        ("ulTotalPublicMemory", CK_ULONG),
        ("ulFreePublicMemory", CK_ULONG),
        ("ulTotalPrivateMemory", CK_ULONG),
        ("ulFreePrivateMemory", CK_ULONG),
        ("hardwareVersion", CK_VERSION),
        ("firmwareVersion", CK_VERSION),
        ("utcTime", CK_BYTE * 16),
    ]


class CK_SESSION_INFO(_Struct):
    _fields_ = [
        ("slotID", CK_ULONG),
        ("state", CK_ULONG),
        ("flags", CK_ULONG),
        ("ulDeviceError", CK_ULONG),
    ]


class CK_MECHANISM_INFO(_Struct):
    _fields_ = [
        ("ulMinKeySize", CK_ULONG),
        ("ulMaxKeySize", CK_ULONG),
        ("flags", CK_ULONG),
    ]


class CK_MECHANISM(_Struct):
    _fields_ = [
        ("mechanism", CK_ULONG),
        ("pParameter", c_void_p),
        ("ulParameterLen", CK_ULONG),
    ]


class CK_INTERFACE(_Struct):  # v3.0
    _fields_ = [("pInterfaceName", ctypes.c_char_p), ("pFunctionList", c_void_p),
                ("flags", CK_ULONG)]


class CK_ATTRIBUTE(_Struct):
    _fields_ = [("type", CK_ULONG), ("pValue", c_void_p), ("ulValueLen", CK_ULONG)]


class CK_C_INITIALIZE_ARGS(_Struct):
    _fields_ = [
        ("CreateMutex", c_void_p),
        ("DestroyMutex", c_void_p),
        ("LockMutex", c_void_p),
        ("UnlockMutex", c_void_p),
        ("flags", CK_ULONG),
        ("pReserved", c_void_p),
    ]


# The 68 functions of CK_FUNCTION_LIST in v2.40 header order, each with its argument
# kinds: "u" CK_ULONG (also handles, flags, lengths, user types), "b" CK_BBOOL,
# "p" any pointer (passed as void *, so callers may give None, bytes, byref(...),
# ctypes arrays or structures' addresses).
_FUNCTIONS: tuple[tuple[str, str], ...] = (
    ("C_Initialize", "p"),
    ("C_Finalize", "p"),
    ("C_GetInfo", "p"),
    ("C_GetFunctionList", "p"),
    ("C_GetSlotList", "bpp"),
    ("C_GetSlotInfo", "up"),
    ("C_GetTokenInfo", "up"),
    ("C_GetMechanismList", "upp"),
    ("C_GetMechanismInfo", "uup"),
    ("C_InitToken", "upup"),
    ("C_InitPIN", "upu"),
    ("C_SetPIN", "upupu"),
    ("C_OpenSession", "uuppp"),
    ("C_CloseSession", "u"),
    ("C_CloseAllSessions", "u"),
    ("C_GetSessionInfo", "up"),
    ("C_GetOperationState", "upp"),
    ("C_SetOperationState", "upuuu"),
    ("C_Login", "uupu"),
    ("C_Logout", "u"),
    ("C_CreateObject", "upup"),
    ("C_CopyObject", "uupup"),
    ("C_DestroyObject", "uu"),
    ("C_GetObjectSize", "uup"),
    ("C_GetAttributeValue", "uupu"),
    ("C_SetAttributeValue", "uupu"),
    ("C_FindObjectsInit", "upu"),
    ("C_FindObjects", "upup"),
    ("C_FindObjectsFinal", "u"),
    ("C_EncryptInit", "upu"),
    ("C_Encrypt", "upupp"),
    ("C_EncryptUpdate", "upupp"),
    ("C_EncryptFinal", "upp"),
    ("C_DecryptInit", "upu"),
    ("C_Decrypt", "upupp"),
    ("C_DecryptUpdate", "upupp"),
    ("C_DecryptFinal", "upp"),
    ("C_DigestInit", "up"),
    ("C_Digest", "upupp"),
    ("C_DigestUpdate", "upu"),
    ("C_DigestKey", "uu"),
    ("C_DigestFinal", "upp"),
    ("C_SignInit", "upu"),
    ("C_Sign", "upupp"),
    ("C_SignUpdate", "upu"),
    ("C_SignFinal", "upp"),
    ("C_SignRecoverInit", "upu"),
    ("C_SignRecover", "upupp"),
    ("C_VerifyInit", "upu"),
    ("C_Verify", "upupu"),
    ("C_VerifyUpdate", "upu"),
    ("C_VerifyFinal", "upu"),
    ("C_VerifyRecoverInit", "upu"),
    ("C_VerifyRecover", "upupp"),
    ("C_DigestEncryptUpdate", "upupp"),
    ("C_DecryptDigestUpdate", "upupp"),
    ("C_SignEncryptUpdate", "upupp"),
    ("C_DecryptVerifyUpdate", "upupp"),
    ("C_GenerateKey", "uppup"),
    ("C_GenerateKeyPair", "uppupupp"),
    ("C_WrapKey", "upuupp"),
    ("C_UnwrapKey", "upupupup"),
    ("C_DeriveKey", "upupup"),
    ("C_SeedRandom", "upu"),
    ("C_GenerateRandom", "upu"),
    ("C_GetFunctionStatus", "u"),
    ("C_CancelFunction", "u"),
    ("C_WaitForSlotEvent", "upp"),
)

FUNCTION_NAMES: tuple[str, ...] = tuple(name for name, _ in _FUNCTIONS)

_KINDS: dict[str, Any] = {"u": CK_ULONG, "b": c_ubyte, "p": c_void_p}
# PKCS#11 functions use the C calling convention on every platform (CK_CALL_SPEC is
# empty on Unix and __cdecl on Windows), so CFUNCTYPE fits everywhere.
_PROTOTYPES: dict[str, Any] = {
    name: ctypes.CFUNCTYPE(CK_ULONG, *(_KINDS[k] for k in kinds)) for name, kinds in _FUNCTIONS
}


class CK_FUNCTION_LIST(_Struct):
    _fields_ = [("version", CK_VERSION)] + [(name, c_void_p) for name in FUNCTION_NAMES]


# --------------------------------------------------------------------------------------
# Errors and results
# --------------------------------------------------------------------------------------


class ModuleLoadError(OSError):
    """The file is missing, cannot be loaded, or is not a PKCS#11 module."""


class NullFunctionError(RuntimeError):
    """The module's function list has a NULL entry (the spec requires a stub)."""


class CKRError(Exception):
    """A PKCS#11 function returned something other than CKR_OK."""

    def __init__(self, function: str, rv: int) -> None:
        super().__init__(function, rv)
        self.function = function
        self.rv = rv
        self.name = ckr_name(rv)

    def __str__(self) -> str:
        return f"{self.function} returned {self.name}"


@dataclass(frozen=True)
class Info:
    """CK_INFO (C_GetInfo), blank padding stripped."""

    cryptoki_version: tuple[int, int]
    manufacturer_id: str
    flags: int
    library_description: str
    library_version: tuple[int, int]


@dataclass(frozen=True)
class SlotInfo:
    """CK_SLOT_INFO (C_GetSlotInfo), blank padding stripped."""

    slot_description: str
    manufacturer_id: str
    flags: int
    hardware_version: tuple[int, int]
    firmware_version: tuple[int, int]


@dataclass(frozen=True)
class TokenInfo:
    """CK_TOKEN_INFO (C_GetTokenInfo), blank padding stripped."""

    label: str
    manufacturer_id: str
    model: str
    serial_number: str
    flags: int
    max_session_count: int
    session_count: int
    max_rw_session_count: int
    rw_session_count: int
    max_pin_len: int
    min_pin_len: int
    total_public_memory: int
    free_public_memory: int
    total_private_memory: int
    free_private_memory: int
    hardware_version: tuple[int, int]
    firmware_version: tuple[int, int]
    utc_time: str


@dataclass(frozen=True)
class MechanismInfo:
    """CK_MECHANISM_INFO (C_GetMechanismInfo)."""

    min_key_size: int
    max_key_size: int
    flags: int


@dataclass(frozen=True)
class SessionInfo:
    """CK_SESSION_INFO (C_GetSessionInfo)."""

    slot_id: int
    state: int
    flags: int
    device_error: int


def _text(field: Any) -> str:
    """A blank-padded CK_UTF8CHAR / CK_CHAR array as str (only blanks are stripped, so
    NUL padding, itself a deviation, stays visible)."""
    return bytes(field).decode("utf-8", errors="replace").rstrip(" ")


def _version(v: CK_VERSION) -> tuple[int, int]:
    return (int(v.major), int(v.minor))


# --------------------------------------------------------------------------------------
# The module
# --------------------------------------------------------------------------------------


class Module:
    """A loaded PKCS#11 module, called through its CK_FUNCTION_LIST.

    Methods raise CKRError when the function does not return CKR_OK; ``call`` returns
    the raw CK_RV for checks that need bad arguments.
    """

    def __init__(self, path: str, init_reserved: str | None = None) -> None:
        self.path = path
        # pReserved for every initialize() that gives none (module.init_reserved).
        self.init_reserved = None if init_reserved is None else init_reserved.encode()
        has_directory = os.sep in path or bool(os.altsep and os.altsep in path)
        if has_directory and not os.path.exists(path):
            raise ModuleLoadError(errno.ENOENT, "PKCS#11 module file not found", path)
        try:
            self._lib = ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)
        except OSError as exc:
            raise ModuleLoadError(f"cannot load PKCS#11 module {path!r}: {exc}") from exc
        try:
            get_function_list = self._lib.C_GetFunctionList
        except AttributeError:
            raise ModuleLoadError(
                f"{path!r} is not a PKCS#11 module: it exports no C_GetFunctionList"
            ) from None
        get_function_list.restype = CK_ULONG
        get_function_list.argtypes = [POINTER(POINTER(CK_FUNCTION_LIST))]
        pointer = POINTER(CK_FUNCTION_LIST)()
        rv = int(get_function_list(byref(pointer)))
        if rv != CKR_OK:
            raise CKRError("C_GetFunctionList", rv)
        if not pointer:
            raise ModuleLoadError(f"{path!r}: C_GetFunctionList returned CKR_OK and NULL")
        self._list: CK_FUNCTION_LIST = pointer.contents
        self._functions: dict[str, Any] = {}
        self._init_args: CK_C_INITIALIZE_ARGS | None = None
        self._init_reserved: Any = None

    def null_functions(self) -> list[str]:
        """The functions whose entry in the function list is a NULL pointer."""
        return [name for name in FUNCTION_NAMES if not getattr(self._list, name)]

    @property
    def function_list_version(self) -> tuple[int, int]:
        """The CK_VERSION at the head of the function list (2.40 lists say (2, 40))."""
        return _version(self._list.version)

    # -- raw access --------------------------------------------------------------------

    def _function(self, name: str) -> Any:
        function = self._functions.get(name)
        if function is None:
            if name not in _PROTOTYPES:
                raise KeyError(f"{name} is not a PKCS#11 v2.40 function")
            address = getattr(self._list, name)
            if not address:
                raise NullFunctionError(f"{name} is a NULL pointer in the module's function list")
            function = _PROTOTYPES[name](address)
            self._functions[name] = function
        return function

    def call(self, name: str, *args: object) -> int:
        """Call function ``name`` (e.g. "C_GetInfo") with ctypes-convertible arguments
        and return the raw CK_RV. Pointers may be None (NULL), bytes (read-only input),
        byref(...) or ctypes arrays; integers go as CK_ULONG (CK_BBOOL where the spec
        says so)."""
        return int(self._function(name)(*args))

    def _check(self, name: str, *args: object) -> None:
        rv = self.call(name, *args)
        if rv != CKR_OK:
            raise CKRError(name, rv)

    # -- general purpose ---------------------------------------------------------------

    def initialize(self, reserved: bytes | None = None, flags: int = 0) -> None:
        """C_Initialize. With both arguments at their defaults pInitArgs is NULL;
        otherwise a CK_C_INITIALIZE_ARGS carries ``flags`` (e.g. CKF_OS_LOCKING_OK),
        no mutex callbacks, and ``reserved`` as a NUL-terminated char * in pReserved."""
        if reserved is None:
            reserved = self.init_reserved
        if reserved is None and flags == 0:
            self._check("C_Initialize", None)
            return
        args = CK_C_INITIALIZE_ARGS()
        args.flags = flags
        if reserved is not None:
            self._init_reserved = create_string_buffer(reserved)
            args.pReserved = cast(self._init_reserved, c_void_p)
        self._init_args = args  # kept alive: some modules hold on to pReserved
        self._check("C_Initialize", byref(args))

    def finalize(self) -> None:
        """C_Finalize(NULL)."""
        self._check("C_Finalize", None)

    def get_info(self) -> Info:
        info = CK_INFO()
        self._check("C_GetInfo", byref(info))
        return Info(
            cryptoki_version=_version(info.cryptokiVersion),
            manufacturer_id=_text(info.manufacturerID),
            flags=int(info.flags),
            library_description=_text(info.libraryDescription),
            library_version=_version(info.libraryVersion),
        )

    # -- slots and tokens --------------------------------------------------------------

    def get_slot_list(self, token_present: bool) -> list[int]:
        """C_GetSlotList, two calls (count, then list), repeated if the list grew."""
        while True:
            count = CK_ULONG(0)
            self._check("C_GetSlotList", int(token_present), None, byref(count))
            if count.value == 0:
                return []
            slots = (CK_ULONG * count.value)()
            rv = self.call("C_GetSlotList", int(token_present), slots, byref(count))
            if rv == CKR_BUFFER_TOO_SMALL:
                continue
            if rv != CKR_OK:
                raise CKRError("C_GetSlotList", rv)
            return [int(s) for s in slots[: count.value]]

    def get_slot_info(self, slot: int) -> SlotInfo:
        s = CK_SLOT_INFO()
        self._check("C_GetSlotInfo", slot, byref(s))
        return SlotInfo(
            slot_description=_text(s.slotDescription),
            manufacturer_id=_text(s.manufacturerID),
            flags=int(s.flags),
            hardware_version=_version(s.hardwareVersion),
            firmware_version=_version(s.firmwareVersion),
        )

    def get_token_info(self, slot: int) -> TokenInfo:
        t = CK_TOKEN_INFO()
        self._check("C_GetTokenInfo", slot, byref(t))
        return TokenInfo(
            label=_text(t.label),
            manufacturer_id=_text(t.manufacturerID),
            model=_text(t.model),
            serial_number=_text(t.serialNumber),
            flags=int(t.flags),
            max_session_count=int(t.ulMaxSessionCount),
            session_count=int(t.ulSessionCount),
            max_rw_session_count=int(t.ulMaxRwSessionCount),
            rw_session_count=int(t.ulRwSessionCount),
            max_pin_len=int(t.ulMaxPinLen),
            min_pin_len=int(t.ulMinPinLen),
            total_public_memory=int(t.ulTotalPublicMemory),
            free_public_memory=int(t.ulFreePublicMemory),
            total_private_memory=int(t.ulTotalPrivateMemory),
            free_private_memory=int(t.ulFreePrivateMemory),
            hardware_version=_version(t.hardwareVersion),
            firmware_version=_version(t.firmwareVersion),
            utc_time=_text(t.utcTime),
        )

    def find_slot(self, label: str) -> int:
        """The slot holding the one token with this label; LookupError if none or
        several do."""
        found = [s for s in self.get_slot_list(True) if self.get_token_info(s).label == label]
        if len(found) != 1:
            raise LookupError(f"{len(found)} tokens labelled {label!r} in {self.path}")
        return found[0]

    def get_mechanism_list(self, slot: int) -> list[int]:
        while True:
            count = CK_ULONG(0)
            self._check("C_GetMechanismList", slot, None, byref(count))
            if count.value == 0:
                return []
            mechanisms = (CK_ULONG * count.value)()
            rv = self.call("C_GetMechanismList", slot, mechanisms, byref(count))
            if rv == CKR_BUFFER_TOO_SMALL:
                continue
            if rv != CKR_OK:
                raise CKRError("C_GetMechanismList", rv)
            return [int(m) for m in mechanisms[: count.value]]

    def get_mechanism_info(self, slot: int, mech: int, fill: int = 0) -> MechanismInfo:
        """C_GetMechanismInfo into a structure whose bytes are all ``fill``: zero, as an
        application would pass it; with PATTERN_BYTE a field the module does not set reads
        as UNSET."""
        m = CK_MECHANISM_INFO()
        ctypes.memset(byref(m), fill, ctypes.sizeof(m))
        self._check("C_GetMechanismInfo", slot, mech, byref(m))
        return MechanismInfo(int(m.ulMinKeySize), int(m.ulMaxKeySize), int(m.flags))

    # -- sessions ----------------------------------------------------------------------

    def open_session(self, slot: int, flags: int = CKF_SERIAL_SESSION) -> int:
        """C_OpenSession without notification callback; returns the session handle."""
        handle = CK_ULONG(0)
        self._check("C_OpenSession", slot, flags, None, None, byref(handle))
        return int(handle.value)

    def close_session(self, h: int) -> None:
        self._check("C_CloseSession", h)

    def close_all_sessions(self, slot: int) -> None:
        self._check("C_CloseAllSessions", slot)

    def get_session_info(self, h: int) -> SessionInfo:
        s = CK_SESSION_INFO()
        self._check("C_GetSessionInfo", h, byref(s))
        return SessionInfo(int(s.slotID), int(s.state), int(s.flags), int(s.ulDeviceError))

    def login(self, h: int, user_type: int, pin: bytes | None) -> None:
        """C_Login; ``pin=None`` passes NULL (protected authentication path)."""
        if pin is None:
            self._check("C_Login", h, user_type, None, 0)
        else:
            self._check("C_Login", h, user_type, pin, len(pin))

    def logout(self, h: int) -> None:
        self._check("C_Logout", h)

    # -- objects (only what checks on module-provided objects need) ---------------------

    def find_objects(self, h: int, template: dict[int, int]) -> list[int]:
        """C_FindObjectsInit/C_FindObjects/C_FindObjectsFinal with CK_ULONG-valued
        attributes (class, key type, profile id, ...); returns every matching handle."""
        items = list(template.items())
        values = (CK_ULONG * max(len(items), 1))(*(value for _, value in items))
        attributes = (CK_ATTRIBUTE * max(len(items), 1))()
        size = ctypes.sizeof(CK_ULONG)
        for index, (kind, _) in enumerate(items):
            attributes[index].type = kind
            attributes[index].pValue = ctypes.addressof(values) + index * size
            attributes[index].ulValueLen = size
        self._check("C_FindObjectsInit", h, attributes, len(items))
        found: list[int] = []
        try:
            while True:
                batch, count = (CK_ULONG * 16)(), CK_ULONG(0)
                self._check("C_FindObjects", h, batch, 16, byref(count))
                if count.value == 0:
                    return found
                found += [int(x) for x in batch[: count.value]]
        finally:
            self._check("C_FindObjectsFinal", h)

    def get_attribute_ulong(self, h: int, obj: int, kind: int) -> int:
        """C_GetAttributeValue of one CK_ULONG-valued attribute."""
        value = CK_ULONG(0)
        attribute = CK_ATTRIBUTE(kind, ctypes.addressof(value), ctypes.sizeof(CK_ULONG))
        self._check("C_GetAttributeValue", h, obj, byref(attribute), 1)
        return int(value.value)

    # -- v3.0 interfaces ---------------------------------------------------------------

    def exports(self, symbol: str) -> bool:
        """Whether the library exports this symbol (3.x functions are found by name)."""
        return hasattr(self._lib, symbol)

    def get_interface_list(self) -> list[tuple[str, tuple[int, int], int]] | None:
        """C_GetInterfaceList (v3.0 §5.4.5), found by symbol: (name, version of the
        function list, flags) per interface; None when the module does not export it."""
        try:
            function = self._lib.C_GetInterfaceList
        except AttributeError:
            return None
        function.restype = CK_ULONG
        function.argtypes = [c_void_p, POINTER(CK_ULONG)]
        count = CK_ULONG(0)
        rv = int(function(None, byref(count)))
        if rv != CKR_OK:
            raise CKRError("C_GetInterfaceList", rv)
        interfaces = (CK_INTERFACE * max(count.value, 1))()
        rv = int(function(interfaces, byref(count)))
        if rv != CKR_OK:
            raise CKRError("C_GetInterfaceList", rv)
        out = []
        for interface in interfaces[: count.value]:
            version = ctypes.cast(interface.pFunctionList, POINTER(CK_VERSION)).contents
            out.append(((interface.pInterfaceName or b"").decode("utf-8", "replace"),
                        _version(version), int(interface.flags)))
        return out

    def use_interface(self, name: str = "PKCS 11") -> tuple[int, int] | None:
        """Call through the function list of the module's highest-version interface of
        this name (C_GetInterface, v3.0 section 5.4.6), as a PKCS#11 3.x application
        does, instead of C_GetFunctionList's; its first entries are the v2.40 list's.
        Returns that version, or None (and nothing changes) without C_GetInterface."""
        interfaces = [v for n, v, _ in self.get_interface_list() or [] if n == name]
        try:
            function = self._lib.C_GetInterface
        except AttributeError:
            return None
        if not interfaces:
            return None
        version = CK_VERSION(*max(interfaces))
        function.restype = CK_ULONG
        function.argtypes = [ctypes.c_char_p, POINTER(CK_VERSION),
                             POINTER(POINTER(CK_INTERFACE)), CK_ULONG]
        pointer = POINTER(CK_INTERFACE)()
        rv = int(function(name.encode(), byref(version), byref(pointer), 0))
        if rv != CKR_OK:
            raise CKRError("C_GetInterface", rv)
        self._list = ctypes.cast(pointer.contents.pFunctionList,
                                 POINTER(CK_FUNCTION_LIST)).contents
        self._functions.clear()
        return _version(version)

    # -- random numbers ----------------------------------------------------------------

    def generate_random(self, h: int, n: int) -> bytes:
        buffer = create_string_buffer(n)
        self._check("C_GenerateRandom", h, buffer, n)
        return buffer.raw[:n]

    def seed_random(self, h: int, data: bytes) -> None:
        self._check("C_SeedRandom", h, data, len(data))

    # -- message digesting -------------------------------------------------------------

    def digest_init(self, h: int, mech: int) -> None:
        """C_DigestInit with a parameterless mechanism."""
        mechanism = CK_MECHANISM(mech, None, 0)
        self._check("C_DigestInit", h, byref(mechanism))

    def digest(self, h: int, data: bytes) -> bytes:
        """Single-part C_Digest: a NULL output buffer for the length, then the buffer."""
        length = CK_ULONG(0)
        self._check("C_Digest", h, data, len(data), None, byref(length))
        buffer = create_string_buffer(length.value)
        self._check("C_Digest", h, data, len(data), buffer, byref(length))
        return buffer.raw[: length.value]

    def digest_update(self, h: int, data: bytes) -> None:
        self._check("C_DigestUpdate", h, data, len(data))

    def digest_final(self, h: int) -> bytes:
        """C_DigestFinal: a NULL output buffer for the length, then the buffer."""
        length = CK_ULONG(0)
        self._check("C_DigestFinal", h, None, byref(length))
        buffer = create_string_buffer(length.value)
        self._check("C_DigestFinal", h, buffer, byref(length))
        return buffer.raw[: length.value]

    # -- objects, keys and operations for the error-handling checks (suites/errors) -----
    # Templates map CKA_* to a value: a bool goes as CK_BBOOL, an int as CK_ULONG, bytes
    # as they are. Mechanisms here take no parameter.

    @staticmethod
    def _template(template: dict[int, bool | int | bytes]) -> tuple[Any, list[Any]]:
        """A CK_ATTRIBUTE array for ``template``, and the value buffers it points into
        (keep them alive while the call runs)."""
        items = list(template.items())
        attributes = (CK_ATTRIBUTE * max(len(items), 1))()
        buffers: list[Any] = []
        for index, (kind, value) in enumerate(items):
            if isinstance(value, bool):
                buffer: Any = CK_BYTE(int(value))
                size = ctypes.sizeof(CK_BYTE)
            elif isinstance(value, int):
                buffer = CK_ULONG(value)
                size = ctypes.sizeof(CK_ULONG)
            else:
                buffer = create_string_buffer(bytes(value))
                size = len(value)
            buffers.append(buffer)
            attributes[index].type = kind
            attributes[index].pValue = ctypes.addressof(buffer)
            attributes[index].ulValueLen = size
        return attributes, buffers

    def create_object(self, h: int, template: dict[int, bool | int | bytes]) -> int:
        attributes, _buffers = self._template(template)
        handle = CK_ULONG(0)
        self._check("C_CreateObject", h, attributes, len(template), byref(handle))
        return int(handle.value)

    def destroy_object(self, h: int, obj: int) -> None:
        self._check("C_DestroyObject", h, obj)

    def generate_key(self, h: int, mech: int, template: dict[int, bool | int | bytes]) -> int:
        """C_GenerateKey with a parameterless mechanism; returns the key handle."""
        mechanism = CK_MECHANISM(mech, None, 0)
        attributes, _buffers = self._template(template)
        handle = CK_ULONG(0)
        self._check("C_GenerateKey", h, byref(mechanism), attributes, len(template),
                    byref(handle))
        return int(handle.value)

    def generate_key_pair(self, h: int, mech: int, public: dict[int, bool | int | bytes],
                          private: dict[int, bool | int | bytes]) -> tuple[int, int]:
        """C_GenerateKeyPair with a parameterless mechanism; returns (public, private)."""
        mechanism = CK_MECHANISM(mech, None, 0)
        public_attributes, _public_buffers = self._template(public)
        private_attributes, _private_buffers = self._template(private)
        public_handle, private_handle = CK_ULONG(0), CK_ULONG(0)
        self._check("C_GenerateKeyPair", h, byref(mechanism), public_attributes, len(public),
                    private_attributes, len(private), byref(public_handle),
                    byref(private_handle))
        return int(public_handle.value), int(private_handle.value)

    def find_objects_init(self, h: int, template: dict[int, bool | int | bytes]) -> None:
        attributes, _buffers = self._template(template)
        self._check("C_FindObjectsInit", h, attributes, len(template))

    def find_objects_next(self, h: int, max_count: int = 16) -> list[int]:
        """One C_FindObjects call of an active search: up to ``max_count`` handles."""
        batch, count = (CK_ULONG * max(max_count, 1))(), CK_ULONG(0)
        self._check("C_FindObjects", h, batch, max_count, byref(count))
        return [int(x) for x in batch[: count.value]]

    def find_objects_final(self, h: int) -> None:
        self._check("C_FindObjectsFinal", h)

    def encrypt_init(self, h: int, mech: int, key: int) -> None:
        """C_EncryptInit with a parameterless mechanism."""
        mechanism = CK_MECHANISM(mech, None, 0)
        self._check("C_EncryptInit", h, byref(mechanism), key)

    def sign_init(self, h: int, mech: int, key: int) -> None:
        """C_SignInit with a parameterless mechanism."""
        mechanism = CK_MECHANISM(mech, None, 0)
        self._check("C_SignInit", h, byref(mechanism), key)

    def sign(self, h: int, data: bytes) -> bytes:
        """Single-part C_Sign: a NULL output buffer for the length, then the buffer."""
        length = CK_ULONG(0)
        self._check("C_Sign", h, data, len(data), None, byref(length))
        buffer = create_string_buffer(length.value)
        self._check("C_Sign", h, data, len(data), buffer, byref(length))
        return buffer.raw[: length.value]

    def digest_key(self, h: int, key: int) -> None:
        self._check("C_DigestKey", h, key)

    def digest_into(self, h: int, data: bytes, size: int | None) -> tuple[int, int, bytes]:
        """One C_Digest call with an output buffer of ``size`` bytes (None: NULL_PTR), for
        checks of the output-buffer convention (v2.40 base §5.2). Returns the raw CK_RV,
        *pulDigestLen after the call, and the first *pulDigestLen bytes of the buffer."""
        length = CK_ULONG(size or 0)
        buffer = None if size is None else create_string_buffer(max(size, 1))
        rv = self.call("C_Digest", h, data, len(data), buffer, byref(length))
        output = b"" if buffer is None else buffer.raw[: min(length.value, size or 0)]
        return rv, int(length.value), output

    # -- one call with the pointers and lengths a check chooses (suites/errors) --------
    # An input is bytes, or (bytes or None, length): a pointer and a length that need not
    # agree (a NULL pointer with a length, a length past the buffer: robustness probes).
    # An output is None (a NULL buffer), a size, or (size, declared): a buffer of `size`
    # bytes announced as `declared` bytes.

    def call_inputs(self, name: str, h: int, inputs: list[Any]) -> int:
        """One call of ``name`` with a session and inputs only (C_DigestUpdate, C_Verify,
        C_VerifyFinal, ...); returns the raw CK_RV."""
        args: list[Any] = []
        for item in inputs:
            args += [item, len(item)] if isinstance(item, bytes) else list(item)
        return self.call(name, h, *args)

    def call_into(self, name: str, h: int, inputs: list[Any], size: Any
                  ) -> tuple[int, int, bytes]:
        """One call of ``name`` with a session, inputs, then an output buffer and its
        length (C_Encrypt, C_EncryptUpdate, C_DigestFinal, ...). Returns the raw CK_RV,
        the length after the call and the first that many bytes of the buffer (as many
        as it holds)."""
        args: list[Any] = []
        for item in inputs:
            args += [item, len(item)] if isinstance(item, bytes) else list(item)
        allocated, declared = (0, 0) if size is None else (
            (size, size) if isinstance(size, int) else size)
        buffer = None if size is None else create_string_buffer(max(allocated, 1))
        length = CK_ULONG(declared)
        rv = self.call(name, h, *args, buffer, byref(length))
        output = b"" if buffer is None else buffer.raw[: min(length.value, allocated)]
        return rv, int(length.value), output

    def call_without_length(self, name: str, h: int, inputs: list[Any], size: int) -> int:
        """As call_into, with a buffer of ``size`` bytes but a NULL pointer for its length
        (a robustness probe); returns the raw CK_RV."""
        args: list[Any] = []
        for item in inputs:
            args += [item, len(item)] if isinstance(item, bytes) else list(item)
        return self.call(name, h, *args, create_string_buffer(max(size, 1)), None)

    def wrap_key_into(self, h: int, mech: int, wrapping_key: int, key: int, size: Any
                      ) -> tuple[int, int, bytes]:
        """One C_WrapKey call (parameterless mechanism) with an output as in call_into."""
        mechanism = CK_MECHANISM(mech, None, 0)
        allocated = 0 if size is None else size
        buffer = None if size is None else create_string_buffer(max(allocated, 1))
        length = CK_ULONG(allocated)
        rv = self.call("C_WrapKey", h, byref(mechanism), wrapping_key, key, buffer,
                       byref(length))
        output = b"" if buffer is None else buffer.raw[: min(length.value, allocated)]
        return rv, int(length.value), output

    # -- attributes, copies and key usage (suites/attributes, suites/objects) ----------
    # Same template convention as above. The C_GetAttributeValue calls return the raw
    # CK_RV, because CKR_ATTRIBUTE_SENSITIVE, CKR_ATTRIBUTE_TYPE_INVALID and
    # CKR_BUFFER_TOO_SMALL come with per-attribute results (v2.40 base §5.7.5).

    def get_attribute_value_into(self, h: int, obj: int, request: list[tuple[int, int | None]]
                                 ) -> tuple[int, list[tuple[int, int, bytes | None]]]:
        """One C_GetAttributeValue call with a buffer of the given size per attribute
        (None: a NULL pValue, i.e. a length query). Returns the raw CK_RV and, per
        attribute, (type, ulValueLen after the call, value): the value is the first
        ulValueLen bytes of the buffer when a buffer was given and ulValueLen fits in it,
        otherwise None."""
        attributes = (CK_ATTRIBUTE * max(len(request), 1))()
        buffers: list[Any] = []
        for index, (kind, size) in enumerate(request):
            buffer = None if size is None else create_string_buffer(max(size, 1))
            buffers.append(buffer)
            attributes[index].type = kind
            attributes[index].pValue = None if buffer is None else ctypes.addressof(buffer)
            attributes[index].ulValueLen = size or 0
        rv = self.call("C_GetAttributeValue", h, obj, attributes, len(request))
        out: list[tuple[int, int, bytes | None]] = []
        for index, (kind, size) in enumerate(request):
            length, buffer = int(attributes[index].ulValueLen), buffers[index]
            fits = buffer is not None and size is not None and length <= size
            out.append((kind, length, buffer.raw[:length] if fits else None))
        return rv, out

    def get_attribute_values(self, h: int, obj: int, kinds: list[int]
                             ) -> tuple[int, list[tuple[int, int, bytes | None]]]:
        """C_GetAttributeValue with the two-call length convention: NULL pValues first for
        the lengths, then buffers of exactly those lengths (a NULL pValue again where the
        length came back as CK_UNAVAILABLE_INFORMATION). Returns the second call's raw
        CK_RV and its per-attribute results, as ``get_attribute_value_into``. Raises
        CKRError when the first call fails with any code other than the three that carry
        per-attribute results."""
        rv, lengths = self.get_attribute_value_into(h, obj, [(kind, None) for kind in kinds])
        if rv not in (CKR_OK, CKR_ATTRIBUTE_SENSITIVE, CKR_ATTRIBUTE_TYPE_INVALID):
            raise CKRError("C_GetAttributeValue", rv)
        return self.get_attribute_value_into(h, obj, [
            (kind, None if length == CK_UNAVAILABLE_INFORMATION else length)
            for kind, length, _ in lengths])

    def set_attribute_value(self, h: int, obj: int,
                            template: dict[int, bool | int | bytes]) -> None:
        attributes, _buffers = self._template(template)
        self._check("C_SetAttributeValue", h, obj, attributes, len(template))

    def copy_object(self, h: int, obj: int, template: dict[int, bool | int | bytes]) -> int:
        """C_CopyObject; returns the handle of the copy."""
        attributes, _buffers = self._template(template)
        handle = CK_ULONG(0)
        self._check("C_CopyObject", h, obj, attributes, len(template), byref(handle))
        return int(handle.value)

    def decrypt_init(self, h: int, mech: int, key: int) -> None:
        """C_DecryptInit with a parameterless mechanism."""
        mechanism = CK_MECHANISM(mech, None, 0)
        self._check("C_DecryptInit", h, byref(mechanism), key)

    def verify_init(self, h: int, mech: int, key: int) -> None:
        """C_VerifyInit with a parameterless mechanism."""
        mechanism = CK_MECHANISM(mech, None, 0)
        self._check("C_VerifyInit", h, byref(mechanism), key)

    def wrap_key(self, h: int, mech: int, wrapping_key: int, key: int) -> bytes:
        """C_WrapKey with a parameterless mechanism: a NULL output buffer for the length,
        then the buffer."""
        mechanism = CK_MECHANISM(mech, None, 0)
        length = CK_ULONG(0)
        self._check("C_WrapKey", h, byref(mechanism), wrapping_key, key, None, byref(length))
        buffer = create_string_buffer(max(length.value, 1))
        self._check("C_WrapKey", h, byref(mechanism), wrapping_key, key, buffer,
                    byref(length))
        return buffer.raw[: length.value]

    # -- operations with a mechanism parameter (suites/mechanisms: advertised works) -----

    def operation_init(self, h: int, function: str, mech: int, key: int | None,
                       parameter: Parameter = None) -> None:
        """One C_*Init call ("C_EncryptInit", "C_SignRecoverInit", ...; key None for
        C_DigestInit) with a mechanism parameter given as ``mechanism_parameter`` takes."""
        pointer, length, _keep = mechanism_parameter(parameter)
        mechanism = CK_MECHANISM(mech, pointer, length)
        if key is None:
            self._check(function, h, byref(mechanism))
        else:
            self._check(function, h, byref(mechanism), key)

    def wrap_key_with(self, h: int, mech: int, wrapping_key: int, key: int,
                      parameter: Parameter = None, capacity: int = 8192) -> bytes:
        """C_WrapKey with a mechanism parameter, in one call with a buffer of
        ``capacity`` bytes (the length query convention has checks of its own)."""
        pointer, size, _keep = mechanism_parameter(parameter)
        mechanism = CK_MECHANISM(mech, pointer, size)
        buffer, length = create_string_buffer(capacity), CK_ULONG(capacity)
        self._check("C_WrapKey", h, byref(mechanism), wrapping_key, key, buffer,
                    byref(length))
        return buffer.raw[: length.value]

    def unwrap_key(self, h: int, mech: int, unwrapping_key: int, wrapped: bytes,
                   template: dict[int, bool | int | bytes], parameter: Parameter = None
                   ) -> int:
        """C_UnwrapKey with a mechanism parameter; returns the new key's handle."""
        return self._new_key("C_UnwrapKey", h, mech, parameter, template,
                             unwrapping_key, wrapped, len(wrapped))

    def derive_key(self, h: int, mech: int, base_key: int,
                   template: dict[int, bool | int | bytes], parameter: Parameter = None
                   ) -> int:
        """C_DeriveKey with a mechanism parameter; returns the new key's handle."""
        return self._new_key("C_DeriveKey", h, mech, parameter, template, base_key)

    def _new_key(self, function: str, h: int, mech: int, parameter: Parameter,
                 template: dict[int, bool | int | bytes], *inputs: object) -> int:
        """A function that takes (session, mechanism, inputs..., template, count, handle
        pointer) and makes a key: C_UnwrapKey, C_DeriveKey."""
        pointer, size, _keep = mechanism_parameter(parameter)
        mechanism = CK_MECHANISM(mech, pointer, size)
        attributes, _buffers = self._template(template)
        handle = CK_ULONG(0)
        self._check(function, h, byref(mechanism), *inputs, attributes, len(template),
                    byref(handle))
        return int(handle.value)


# A mechanism parameter: None (no parameter), bytes (the parameter's bytes as they are,
# e.g. an IV), or a tuple standing for a structure whose fields are all CK_ULONGs and
# pointers (CK_GCM_PARAMS, CK_RSA_PKCS_OAEP_PARAMS, ...): an int is a CK_ULONG field,
# bytes a pointer to a copy of them, None a NULL pointer.
Parameter = bytes | tuple[int | bytes | None, ...] | None


def inline_zeros(size: int) -> tuple[int, ...]:
    """``size`` zero bytes inside a Parameter tuple (a zero IV array at the head of
    CK_AES_CBC_ENCRYPT_DATA_PARAMS), as CK_ULONG fields: ``size`` is a multiple of
    sizeof(CK_ULONG) for the arrays the spec defines (8 and 16 bytes)."""
    return (0,) * (size // ctypes.sizeof(CK_ULONG))


def ulong_bytes(value: int) -> bytes:
    """A CK_ULONG as the bytes of this platform, for parameters with inline arrays
    (CK_AES_CTR_PARAMS: ulCounterBits, then cb[16])."""
    return value.to_bytes(ctypes.sizeof(CK_ULONG), sys.byteorder)


def mechanism_parameter(parameter: Parameter) -> tuple[int | None, int, list[Any]]:
    """pParameter, ulParameterLen and the buffers they point into (keep them alive while
    the call runs) for a Parameter."""
    if parameter is None:
        return None, 0, []
    if isinstance(parameter, bytes):
        data = create_string_buffer(parameter, max(len(parameter), 1))
        return ctypes.addressof(data), len(parameter), [data]
    keep: list[Any] = []
    fields: list[tuple[str, Any]] = []
    values: list[int | None] = []
    for index, item in enumerate(parameter):
        fields.append((f"field{index}", CK_ULONG if isinstance(item, int) else c_void_p))
        if isinstance(item, bytes):
            keep.append(create_string_buffer(item, max(len(item), 1)))
            values.append(ctypes.addressof(keep[-1]))
        else:
            values.append(item)
    structure = type("CK_PARAMS", (_Struct,), {"_fields_": fields})(*values)
    keep.append(structure)
    return ctypes.addressof(structure), ctypes.sizeof(structure), keep
