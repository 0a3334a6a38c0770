"""The return values PKCS#11 permits, as data: one table for every negative check.

Two tables, both read from the specification's text:

- RETURN_VALUES: for each function, the return values its "Return values:" paragraph
  lists (PKCS#11 v2.40 base specification §5, and the 3.x functions of v3.0 and later),
  plus the universal ones any function may return (v2.40 §5.1: CKR_GENERAL_ERROR,
  CKR_HOST_MEMORY, CKR_FUNCTION_FAILED; CKR_OK is always listed).
- CONDITIONS: for each error condition a check provokes, the code (or the set of codes)
  the specification names for it, and the clause that names it.

judge() turns one observed return value into a verdict: the named code passes; another
code that the function may return is a `should` finding (the module answered with a
permitted but less precise code); a code outside the function's list, or CKR_OK where
the condition demands an error, is a `must` failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["must", "should", "strict", "robustness"]
# must: the spec says shall/must/always, or names the one code; should: SHOULD, or a
# permitted code other than the named one; strict: a caller obligation a lenient module
# accepts; robustness: caller-contract violations (a crash is a finding, not a
# conformance failure). Profile verdicts count `must` failures only.
SEVERITIES: tuple[Severity, ...] = ("must", "should", "strict", "robustness")

# v2.40 §5.1 (and each later version's "Return values" section): any function may return
# these.
UNIVERSAL = frozenset({"CKR_OK", "CKR_GENERAL_ERROR", "CKR_HOST_MEMORY",
                       "CKR_FUNCTION_FAILED"})


def _codes(*names: str) -> frozenset[str]:
    return UNIVERSAL | frozenset(names)


# Function name -> every return value its "Return values:" paragraph lists (with the
# universal ones). Filled from the v2.40 base specification §5.4-§5.15 and v3.0 §5.
RETURN_VALUES: dict[str, frozenset[str]] = {
    # --- filled from the spec text (see the module docstring) ---
}


@dataclass(frozen=True)
class Condition:
    """An error condition a check provokes, the code(s) the spec names for it, and where."""

    codes: tuple[str, ...]  # any of these is the right answer
    clause: str  # e.g. "PKCS#11 v2.40 §5.2 (CKR_KEY_TYPE_INCONSISTENT)"


# Condition id -> what the spec names. Ids are kebab-case and say the condition, not the
# code. Add an entry by inserting it in its section; never reuse an id for another meaning.
CONDITIONS: dict[str, Condition] = {
    # --- handles and slots (v2.40 §5.1.2, §5.1.6) ---
    "session-handle-invalid": Condition(
        ("CKR_SESSION_HANDLE_INVALID",),
        "PKCS#11 v2.40 §5.1.2, CKR_SESSION_HANDLE_INVALID (any function taking a session "
        "handle \"can return\" it; it takes precedence over §5.1.3 and §5.1.6 codes, §5.1.7)"),
    "object-handle-invalid": Condition(
        ("CKR_OBJECT_HANDLE_INVALID",),
        "PKCS#11 v2.40 §5.1.6, CKR_OBJECT_HANDLE_INVALID (\"0 is never a valid object "
        "handle\")"),
    "key-handle-invalid": Condition(
        ("CKR_KEY_HANDLE_INVALID",),
        "PKCS#11 v2.40 §5.1.6, CKR_KEY_HANDLE_INVALID (\"0 is never a valid key handle\"; "
        "also a valid handle of an object that is not a key)"),
    "private-key-after-logout": Condition(
        ("CKR_KEY_HANDLE_INVALID", "CKR_USER_NOT_LOGGED_IN"),
        "PKCS#11 v2.40 §5.6.8 C_Logout (handles to private objects become invalid) and "
        "§5.1.7 (while logged out CKR_USER_NOT_LOGGED_IN applies too; either may be "
        "returned)"),
    "slot-id-invalid": Condition(
        ("CKR_SLOT_ID_INVALID",),
        "PKCS#11 v2.40 §5.1.6, CKR_SLOT_ID_INVALID"),
    # --- library state (v2.40 §5.1.6, §5.4) ---
    "cryptoki-not-initialized": Condition(
        ("CKR_CRYPTOKI_NOT_INITIALIZED",),
        "PKCS#11 v2.40 §5.1.6, CKR_CRYPTOKI_NOT_INITIALIZED (\"can be returned by any "
        "function other than C_Initialize and C_GetFunctionList\": can, not shall)"),
    "cryptoki-already-initialized": Condition(
        ("CKR_CRYPTOKI_ALREADY_INITIALIZED",),
        "PKCS#11 v2.40 §5.1.6, CKR_CRYPTOKI_ALREADY_INITIALIZED (\"can only be returned by "
        "C_Initialize\") and §5.4.1 C_Initialize"),
    "function-not-supported": Condition(
        ("CKR_FUNCTION_NOT_SUPPORTED",),
        "PKCS#11 v2.40 §5.1.6, CKR_FUNCTION_NOT_SUPPORTED (an unsupported function \"should\" "
        "have a stub returning it)"),
    "arguments-bad": Condition(
        ("CKR_ARGUMENTS_BAD",),
        "PKCS#11 v2.40 §5.1.6, CKR_ARGUMENTS_BAD (\"arguments supplied ... were in some way "
        "not appropriate\")"),
    # --- sessions and login (v2.40 §5.6) ---
    "session-parallel-not-supported": Condition(
        ("CKR_SESSION_PARALLEL_NOT_SUPPORTED",),
        "PKCS#11 v2.40 §5.6.1 C_OpenSession (without CKF_SERIAL_SESSION the call \"should "
        "return unsuccessfully\" with CKR_SESSION_PARALLEL_NOT_SUPPORTED) and §5.1.6"),
    "session-read-only": Condition(
        ("CKR_SESSION_READ_ONLY",),
        "PKCS#11 v2.40 §5.1.6, CKR_SESSION_READ_ONLY (lower priority than "
        "CKR_TOKEN_WRITE_PROTECTED)"),
    "token-write-protected": Condition(
        ("CKR_TOKEN_WRITE_PROTECTED",),
        "PKCS#11 v2.40 §5.1.6, CKR_TOKEN_WRITE_PROTECTED (higher priority than "
        "CKR_SESSION_READ_ONLY)"),
    "user-not-logged-in": Condition(
        ("CKR_USER_NOT_LOGGED_IN",),
        "PKCS#11 v2.40 §5.1.6, CKR_USER_NOT_LOGGED_IN (\"the appropriate user ... is not "
        "logged in\")"),
    "logout-without-login": Condition(
        ("CKR_USER_NOT_LOGGED_IN", "CKR_OK"),
        "PKCS#11 v2.40 §5.6.8 C_Logout (lists CKR_USER_NOT_LOGGED_IN, but does not make "
        "logging out with nobody logged in an error) and §5.1.6: either answer"),
    "user-already-logged-in": Condition(
        ("CKR_USER_ALREADY_LOGGED_IN",),
        "PKCS#11 v2.40 §5.1.6, CKR_USER_ALREADY_LOGGED_IN (\"can only be returned by "
        "C_Login\") and §5.6.7 C_Login"),
    "user-another-already-logged-in": Condition(
        ("CKR_USER_ANOTHER_ALREADY_LOGGED_IN",),
        "PKCS#11 v2.40 §5.1.6, CKR_USER_ANOTHER_ALREADY_LOGGED_IN"),
    "pin-incorrect": Condition(
        ("CKR_PIN_INCORRECT",),
        "PKCS#11 v2.40 §5.1.6, CKR_PIN_INCORRECT"),
    "user-type-invalid": Condition(
        ("CKR_USER_TYPE_INVALID",),
        "PKCS#11 v2.40 §5.1.6, CKR_USER_TYPE_INVALID"),
    # --- mechanisms and keys (v2.40 §5.1.6) ---
    "mechanism-invalid": Condition(
        ("CKR_MECHANISM_INVALID",),
        "PKCS#11 v2.40 §5.1.6, CKR_MECHANISM_INVALID (an unknown mechanism, or one that "
        "cannot be used with the selected function)"),
    "mechanism-param-invalid": Condition(
        ("CKR_MECHANISM_PARAM_INVALID",),
        "PKCS#11 v2.40 §5.1.6, CKR_MECHANISM_PARAM_INVALID (\"which parameter values are "
        "supported ... can vary from token to token\")"),
    "key-type-inconsistent": Condition(
        ("CKR_KEY_TYPE_INCONSISTENT",),
        "PKCS#11 v2.40 §5.1.6, CKR_KEY_TYPE_INCONSISTENT (\"not the correct type of key to "
        "use with the specified mechanism\"; higher priority than "
        "CKR_KEY_FUNCTION_NOT_PERMITTED)"),
    "key-function-not-permitted": Condition(
        ("CKR_KEY_FUNCTION_NOT_PERMITTED",),
        "PKCS#11 v2.40 §5.1.6, CKR_KEY_FUNCTION_NOT_PERMITTED (a key used for a purpose its "
        "attributes do not allow; lower priority than CKR_KEY_TYPE_INCONSISTENT)"),
    "key-size-range": Condition(
        ("CKR_KEY_SIZE_RANGE",),
        "PKCS#11 v2.40 §5.1.6, CKR_KEY_SIZE_RANGE"),
    # --- operations (v2.40 §5.1.6, §5.2) ---
    "operation-active": Condition(
        ("CKR_OPERATION_ACTIVE",),
        "PKCS#11 v2.40 §5.1.6, CKR_OPERATION_ACTIVE"),
    "operation-not-initialized": Condition(
        ("CKR_OPERATION_NOT_INITIALIZED",),
        "PKCS#11 v2.40 §5.1.6, CKR_OPERATION_NOT_INITIALIZED (also after a call that "
        "terminated the operation, §5.2 and each function's text)"),
    "buffer-too-small": Condition(
        ("CKR_BUFFER_TOO_SMALL",),
        "PKCS#11 v2.40 §5.2 (a too-small buffer: the call \"returns the value "
        "CKR_BUFFER_TOO_SMALL\" and sets the length needed) and §5.1.6"),
    # --- data, ciphertext and signatures (v2.40 §5.1.6) ---
    "data-len-range": Condition(
        ("CKR_DATA_LEN_RANGE",),
        "PKCS#11 v2.40 §5.1.6, CKR_DATA_LEN_RANGE (higher priority than CKR_DATA_INVALID)"),
    "data-invalid": Condition(
        ("CKR_DATA_INVALID",),
        "PKCS#11 v2.40 §5.1.6, CKR_DATA_INVALID (lower priority than CKR_DATA_LEN_RANGE)"),
    "encrypted-data-invalid": Condition(
        ("CKR_ENCRYPTED_DATA_INVALID",),
        "PKCS#11 v2.40 §5.1.6, CKR_ENCRYPTED_DATA_INVALID (\"determined to be invalid "
        "ciphertext\", e.g. a bad AEAD tag; the GCM/CCM text names no other code)"),
    # C_Decrypt and C_DecryptFinal name both codes for a ciphertext of the wrong length.
    "encrypted-data-len-range": Condition(
        ("CKR_ENCRYPTED_DATA_LEN_RANGE", "CKR_ENCRYPTED_DATA_INVALID"),
        "PKCS#11 v2.40 §5.9.2 C_Decrypt and §5.9.4 C_DecryptFinal (ciphertext of an "
        "inappropriate length: \"either CKR_ENCRYPTED_DATA_INVALID or "
        "CKR_ENCRYPTED_DATA_LEN_RANGE may be returned\"), §5.1.6"),
    "signature-invalid": Condition(
        ("CKR_SIGNATURE_INVALID",),
        "PKCS#11 v2.40 §5.12.2 C_Verify (a successful call \"should return\" CKR_OK or "
        "CKR_SIGNATURE_INVALID) and §5.1.6, CKR_SIGNATURE_INVALID"),
    "signature-len-range": Condition(
        ("CKR_SIGNATURE_LEN_RANGE",),
        "PKCS#11 v2.40 §5.12.2 C_Verify (invalid \"purely on the basis of its length\": "
        "CKR_SIGNATURE_LEN_RANGE \"should be returned\") and §5.1.6"),
    # --- attributes and templates (v2.40 §4.1, §5.7) ---
    "attribute-read-only": Condition(
        ("CKR_ATTRIBUTE_READ_ONLY",),
        "PKCS#11 v2.40 §4.1.1 rule 3 and §4.1.2 (\"should fail\" with "
        "CKR_ATTRIBUTE_READ_ONLY), §5.1.6"),
    "attribute-type-invalid": Condition(
        ("CKR_ATTRIBUTE_TYPE_INVALID",),
        "PKCS#11 v2.40 §4.1.1 rule 1 (\"should fail\" with CKR_ATTRIBUTE_TYPE_INVALID), "
        "§5.7.5 C_GetAttributeValue case 2 (\"should return\" it), §5.1.6"),
    "attribute-value-invalid": Condition(
        ("CKR_ATTRIBUTE_VALUE_INVALID",),
        "PKCS#11 v2.40 §4.1.1 rule 2 (\"should fail\" with CKR_ATTRIBUTE_VALUE_INVALID), "
        "§5.1.6"),
    "attribute-sensitive": Condition(
        ("CKR_ATTRIBUTE_SENSITIVE",),
        "PKCS#11 v2.40 §5.7.5 C_GetAttributeValue case 1 (\"should return\" "
        "CKR_ATTRIBUTE_SENSITIVE), §5.1.6"),
    "attribute-sensitive-or-absent": Condition(
        ("CKR_ATTRIBUTE_SENSITIVE", "CKR_ATTRIBUTE_TYPE_INVALID"),
        "PKCS#11 v2.40 §5.7.5 C_GetAttributeValue cases 1 and 2 (an attribute the object "
        "may not have: either applies, and \"Cryptoki may return any of them\")"),
    "attribute-values-unavailable": Condition(
        ("CKR_ATTRIBUTE_SENSITIVE", "CKR_ATTRIBUTE_TYPE_INVALID", "CKR_BUFFER_TOO_SMALL"),
        "PKCS#11 v2.40 §5.7.5 C_GetAttributeValue cases 1, 2 and 5 together (\"if more than "
        "one of these error codes is applicable, Cryptoki may return any of them\")"),
    "template-incomplete": Condition(
        ("CKR_TEMPLATE_INCOMPLETE",),
        "PKCS#11 v2.40 §4.1.1 rule 4 (\"should fail\" with CKR_TEMPLATE_INCOMPLETE), §5.1.6"),
    "template-inconsistent": Condition(
        ("CKR_TEMPLATE_INCONSISTENT",),
        "PKCS#11 v2.40 §4.1.1 rule 5 (\"should fail\" with CKR_TEMPLATE_INCONSISTENT), "
        "§4.1.2, §5.1.6"),
    # --- wrapping (v2.40 §5.14.3, §5.14.4) ---
    "key-unextractable": Condition(
        ("CKR_KEY_UNEXTRACTABLE",),
        "PKCS#11 v2.40 §5.14.3 C_WrapKey (CKA_EXTRACTABLE of the key to be wrapped MUST be "
        "CK_TRUE) and §5.1.6, CKR_KEY_UNEXTRACTABLE"),
    "key-not-wrappable": Condition(
        ("CKR_KEY_NOT_WRAPPABLE",),
        "PKCS#11 v2.40 §5.14.3 C_WrapKey (an extractable key that cannot be wrapped \"fails "
        "with error code CKR_KEY_NOT_WRAPPABLE\") and §5.1.6"),
    "key-too-long-to-wrap": Condition(
        ("CKR_KEY_SIZE_RANGE",),
        "PKCS#11 v2.40 §5.14.3 C_WrapKey (a key that cannot be wrapped \"solely because of "
        "its length\" fails with CKR_KEY_SIZE_RANGE)"),
    "wrap-template-mismatch": Condition(
        ("CKR_KEY_HANDLE_INVALID",),
        "PKCS#11 v2.40 §5.14.3 C_WrapKey (a key that does not match the wrapping key's "
        "CKA_WRAP_TEMPLATE: the function \"SHALL return CKR_KEY_HANDLE_INVALID\")"),
    "unwrap-template-conflict": Condition(
        ("CKR_TEMPLATE_INCONSISTENT",),
        "PKCS#11 v2.40 §5.14.4 C_UnwrapKey (a template conflicting with the unwrapping key's "
        "CKA_UNWRAP_TEMPLATE: the function \"SHALL return CKR_TEMPLATE_INCONSISTENT\")"),
    "unwrap-value-len-missing": Condition(
        ("CKR_TEMPLATE_INCOMPLETE",),
        "PKCS#11 v2.40 §5.14.4 C_UnwrapKey (no CKA_VALUE_LEN where neither key type nor "
        "mechanism determines the length: \"SHALL return CKR_TEMPLATE_INCOMPLETE\")"),
    "unwrap-value-len-conflict": Condition(
        ("CKR_WRAPPED_KEY_LEN_RANGE",),
        "PKCS#11 v2.40 §5.14.4 C_UnwrapKey (a length conflict between key type, unwrapped "
        "output and CKA_VALUE_LEN: \"SHALL return CKR_WRAPPED_KEY_LEN_RANGE\")"),
    "wrapped-key-invalid": Condition(
        ("CKR_WRAPPED_KEY_INVALID",),
        "PKCS#11 v2.40 §5.1.6, CKR_WRAPPED_KEY_INVALID (\"can only be returned by "
        "C_UnwrapKey\"; lower priority than CKR_WRAPPED_KEY_LEN_RANGE)"),
    "wrapped-key-len-range": Condition(
        ("CKR_WRAPPED_KEY_LEN_RANGE",),
        "PKCS#11 v2.40 §5.1.6, CKR_WRAPPED_KEY_LEN_RANGE (invalid \"solely on the basis of "
        "its length\"; higher priority than CKR_WRAPPED_KEY_INVALID)"),
    "wrapping-key-handle-invalid": Condition(
        ("CKR_WRAPPING_KEY_HANDLE_INVALID",),
        "PKCS#11 v2.40 §5.1.6, CKR_WRAPPING_KEY_HANDLE_INVALID"),
    "unwrapping-key-handle-invalid": Condition(
        ("CKR_UNWRAPPING_KEY_HANDLE_INVALID",),
        "PKCS#11 v2.40 §5.1.6, CKR_UNWRAPPING_KEY_HANDLE_INVALID"),
}


def permitted(function: str) -> frozenset[str]:
    """The return values `function` may give; every function may give the universal ones."""
    return RETURN_VALUES.get(function, UNIVERSAL)


def severity_of(function: str, condition: str, returned: str) -> Severity | None:
    """None when `returned` is what the spec names for `condition`; else the severity of
    the finding (see the module docstring)."""
    if returned in CONDITIONS[condition].codes:
        return None
    if returned != "CKR_OK" and returned in permitted(function):
        return "should"
    return "must"


class UnexpectedReturn(AssertionError):
    """A check's call returned a code it must not: the code and the severity travel as
    fields (a known deviation matches the code; the report groups by severity)."""

    returned: str
    severity: Severity


class WrongReturnCode(UnexpectedReturn):
    """A check's function returned something other than the code the spec names.

    Carries what a report and a known deviation need as fields, not as text: the
    function, the condition, the codes named, the code returned and the severity."""

    def __init__(self, function: str, condition: str, returned: str, severity: Severity,
                 what: str = "") -> None:
        named = CONDITIONS[condition]
        self.function, self.condition, self.returned = function, condition, returned
        self.expected, self.clause, self.severity = named.codes, named.clause, severity
        subject = what or function
        super().__init__(f"{subject} must return {' or '.join(named.codes)} "
                         f"({named.clause}): returned {returned}")


def judge(function: str, condition: str, returned: str, what: str = "") -> None:
    """Raise WrongReturnCode unless `returned` is the code the spec names for `condition`.

    `what` describes the call for the message, e.g. "C_SignInit(CKM_ECDSA) with an AES key";
    it defaults to the function name."""
    severity = severity_of(function, condition, returned)
    if severity is not None:
        raise WrongReturnCode(function, condition, returned, severity, what)
