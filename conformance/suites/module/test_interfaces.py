"""PKCS#11 3.x interfaces and profile objects (what the OASIS profiles build on)."""

import pytest

from conformance import raw as ck
from conformance.suite import not_applicable

PROFILE_IDS = {
    "authentication-token": ck.CKP_AUTHENTICATION_TOKEN,
    "baseline-provider": ck.CKP_BASELINE_PROVIDER,
    "extended-provider": ck.CKP_EXTENDED_PROVIDER,
}


@pytest.mark.function("C_GetInterfaceList")
def test_interface_list_offers_pkcs11_3(raw):
    """PKCS#11 v3.0 base §5.4.5 C_GetInterfaceList: the module lists a "PKCS 11"
    interface whose function list is version 3.x."""
    interfaces = raw.get_interface_list()
    assert interfaces is not None, "C_GetInterfaceList must be exported: the symbol is missing"
    versions = [version for name, version, _ in interfaces if name == "PKCS 11"]
    assert any(major == 3 for major, _ in versions), (
        f'C_GetInterfaceList must offer "PKCS 11" version 3.x: got {interfaces}')


@pytest.mark.function("C_GetInterface")
def test_get_interface_is_exported(raw):
    """PKCS#11 v3.0 base §5.4.6 C_GetInterface: the module exports C_GetInterface."""
    assert raw.exports("C_GetInterface"), "C_GetInterface must be exported: the symbol is missing"


@pytest.mark.object_class("CKO_PROFILE")
def test_profile_objects_name_each_oasis_profile_judged(raw, profiles):
    """PKCS#11 v3.0 base §4.13 profile objects, Profiles v3.2 §6: a token that conforms
    to an OASIS profile holds a CKO_PROFILE object whose CKA_PROFILE_ID names it."""
    wanted = {p.id: PROFILE_IDS[p.id] for p in profiles if p.id in PROFILE_IDS}
    if not wanted:
        not_applicable("no OASIS profile is among the profiles this run judges")
    session = raw.open_session(raw.slot, ck.CKF_SERIAL_SESSION)
    found = raw.find_objects(session, {ck.CKA_CLASS: ck.CKO_PROFILE})
    ids = sorted(raw.get_attribute_ulong(session, obj, ck.CKA_PROFILE_ID) for obj in found)
    missing = sorted(name for name, value in wanted.items() if value not in ids)
    assert not missing, (
        f"a CKO_PROFILE object with CKA_PROFILE_ID must exist for {', '.join(missing)}: "
        f"found profile ids {ids}")
