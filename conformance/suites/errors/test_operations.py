"""Operation state: an active operation refuses a second initialization, a call that needs
an operation refuses to run without one, an error ends the operation, single-part and
multi-part calls do not mix, and C_Logout leaves no private key usable.

Each check runs in a child process of its own (the `raw` fixture), so an operation the
module wrongly leaves active ends with that process. Cryptographic operations run in a
logged-in session: C_DigestInit and C_EncryptInit list CKR_USER_NOT_LOGGED_IN, which a
token with CKF_LOGIN_REQUIRED may rightly return in a public session.
"""

import contextlib
import hashlib

import pytest

from conformance import raw as ck
from conformance.returncodes import permitted
from conformance.suite import expect_code, succeeds
from conformance.suites.errors.common import (
    AES_ECB,
    BLOCK,
    DATA,
    OUT,
    SERIAL,
    SHA256,
    aes_key,
    call,
    logged_in,
    operation_marks,
    refusal,
    run,
    start,
    valid_inputs,
)

SHA256_DIGEST = hashlib.sha256(DATA).digest()
STRICT = "strict"


# -- a second initialization while an operation is active ---------------------------------

@pytest.mark.function("C_DigestInit")
@pytest.mark.mechanism("CKM_SHA256")
def test_digest_init_while_digest_active_is_refused(raw):
    """PKCS#11 v2.40 base §5.10.1 C_DigestInit, §5.1.6 CKR_OPERATION_ACTIVE, §5.1: a
    second C_DigestInit while a digest is active gives CKR_OPERATION_ACTIVE, and a call
    that fails leaves the token as it was, so the first digest still completes."""
    session = logged_in(raw)
    raw.digest_init(session, SHA256)
    expect_code("operation-active", "C_DigestInit", raw.digest_init, session, SHA256,
                what="a second C_DigestInit(CKM_SHA256) while a digest is active")
    got = succeeds("C_Digest after the refused C_DigestInit", raw.digest, session, DATA)
    assert got == SHA256_DIGEST, (
        f"C_Digest after the refused C_DigestInit must complete the first digest "
        f"(SHA-256): got {got.hex()}, expected {SHA256_DIGEST.hex()}")


@pytest.mark.severity(STRICT)
@pytest.mark.function("C_FindObjectsInit")
def test_find_objects_init_while_search_active_is_refused(raw):
    """PKCS#11 v2.40 base §5.7.7 C_FindObjectsInit, §5.1.6 CKR_OPERATION_ACTIVE: "at most
    one search operation may be active at a given time in a given session", a rule on the
    application (a module that replaces the first search still has one search active);
    a strict module refuses the second C_FindObjectsInit with CKR_OPERATION_ACTIVE, the
    code §5.1.6 names for an operation that prevents another, and its first search goes
    on (C_FindObjects and C_FindObjectsFinal return CKR_OK)."""
    session = raw.open_session(raw.slot, SERIAL)
    raw.find_objects_init(session, {})
    refusal("operation-active", "C_FindObjectsInit", raw.find_objects_init, session, {},
            what="a second C_FindObjectsInit while a search is active",
            severity=STRICT)
    succeeds("C_FindObjects after the refused C_FindObjectsInit", raw.find_objects_next,
             session, 16)
    succeeds("C_FindObjectsFinal after the refused C_FindObjectsInit",
             raw.find_objects_final, session)


@pytest.mark.function("C_FindObjectsInit")
def test_find_objects_init_while_search_active_leaves_one_search(raw):
    """PKCS#11 v2.40 base §5.7.7 C_FindObjectsInit: at most one search operation is active
    in a session, so after a second C_FindObjectsInit (refused, or accepted in place of
    the first search) one C_FindObjectsFinal ends every search: C_FindObjects then gives
    CKR_OPERATION_NOT_INITIALIZED."""
    session = raw.open_session(raw.slot, SERIAL)
    raw.find_objects_init(session, {})
    with contextlib.suppress(ck.CKRError):
        raw.find_objects_init(session, {})
    succeeds("C_FindObjectsFinal after a second C_FindObjectsInit", raw.find_objects_final,
             session)
    expect_code("operation-not-initialized", "C_FindObjects", raw.find_objects_next,
                session, 16, what="C_FindObjects after C_FindObjectsFinal ended the search "
                "(a second C_FindObjectsInit had been called)")


@pytest.mark.function("C_GenerateKey")
@pytest.mark.function("C_EncryptInit")
@pytest.mark.mechanism("CKM_AES_KEY_GEN")
@pytest.mark.mechanism("CKM_AES_ECB")
def test_encrypt_init_while_encryption_active_is_refused(raw, target):
    """PKCS#11 v2.40 base §5.8.1 C_EncryptInit, §5.1.6 CKR_OPERATION_ACTIVE: a second
    C_EncryptInit while an encryption is active gives CKR_OPERATION_ACTIVE."""
    session = logged_in(raw)
    key = aes_key(raw, target, session)
    raw.encrypt_init(session, AES_ECB, key)
    expect_code("operation-active", "C_EncryptInit", raw.encrypt_init, session, AES_ECB, key,
                what="a second C_EncryptInit(CKM_AES_ECB) while an encryption is active")


# -- calls that need an active operation ---------------------------------------------------

AFTER_DIGEST = pytest.param("after-C_Digest", id="after-C_Digest",
                            marks=pytest.mark.mechanism("CKM_SHA256"))


@pytest.mark.parametrize("state", [AFTER_DIGEST, "never-initialized"])
@pytest.mark.function("C_Digest")
def test_digest_without_active_digest_is_refused(raw, state):
    """PKCS#11 v2.40 base §5.10.2 C_Digest, §5.1.6 CKR_OPERATION_NOT_INITIALIZED: C_Digest
    with no digest active (none initialized, or the last one finished by a successful
    C_Digest, which always ends the operation) gives CKR_OPERATION_NOT_INITIALIZED."""
    session = logged_in(raw)
    if state == "after-C_Digest":
        raw.digest_init(session, SHA256)
        succeeds("C_Digest(CKM_SHA256)", raw.digest, session, DATA)
    expect_code("operation-not-initialized", "C_Digest", raw.digest, session, DATA,
                what=f"C_Digest with no active digest ({state})")


FIND_STATES = ["after-C_FindObjectsFinal", "never-initialized"]


@pytest.mark.parametrize("state", FIND_STATES)
@pytest.mark.function("C_FindObjects")
def test_find_objects_without_active_search_is_refused(raw, state):
    """PKCS#11 v2.40 base §5.7.8 C_FindObjects, §5.7.9 C_FindObjectsFinal, §5.1.6
    CKR_OPERATION_NOT_INITIALIZED: C_FindObjects with no search active (none initialized,
    or the last one ended by C_FindObjectsFinal) gives CKR_OPERATION_NOT_INITIALIZED."""
    session = raw.open_session(raw.slot, SERIAL)
    if state == "after-C_FindObjectsFinal":
        raw.find_objects_init(session, {})
        raw.find_objects_final(session)
    expect_code("operation-not-initialized", "C_FindObjects", raw.find_objects_next,
                session, 16, what=f"C_FindObjects with no active search ({state})")


@pytest.mark.parametrize("state", FIND_STATES)
@pytest.mark.function("C_FindObjectsFinal")
def test_find_objects_final_without_active_search_is_refused(raw, state):
    """PKCS#11 v2.40 base §5.7.9 C_FindObjectsFinal, §5.1.6 CKR_OPERATION_NOT_INITIALIZED:
    C_FindObjectsFinal with no search active gives CKR_OPERATION_NOT_INITIALIZED."""
    session = raw.open_session(raw.slot, SERIAL)
    if state == "after-C_FindObjectsFinal":
        raw.find_objects_init(session, {})
        raw.find_objects_final(session)
    expect_code("operation-not-initialized", "C_FindObjectsFinal", raw.find_objects_final,
                session, what=f"C_FindObjectsFinal with no active search ({state})")


# -- an error ends the operation -------------------------------------------------------------

def provoke(raw, function, started, error):
    """Make `function` fail in its started operation with `error`; returns the code."""
    signature = started.signature
    if error == "null-length":  # a NULL pointer for the output's length: CKR_ARGUMENTS_BAD
        if function in ("C_EncryptFinal", "C_DecryptFinal"):
            update = function.replace("Final", "Update")
            succeeds(update, call, raw, update, started, [BLOCK])
        elif function.endswith("Final"):
            update = function.replace("Final", "Update")
            succeeds(update, call, raw, update, started, [DATA])
        rv = raw.call_without_length(function, started.session,
                                     valid_inputs(function, started), OUT)
        return ck.ckr_name(rv)
    if error == "null-input":  # a NULL pointer with a length: CKR_ARGUMENTS_BAD
        inputs = valid_inputs(function, started)
        if function == "C_Verify":
            inputs = [DATA, (None, len(signature))]
        else:
            inputs = [(None, len(inputs[0]))]
        return call(raw, function, started, inputs)[0]
    if error == "signature-len-range":
        inputs = [signature[:-1]]
    elif error == "signature-invalid":
        inputs = [signature[:-1] + bytes([signature[-1] ^ 1])]
    elif function in ("C_EncryptFinal", "C_DecryptFinal"):  # 15 bytes then the end
        update = function.replace("Final", "Update")
        succeeds(f"{update} with 15 bytes", call, raw, update, started, [BLOCK[:15]])
        inputs = []
    elif function == "C_Sign":  # longer than a PKCS #1 v1.5 block can hold
        inputs = [bytes(started.modulus_bytes)]
    else:  # not a whole number of AES blocks
        inputs = [BLOCK[:15]]
    if function == "C_Verify":
        inputs = [DATA, *inputs]
    elif function == "C_VerifyFinal":
        succeeds("C_VerifyUpdate", call, raw, "C_VerifyUpdate", started, [DATA])
    return call(raw, function, started, inputs)[0]


PROVOCATIONS = {
    "data-len-range": "input of a length the mechanism does not take (15 bytes of "
                      "CKM_AES_ECB, k bytes of CKM_RSA_PKCS)",
    "null-input": "a NULL input pointer with a non-zero length",
    "null-length": "a NULL pointer for the output's length",
    "signature-invalid": "a signature whose last bit is flipped",
    "signature-len-range": "a signature one byte short",
}
ENDING_ERRORS = [
    ("C_Decrypt", "data-len-range"), ("C_Decrypt", "null-input"),
    ("C_DecryptFinal", "data-len-range"), ("C_DecryptFinal", "null-length"),
    ("C_DecryptUpdate", "null-input"),
    ("C_Digest", "null-input"), ("C_DigestFinal", "null-length"),
    ("C_DigestUpdate", "null-input"),
    ("C_Encrypt", "data-len-range"), ("C_Encrypt", "null-input"),
    ("C_EncryptFinal", "data-len-range"), ("C_EncryptFinal", "null-length"),
    ("C_EncryptUpdate", "null-input"),
    ("C_Sign", "data-len-range"), ("C_Sign", "null-input"), ("C_SignFinal", "null-length"),
    ("C_SignUpdate", "null-input"),
    ("C_Verify", "null-input"), ("C_Verify", "signature-invalid"),
    ("C_Verify", "signature-len-range"), ("C_VerifyFinal", "signature-invalid"),
    ("C_VerifyFinal", "signature-len-range"), ("C_VerifyUpdate", "null-input"),
]


@pytest.mark.parametrize(("function", "error"), [
    pytest.param(function, error, id=f"{function}-{error}", marks=operation_marks(function))
    for function, error in ENDING_ERRORS])
def test_error_ends_operation(raw, target, function, error):
    """PKCS#11 v2.40 base §5.2 and each function's text (§5.8.2-§5.8.4, §5.9.2-§5.9.4,
    §5.10.2-§5.10.5, §5.11.2-§5.11.4, §5.12.2-§5.12.4): a call of C_Encrypt, C_Decrypt,
    C_Digest, C_Sign, C_Verify or their Update/Final forms that returns an error other
    than CKR_BUFFER_TOO_SMALL terminates the active operation (CKR_ARGUMENTS_BAD,
    CKR_DATA_LEN_RANGE, CKR_SIGNATURE_INVALID included), so the next call, with valid
    arguments, gives CKR_OPERATION_NOT_INITIALIZED."""
    started = start(raw, target, function)
    got = provoke(raw, function, started, error)
    assert got not in ("CKR_OK", "CKR_BUFFER_TOO_SMALL"), (
        f"{function} with {PROVOCATIONS[error]} must fail: returned {got}")
    expect_code("operation-not-initialized", function, run, raw, function, started,
                valid_inputs(function, started),
                what=f"{function} after {function} returned {got} ({error})")


# -- single-part and multi-part calls do not mix --------------------------------------------

MIXES = sorted([("C_DecryptUpdate", "C_Decrypt"), ("C_DigestUpdate", "C_Digest"),
                ("C_EncryptUpdate", "C_Encrypt"), ("C_SignUpdate", "C_Sign"),
                ("C_VerifyUpdate", "C_Verify")])


@pytest.mark.severity(STRICT)
@pytest.mark.parametrize(("update", "single"), [
    pytest.param(update, single, id=f"{update}-then-{single}",
                 marks=[*operation_marks(update), pytest.mark.function(single)])
    for update, single in MIXES])
def test_single_part_call_after_update_is_refused(raw, target, update, single):
    """PKCS#11 v2.40 base §5.8.2 C_Encrypt, §5.9.2 C_Decrypt, §5.10.2 C_Digest, §5.11.2
    C_Sign, §5.12.2 C_Verify: the single-part call "cannot be used to terminate a
    multi-part operation, and must be called after" the Init "without intervening" Update
    calls; a rule on the caller, which a strict module enforces by refusing the
    single-part call after an Update. The spec names no code for it: any error the
    function lists is right."""
    started = start(raw, target, update)
    succeeds(update, call, raw, update, started, valid_inputs(update, started))
    got = call(raw, single, started, valid_inputs(single, started))[0]
    assert got != "CKR_OK", (
        f"{single} after {update} must be refused (a single-part call cannot end a "
        f"multi-part operation): returned CKR_OK")
    assert got in permitted(single), (
        f"{single} after {update} returned {got}, which is not among {single}'s return "
        f"values")


# -- C_Logout and the operations it interrupts -----------------------------------------------

LOGOUT_CASES = ["C_Decrypt", "C_Encrypt", "C_Sign"]


@pytest.mark.severity(STRICT)
@pytest.mark.parametrize("function", [
    pytest.param(function, marks=[*operation_marks(function), pytest.mark.function("C_Logout")])
    for function in LOGOUT_CASES])
def test_operation_with_private_key_ends_at_logout(raw, target, function):
    """PKCS#11 v2.40 base §5.6.8 C_Logout: after C_Logout the application's handles to
    private objects are invalid; an operation active at the logout "may or may not" stay
    active, and the application "should" finish it first: a rule on the caller, which a
    strict module enforces by refusing to go on with a private key (CKA_PRIVATE true)
    once no user is logged in: CKR_OPERATION_NOT_INITIALIZED or CKR_USER_NOT_LOGGED_IN."""
    started = start(raw, target, function, private=True)
    raw.logout(started.session)
    refusal("operation-after-logout", function, run, raw, function, started,
            valid_inputs(function, started),
            what=f"{function} with a private key, initialized before C_Logout",
            severity=STRICT)
