"""The interop run: real modules on throwaway tokens, and the fault module to show that a
pairwise check fails when the bytes do not interoperate.

The fault module (faults/p11fault.c) is SoftHSM2 with one rule broken at a time, under a
vendor file with SoftHSM2's claims; paired with SoftHSM2 itself, the clean forwarder
interoperates everywhere, and each fault below must turn cases of the named check into
FAIL in the direction it breaks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from conftest import SOFTHSM2 as SOFTHSM2_LIBRARY

from conformance import results
from conformance.comparison import write_matrix
from conformance.interop.report import matrix_lines
from conformance.report import write_reports

SOFTHSM2 = REPO / "vendors" / "softhsm2.yaml"
NSS = REPO / "vendors" / "nss.yaml"
BROKEN = {"FAIL", "ERROR", "CRASH", "TIMEOUT", "XPASS"}

# fault -> (-k selection, the check that must fail, the direction "source->destination")
FAULTS = {
    "ecdsa-signature-der": ("test_signature_verifies and CKM_ECDSA",
                            "test_signature_verifies_in_other_module", "p11fault->softhsm2"),
    "ec-point-not-der": ("test_signature_verifies and CKM_ECDSA",
                         "test_signature_verifies_in_other_module", "p11fault->softhsm2"),
    "pss-salt-length-ignored": ("test_signature_verifies and PSS",
                                "test_signature_verifies_in_other_module", "p11fault->softhsm2"),
    "verify-accepts-anything": ("test_signature_verifies and CKM_ECDSA",
                                "test_signature_verifies_in_other_module", "softhsm2->p11fault"),
    "gcm-tag-before-ciphertext": ("test_ciphertext_decrypts and CKM_AES_GCM",
                                  "test_ciphertext_decrypts_in_other_module",
                                  "p11fault->softhsm2"),
    "cbc-pad-not-removed": ("test_ciphertext_decrypts and CKM_AES_CBC_PAD",
                            "test_ciphertext_decrypts_in_other_module", "softhsm2->p11fault"),
    "aes-key-wrap-reversed": ("test_wrapped and CKM_AES_KEY_WRAP",
                              "test_wrapped_key_unwraps_in_other_module", "p11fault->softhsm2"),
}


def interop(vendors: list[Path], out: Path, *pytest_args: str, fault: str | None = None
            ) -> tuple[subprocess.CompletedProcess[str], dict]:
    """`pkcs11-conformance interop VENDORS --output OUT -n 2 ARGS`: the process and the
    results document."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_XDIST", "PYTEST_CURRENT", "P11_FAULT",
                                "PKCS11_CONFORMANCE"))}
    if fault is not None:  # the fault module forwards to a copy of SoftHSM2 (see fault_pair)
        env["P11_FAULT"] = fault
        env["P11_FAULT_MODULE"] = str(out.parent.parent / "libsofthsm2-copy.so")
    out.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "conformance.cli", "interop", *map(str, vendors), "--output",
         str(out), "-n", "2", "-q", *pytest_args],
        capture_output=True, text=True, check=False, cwd=out.parent, env=env, timeout=900)
    results = out / "interop" / "results.json"
    assert results.exists(), f"no results: exit {done.returncode}\n{done.stdout[-3000:]}\n" \
                             f"{done.stderr[-3000:]}"
    return done, json.loads(results.read_text())


def route(case: dict) -> str:
    return "->".join(case["between"])


@pytest.fixture(scope="module")
def reference_pair(tmp_path_factory) -> tuple[subprocess.CompletedProcess[str], dict, Path]:
    out = tmp_path_factory.mktemp("interop") / "reports"
    done, document = interop([SOFTHSM2, NSS], out)
    return done, document, out


def test_softhsm2_and_nss_interoperate_where_both_claim(reference_pair):
    """Every pairwise case both modules claim passes, or fails as a vendor file declares
    (with its link), or is NSS's own finding: its C_Encrypt(CKM_AES_GCM) length query
    answers too short (no upstream report found), so GCM from NSS fails; every client
    check passes on both; the run exits 1 for that finding."""
    done, document, _ = reference_pair
    broken = [(c["id"], c["status"], c["message"]) for c in document["cases"]
              if c["status"] in BROKEN]
    assert broken and all(
        "[nss->softhsm2-CKM_AES_GCM-" in case and status == "FAIL"
        and message == "nss: C_Encrypt(CKM_AES_GCM) must succeed: returned CKR_BUFFER_TOO_SMALL"
        for case, status, message in broken), broken[:5]
    assert done.returncode == 1, done.stderr[-2000:]
    pairwise = [c for c in document["cases"] if c["area"] == "pairwise"]
    assert {route(c) for c in pairwise} == {"softhsm2->nss", "nss->softhsm2"}
    assert sum(c["status"] == "PASS" for c in pairwise) > 100
    for test in ("test_signature_verifies_in_other_module",
                 "test_ciphertext_decrypts_in_other_module",
                 "test_wrapped_key_unwraps_in_other_module"):
        assert any(c["test"] == test and c["status"] == "PASS" for c in pairwise), test
    # Private keys move only with CKM_AES_KEY_WRAP_PAD here, which the two implement
    # differently (SoftHSM2's vendor file declares it): every such case is XFAIL.
    assert {c["status"] for c in pairwise
            if c["test"] == "test_wrapped_private_key_signs_in_other_module"} == {"SKIP", "XFAIL"}
    deviations = [c for c in document["cases"] if c["status"] == "XFAIL"]
    assert deviations and all(c["known_deviation"]["url"].startswith("https://")
                              for c in deviations)
    clients = {(c["between"][0], c["test"]): c["status"] for c in document["cases"]
               if c["area"] == "clients"}
    assert len(clients) == 10 and set(clients.values()) == {"PASS"}, clients


def test_an_unclaimed_mechanism_is_skipped_with_the_vendor_that_lacks_it(reference_pair):
    """A mechanism only one side claims is one SKIP naming the other vendor; nothing runs."""
    _, document, _ = reference_pair
    eddsa = [c for c in document["cases"] if c["mechanisms"][:1] == ["CKM_EDDSA"]
             and c["test"] == "test_signature_verifies_in_other_module"]
    assert eddsa and {c["status"] for c in eddsa} == {"SKIP"}
    assert all("not claimed by vendor nss" in c["message"] for c in eddsa)


def test_interop_report_and_matrix_section(reference_pair, tmp_path):
    """The run writes its report; `report` takes its results beside vendor results and the
    comparison matrix gains the pairwise section."""
    done, document, out = reference_pair
    report = (out / "interop" / "report.md").read_text()
    assert "| made in \\ used in | softhsm2 | nss |" in report
    assert "pairwise (row: made in; column: used in;" in done.stdout
    lines = matrix_lines(document)
    assert lines[2].startswith("softhsm2") and "/84" in lines[2]
    written = write_matrix([_vendor_document("softhsm2"), _vendor_document("nss")], tmp_path,
                           interop=document)
    assert "## Pairwise interoperability" in written[0].read_text()
    assert "Pairwise interoperability" in written[1].read_text()
    paths = write_reports([out / "interop" / "results.json"], tmp_path / "again")
    assert tmp_path / "again" / "interop" / "index.html" in paths


def _vendor_document(vendor: str) -> dict:
    return json.loads((REPO / "reports" / vendor / "results.json").read_text())


@pytest.fixture
def fault_pair(fault_vendor, tmp_path) -> Path:
    """The fault module's vendor file (SoftHSM2's claims), in a directory beside the run's,
    with a copy of SoftHSM2 for the fault module to forward to: one process loads each
    library once, and the SoftHSM2 side has the original."""
    shutil.copy(SOFTHSM2_LIBRARY, tmp_path / "libsofthsm2-copy.so")
    path = tmp_path / "vendor" / "p11fault.yaml"
    path.parent.mkdir()
    path.write_text(fault_vendor.read_text())
    return path


def test_clean_forwarder_interoperates_with_softhsm2(fault_pair, tmp_path):
    """Without a fault, SoftHSM2 and the forwarder over SoftHSM2 interoperate in every
    pairwise case (so each failure below is the fault's doing)."""
    _, document = interop([SOFTHSM2, fault_pair], tmp_path / "run" / "reports", "-k", "pairwise",
                          fault="none")
    statuses = {c["status"] for c in document["cases"]}
    for test in ("test_signature_verifies_in_other_module",
                 "test_ciphertext_decrypts_in_other_module",
                 "test_wrapped_key_unwraps_in_other_module",
                 "test_wrapped_private_key_signs_in_other_module"):
        assert {route(c) for c in document["cases"] if c["test"] == test
                and c["status"] == "PASS"} == {"softhsm2->p11fault", "p11fault->softhsm2"}, test
    assert statuses <= {"PASS", "SKIP"}, [
        (c["id"], c["message"]) for c in document["cases"] if c["status"] not in
        ("PASS", "SKIP")][:5]


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_pairwise_check_fails_when_bytes_do_not_interoperate(fault, fault_pair, tmp_path):
    """Each fault breaks what one module makes or accepts: the named check fails in the
    direction the fault breaks, and the run exits 1."""
    selection, test, direction = FAULTS[fault]
    done, document = interop([SOFTHSM2, fault_pair], tmp_path / "run" / "reports", "-k", selection,
                             fault=fault)
    failed = [c for c in document["cases"] if c["status"] == "FAIL"]
    assert any(c["test"] == test and route(c) == direction for c in failed), (
        f"P11_FAULT={fault} went unnoticed in {direction}: "
        f"{sorted({(route(c), c['status']) for c in document['cases']})}")
    assert done.returncode == 1


@pytest.mark.parametrize("fault", ["none", "rsa-pkcs-signature-bit-flipped"])
def test_client_checks_fail_when_the_module_signs_wrong(fault, fault_pair, tmp_path):
    """The clients' signatures are verified outside the module: with CKM_RSA_PKCS
    signatures one bit off, pkcs11-tool's, p11tool's (--test-sign), the OpenSSL engine's
    and the root certificate's fail; storing that certificate on the token, a rule the
    fault does not touch, still passes. Clean, every client check passes."""
    _, document = interop([fault_pair], tmp_path / "run" / "reports", "-k", "clients",
                          fault=fault)
    statuses = {c["test"]: c["status"] for c in document["cases"]}
    signing = {"test_pkcs11_tool_lists_and_signs", "test_p11tool_lists_exports_and_signs",
               "test_openssl_engine_signs", "test_openssl_makes_root_certificate_with_token_key"}
    assert set(statuses) == signing | {"test_root_certificate_stored_beside_its_key"}
    expected = "PASS" if fault == "none" else "FAIL"
    assert {statuses[test] for test in signing} == {expected}, statuses
    assert statuses["test_root_certificate_stored_beside_its_key"] == "PASS"


def test_a_case_whose_worker_died_in_set_up_keeps_its_route():
    """A worker that dies before the case's metadata arrived still gives the case its area
    and modules, so the pairwise matrix counts the crash in its cell."""
    cases: dict = {}
    nodeid = ("conformance/interop/test_pairwise.py::test_signature_verifies_in_other_module"
              "[softhsm2-p11-kit->nss-CKM_ECDSA-curves=secp256r1]")
    results.record_crash(cases, nodeid, "worker crashed")
    record = results.finish_records(cases)[0]
    assert (record["id"], record["area"], record["status"], record["between"]) == (
        "pairwise/test_pairwise.py::test_signature_verifies_in_other_module"
        "[softhsm2-p11-kit->nss-CKM_ECDSA-curves=secp256r1]", "pairwise", "CRASH",
        ["softhsm2-p11-kit", "nss"])
    clients: dict = {}
    results.record_crash(clients, "conformance/interop/test_clients.py::"
                         "test_openssl_engine_signs[tpm2-pkcs11]", "worker crashed")
    assert results.finish_records(clients)[0]["between"] == ["tpm2-pkcs11"]
