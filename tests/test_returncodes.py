"""Tests of conformance.returncodes: the tables name only real return values, cover every
v2.40 function, and judge() grades an observed code as the module docstring says."""

from __future__ import annotations

import pytest

from conformance import raw, returncodes
from conformance.returncodes import (
    CONDITIONS,
    RETURN_VALUES,
    UNIVERSAL,
    V3_ADDITIONS,
    WrongReturnCode,
    judge,
    permitted,
)

KNOWN = frozenset(raw.CKR.values())


@pytest.mark.parametrize("function", sorted(RETURN_VALUES))
def test_return_values_are_known_codes(function):
    unknown = RETURN_VALUES[function] - KNOWN
    assert not unknown, f"{function} lists codes raw.CKR does not define: {sorted(unknown)}"


@pytest.mark.parametrize("function", sorted(V3_ADDITIONS))
def test_v3_additions_are_known_codes_of_v240_functions(function):
    assert function in raw.FUNCTION_NAMES
    unknown = V3_ADDITIONS[function] - KNOWN
    assert not unknown, f"{function} adds codes raw.CKR does not define: {sorted(unknown)}"
    # An addition the v2.40 list already has would hide a transcription slip.
    assert not V3_ADDITIONS[function] & RETURN_VALUES[function]


@pytest.mark.parametrize("condition", sorted(CONDITIONS))
def test_condition_codes_are_known_and_cited(condition):
    named = CONDITIONS[condition]
    assert named.codes and len(set(named.codes)) == len(named.codes)
    assert set(named.codes) <= KNOWN, sorted(set(named.codes) - KNOWN)
    assert "CKR_OK" not in named.codes
    # A reader finds the clause by version and section.
    assert "PKCS#11 v" in named.clause and "§" in named.clause


def test_every_v240_function_has_its_list():
    missing = [name for name in raw.FUNCTION_NAMES if name not in RETURN_VALUES]
    assert not missing and len(raw.FUNCTION_NAMES) == 68


@pytest.mark.parametrize("function", sorted(RETURN_VALUES))
def test_every_list_holds_the_universal_codes(function):
    expected = UNIVERSAL - {"CKR_OK"} if function in (
        "C_GetFunctionStatus", "C_CancelFunction") else UNIVERSAL
    assert expected <= RETURN_VALUES[function]


def test_legacy_parallel_functions_cannot_return_ok():
    # v2.40 §5.1.1: C_GetFunctionStatus and C_CancelFunction cannot return CKR_OK.
    assert "CKR_OK" not in permitted("C_GetFunctionStatus")
    assert "CKR_OK" not in permitted("C_CancelFunction")


def test_permitted_adds_the_v3_codes_and_defaults_to_universal():
    assert "CKR_PENDING" in permitted("C_SignInit")
    assert "CKR_PENDING" not in RETURN_VALUES["C_SignInit"]
    assert permitted("C_NoSuchFunction") == UNIVERSAL


def test_judge_passes_the_named_code():
    judge("C_SignInit", "key-type-inconsistent", "CKR_KEY_TYPE_INCONSISTENT")


def test_judge_passes_any_of_several_named_codes():
    for code in CONDITIONS["encrypted-data-len-range"].codes:
        judge("C_Decrypt", "encrypted-data-len-range", code)


def test_a_permitted_but_not_named_code_is_a_should_finding():
    with pytest.raises(WrongReturnCode) as caught:
        judge("C_SignInit", "key-type-inconsistent", "CKR_KEY_FUNCTION_NOT_PERMITTED")
    assert caught.value.severity == "should"


def test_a_v3_addition_is_permitted_so_a_should_finding():
    with pytest.raises(WrongReturnCode) as caught:
        judge("C_SignInit", "key-type-inconsistent", "CKR_OPERATION_CANCEL_FAILED")
    assert caught.value.severity == "should"


@pytest.mark.parametrize("returned", ["CKR_OK", "CKR_ATTRIBUTE_READ_ONLY", "0x80000001"])
def test_ok_or_a_code_outside_the_list_is_a_must_failure(returned):
    with pytest.raises(WrongReturnCode) as caught:
        judge("C_SignInit", "key-type-inconsistent", returned)
    assert caught.value.severity == "must"


def test_a_universal_code_other_than_ok_is_a_should_finding():
    # CKR_GENERAL_ERROR is in every list, so for a condition with a named code it is the
    # lower-severity finding, never a pass.
    with pytest.raises(WrongReturnCode) as caught:
        judge("C_Decrypt", "encrypted-data-invalid", "CKR_GENERAL_ERROR")
    assert caught.value.severity == "should"


def test_wrong_return_code_carries_its_fields_and_message():
    with pytest.raises(WrongReturnCode) as caught:
        judge("C_SignInit", "key-type-inconsistent", "CKR_ARGUMENTS_BAD",
              "C_SignInit(CKM_ECDSA) with an AES key")
    error = caught.value
    assert isinstance(error, AssertionError)
    assert (error.function, error.condition, error.returned, error.severity) == (
        "C_SignInit", "key-type-inconsistent", "CKR_ARGUMENTS_BAD", "should")
    named = CONDITIONS["key-type-inconsistent"]
    assert (error.expected, error.clause) == (named.codes, named.clause)
    assert str(error) == (f"C_SignInit(CKM_ECDSA) with an AES key must return "
                          f"CKR_KEY_TYPE_INCONSISTENT ({named.clause}): returned "
                          f"CKR_ARGUMENTS_BAD")


def test_message_names_the_function_and_every_named_code_without_what():
    with pytest.raises(WrongReturnCode) as caught:
        judge("C_Decrypt", "encrypted-data-len-range", "CKR_OK")
    assert str(caught.value).startswith(
        "C_Decrypt must return CKR_ENCRYPTED_DATA_LEN_RANGE or CKR_ENCRYPTED_DATA_INVALID (")
    assert str(caught.value).endswith("): returned CKR_OK")


def test_severity_of_is_none_for_the_named_code():
    assert returncodes.severity_of("C_Login", "pin-incorrect", "CKR_PIN_INCORRECT") is None
