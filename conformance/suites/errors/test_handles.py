"""Invalid handles: a session, object, key or slot the module never issued, or no longer
holds, is refused with the return value that names the bad handle.

Every check runs in a child process of its own (the `raw` fixture), so it knows every
handle that process was given: a value it was not given is invalid by construction.
The other arguments of each call are valid, and by the precedence rule of v2.40 base
§5.1.7 a session handle error (§5.1.2) wins over the function-specific ones (§5.1.6); a
bad object, key or slot handle, on the other hand, is a §5.1.6 error like
CKR_MECHANISM_INVALID, so the mechanisms those calls use are marked and must be claimed.
"""

import pytest
from pkcs11 import Attribute, ObjectClass

from conformance.names import mechanism
from conformance.suite import expect_code
from conformance.suites.errors.common import (
    AES_KEY_WRAP,
    CKA_CLASS,
    INITS,
    RSA_PKCS,
    SERIAL,
    SHA256,
    SHA256_RSA_PKCS,
    aes_key,
    logged_in,
    rsa_pair,
    unissued,
)


def param(name, *marks):
    return pytest.param(name, id=name, marks=[pytest.mark.function(name), *marks])


# -- session handles ---------------------------------------------------------------------

SESSION_CALLS = {
    "C_DigestInit": lambda raw, h: raw.digest_init(h, SHA256),
    "C_FindObjectsInit": lambda raw, h: raw.find_objects_init(h, {}),
    "C_GenerateRandom": lambda raw, h: raw.generate_random(h, 16),
    "C_GetSessionInfo": lambda raw, h: raw.get_session_info(h),
    "C_Logout": lambda raw, h: raw.logout(h),
}


def bad_session(raw, kind):
    """With one session open: the handle of a second session, closed again, or a value
    the module never issued to this process."""
    live = raw.open_session(raw.slot, SERIAL)
    if kind == "never-issued":
        return unissued([live])
    closed = raw.open_session(raw.slot, SERIAL)
    raw.close_session(closed)
    return closed


# C_GetSessionInfo on a closed session is sessions/test_session_state.py's check already.
SESSION_CASES = [
    pytest.param(kind, name, id=f"{kind}-{name}", marks=pytest.mark.function(name))
    for kind in ("closed", "never-issued") for name in sorted(SESSION_CALLS)
    if (kind, name) != ("closed", "C_GetSessionInfo")
]


@pytest.mark.parametrize(("kind", "function"), SESSION_CASES)
def test_invalid_session_handle_is_refused(raw, kind, function):
    """PKCS#11 v2.40 base §5.1.2, §5.1.7: a function that takes a session handle returns
    CKR_SESSION_HANDLE_INVALID for a handle that is not a valid session at the call (a
    closed session, or one never opened), before any other error."""
    handle = bad_session(raw, kind)
    expect_code("session-handle-invalid", function, SESSION_CALLS[function], raw, handle,
                what=f"{function} on a {kind} session handle")


# -- object and key handles --------------------------------------------------------------

def bad_object(raw, session, kind):
    """In a logged-in session: the handle of a data object created and destroyed again,
    or a value that is not the handle of any object the session can see."""
    if kind == "never-issued":
        raw.find_objects_init(session, {})
        try:
            visible = []
            while batch := raw.find_objects_next(session, 64):
                visible += batch
        finally:
            raw.find_objects_final(session)
        return unissued(visible)
    data = raw.create_object(session, {CKA_CLASS: int(ObjectClass.DATA),
                                       int(Attribute.TOKEN): False,
                                       int(Attribute.LABEL): b"conformance errors"})
    raw.destroy_object(session, data)
    return data


# A destroyed handle comes from a data object the test creates and destroys.
DESTROYED = pytest.param("destroyed", id="destroyed", marks=[
    pytest.mark.function("C_CreateObject"), pytest.mark.function("C_DestroyObject")])
OBJECT_KINDS = pytest.mark.parametrize("kind", [DESTROYED, "never-issued"])

OBJECT_CALLS = {
    "C_DestroyObject": lambda raw, h, obj: raw.destroy_object(h, obj),
    "C_GetAttributeValue": lambda raw, h, obj: raw.get_attribute_ulong(h, obj, CKA_CLASS),
}


@pytest.mark.parametrize("function", [param(name) for name in sorted(OBJECT_CALLS)])
@OBJECT_KINDS
def test_invalid_object_handle_is_refused(raw, kind, function):
    """PKCS#11 v2.40 base §5.7.3 C_DestroyObject, §5.7.5 C_GetAttributeValue, §5.1.6: an
    object handle that names no object (a destroyed object, or a value never issued)
    gives CKR_OBJECT_HANDLE_INVALID, the only handle error these functions list."""
    session = logged_in(raw)
    handle = bad_object(raw, session, kind)
    expect_code("object-handle-invalid", function, OBJECT_CALLS[function], raw, session,
                handle, what=f"{function} with a {kind} object handle")


def digest_key(raw, session, key):
    raw.digest_init(session, SHA256)
    raw.digest_key(session, key)


# Every C_*Init that takes a key, with a mechanism of each family (the key's type cannot
# matter: there is no key), and the other calls that take a key handle.
KEY_CASES = sorted([
    ("C_DecryptInit", "CKM_AES_ECB"), ("C_DecryptInit", "CKM_RSA_PKCS"),
    ("C_EncryptInit", "CKM_AES_ECB"), ("C_EncryptInit", "CKM_RSA_PKCS"),
    ("C_SignInit", "CKM_ECDSA"), ("C_SignInit", "CKM_RSA_PKCS"),
    ("C_SignInit", "CKM_SHA256_RSA_PKCS"), ("C_SignInit", "CKM_SHA256_HMAC"),
    ("C_VerifyInit", "CKM_ECDSA"), ("C_VerifyInit", "CKM_RSA_PKCS"),
    ("C_VerifyInit", "CKM_SHA256_HMAC"),
    ("C_DigestKey", "CKM_SHA256"),
])


def key_case(function, mechanism_name):
    return pytest.param(function, mechanism_name, id=f"{function}-{mechanism_name}",
                        marks=[pytest.mark.function(function),
                               pytest.mark.mechanism(mechanism_name)])


@pytest.mark.parametrize(("function", "mechanism_name"),
                         [key_case(*case) for case in KEY_CASES])
@OBJECT_KINDS
def test_invalid_key_handle_is_refused(raw, kind, function, mechanism_name):
    """PKCS#11 v2.40 base §5.8.1 C_EncryptInit, §5.9.1 C_DecryptInit, §5.10.4 C_DigestKey,
    §5.11.1 C_SignInit, §5.12.1 C_VerifyInit, §5.1.6: a key handle that names no object (a
    destroyed object, or a value never issued) gives CKR_KEY_HANDLE_INVALID; these
    functions do not list CKR_OBJECT_HANDLE_INVALID."""
    session = logged_in(raw)
    handle = bad_object(raw, session, kind)
    mech = int(mechanism(mechanism_name))
    what = f"{function}({mechanism_name}) with a {kind} key handle"
    if function == "C_DigestKey":
        expect_code("key-handle-invalid", function, digest_key, raw, session, handle,
                    what=what)
    else:
        expect_code("key-handle-invalid", function, INITS[function], raw, session, mech,
                    handle, what=what)


@pytest.mark.function("C_WrapKey")
@pytest.mark.function("C_GenerateKey")
@pytest.mark.mechanism("CKM_AES_KEY_WRAP", "CKM_AES_KEY_GEN")
@OBJECT_KINDS
def test_wrap_key_with_invalid_key_handle_is_refused(raw, target, kind):
    """PKCS#11 v2.40 base §5.13.1 C_WrapKey, §5.1.6: a handle of the key to wrap that names
    no object gives CKR_KEY_HANDLE_INVALID (the wrapping key is valid)."""
    session = logged_in(raw)
    handle = bad_object(raw, session, kind)
    wrapping = aes_key(raw, target, session, WRAP=True)
    expect_code("key-handle-invalid", "C_WrapKey", raw.wrap_key, session, AES_KEY_WRAP,
                wrapping, handle, what=f"C_WrapKey(CKM_AES_KEY_WRAP) of a {kind} key handle")


# -- slot ids ----------------------------------------------------------------------------

SLOT_CALLS = {
    "C_GetMechanismList": lambda raw, slot: raw.get_mechanism_list(slot),
    "C_GetSlotInfo": lambda raw, slot: raw.get_slot_info(slot),
    "C_GetTokenInfo": lambda raw, slot: raw.get_token_info(slot),
    "C_OpenSession": lambda raw, slot: raw.open_session(slot, SERIAL),
}


@pytest.mark.parametrize("function", [param(name) for name in sorted(SLOT_CALLS)])
def test_invalid_slot_id_is_refused(raw, function):
    """PKCS#11 v2.40 base §5.5.1 C_GetSlotList, §5.1.6: a slot id that C_GetSlotList
    (with or without a token present) does not list gives CKR_SLOT_ID_INVALID."""
    slot = unissued(raw.get_slot_list(False))
    expect_code("slot-id-invalid", function, SLOT_CALLS[function], raw, slot,
                what=f"{function} with slot id {slot:#x}, which C_GetSlotList does not list")


# -- private object handles and C_Logout -------------------------------------------------

# The condition the invalidated handle of a private key meets, per function: while logged
# out, and after the user logged in again. C_GetAttributeValue lists no
# CKR_USER_NOT_LOGGED_IN. The Inits list both codes, and while logged out both apply (a
# private key used in a public session), so by §5.1.7 either may come; after a new login
# only the handle is bad.
PRIVATE_HANDLE_CALLS = {
    "C_DecryptInit": ("private-key-after-logout", "key-handle-invalid",
                      lambda raw, h, key: raw.decrypt_init(h, RSA_PKCS, key)),
    "C_GetAttributeValue": ("object-handle-invalid", "object-handle-invalid",
                            lambda raw, h, key: raw.get_attribute_ulong(h, key, CKA_CLASS)),
    "C_SignInit": ("private-key-after-logout", "key-handle-invalid",
                   lambda raw, h, key: raw.sign_init(h, SHA256_RSA_PKCS, key)),
}
# Parameter marks come after the test's own marks, so each case names its mechanisms
# itself: the one under test first, then the key pair generation it needs.
KEY_PAIR_GEN = pytest.mark.mechanism("CKM_RSA_PKCS_KEY_PAIR_GEN")
PRIVATE_HANDLE_FUNCTIONS = pytest.mark.parametrize("function", [
    param("C_DecryptInit", pytest.mark.mechanism("CKM_RSA_PKCS"), KEY_PAIR_GEN),
    param("C_GetAttributeValue", KEY_PAIR_GEN),
    param("C_SignInit", pytest.mark.mechanism("CKM_SHA256_RSA_PKCS"), KEY_PAIR_GEN),
])


@PRIVATE_HANDLE_FUNCTIONS
@pytest.mark.function("C_Logout")
@pytest.mark.function("C_GenerateKeyPair")
def test_logout_invalidates_private_key_handle(raw, target, function):
    """PKCS#11 v2.40 base §5.6.8 C_Logout, §5.7.5 C_GetAttributeValue, §5.9.1
    C_DecryptInit, §5.11.1 C_SignInit: after C_Logout the application's handles to
    private objects are invalid (and private session objects destroyed), so
    C_GetAttributeValue gives CKR_OBJECT_HANDLE_INVALID and the Inits
    CKR_KEY_HANDLE_INVALID or CKR_USER_NOT_LOGGED_IN (both listed, both apply, §5.1.7 lets
    the module pick)."""
    logged_out, _, call = PRIVATE_HANDLE_CALLS[function]
    session = logged_in(raw)
    key = rsa_pair(raw, target, session)[1]
    raw.logout(session)
    expect_code(logged_out, function, call, raw, session, key,
                what=f"{function} with the handle of a private key after C_Logout")


@PRIVATE_HANDLE_FUNCTIONS
@pytest.mark.function("C_Logout")
@pytest.mark.function("C_GenerateKeyPair")
def test_private_key_handle_stays_invalid_after_new_login(raw, target, function):
    """PKCS#11 v2.40 base §5.6.8 C_Logout: handles to private objects that C_Logout
    invalidated stay invalid even when the user logs in again, so C_GetAttributeValue
    gives CKR_OBJECT_HANDLE_INVALID and the Inits CKR_KEY_HANDLE_INVALID."""
    _, logged_in_again, call = PRIVATE_HANDLE_CALLS[function]
    session = logged_in(raw)
    key = rsa_pair(raw, target, session)[1]
    raw.logout(session)
    raw.login_user(session)
    expect_code(logged_in_again, function, call, raw, session, key,
                what=f"{function} with the handle of a private key from before C_Logout, "
                "after a new C_Login")
