"""End-to-end runs against real SoftHSM2 tokens: the CLI, the plugin, their artefacts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, SOFTHSM2, private_softhsm2

CLI = [sys.executable, "-m", "conformance.cli"]


def statuses(results: Path) -> dict[str, str]:
    return {c["id"]: c["status"] for c in json.loads(results.read_text())["cases"]}


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """`pkcs11-conformance run` with no vendor file: SoftHSM2 in a throwaway token."""
    out = tmp_path_factory.mktemp("reference")
    done = subprocess.run([*CLI, "run", "--output", str(out), "-n", "2",
                           "--junitxml", str(out / "junit.xml"),
                           "--alluredir", str(out / "allure")],
                          capture_output=True, text=True, check=False, cwd=out)
    return done, out


def test_reference_run_writes_results_and_reports(reference_run):
    done, out = reference_run
    document = json.loads((out / "softhsm2" / "results.json").read_text())
    assert done.returncode == (0 if all(v["status"] == "met" for v in document["verdicts"])
                               else 1), done.stdout + done.stderr
    for name in ("report.md", "index.html"):
        assert (out / "softhsm2" / name).stat().st_size > 1000
    assert document["summary"]["PASS"] > 50
    info = document["run_info"]
    assert info["module"]["library_description"] and info["token"]["throwaway"] is True
    assert {p["id"] for p in info["profiles"]} >= {"baseline-provider", "ca-root-key"}
    # the run ends with one verdict line per profile
    tail = done.stdout.strip().splitlines()[-len(info["profiles"]):]
    assert [line.strip().split(":")[0] for line in tail] == [
        p["id"] for p in info["profiles"]], done.stdout


def test_reference_run_meets_every_expectation(reference_run):
    """Nothing broke on SoftHSM2: every case passed, was skipped or MISSING as decided,
    failed the way a known deviation declares (with its link), or is a finding of this
    suite (a FAIL no deviation covers). No harness error, crash, hang, unexpected pass,
    or deviation whose declared observation differs from what happened."""
    _, out = reference_run
    document = json.loads((out / "softhsm2" / "results.json").read_text())
    for case in document["cases"]:
        if case["severity"] != "robustness":  # a module may crash on a broken contract
            assert case["status"] in ("PASS", "SKIP", "MISSING", "XFAIL", "FAIL"), case
        if case["expected_status"] in ("SKIP", "MISSING"):
            assert case["status"] == case["expected_status"], case
        if case["status"] == "FAIL":
            assert case["known_deviation"] is None, case
        if case["status"] == "XFAIL":
            assert case["known_deviation"]["matched"], case
        assert case["spec"].startswith(("PKCS#11", "Vendor declaration")), case["id"]
    findings = {f["rule"] for f in document["findings"]}
    assert findings == {c["id"].partition("[")[0] for c in document["cases"]
                        if c["status"] in ("FAIL", "XFAIL", "CRASH", "TIMEOUT")}


def test_junit_is_plain_and_allure_written(reference_run):
    _, out = reference_run
    root = ET.parse(out / "junit.xml").getroot()
    assert root.tag == "testsuites" and int(root[0].get("tests")) > 50
    assert "pkcs11_conformance" not in (out / "junit.xml").read_text()
    assert list((out / "allure").glob("*-result.json"))


def test_plugin_and_cli_produce_the_same_results(reference_run, tmp_path):
    """`pytest --vendor vendors/softhsm2.yaml -n 2` runs the same cases to the same ends."""
    _, out = reference_run
    results = tmp_path / "results.json"
    done = subprocess.run([sys.executable, "-m", "pytest", "--vendor",
                           str(REPO / "vendors" / "softhsm2.yaml"), "-n", "2", "-q",
                           "--results", str(results)],
                          capture_output=True, text=True, check=False, cwd=REPO)
    assert results.exists(), done.stdout + done.stderr
    assert statuses(results) == statuses(out / "softhsm2" / "results.json")


@pytest.fixture
def standing_token(tmp_path, monkeypatch):
    """A SoftHSM2 token that is not a throwaway (the suite must not initialize it)."""
    private_softhsm2(tmp_path, monkeypatch)
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "standing",
                    "--so-pin", "so-secret-4711", "--pin", "user-secret-4711"],
                   check=True, capture_output=True)
    vendor = tmp_path / "standing.yaml"
    vendor.write_text(
        "schema: 1\nvendor: standing\ntitle: Standing token\n"
        f"module: {{path: {SOFTHSM2}}}\n"
        "token: {label: standing, user_pin_env: STANDING_PIN}\n"
        "functions: [C_Digest, C_DigestUpdate]\nclaims: {CKM_SHA256: {}}\n")
    return vendor


def test_wrong_pin_stops_the_run_at_once(standing_token, tmp_path, monkeypatch):
    monkeypatch.setenv("STANDING_PIN", "wrong-guess-0815")
    done = subprocess.run([*CLI, "run", str(standing_token), "--output", str(tmp_path / "o")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "CKR_PIN_INCORRECT" in done.stdout + done.stderr
    assert "wrong-guess-0815" not in done.stdout + done.stderr
    assert not (tmp_path / "o" / "standing" / "results.json").exists()


def test_pin_never_reaches_an_artefact(standing_token, tmp_path, monkeypatch):
    monkeypatch.setenv("STANDING_PIN", "user-secret-4711")
    out = tmp_path / "o"
    done = subprocess.run([*CLI, "run", str(standing_token), "--output", str(out),
                           "-k", "digest or sessions", "--junitxml", str(out / "junit.xml"),
                           "--alluredir", str(out / "allure")],
                          capture_output=True, text=True, check=False)
    assert (out / "standing" / "results.json").exists(), done.stdout + done.stderr
    assert "user-secret-4711" not in done.stdout + done.stderr
    assert list((out / "allure").glob("*-result.json")), "Allure results must be written"
    for path in out.rglob("*"):
        if path.is_file():
            assert "user-secret-4711" not in path.read_text(errors="replace"), path


@pytest.mark.parametrize(("change", "expected"), [
    ({"label": "no-such-token"}, "no token labelled 'no-such-token'"),
    ({"module": "/etc/hostname"}, "cannot load '/etc/hostname' as a PKCS#11 module"),
    ({"pin_env": None}, "environment variable STANDING_PIN is not set"),
], ids=["unknown token label", "not a PKCS#11 module", "PIN variable unset"])
def test_unreachable_target_is_a_clear_error(standing_token, tmp_path, monkeypatch, change,
                                             expected):
    if change.get("pin_env", "") is None:
        monkeypatch.delenv("STANDING_PIN", raising=False)
    else:
        monkeypatch.setenv("STANDING_PIN", "user-secret-4711")
    text = standing_token.read_text().replace("label: standing",
                                              f"label: {change.get('label', 'standing')}")
    standing_token.write_text(text)
    args = ["--module", change["module"]] if "module" in change else []
    done = subprocess.run([*CLI, "run", str(standing_token), *args,
                           "--output", str(tmp_path / "o")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert expected in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_standing_token_is_never_initialized(standing_token, tmp_path, monkeypatch):
    """A run against a token that is not a throwaway leaves its objects alone and its
    PINs working: the token file set is the same before and after."""
    monkeypatch.setenv("STANDING_PIN", "user-secret-4711")
    tokens = Path(os.environ["SOFTHSM2_CONF"]).parent / "tokens"
    before = sorted(p.name for p in tokens.rglob("*"))
    done = subprocess.run([*CLI, "run", str(standing_token), "--output", str(tmp_path / "o")],
                          capture_output=True, text=True, check=False)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert sorted(p.name for p in tokens.rglob("*")) == before


def small_vendor(tmp_path, extra: str) -> Path:
    """A throwaway SoftHSM2 vendor that claims SHA-256 digests only, plus `extra` YAML."""
    path = tmp_path / "small.yaml"
    path.write_text(
        "schema: 1\nvendor: small\ntitle: Small\n"
        f"module: {{path: {SOFTHSM2}}}\n"
        "token: {label: small, user_pin_env: SMALL_PIN, provision: softhsm2}\n"
        "functions: [C_Digest, C_DigestUpdate]\nclaims: {CKM_SHA256: {}}\n" + extra)
    return path


def run_small(tmp_path, extra: str, *args: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    results = tmp_path / "results.json"
    done = subprocess.run([sys.executable, "-m", "pytest", "--vendor",
                           str(small_vendor(tmp_path, extra)), "--results", str(results),
                           "-k", "digest", "-p", "no:cacheprovider", *args],
                          capture_output=True, text=True, check=False, cwd=tmp_path)
    assert results.exists(), done.stdout + done.stderr
    return done, {c["id"]: c for c in json.loads(results.read_text())["cases"]}


def test_known_deviation_that_passes_is_reported_as_xpass(tmp_path):
    done, cases = run_small(tmp_path, (
        "known_deviations:\n"
        "  - {test: 'digest/test_digest.py::test_digest_single_part*[CKM_SHA256-short]',\n"
        "     url: 'https://example.org/1', reason: 'thought broken',\n"
        "     observed: {code: CKR_GENERAL_ERROR}}\n"))
    case = cases["digest/test_digest.py::test_digest_single_part_matches_hashlib"
                 "[CKM_SHA256-short]"]
    assert (case["status"], case["expected_status"]) == ("XPASS", "FAIL")
    assert done.returncode == 1  # strict: an unexpected pass fails the run


def test_known_deviation_matching_nothing_warns(tmp_path):
    done, _ = run_small(tmp_path, (
        "known_deviations:\n"
        "  - {test: 'nowhere/*', url: 'https://example.org/2', reason: 'stale',\n"
        "     observed: {code: CKR_GENERAL_ERROR}}\n"))
    assert "known_deviations: 'nowhere/*' matches no test" in done.stdout


def test_required_but_unclaimed_is_missing_without_running(tmp_path):
    profile = tmp_path / "digests.yaml"
    profile.write_text("schema: 1\nprofile: digests\ntitle: Digests\nsource: a test\n"
                       "required: {CKM_SHA384: {}, CKM_SHA256: {}}\n")
    done, cases = run_small(tmp_path, "", "--profile", str(profile),
                            "--junitxml", str(tmp_path / "junit.xml"))
    missing = [c for c in cases.values() if c["status"] == "MISSING"]
    assert len(missing) == 6 and all(
        c["message"] == "CKM_SHA384 required by profile digests, not claimed by vendor small"
        and c["duration"] == 0 for c in missing), missing
    assert not [c for c in cases.values() if c["status"] == "FAIL"]
    document = json.loads((tmp_path / "results.json").read_text())
    verdict = document["verdicts"][0]
    assert verdict["status"] == "not met" and verdict["missing"] == [missing[0]["message"]]
    assert "MISSING: CKM_SHA384 required" in (tmp_path / "junit.xml").read_text()
    skipped = [c for c in cases.values() if c["status"] == "SKIP"]
    assert all(c["message"].endswith("not claimed by vendor small") for c in skipped)
    assert any(c["status"] == "PASS" for c in cases.values())


@pytest.mark.parametrize(("observed", "status"), [
    ("{message: 'of 0 bytes must equal sha256'}", "XFAIL"),  # what the fault does: matched
    ("{code: CKR_GENERAL_ERROR}", "FAIL"),  # declared something else: not hidden
])
def test_known_deviation_is_xfail_only_when_its_observation_matches(
        fault_vendor, tmp_path, monkeypatch, observed, status):
    """A known deviation names what it expects to see; a failure that shows something
    else stays a FAIL, with the declaration beside it."""
    vendor = yaml.safe_load(fault_vendor.read_text())
    case = "digest/test_digest.py::test_digest_single_part_matches_hashlib[CKM_SHA256-empty]"
    vendor["known_deviations"] = [yaml.safe_load(
        f"{{test: '{case}', url: 'https://example.org/3', reason: 'wrong last byte', "
        f"observed: {observed}}}")]
    path = tmp_path / "p11fault.yaml"
    path.write_text(yaml.safe_dump(vendor))
    monkeypatch.setenv("P11_FAULT", "digest-sha256-wrong-byte")
    results = tmp_path / "results.json"
    done = subprocess.run([sys.executable, "-m", "pytest", "--vendor", str(path), "--results",
                           str(results), "-p", "no:cacheprovider",
                           f"{REPO}/conformance/suites/{case}"],
                          capture_output=True, text=True, check=False, cwd=tmp_path)
    assert results.exists(), done.stdout + done.stderr
    record = json.loads(results.read_text())["cases"][0]
    assert record["status"] == status, record
    assert record["known_deviation"]["matched"] is (status == "XFAIL")


def test_hung_mechanism_is_quarantined(fault_vendor, tmp_path, monkeypatch):
    """A module that hangs in C_GenerateRandom costs the time limit once per worker, not
    once per case: the other cases of that function are not run, and say why; with
    --try-hung they all run (and all hang)."""
    vendor = yaml.safe_load(fault_vendor.read_text())
    vendor["timeout_seconds"] = 3
    path = tmp_path / "p11fault.yaml"
    path.write_text(yaml.safe_dump(vendor))
    monkeypatch.setenv("P11_FAULT", "random-hangs")

    def run(*extra: str) -> dict[str, dict[str, Any]]:
        results = tmp_path / "results.json"
        subprocess.run([sys.executable, "-m", "pytest", "--vendor", str(path), "--results",
                        str(results), "-p", "no:cacheprovider", "-n", "1", *extra,
                        f"{REPO}/conformance/suites/random"],
                       capture_output=True, text=True, check=False, cwd=tmp_path)
        return {c["id"]: c for c in json.loads(results.read_text())["cases"]}

    cases = run()
    timed_out = [c for c in cases.values() if c["status"] == "TIMEOUT"]
    quarantined = [c for c in cases.values() if c["quarantined"]]
    assert len(timed_out) == 1 and len(quarantined) == len(cases) - 1 >= 2, cases
    assert all(c["status"] == "SKIP" and c["message"].startswith(
        f"quarantined: C_GenerateRandom hung in {timed_out[0]['nodeid']}")
        for c in quarantined), quarantined
    assert {c["status"] for c in run("--try-hung").values()} == {"TIMEOUT"}


def test_crashing_worker_is_reported_and_the_run_goes_on(tmp_path):
    """A test whose process dies (here: abort(), as a segfaulting module would) is CRASH
    in the results, and the other tests still run."""
    (tmp_path / "test_crash.py").write_text(
        "import os\n\ndef test_dies():\n    os.abort()\n\n"
        + "".join(f"def test_lives_{i}():\n    pass\n\n" for i in range(4)))
    results = tmp_path / "results.json"
    done = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path / "test_crash.py"),
                           "--vendor", str(small_vendor(tmp_path, "")), "-n", "2",
                           "--results", str(results), "-p", "no:cacheprovider"],
                          capture_output=True, text=True, check=False, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed, 4 passed" in done.stdout, done.stdout
    cases = json.loads(results.read_text())["cases"]
    crashed = [c for c in cases if c["status"] == "CRASH"]
    assert [c["test"] for c in crashed] == ["test_dies"], cases
    assert "crashed" in crashed[0]["message"]


def test_committed_reference_report_is_current(reference_run):
    """reports/softhsm2/ holds the reference run of this suite version: same cases, same
    outcomes. Regenerate with `pkcs11-conformance run` from the repository root."""
    _, out = reference_run
    committed = REPO / "reports" / "softhsm2" / "results.json"
    assert committed.exists(), "reports/softhsm2/results.json is missing"
    fresh = json.loads((out / "softhsm2" / "results.json").read_text())
    stored = json.loads(committed.read_text())
    assert stored["run_info"]["suite"]["version"] == fresh["run_info"]["suite"]["version"]
    assert statuses(committed) == statuses(out / "softhsm2" / "results.json"), (
        "reports/softhsm2 is stale: run `pkcs11-conformance run` in the repository root")
    for name in ("report.md", "index.html"):
        assert (committed.parent / name).exists()


def test_hanging_test_is_reported_as_timeout_and_the_run_goes_on(tmp_path):
    """A test that does not return within the vendor's timeout_seconds (a hung module
    call cannot be interrupted) is TIMEOUT, its worker is replaced, the others run."""
    (tmp_path / "test_hang.py").write_text(
        "import time\n\ndef test_hangs():\n    time.sleep(120)\n\n"
        + "".join(f"def test_lives_{i}():\n    pass\n\n" for i in range(4)))
    results = tmp_path / "results.json"
    done = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path / "test_hang.py"),
                           "--vendor", str(small_vendor(tmp_path, "timeout_seconds: 2\n")),
                           "-n", "2", "--results", str(results), "-p", "no:cacheprovider"],
                          capture_output=True, text=True, check=False, cwd=tmp_path,
                          timeout=100)
    assert "4 passed" in done.stdout, done.stdout + done.stderr
    cases = json.loads(results.read_text())["cases"]
    assert [(c["test"], c["status"]) for c in cases] == [("test_hangs", "TIMEOUT")], cases


# Runs in a subprocess (python-pkcs11 initializes a module once per process): with
# "fill", puts one object of every class on the standing token; always prints a
# snapshot of every object and its readable attributes, as JSON.
TOKEN_OBJECTS = r"""
import datetime, json, os, sys
import pkcs11
from pkcs11 import Attribute, KeyType, ObjectClass
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
lib = pkcs11.lib(sys.argv[1])
with lib.get_token(token_label="standing").open(rw=True, user_pin=os.environ["STANDING_PIN"]) as s:
    if sys.argv[2] == "fill":
        s.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: True,
                         Attribute.LABEL: "owner data", Attribute.VALUE: b"keep me"})
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "owner")])
        now = datetime.datetime(2026, 1, 1)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(1).not_valid_before(now)
                .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
        s.create_object({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.TOKEN: True,
                         Attribute.CERTIFICATE_TYPE: pkcs11.CertificateType.X_509,
                         Attribute.LABEL: "owner cert",
                         Attribute.SUBJECT: name.public_bytes(),
                         Attribute.VALUE: cert.public_bytes(serialization.Encoding.DER)})
        s.generate_keypair(KeyType.RSA, 2048, store=True, label="owner rsa", id=b"\x01")
        s.generate_key(KeyType.AES, 256, store=True, label="owner aes", id=b"\x02")
        s.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: True,
                         Attribute.LABEL: "pkcs11-conformance-leftover-data",
                         Attribute.VALUE: b"from an interrupted run"})
    snapshot = []
    for obj in s.get_objects({}):
        row = {}
        for attr in (Attribute.CLASS, Attribute.LABEL, Attribute.ID, Attribute.VALUE,
                     Attribute.MODULUS, Attribute.SENSITIVE, Attribute.EXTRACTABLE,
                     Attribute.PRIVATE, Attribute.MODIFIABLE, Attribute.SIGN):
            try:
                value = obj[attr]
            except Exception:
                continue
            row[attr.name] = value.hex() if isinstance(value, bytes) else str(value)
        snapshot.append(row)
    print(json.dumps(sorted(snapshot, key=json.dumps)))
"""


def token_objects(action: str) -> list[dict[str, str]]:
    done = subprocess.run([sys.executable, "-c", TOKEN_OBJECTS, SOFTHSM2, action],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_run_changes_no_object_it_did_not_create(standing_token, tmp_path, monkeypatch):
    """Fill a standing token with objects of every class, run the whole suite against
    it, and find every object and attribute as it was. Then `clean` leaves even the object
    labelled like the suite's (a label is no proof of ownership: the run ledger is, see
    tests/test_safety.py::test_clean_removes_only_what_the_run_ledger_proves)."""
    monkeypatch.setenv("STANDING_PIN", "user-secret-4711")
    text = standing_token.read_text().replace(
        "functions: [C_Digest, C_DigestUpdate]\nclaims: {CKM_SHA256: {}}\n", "")
    vendors = yaml.safe_load((REPO / "vendors" / "softhsm2.yaml").read_text())
    standing_token.write_text(text + yaml.safe_dump(
        {"functions": vendors["functions"], "claims": vendors["claims"]}))
    before = token_objects("fill")
    # CKO_DATA, CKO_CERTIFICATE, CKO_PUBLIC_KEY, CKO_PRIVATE_KEY, CKO_SECRET_KEY
    assert {row["CLASS"] for row in before} == {"0", "1", "2", "3", "4"}
    done = subprocess.run([*CLI, "run", str(standing_token), "--output", str(tmp_path / "o"),
                           "-n", "2"], capture_output=True, text=True, check=False)
    assert (tmp_path / "o" / "standing" / "results.json").exists(), done.stdout + done.stderr
    assert token_objects("look") == before

    done = subprocess.run([*CLI, "clean", str(standing_token), "--output", str(tmp_path / "o")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "left pkcs11-conformance-leftover-data: no entry of" in done.stdout
    assert token_objects("look") == before
