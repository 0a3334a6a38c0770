"""The OASIS Profiles test case replay: the shipped files, the format errors, and replays
on a real SoftHSM2 token of the official cases and of cases derived from them (a changed
expectation must be reported as the first divergence, with its call and item)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, SOFTHSM2, private_softhsm2

from conformance import profile_cases
from conformance.profile_cases import CaseError, load, official_cases, replay, summary
from conformance.target import WrongPin

PIN = "24680135"
BASELINE = official_cases()[0]
EXTENDED = official_cases()[1]


@pytest.fixture
def token(tmp_path, monkeypatch):
    """A SoftHSM2 token labelled "conformance" with a user PIN in PKCS11_USER_PIN."""
    private_softhsm2(tmp_path, monkeypatch)
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "conformance",
                    "--so-pin", "13572468", "--pin", PIN], check=True, capture_output=True)
    monkeypatch.setenv("PKCS11_USER_PIN", PIN)
    return tmp_path


def derived(source: Path, directory: Path, name: str, *changes: tuple[str, str]) -> Path:
    """A copy of a case with text replaced (each change must apply)."""
    text = source.read_text()
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = directory / f"{name}.xml"
    path.write_text(text)
    return path


def run(path: Path, pin_env: str | None = "PKCS11_USER_PIN") -> profile_cases.Outcome:
    return replay(load(path), SOFTHSM2, None, "conformance", pin_env, 60)


SOFTHSM_VERSION = ('<CryptokiVersion major="3" minor="2"/>', '<CryptokiVersion major="2" '
                   'minor="40"/>')


def test_official_files_are_the_oasis_standard():
    assert profile_cases.verify_official() == []
    assert [(c.id, len(c.steps)) for c in map(load, official_cases())] == [
        ("BL-M-1", 13), ("EXT-M-1", 20), ("AUTH-M-1", 19), ("CERT-M-1", 15)]


@pytest.mark.parametrize(("text", "problem"), [
    ("<KMIP/>", "the root element is <KMIP>, not <PKCS11>"),
    ("<PKCS11><C_Initialize/></PKCS11>", "1 call elements; each request needs its response"),
    ("<PKCS11><C_Initialize/><C_Finalize rv=\"OK\"/></PKCS11>",
     "call 1 <C_Initialize>: a request must be followed by <C_Initialize rv=...>"),
    ("<PKCS11><C_Initialize>", "not a readable XML file"),
])
def test_case_file_errors_name_the_file_and_the_element(tmp_path, text, problem):
    path = tmp_path / "mine.xml"
    path.write_text(text)
    with pytest.raises(CaseError) as caught:
        load(path)
    assert str(caught.value).startswith(f"{path}: ") and problem in str(caught.value)


def test_official_baseline_case_fails_on_the_cryptoki_version_first(token):
    """SoftHSM 2.6 implements PKCS#11 2.40: that is the first divergence, the module's;
    the rest of the case still runs to the end."""
    outcome = run(BASELINE)
    first = outcome.module_divergences[0]
    assert (first.step, first.function, first.item, first.expected, first.got) == (
        2, "C_GetInfo", "CryptokiVersion", "3.2", "2.40")
    assert outcome.calls == 13 and not outcome.stopped
    assert summary(load(BASELINE), outcome).startswith(
        "BL-M-1-32: called through C_GetFunctionList's function list. first divergence: call 2 "
        "C_GetInfo: CryptokiVersion: expected 3.2, got 2.40 [the module's]")


def test_baseline_case_for_a_2_40_module_diverges_only_where_the_xml_is_illustrative(
        token, tmp_path):
    """With the version a 2.40 module reports, the baseline case leaves only divergences
    the replay traces to the case: TokenInfo numbers the XML shows from one module."""
    outcome = run(derived(BASELINE, tmp_path, "BL-M-1-240", SOFTHSM_VERSION))
    assert outcome.module_divergences == [] and not outcome.stopped
    assert {(d.by, d.issue) for d in outcome.divergences} == {("case", "illustrative-numbers")}
    assert outcome.issues == {"illustrative-numbers"}


def test_a_changed_expectation_is_reported_with_call_item_expected_and_got(token, tmp_path):
    path = derived(BASELINE, tmp_path, "BL-M-1-hw", SOFTHSM_VERSION,
                   ('<Flags value="TOKEN_PRESENT"/>', '<Flags value="TOKEN_PRESENT|HW_SLOT"/>'))
    outcome = run(path)
    first = outcome.module_divergences[0]
    assert (first.step, first.function, first.item, first.expected, first.got) == (
        5, "C_GetSlotInfo", "Flags", "TOKEN_PRESENT|HW_SLOT", "TOKEN_PRESENT")


@pytest.mark.parametrize("fault", ["none", "info-flags-nonzero"])
def test_a_module_that_breaks_the_case_fails_it_and_a_correct_one_does_not(
        fault, fault_vendor, token, tmp_path, monkeypatch):
    """The fault module over SoftHSM2: clean, the 2.40 edition of the baseline case has
    no divergence of the module's; with CK_INFO.flags not zero, the first one is there."""
    monkeypatch.setenv("P11_FAULT", fault)
    library = yaml.safe_load(fault_vendor.read_text())["module"]["path"]
    case = load(derived(BASELINE, tmp_path, "BL-M-1-240", SOFTHSM_VERSION))
    outcome = replay(case, library, None, "conformance", "PKCS11_USER_PIN", 60)
    found = [(d.step, d.item, d.expected, d.got) for d in outcome.module_divergences]
    assert found == ([] if fault == "none" else [(2, "Flags", "0x0", "0x1")])


def test_extended_case_logs_in_with_the_vendor_pin_and_never_shows_it(token, tmp_path):
    outcome = run(derived(EXTENDED, tmp_path, "EXT-M-1-240", SOFTHSM_VERSION))
    assert outcome.module_divergences == [] and outcome.calls == 20 and not outcome.stopped
    assert PIN not in json.dumps(outcome.as_dict())


def test_a_wrong_pin_stops_the_case_at_the_login(token, tmp_path, monkeypatch):
    """One C_Login with the wrong vendor PIN, then no further call (no lockout), and the
    replay says the run must stop."""
    monkeypatch.setenv("WRONG_PIN", "00000000")
    with pytest.raises(WrongPin) as caught:
        run(derived(EXTENDED, tmp_path, "EXT-M-1-240", SOFTHSM_VERSION), "WRONG_PIN")
    assert "C_Login as CKU_USER on token 'conformance' with the PIN from $WRONG_PIN " \
        "returned CKR_PIN_INCORRECT" in str(caught.value)
    assert "00000000" not in str(caught.value)


def test_a_case_with_its_own_pin_or_the_so_is_refused_on_a_standing_token(token, tmp_path):
    """On a token that is not a throwaway a case logging in with a PIN written in the file,
    or as the SO, is not run: refused before any call, with the reason."""
    literal = derived(EXTENDED, tmp_path, "EXT-M-1-literal", ('value="${Pin}"', 'value="1234"'))
    so = derived(EXTENDED, tmp_path, "EXT-M-1-so", ('<UserType value="USER"/>',
                                                    '<UserType value="SO"/>'))
    outcome = run(literal)
    assert outcome.refused.startswith("call 13 C_Login with a PIN written in the case file")
    assert (outcome.calls, outcome.divergences) == (0, [])
    assert run(so).refused.startswith("call 13 C_Login as CKU_SO: the SO logs in only on a "
                                      "throwaway token")
    with pytest.raises(WrongPin, match="with the PIN from the case file returned "
                       "CKR_PIN_INCORRECT; stopping without retrying"):  # stops the run
        replay(load(literal), SOFTHSM2, None, "conformance", "PKCS11_USER_PIN", 60,
               throwaway=True)


def test_a_symbol_never_bound_is_the_case_divergence(token, tmp_path):
    """BL-M-1-31 opens its session on ${SlotList.SlotID[1]}, which nothing binds."""
    path = derived(BASELINE, tmp_path, "BL-M-1-typo", SOFTHSM_VERSION, (
        '<C_OpenSession>\n    <SlotID value="${SlotList.SlotID[0]}"/>',
        '<C_OpenSession>\n    <SlotID value="${SlotList.SlotID[1]}"/>'))
    outcome = run(path)
    assert [(d.by, d.issue, d.step) for d in outcome.divergences if d.by == "case"
            and d.issue == "unbound"] == [("case", "unbound", 7)]
    assert outcome.stopped.startswith("call 7 C_OpenSession")


def test_own_case_runs_in_the_suite_as_its_own_area(tmp_path, write):
    """`pkcs11-conformance replay --case FILE`: a vendor's own case, in the results beside
    the official ones; it passes when every answer is as the case says."""
    own = write("OWN-1.xml", """\
        <PKCS11>
          <C_Initialize/>
          <C_Initialize rv="OK"/>
          <C_GetInfo/>
          <C_GetInfo rv="OK">
            <Info>
              <CryptokiVersion major="2" minor="40"/>
              <ManufacturerID value="anyone"/>
              <Flags value="0x0"/>
            </Info>
          </C_GetInfo>
          <C_Finalize/>
          <C_Finalize rv="OK"/>
        </PKCS11>
        """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PKCS11_"))}
    done = subprocess.run([sys.executable, "-m", "conformance.cli", "replay", "--case",
                           str(own), "--output", str(tmp_path / "out"), "-q"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 1, done.stderr  # the profiles are not met on SoftHSM 2.6
    cases = {c["id"].split("[")[1].rstrip("]"): c for c in json.loads(
        (tmp_path / "out" / "softhsm2" / "results.json").read_text())["cases"]}
    assert set(cases) == {"BL-M-1-32", "EXT-M-1-32", "AUTH-M-1-32", "CERT-M-1-32", "OWN-1"}
    assert cases["OWN-1"]["status"] == "PASS" and cases["OWN-1"]["area"] == "oasis"
    assert cases["OWN-1"]["required_by"] == []
    assert cases["BL-M-1-32"]["required_by"] == ["baseline-provider"]
    # SoftHSM 2.6 is a 2.40 module, as its vendor file declares (with a link): XFAIL, its
    # message the replay's trace.
    assert cases["BL-M-1-32"]["status"] == "XFAIL"
    assert "BL-M-1-32: called through C_GetFunctionList's function list. first " \
           "divergence: call 2 C_GetInfo" in cases["BL-M-1-32"]["message"]


def test_broken_own_case_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text("<PKCS11><C_Initialize/></PKCS11>")
    done = subprocess.run([sys.executable, "-m", "conformance.cli", "replay", "--case",
                           str(bad)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"pkcs11-conformance: {bad}: 1 call elements")
