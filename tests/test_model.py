"""The outcome rule: claims decide what runs, profiles decide what counts."""

from __future__ import annotations

from pathlib import Path

from conformance.model import (
    KnownDeviation,
    ModuleSpec,
    Observation,
    Profile,
    TokenSpec,
    Vendor,
    decide,
    parameter_values,
)


def vendor(claims, functions=(), deviations=()):
    return Vendor("acme", "ACME", Path("acme.yaml"), ModuleSpec("/lib.so"),
                  TokenSpec("t", "PIN"), (), frozenset(functions), claims, tuple(deviations))


def profile(required=None, optional=None, functions=()):
    return Profile("p", "P", Path("p.yaml"), "ref", frozenset(functions), frozenset(),
                   required or {}, optional or {})


KEYGEN = "CKM_RSA_PKCS_KEY_PAIR_GEN"


def test_required_and_claimed_runs_as_required():
    d = decide(vendor({KEYGEN: {"key_sizes": (3072,)}}), (profile({KEYGEN: {}}),), "c",
               (KEYGEN,), (), {"key_sizes": 3072})
    assert (d.action, d.required_by, d.expected_status) == ("run", ("p",), "PASS")


def test_required_but_unclaimed_variant_is_missing_with_reason():
    d = decide(vendor({KEYGEN: {"key_sizes": (2048,)}}),
               (profile({KEYGEN: {"key_sizes": (3072, 4096)}}),), "c", (KEYGEN,), (),
               {"key_sizes": 4096})
    assert (d.action, d.expected_status) == ("missing", "MISSING")
    assert d.reason == (f"{KEYGEN} (key_sizes=4096) required by profile p, "
                        "not claimed by vendor acme")


def test_optional_unclaimed_skips_with_reason():
    d = decide(vendor({}), (profile(optional={"CKM_SHA256": {}}),), "c", ("CKM_SHA256",),
               (), {})
    assert (d.action, d.requirement, d.reason) == (
        "skip", "optional", "CKM_SHA256 not claimed by vendor acme")


def test_claimed_but_not_in_any_profile_runs_as_optional():
    d = decide(vendor({"CKM_SHA256": {}}), (), "c", ("CKM_SHA256",), (), {})
    assert (d.action, d.requirement) == ("run", "optional")


def test_profile_value_list_limits_what_is_required():
    p = profile({KEYGEN: {"key_sizes": (3072,)}})
    d = decide(vendor({KEYGEN: {"key_sizes": (2048, 3072)}}), (p,), "c", (KEYGEN,), (),
               {"key_sizes": 2048})
    assert (d.action, d.requirement) == ("run", "optional")


def test_required_function_not_claimed_is_missing():
    d = decide(vendor({}), (profile(functions=("C_GetInfo",)),), "c", (), ("C_GetInfo",), {})
    assert d.action == "missing" and "C_GetInfo required by profile p" in d.reason


def test_missing_claim_ignores_known_deviations():
    """Nothing runs, so no declared observation can be matched."""
    dev = KnownDeviation("c", "https://example.org/1", "broken")
    d = decide(vendor({}, deviations=[dev]), (profile(functions=("C_GetInfo",)),), "c", (),
               ("C_GetInfo",), {})
    assert (d.action, d.deviation) == ("missing", None)


def test_known_deviation_names_the_pattern_that_matched():
    dev = KnownDeviation(("a/t.py::x[1]", "a/t.py::x[2?]"), "https://example.org/1", "r")
    assert dev.matching("a/t.py::x[23]") == "a/t.py::x[2?]"
    assert dev.matching("a/t.py::x[3]") is None and not dev.matches("a/t.py::x[3]")


def test_observation_matches_a_code_or_a_message_pattern():
    assert Observation(code="CKR_GENERAL_ERROR").matches("CKR_GENERAL_ERROR", "")
    assert not Observation(code="CKR_GENERAL_ERROR").matches("CKR_DATA_INVALID",
                                                             "CKR_GENERAL_ERROR")
    assert not Observation(code="CKR_GENERAL_ERROR").matches(None, "")
    assert Observation(message=r"got 2\.40").matches(None, "expected 3.2, got 2.40")
    assert not Observation(message="got 3").matches("CKR_OK", "expected 3.2, got 2.40")
    assert not Observation().matches("CKR_OK", "anything")


def test_prerequisite_mechanism_must_be_claimed_too():
    d = decide(vendor({"CKM_SHA256_RSA_PKCS": {}}), (), "c",
               ("CKM_SHA256_RSA_PKCS", KEYGEN), (), {})
    assert d.action == "skip" and KEYGEN in d.reason


def test_known_deviation_is_expected_failure_with_link():
    dev = KnownDeviation("digest/*", "https://example.org/1", "broken")
    d = decide(vendor({"CKM_SHA256": {}}, deviations=[dev]), (), "digest/test_d.py::t[x]",
               ("CKM_SHA256",), (), {})
    assert (d.action, d.deviation, d.expected_status) == ("run", dev, "FAIL")


def test_parameter_values_are_the_sorted_union_of_claims_and_profiles():
    v = vendor({KEYGEN: {"key_sizes": (4096, 2048)}})
    p = profile({KEYGEN: {"key_sizes": (3072,)}}, {KEYGEN: {"key_sizes": (1024,)}})
    assert parameter_values(v, (p,), KEYGEN, "key_sizes") == [1024, 2048, 3072, 4096]


def test_unclaimed_optional_mechanism_skips_even_when_its_function_is_required():
    d = decide(vendor({}, functions=("C_GetMechanismInfo",)),
               (profile(functions=("C_GetMechanismInfo",)),), "c", ("CKM_SHA3_256",),
               ("C_GetMechanismInfo",), {})
    assert (d.action, d.reason) == ("skip", "CKM_SHA3_256 not claimed by vendor acme")
    assert d.required_by == ()  # and it counts against no profile


def test_deviation_patterns_take_brackets_literally():
    dev = KnownDeviation("a.py::t[CKM_DSA*-key_bits=2048]", "https://example.org/3", "r")
    assert dev.matches("a.py::t[CKM_DSA_SHA1-key_bits=2048]")
    assert not dev.matches("a.py::tC[CKM_DSA_SHA1-key_bits=2048]")
    assert not dev.matches("a.py::t[CKM_DSA-key_bits=1024]")
