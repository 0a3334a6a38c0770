"""The session and login state machine, observed through C_GetSessionInfo.

Each test runs against the module loaded afresh in a child process (the `raw` fixture),
so logging in and out here does not touch the login state of other tests.
"""

import contextlib

import pytest

from conformance import raw as ck
from conformance.suite import expect_code

KINDS = {"ro": ck.CKF_SERIAL_SESSION, "rw": ck.CKF_SERIAL_SESSION | ck.CKF_RW_SESSION}
PUBLIC = {"ro": ck.CKS_RO_PUBLIC_SESSION, "rw": ck.CKS_RW_PUBLIC_SESSION}
USER = {"ro": ck.CKS_RO_USER_FUNCTIONS, "rw": ck.CKS_RW_USER_FUNCTIONS}
STATE_NAMES = {v: k for k, v in vars(ck).items() if k.startswith("CKS_")}
EACH_KIND = pytest.mark.parametrize("kind", sorted(KINDS))


def state_of(raw, session):
    return STATE_NAMES.get(raw.get_session_info(session).state, "unknown state")


@EACH_KIND
@pytest.mark.function("C_GetSessionInfo")
def test_session_info_after_open(raw, kind):
    """PKCS#11 v2.40 base §5.6.4 C_GetSessionInfo, §3.3 CK_SESSION_INFO: a new session
    reports its slot, the public state of its kind, CKF_SERIAL_SESSION, and
    CKF_RW_SESSION exactly when opened read/write."""
    session = raw.open_session(raw.slot, KINDS[kind])
    info = raw.get_session_info(session)
    assert info.slot_id == raw.slot, f"slotID must be {raw.slot}: got {info.slot_id}"
    assert info.state == PUBLIC[kind], (
        f"state must be {STATE_NAMES[PUBLIC[kind]]} after C_OpenSession: got "
        f"{STATE_NAMES.get(info.state, info.state)}")
    assert info.flags & ck.CKF_SERIAL_SESSION, (
        f"flags must have CKF_SERIAL_SESSION: {info.flags:#x}")
    assert bool(info.flags & ck.CKF_RW_SESSION) == (kind == "rw"), (
        f"CKF_RW_SESSION must be {'set' if kind == 'rw' else 'clear'} in a {kind} session: "
        f"flags {info.flags:#x}")


@EACH_KIND
@pytest.mark.function("C_Login")
def test_session_state_after_login(raw, kind):
    """PKCS#11 v2.40 base §5.6.7 C_Login, §3.3 CK_STATE: after the user logs in, a
    session is in the user-functions state of its kind."""
    session = raw.open_session(raw.slot, KINDS[kind])
    raw.login_user(session)
    assert state_of(raw, session) == STATE_NAMES[USER[kind]], (
        f"state must be {STATE_NAMES[USER[kind]]} after C_Login: got {state_of(raw, session)}")


@EACH_KIND
@pytest.mark.function("C_Logout")
def test_session_state_after_logout(raw, kind):
    """PKCS#11 v2.40 base §5.6.8 C_Logout: after the user logs out, the session returns
    to the public state of its kind."""
    session = raw.open_session(raw.slot, KINDS[kind])
    raw.login_user(session)
    raw.logout(session)
    assert state_of(raw, session) == STATE_NAMES[PUBLIC[kind]], (
        f"state must be {STATE_NAMES[PUBLIC[kind]]} after C_Logout: got {state_of(raw, session)}")


@pytest.mark.function("C_Login")
def test_login_applies_to_every_session(raw):
    """PKCS#11 v2.40 base §5.6.7 C_Login: logging in on one session logs in every session
    the application has with the token, and sessions opened afterwards."""
    read_only = raw.open_session(raw.slot, KINDS["ro"])
    read_write = raw.open_session(raw.slot, KINDS["rw"])
    raw.login_user(read_write)
    later = raw.open_session(raw.slot, KINDS["ro"])
    for name, session, state in (("the other open session", read_only, USER["ro"]),
                                 ("a session opened after login", later, USER["ro"])):
        assert state_of(raw, session) == STATE_NAMES[state], (
            f"{name} must be in {STATE_NAMES[state]} after C_Login: got {state_of(raw, session)}")


@pytest.mark.severity("should")
@pytest.mark.function("C_OpenSession")
def test_open_session_without_serial_flag_is_refused(raw):
    """PKCS#11 v2.40 base §5.6.1 C_OpenSession: CKF_SERIAL_SESSION must be set by the
    caller; without it the call "should return unsuccessfully" with
    CKR_SESSION_PARALLEL_NOT_SUPPORTED (a SHOULD)."""
    expect_code("session-parallel-not-supported", "C_OpenSession", raw.open_session,
                raw.slot, 0, what="C_OpenSession(flags=0)")


@pytest.mark.function("C_Login")
def test_second_login_is_refused(raw):
    """PKCS#11 v2.40 base §5.6.7 C_Login, §5.1.6 (CKR_USER_ALREADY_LOGGED_IN): logging in
    again as the same user gives CKR_USER_ALREADY_LOGGED_IN."""
    session = raw.open_session(raw.slot, KINDS["rw"])
    raw.login_user(session)
    expect_code("user-already-logged-in", "C_Login", raw.login_user, session,
                what="a second C_Login(CKU_USER)")


@pytest.mark.function("C_Logout")
def test_logout_without_login_leaves_session_public(raw):
    """PKCS#11 v2.40 base §5.6.8 C_Logout: logging out when nobody is logged in leaves the
    session public, whatever the call returns."""
    session = raw.open_session(raw.slot, KINDS["rw"])
    with contextlib.suppress(ck.CKRError):  # the code is the next check's subject
        raw.logout(session)
    assert state_of(raw, session) == "CKS_RW_PUBLIC_SESSION", (
        f"the session must stay CKS_RW_PUBLIC_SESSION: got {state_of(raw, session)}")


@pytest.mark.severity("should")
@pytest.mark.function("C_Logout")
def test_logout_without_login_returns_user_not_logged_in(raw):
    """PKCS#11 v2.40 base §5.1.6 (CKR_USER_NOT_LOGGED_IN): "a session cannot be logged
    out unless it is logged in" is the code's own example, but no clause says shall, so a
    module that answers CKR_OK (softhsm/SoftHSMv2#472) has a `should` finding."""
    session = raw.open_session(raw.slot, KINDS["rw"])
    expect_code("logout-without-login", "C_Logout", raw.logout, session,
                what="C_Logout without C_Login")


@pytest.mark.function("C_CloseSession")
def test_closed_session_handle_is_invalid(raw):
    """PKCS#11 v2.40 base §5.6.2 C_CloseSession, §5.1.2 (CKR_SESSION_HANDLE_INVALID): the
    handle of a closed session is no longer valid."""
    session = raw.open_session(raw.slot, KINDS["ro"])
    raw.close_session(session)
    expect_code("session-handle-invalid", "C_GetSessionInfo", raw.get_session_info,
                session, what="C_GetSessionInfo on a closed session")


@pytest.mark.function("C_CloseAllSessions")
def test_close_all_sessions_ends_sessions_and_login(raw):
    """PKCS#11 v2.40 base §5.6.3 C_CloseAllSessions, §5.6.2, §5.1.2
    (CKR_SESSION_HANDLE_INVALID): every session of the slot is closed, and with the last
    session the login state returns to public."""
    first = raw.open_session(raw.slot, KINDS["rw"])
    second = raw.open_session(raw.slot, KINDS["ro"])
    raw.login_user(first)
    raw.close_all_sessions(raw.slot)
    for session in (first, second):
        expect_code("session-handle-invalid", "C_GetSessionInfo", raw.get_session_info,
                    session, what="C_GetSessionInfo after C_CloseAllSessions")
    fresh = raw.open_session(raw.slot, KINDS["ro"])
    assert state_of(raw, fresh) == "CKS_RO_PUBLIC_SESSION", (
        "a session opened after C_CloseAllSessions must be public: got "
        f"{state_of(raw, fresh)}")
