"""Operation state: an active operation refuses a second initialization, a call that needs
an operation refuses to run without one, and the output-buffer convention (a NULL or a
too-small buffer) tells the length and leaves the operation active.

Each check runs in a child process of its own (the `raw` fixture), so an operation the
module wrongly leaves active ends with that process.
"""

import hashlib

import pytest

from conformance import raw as ck
from conformance.suite import refused, succeeds
from conformance.suites.errors.common import (
    AES_ECB,
    SERIAL,
    SHA256,
    SHA256_RSA_PKCS,
    aes_key,
    logged_in,
    private_key,
)

DATA = b"conformance: operation state"
SHA256_DIGEST = hashlib.sha256(DATA).digest()


# -- a second initialization while an operation is active ---------------------------------

@pytest.mark.function("C_DigestInit")
@pytest.mark.mechanism("CKM_SHA256")
def test_digest_init_while_digest_active_is_refused(raw):
    """PKCS#11 v2.40 base §5.10.1 C_DigestInit, §5.1.6 CKR_OPERATION_ACTIVE, §5.1: a
    second C_DigestInit while a digest is active gives CKR_OPERATION_ACTIVE, and a call
    that fails leaves the token as it was, so the first digest still completes."""
    session = raw.open_session(raw.slot, SERIAL)
    raw.digest_init(session, SHA256)
    refused("CKR_OPERATION_ACTIVE", "a second C_DigestInit(CKM_SHA256) while a digest is "
            "active", raw.digest_init, session, SHA256)
    got = succeeds("C_Digest after the refused C_DigestInit", raw.digest, session, DATA)
    assert got == SHA256_DIGEST, (
        f"C_Digest after the refused C_DigestInit must complete the first digest "
        f"(SHA-256): got {got.hex()}, expected {SHA256_DIGEST.hex()}")


@pytest.mark.function("C_FindObjectsInit")
def test_find_objects_init_while_search_active_is_refused(raw):
    """PKCS#11 v2.40 base §5.7.7 C_FindObjectsInit, §5.1.6 CKR_OPERATION_ACTIVE, §5.1: a
    second C_FindObjectsInit while a search is active gives CKR_OPERATION_ACTIVE, and the
    first search goes on (C_FindObjects, C_FindObjectsFinal return CKR_OK)."""
    session = raw.open_session(raw.slot, SERIAL)
    raw.find_objects_init(session, {})
    refused("CKR_OPERATION_ACTIVE", "a second C_FindObjectsInit while a search is active",
            raw.find_objects_init, session, {})
    succeeds("C_FindObjects after the refused C_FindObjectsInit", raw.find_objects_next,
             session, 16)
    succeeds("C_FindObjectsFinal after the refused C_FindObjectsInit",
             raw.find_objects_final, session)


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
    refused("CKR_OPERATION_ACTIVE", "a second C_EncryptInit(CKM_AES_ECB) while an "
            "encryption is active", raw.encrypt_init, session, AES_ECB, key)


# -- calls that need an active operation ---------------------------------------------------

AFTER_DIGEST = pytest.param("after-C_Digest", id="after-C_Digest",
                            marks=pytest.mark.mechanism("CKM_SHA256"))


@pytest.mark.parametrize("state", [AFTER_DIGEST, "never-initialized"])
@pytest.mark.function("C_Digest")
def test_digest_without_active_digest_is_refused(raw, state):
    """PKCS#11 v2.40 base §5.10.2 C_Digest, §5.1.6 CKR_OPERATION_NOT_INITIALIZED: C_Digest
    with no digest active (none initialized, or the last one finished by a successful
    C_Digest, which always ends the operation) gives CKR_OPERATION_NOT_INITIALIZED."""
    session = raw.open_session(raw.slot, SERIAL)
    if state == "after-C_Digest":
        raw.digest_init(session, SHA256)
        succeeds("C_Digest(CKM_SHA256)", raw.digest, session, DATA)
    rv, _, _ = raw.digest_into(session, DATA, 64)
    assert ck.ckr_name(rv) == "CKR_OPERATION_NOT_INITIALIZED", (
        f"C_Digest with no active digest ({state}) must return "
        f"CKR_OPERATION_NOT_INITIALIZED: returned {ck.ckr_name(rv)}")


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
    refused("CKR_OPERATION_NOT_INITIALIZED", f"C_FindObjects with no active search ({state})",
            raw.find_objects_next, session, 16)


@pytest.mark.parametrize("state", FIND_STATES)
@pytest.mark.function("C_FindObjectsFinal")
def test_find_objects_final_without_active_search_is_refused(raw, state):
    """PKCS#11 v2.40 base §5.7.9 C_FindObjectsFinal, §5.1.6 CKR_OPERATION_NOT_INITIALIZED:
    C_FindObjectsFinal with no search active gives CKR_OPERATION_NOT_INITIALIZED."""
    session = raw.open_session(raw.slot, SERIAL)
    if state == "after-C_FindObjectsFinal":
        raw.find_objects_init(session, {})
        raw.find_objects_final(session)
    refused("CKR_OPERATION_NOT_INITIALIZED", f"C_FindObjectsFinal with no active search "
            f"({state})", raw.find_objects_final, session)


# -- the output-buffer convention ----------------------------------------------------------

@pytest.mark.function("C_Digest")
@pytest.mark.mechanism("CKM_SHA256")
def test_digest_length_query_leaves_digest_active(raw):
    """PKCS#11 v2.40 base §5.2, §5.10.2 C_Digest: with a NULL output buffer C_Digest
    returns CKR_OK and a length that suffices for the digest, and does not end the
    operation: the next call, with a buffer of that length, returns the digest and its
    exact length."""
    session = raw.open_session(raw.slot, SERIAL)
    raw.digest_init(session, SHA256)
    rv, length, _ = raw.digest_into(session, DATA, None)
    assert ck.ckr_name(rv) == "CKR_OK", (
        f"C_Digest(CKM_SHA256) with a NULL buffer must return CKR_OK: returned "
        f"{ck.ckr_name(rv)}")
    assert length >= len(SHA256_DIGEST), (
        f"C_Digest(CKM_SHA256) with a NULL buffer must give a length that holds the "
        f"{len(SHA256_DIGEST)}-byte digest: got {length}")
    rv, exact, got = raw.digest_into(session, DATA, length)
    assert ck.ckr_name(rv) == "CKR_OK", (
        f"C_Digest(CKM_SHA256) after the length query must return CKR_OK (the query does "
        f"not end the operation): returned {ck.ckr_name(rv)}")
    assert (exact, got) == (len(SHA256_DIGEST), SHA256_DIGEST), (
        f"C_Digest(CKM_SHA256) after the length query must return the SHA-256 digest and "
        f"its length {len(SHA256_DIGEST)}: got {exact} bytes {got.hex()}, expected "
        f"{SHA256_DIGEST.hex()}")


@pytest.mark.parametrize("size", [0, 31], ids=["0-bytes", "31-bytes"])
@pytest.mark.function("C_Digest")
@pytest.mark.mechanism("CKM_SHA256")
def test_digest_short_buffer_reports_length_and_leaves_digest_active(raw, size):
    """PKCS#11 v2.40 base §5.2, §5.10.2 C_Digest: an output buffer too small for the
    digest gives CKR_BUFFER_TOO_SMALL with the exact length needed, and does not end the
    operation: the next call, with a large enough buffer, returns the digest."""
    session = raw.open_session(raw.slot, SERIAL)
    raw.digest_init(session, SHA256)
    rv, length, _ = raw.digest_into(session, DATA, size)
    assert ck.ckr_name(rv) == "CKR_BUFFER_TOO_SMALL", (
        f"C_Digest(CKM_SHA256) with a {size}-byte buffer must return CKR_BUFFER_TOO_SMALL: "
        f"returned {ck.ckr_name(rv)}")
    assert length == len(SHA256_DIGEST), (
        f"C_Digest(CKM_SHA256) with a {size}-byte buffer must set the length to the exact "
        f"{len(SHA256_DIGEST)} bytes needed: got {length}")
    rv, exact, got = raw.digest_into(session, DATA, len(SHA256_DIGEST))
    assert ck.ckr_name(rv) == "CKR_OK", (
        f"C_Digest(CKM_SHA256) after CKR_BUFFER_TOO_SMALL must return CKR_OK (the "
        f"operation stays active): returned {ck.ckr_name(rv)}")
    assert got == SHA256_DIGEST, (
        f"C_Digest(CKM_SHA256) after CKR_BUFFER_TOO_SMALL must return the SHA-256 digest: "
        f"got {got.hex()}, expected {SHA256_DIGEST.hex()}")


# -- an operation across C_Logout ----------------------------------------------------------

# The codes of C_Sign's list that fit an operation the logout ended or a user who left.
REFUSALS = ("CKR_OPERATION_NOT_INITIALIZED", "CKR_USER_NOT_LOGGED_IN")


@pytest.mark.function("C_GenerateKeyPair")
@pytest.mark.function("C_Logout")
@pytest.mark.function("C_Sign")
@pytest.mark.mechanism("CKM_RSA_PKCS_KEY_PAIR_GEN")
@pytest.mark.mechanism("CKM_SHA256_RSA_PKCS")
def test_sign_across_logout_is_refused_or_unchanged(raw, target):
    """PKCS#11 v2.40 base §5.6.8 C_Logout, §5.11.2 C_Sign: an operation active when
    C_Logout succeeds may or may not stay active, so C_Sign with a private key initialized
    before C_Logout either refuses (CKR_OPERATION_NOT_INITIALIZED or
    CKR_USER_NOT_LOGGED_IN, the codes of its list that apply) or returns the signature the
    key makes while logged in (CKM_SHA256_RSA_PKCS is deterministic). The spec does not
    require the refusal softhsm/SoftHSMv2#900 asks for."""
    session = logged_in(raw)
    key = private_key(raw, target, session)
    raw.sign_init(session, SHA256_RSA_PKCS, key)
    expected = succeeds("C_Sign(CKM_SHA256_RSA_PKCS) while logged in", raw.sign, session,
                        DATA)
    raw.sign_init(session, SHA256_RSA_PKCS, key)
    raw.logout(session)
    try:
        got = raw.sign(session, DATA)
    except ck.CKRError as exc:
        assert exc.name in REFUSALS, (
            f"C_Sign(CKM_SHA256_RSA_PKCS) initialized before C_Logout, if it refuses, must "
            f"return {' or '.join(REFUSALS)}: returned {exc.name}")
        return
    assert got == expected, (
        "C_Sign(CKM_SHA256_RSA_PKCS) initialized before C_Logout, if it signs, must return "
        f"the signature the key makes while logged in: got {got[:16].hex()}..., expected "
        f"{expected[:16].hex()}...")
