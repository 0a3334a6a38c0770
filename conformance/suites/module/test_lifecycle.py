"""C_GetFunctionList, C_Initialize and C_Finalize, in a child process of their own."""

import pytest

from conformance import raw as ck
from conformance.suite import expect_code


@pytest.mark.function("C_GetFunctionList")
def test_function_list_has_no_null_entries(raw):
    """PKCS#11 v2.40 base §5.4.4 C_GetFunctionList, §3.6 CK_FUNCTION_LIST: every function
    has an entry point; an unsupported one points to a stub that returns
    CKR_FUNCTION_NOT_SUPPORTED, never NULL."""
    missing = raw.null_functions()
    assert not missing, f"CK_FUNCTION_LIST entries must not be NULL: {', '.join(missing)}"


@pytest.mark.function("C_Initialize")
def test_second_initialize_is_refused(raw):
    """PKCS#11 v2.40 base §5.4.1 C_Initialize, §5.1.6 (CKR_CRYPTOKI_ALREADY_INITIALIZED):
    initializing an initialized library gives CKR_CRYPTOKI_ALREADY_INITIALIZED."""
    expect_code("cryptoki-already-initialized", "C_Initialize", raw.initialize,
                what="a second C_Initialize")


@pytest.mark.severity("should")
@pytest.mark.function("C_Finalize")
def test_calls_after_finalize_are_refused(raw):
    """PKCS#11 v2.40 base §5.1.6 (CKR_CRYPTOKI_NOT_INITIALIZED "can be returned by any
    function other than C_Initialize and C_GetFunctionList"), §5.4.2 C_Finalize: after
    C_Finalize, C_GetInfo and C_GetSlotList answer CKR_CRYPTOKI_NOT_INITIALIZED. The
    spec says "can", not "shall", so another answer is a `should` finding."""
    raw.finalize()
    expect_code("cryptoki-not-initialized", "C_GetInfo", raw.get_info,
                what="C_GetInfo after C_Finalize")
    expect_code("cryptoki-not-initialized", "C_GetSlotList", raw.get_slot_list, True,
                what="C_GetSlotList after C_Finalize")
    raw.initialize()  # and the library can be initialized again


@pytest.mark.function("C_Finalize")
def test_initialize_after_finalize_restores_sessions(raw):
    """PKCS#11 v2.40 base §5.4.2 C_Finalize, §5.4.1 C_Initialize: a finalized library can
    be initialized again and opens sessions on the token as before."""
    raw.finalize()
    raw.initialize()
    session = raw.open_session(raw.slot, ck.CKF_SERIAL_SESSION)
    assert raw.get_session_info(session).slot_id == raw.slot


@pytest.mark.function("C_GetSlotInfo")
def test_slot_info_shows_token_present(raw):
    """PKCS#11 v2.40 base §5.5.2 C_GetSlotInfo, §3.2 CK_SLOT_INFO: the slot holding the
    token has CKF_TOKEN_PRESENT set and blank-padded strings."""
    info = raw.get_slot_info(raw.slot)
    assert info.flags & ck.CKF_TOKEN_PRESENT, (
        f"CKF_TOKEN_PRESENT must be set: flags 0x{info.flags:08X}")
    for field in ("slot_description", "manufacturer_id"):
        value = getattr(info, field)
        assert "\x00" not in value, (
            f"C_GetSlotInfo {field} must be blank-padded: got {value!r}")
