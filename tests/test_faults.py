"""Self-test of the suite: a module that breaks one rule at a time must be caught.

faults/p11fault.c is a PKCS#11 module that forwards every call to SoftHSM2 and, chosen by
the environment variable P11_FAULT, breaks exactly one rule (each fault is described in
the C source). The whole suite runs once against the clean forwarder (P11_FAULT=none),
which must give exactly SoftHSM2's statuses (a run of its own), and each fault runs the
checks of the areas it touches, which must give at least one new failure: a case whose
status is FAIL, ERROR, CRASH or TIMEOUT and differs from the clean run's.

Under pytest-xdist the SoftHSM2 and clean runs are made once per test run and shared by
the workers (a file lock in the run's temporary directory). The terminal summary ends
with a detection-rate line (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import REPO, SOFTHSM2, locked

SUITES = REPO / "conformance" / "suites"
FAULT_SOURCE = REPO / "faults" / "p11fault.c"
BROKEN = {"FAIL", "ERROR", "CRASH", "TIMEOUT"}
PROPERTY = "p11fault"  # user property the detection-rate summary reads

# What each fault's run selects: node ids relative to conformance/suites (an area, a
# file, or one test function), the checks that notice the fault where they run.
FAULTS: dict[str, tuple[str, ...]] = {
    "info-flags-nonzero": ("module/test_info.py",),
    "session-ro-reported-rw": ("sessions",),
    "logout-keeps-login": ("sessions",),
    "random-zeros": ("random",),
    "random-crashes": ("random",),
    "random-hangs": ("random",),
    "digest-sha256-wrong-byte": ("digest",),
    "ctr-counter-bits-widened": (
        "variants/test_variants.py::test_encrypt_aes_ctr_counter_overflow_is_refused",),
    "digest-init-restarts-active": ("errors/test_operations.py",),
    "digest-short-buffer-truncates": ("errors/test_output_buffers.py",),
    "rsa-modulus-one-bit-short": (
        "keygen/test_generate_key_pair.py::test_generate_key_pair_rsa_modulus_has_requested_bits",),
    "ec-point-not-der": (
        "keygen/test_generate_key_pair.py::test_generate_key_pair_ec_point_is_on_curve",
        "sign/test_sign_ec.py"),
    "generated-key-not-local": ("keygen/test_generate_key.py",),
    "sensitive-template-ignored": (
        "attributes/test_attribute_value.py"
        "::test_get_attribute_value_secret_key_value_is_unavailable",
        "attributes/test_attribute_rules.py"),
    "read-only-change-accepted": ("attributes/test_attribute_rules.py",),
    "ecdsa-signature-der": ("sign/test_sign_ec.py", "vectors/test_verify_ecdsa.py"),
    "rsa-pkcs-signature-bit-flipped": (
        "sign/test_sign_rsa.py::test_sign_rsa_pkcs_digest_info_verifies_with_cryptography",),
    "pss-salt-length-ignored": (
        "sign/test_sign_rsa.py::test_sign_rsa_pss_digest_verifies_with_cryptography",),
    "verify-accepts-anything": ("sign/test_mac.py::test_verify_mac_rejects_altered_mac",
                                "sign/test_sign_ec.py"),
    "verify-general-error": ("sign/test_mac.py::test_verify_mac_rejects_altered_mac",
                             "sign/test_sign_ec.py"),
    "gcm-tag-before-ciphertext": ("encrypt/test_aes.py", "vectors/test_aes_gcm.py"),
    "cbc-pad-not-removed": ("encrypt/test_aes.py",),
    "aes-key-wrap-reversed": ("wrap/test_wrap.py", "vectors/test_key_wrap.py"),
    "mechanism-list-drops-claimed": ("mechanisms",),
    "mechanism-key-size-in-bits": ("mechanisms",),
    "mechanism-info-flags-unset": (
        "mechanisms/test_advertised.py::test_mechanism_info_sets_every_field",),
    "advertised-mechanism-refused": (
        "mechanisms/test_advertised.py::test_advertised_mechanism_works_for_announced_functions",),
    "find-objects-extra-handle": ("objects",),
    "operation-survives-error": ("errors/test_operations.py::test_error_ends_operation",),
    "short-buffer-ends-operation": ("errors/test_output_buffers.py",),
    "null-buffer-no-length": ("errors/test_output_buffers.py",),
    "output-length-narrowed": ("errors/test_robustness.py",),
    "key-type-not-checked": ("errors/test_key_types.py",),
    "key-handle-reported-as-object": (
        "errors/test_handles.py::test_wrap_key_with_invalid_key_handle_is_refused",),
    "sign-accepts-single-after-update": (
        "errors/test_operations.py::test_single_part_call_after_update_is_refused",),
    "find-objects-init-restarts-search": (
        "errors/test_operations.py::test_find_objects_init_while_search_active_is_refused",),
    "digest-null-input-crashes": ("errors/test_robustness.py",),
}


# The clean and SoftHSM2 runs cover the whole suite: the forwarder must be transparent
# everywhere, not only where a fault is injected (and every fault run is a subset).
WHOLE_SUITE = [""]


def once(shared: Path, name: str, make: Callable[[], dict[str, str]]) -> dict[str, str]:
    """make() once per test run, whichever worker asks first; the others wait for it."""
    cache = shared / f"{name}.json"
    with locked(shared / f"{name}.lock"):
        if not cache.exists():
            cache.write_text(json.dumps(make()))
    return json.loads(cache.read_text())


def run_suite(vendor: Path, nodes: list[str], out: Path, fault: str | None) -> dict[str, str]:
    """`pytest --vendor VENDOR -n 2` on the given suite node ids: {case id: status}."""
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.json"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_XDIST", "PYTEST_CURRENT", "P11_FAULT"))}
    if fault is not None:
        env["P11_FAULT"] = fault
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--vendor", str(vendor), "--results", str(results),
         "-n", "2", "-p", "no:cacheprovider", "-q", "-W", "ignore::pytest.PytestWarning",
         *(str(SUITES / node) if node else str(SUITES) for node in nodes)],
        capture_output=True, text=True, check=False, cwd=out, env=env, timeout=900)
    assert results.exists(), (f"no results from the run on {vendor.name} "
                              f"(P11_FAULT={fault}): exit {done.returncode}\n"
                              f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    cases = json.loads(results.read_text())["cases"]
    assert cases, f"the run on {vendor.name} (P11_FAULT={fault}) selected no case: {nodes}"
    return {case["id"]: case["status"] for case in cases}


@pytest.fixture(scope="session")
def clean(shared, fault_vendor) -> dict[str, str]:
    """The clean forwarder's statuses over the whole suite."""
    return once(shared, "clean", lambda: run_suite(fault_vendor, WHOLE_SUITE,
                                                   shared / "clean", "none"))


@pytest.fixture(scope="session")
def direct(shared) -> dict[str, str]:
    """SoftHSM2's own statuses over the whole suite."""
    return once(shared, "direct", lambda: run_suite(REPO / "vendors" / "softhsm2.yaml",
                                                    WHOLE_SUITE, shared / "direct", None))


def test_clean_forwarder_gives_softhsm2_statuses(clean, direct):
    """Without a fault the module is SoftHSM2 to the suite: the same cases, the same
    statuses, so every new failure of a fault run is the fault's doing."""
    assert sorted(clean) == sorted(direct), (
        f"the runs differ in cases: {sorted(set(clean) ^ set(direct))[:10]}")
    differ = {case: (direct[case], clean[case]) for case in direct
              if direct[case] != clean[case]}
    assert not differ, (
        f"{len(differ)} cases differ (SoftHSM2, clean forwarder): "
        + "; ".join(f"{case}: {a} -> {b}" for case, (a, b) in sorted(differ.items())[:10]))


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_is_caught(fault, fault_vendor, clean, shared, request):
    """The suite notices the fault: at least one case of the fault's selection is FAIL,
    ERROR or CRASH where the clean forwarder's status was another."""
    vendor = fault_vendor
    if fault == "random-hangs":  # a short per-test limit, so the hung calls end quickly
        vendor = shared / "p11fault-hangs" / "p11fault.yaml"
        vendor.parent.mkdir(exist_ok=True)
        vendor.write_text(fault_vendor.read_text() + "timeout_seconds: 3\n")
    got = run_suite(vendor, list(FAULTS[fault]), shared / "runs" / fault, fault)
    outside = sorted(set(got) - set(clean))
    assert not outside, f"cases outside the clean run's selection: {outside[:5]}"
    new = sorted(case for case, status in got.items()
                 if status in BROKEN and status != clean[case])
    request.node.user_properties.append(
        (PROPERTY, json.dumps({"fault": fault, "caught": bool(new), "cases": len(got),
                               "new_failures": len(new)})))
    if fault in ("random-crashes", "random-hangs"):  # the run survives and says what happened
        expected = "CRASH" if fault == "random-crashes" else "TIMEOUT"
        assert {got[case] for case in new} == {expected}, got
    assert new, (f"P11_FAULT={fault} went unnoticed: none of the {len(got)} cases of "
                 f"{', '.join(FAULTS[fault])} failed where the clean forwarder did not")


def test_every_fault_of_the_module_is_exercised():
    """The fault table here and the module's agree, so no fault is built but never run."""
    in_module = set(re.findall(r'\{"([a-z0-9-]+)", [A-Z0-9_]+\}', FAULT_SOURCE.read_text()))
    assert in_module - {"none"} == set(FAULTS)


def test_unknown_fault_name_is_refused(shared, fault_vendor):
    """A misspelt P11_FAULT makes C_GetFunctionList fail: it never passes for a clean
    module."""
    library = yaml.safe_load(fault_vendor.read_text())["module"]["path"]
    probe = ("import ctypes, sys\n"
             "lib = ctypes.CDLL(sys.argv[1])\n"
             "pointer = ctypes.c_void_p()\n"
             "print(lib.C_GetFunctionList(ctypes.byref(pointer)))\n")
    env = {**os.environ, "P11_FAULT": "no-such-fault", "P11_FAULT_MODULE": SOFTHSM2}
    done = subprocess.run([sys.executable, "-c", probe, library], capture_output=True,
                          text=True, check=True, env=env)
    assert done.stdout.strip() == str(0x5), done.stdout  # CKR_GENERAL_ERROR
    assert "unknown P11_FAULT no-such-fault" in done.stderr
