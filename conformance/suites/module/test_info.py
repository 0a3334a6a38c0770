"""Module and token information: C_GetInfo, C_GetSlotList, C_GetTokenInfo."""

import pytest

from conformance import raw as raw_layer
from conformance.suite import not_applicable

UNAVAILABLE = (1 << 64) - 1  # CK_UNAVAILABLE_INFORMATION for a 64-bit CK_ULONG


@pytest.mark.function("C_GetInfo")
def test_get_info_flags_are_zero(raw):
    """PKCS#11 v2.40 base §3.1 CK_INFO: flags are reserved for future versions and must
    be zero."""
    info = raw.get_info()
    assert info.flags == 0, f"C_GetInfo flags must be 0: got 0x{info.flags:08X}"


@pytest.mark.function("C_GetInfo")
def test_get_info_cryptoki_version_is_2_or_3(raw):
    """PKCS#11 v2.40 base §3.1 CK_INFO: cryptokiVersion is the Cryptoki interface version
    the module implements (2.x or 3.x)."""
    major, minor = raw.get_info().cryptoki_version
    assert major in (2, 3), f"C_GetInfo cryptokiVersion must be 2.x or 3.x: got {major}.{minor}"


@pytest.mark.function("C_GetInfo")
def test_get_info_strings_are_blank_padded(raw):
    """PKCS#11 v2.40 base §3.1 CK_INFO: manufacturerID and libraryDescription are padded
    with blanks and not null-terminated."""
    info = raw.get_info()
    for field in ("manufacturer_id", "library_description"):
        value = getattr(info, field)
        assert "\x00" not in value, f"C_GetInfo {field} must be blank-padded: got {value!r}"


@pytest.mark.function("C_GetInfo")
def test_library_version_matches_declaration(raw, target):
    """Vendor declaration module.expect_library_version, PKCS#11 v2.40 base §3.1 CK_INFO
    libraryVersion: the loaded module is the version the vendor file declares."""
    expected = target.vendor.module.expect_library_version
    if expected is None:
        not_applicable("the vendor file declares no module.expect_library_version")
    major, minor = raw.get_info().library_version
    assert f"{major}.{minor}" == expected, (
        f"C_GetInfo libraryVersion must be {expected} as declared: got {major}.{minor}")


@pytest.mark.function("C_GetSlotList")
def test_slot_list_with_token_is_subset_of_all_slots(raw):
    """PKCS#11 v2.40 base §5.5.1 C_GetSlotList: the slots with a token present are among
    all slots, and the token under test is in both lists."""
    present, every = raw.get_slot_list(True), raw.get_slot_list(False)
    assert set(present) <= set(every), (
        f"C_GetSlotList(TRUE) must be a subset of C_GetSlotList(FALSE): {present} vs {every}")
    assert raw.slot in present, f"C_GetSlotList(TRUE) must list slot {raw.slot}: got {present}"


@pytest.mark.function("C_GetTokenInfo")
def test_token_info_flags_show_initialized_token_with_user_pin(raw):
    """PKCS#11 v2.40 base §3.2 CK_TOKEN_INFO: a token whose user can log in has
    CKF_TOKEN_INITIALIZED and CKF_USER_PIN_INITIALIZED set."""
    flags = raw.get_token_info(raw.slot).flags
    for name in ("CKF_TOKEN_INITIALIZED", "CKF_USER_PIN_INITIALIZED"):
        assert flags & getattr(raw_layer, name), (
            f"C_GetTokenInfo flags must include {name}: got 0x{flags:08X}")


@pytest.mark.function("C_GetTokenInfo")
def test_token_info_counts_are_consistent(raw):
    """PKCS#11 v2.40 base §3.2 CK_TOKEN_INFO: ulMinPinLen <= ulMaxPinLen; session counts
    and free memory do not exceed their maxima (unless reported as
    CK_UNAVAILABLE_INFORMATION or, for maxima, CK_EFFECTIVELY_INFINITE)."""
    info = raw.get_token_info(raw.slot)
    assert info.min_pin_len <= info.max_pin_len, (
        f"ulMinPinLen must not exceed ulMaxPinLen: {info.min_pin_len} > {info.max_pin_len}")
    pairs = [("ulSessionCount", info.session_count, info.max_session_count),
             ("ulRwSessionCount", info.rw_session_count, info.max_rw_session_count),
             ("ulFreePublicMemory", info.free_public_memory, info.total_public_memory),
             ("ulFreePrivateMemory", info.free_private_memory, info.total_private_memory)]
    for name, value, limit in pairs:
        if UNAVAILABLE in (value, limit) or limit == 0:
            continue
        assert value <= limit, (
            f"C_GetTokenInfo {name} must not exceed its maximum: {value} > {limit}")


@pytest.mark.function("C_GetTokenInfo")
def test_token_info_strings_are_blank_padded(raw):
    """PKCS#11 v2.40 base §3.2 CK_TOKEN_INFO: label, manufacturerID, model and
    serialNumber are padded with blanks and not null-terminated."""
    info = raw.get_token_info(raw.slot)
    for field in ("label", "manufacturer_id", "model", "serial_number"):
        value = getattr(info, field)
        assert "\x00" not in value, f"C_GetTokenInfo {field} must be blank-padded: got {value!r}"



