"""Helpers for writing suite tests."""

from __future__ import annotations

import re
from typing import Any

import pytest

from .returncodes import Functions

# python-pkcs11 0.10.1 (_pkcs11.pxd, map_rv_to_error): the exception class it raises for a
# CK_RV, where the class name is not the CamelCase of the CKR name; every other class it
# maps is (SignatureInvalid is CKR_SIGNATURE_INVALID).
_IRREGULAR = {
    "AnotherUserAlreadyLoggedIn": "CKR_USER_ANOTHER_ALREADY_LOGGED_IN",
    "FunctionCancelled": "CKR_FUNCTION_CANCELED",
    "RandomNoRNG": "CKR_RANDOM_NO_RNG",
    "SessionReadWriteSOExists": "CKR_SESSION_READ_WRITE_SO_EXISTS",
    "SlotIDInvalid": "CKR_SLOT_ID_INVALID",
    "TokenNotRecognised": "CKR_TOKEN_NOT_RECOGNIZED",
}
# The pkcs11.exceptions classes map_rv_to_error never raises (python-pkcs11's own lookups).
_NOT_CKR = {"MultipleObjectsReturned", "MultipleTokensReturned", "NoSuchKey", "NoSuchToken"}
_UNMAPPED = re.compile(r"Unmapped error code (0x[0-9a-fA-F]+)")
# python-pkcs11 0.10.1 (map_rv_to_error): the plain PKCS11Error texts it raises for codes
# it thinks cannot happen. CKR_BUFFER_TOO_SMALL does, from the call after its own length
# query, when a module under-reports the length it needs.
_FIXED_TEXTS = {
    "Buffer was too small. Should never see this.": "CKR_BUFFER_TOO_SMALL",
    "Initialisation error (already initialized). Should never see this.":
        "CKR_CRYPTOKI_ALREADY_INITIALIZED",
    "Initialisation error (not initialized). Should never see this.":
        "CKR_CRYPTOKI_NOT_INITIALIZED",
    "Parallel not supported. Should never see this.": "CKR_SESSION_PARALLEL_NOT_SUPPORTED",
    "User type invalid. Should never see this.": "CKR_USER_TYPE_INVALID",
}


# The PKCS#11 calls one python-pkcs11 call makes, for judging the code it gives.
SIGN = ("C_SignInit", "C_Sign")
ENCRYPT = ("C_EncryptInit", "C_Encrypt")
DECRYPT = ("C_DecryptInit", "C_Decrypt")

NOT_APPLICABLE = "not applicable: "
# Every token object a run creates has a CKA_LABEL starting with this, so
# `pkcs11-conformance clean` can remove exactly those after an interrupted run.
OBJECT_LABEL_PREFIX = "pkcs11-conformance-"


def not_applicable(why: str) -> None:
    """End a case that does not apply to this target (no reference data for a claimed
    value, nothing declared to compare with). Recorded as SKIP with the reason and not
    counted against any profile; never use it for something the module failed to do."""
    pytest.skip(NOT_APPLICABLE + why)


def succeeds(function: str, call: Any, *args: Any) -> Any:
    """The result of `call(*args)` (a raw-layer call), which must return CKR_OK."""
    from .raw import CKRError

    try:
        return call(*args)
    except CKRError as exc:
        pytest.fail(f"{function} must return CKR_OK: returned {exc.name}")


def returned(exc: Exception) -> str:
    """The CKR_* name behind a python-pkcs11 exception, e.g. ``CKR_SIGNATURE_INVALID``.

    Codes python-pkcs11 does not map arrive as a plain PKCS11Error "Unmapped error code
    0x..", named here through raw.ckr_name; mapped codes arrive as an exception class, named
    by the table of map_rv_to_error, or as one of its fixed "Should never see this" texts.
    A plain PKCS11Error with another text stays ``PKCS11Error(<text>)``.
    """
    from pkcs11.exceptions import PKCS11Error

    from .raw import ckr_name

    name = type(exc).__name__
    if type(exc) is PKCS11Error:
        unmapped = _UNMAPPED.fullmatch(str(exc))
        if unmapped:
            return ckr_name(int(unmapped.group(1), 16))
        if str(exc) in _FIXED_TEXTS:
            return _FIXED_TEXTS[str(exc)]
        return f"PKCS11Error({exc})"
    if not isinstance(exc, PKCS11Error) or name in _NOT_CKR:
        return f"{name}({exc})"
    if name in _IRREGULAR:
        return _IRREGULAR[name]
    return "CKR_" + re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def expect_code(condition: str, function: Functions, call: Any, *args: Any,
                what: str = "") -> None:
    """Assert that `call(*args)` (a raw-layer call of `function`) answers `condition` with
    the code the spec names for it (conformance.returncodes); any other answer raises
    WrongReturnCode with its severity."""
    from .raw import CKRError
    from .returncodes import judge

    try:
        call(*args)
    except CKRError as exc:
        judge(function, condition, exc.name, what)
        return
    judge(function, condition, "CKR_OK", what)


def expect_refusal(condition: str, function: Functions, call: Any, *args: Any,
                   what: str = "", **kwargs: Any) -> None:
    """As expect_code, for a python-pkcs11 call: the exception it raises is named by
    returned(); no exception is CKR_OK. A call that makes several PKCS#11 calls (sign() is
    C_SignInit then C_Sign) names them all: a code any of them may return is permitted."""
    from pkcs11.exceptions import PKCS11Error

    from .returncodes import judge

    try:
        call(*args, **kwargs)
    except PKCS11Error as exc:
        judge(function, condition, returned(exc), what)
        return
    judge(function, condition, "CKR_OK", what)
