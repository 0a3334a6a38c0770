"""Safe on a real token whatever the input: every C_Login goes through one PIN guard,
counted by OpenSC's pkcs11-spy between the suite and SoftHSM2 on a token the test made.

The suite loads the fault forwarder (faults/p11fault.c, no fault), which forwards to the
spy, which forwards to SoftHSM2: pkcs11-spy 0.23 crashes in C_GetInterfaceList over a
module without one, which the OASIS replay calls first; the forwarder has none.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO, SOFTHSM2, private_softhsm2

from conformance import raw
from conformance.target import OBJECTS_ENV, OBJECTS_FILE

CLI = [sys.executable, "-m", "conformance.cli"]
SPY = "/usr/lib/x86_64-linux-gnu/pkcs11/pkcs11-spy.so"
# What the OASIS cases and the digest checks exercise.
FUNCTIONS = ("C_Initialize", "C_GetInfo", "C_GetSlotInfo", "C_GetTokenInfo", "C_OpenSession",
             "C_CloseAllSessions", "C_GetMechanismList", "C_GetMechanismInfo", "C_Login",
             "C_Logout", "C_FindObjects", "C_GetAttributeValue", "C_Digest", "C_DigestUpdate")
USER_PIN, SO_PIN, WRONG = "user-secret-4711", "so-secret-4711", "wrong-guess-0815"

assert Path(SPY).is_file(), "pkcs11-spy is required: apt-get install opensc-pkcs11"


@pytest.fixture(scope="session")
def forwarder(fault_vendor) -> str:
    return yaml.safe_load(fault_vendor.read_text())["module"]["path"]


@pytest.fixture
def spied(tmp_path, monkeypatch, forwarder):
    """A SoftHSM2 token labelled "standing" that is not a throwaway, reached through
    pkcs11-spy (which logs every call to the returned file)."""
    private_softhsm2(tmp_path, monkeypatch)
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "standing",
                    "--so-pin", SO_PIN, "--pin", USER_PIN], check=True, capture_output=True)
    log = tmp_path / "spy.log"
    (tmp_path / "module").write_text(forwarder)
    monkeypatch.setenv("P11_FAULT_MODULE", SPY)
    monkeypatch.setenv("PKCS11SPY", SOFTHSM2)
    monkeypatch.setenv("PKCS11SPY_OUTPUT", str(log))
    monkeypatch.setenv("STANDING_PIN", USER_PIN)
    return log


def vendor_file(directory: Path, provision: str = "") -> Path:
    """The standing token's vendor file (`provision`: a throwaway instead), for the module
    the `spied` fixture chose."""
    path = directory / "standing.yaml"
    path.write_text(
        "schema: 1\nvendor: standing\ntitle: Standing token\n"
        f"module: {{path: {(directory / 'module').read_text()}}}\n"
        "token: {label: standing, user_pin_env: STANDING_PIN, so_pin_env: STANDING_SO_PIN"
        + (f", provision: {provision}" if provision else "") + "}\n"
        f"functions: [{', '.join(FUNCTIONS)}]\nclaims: {{CKM_SHA256: {{}}}}\n")
    return path


def logins(log: Path) -> list[tuple[str, str]]:
    """(user type, returned) of every C_Login the spy saw; the PIN must be one we know."""
    if not log.exists():
        return []
    found = []
    for call in re.split(r"\n(?=\d+: C_)", log.read_text(errors="replace")):
        if re.match(r"\d+: C_Login\n", call):
            user = re.search(r"userType = (\S+)", call)
            returned = re.search(r"Returned:\s+\d+ (\S+)", call)
            found.append((user.group(1) if user else "?", returned.group(1) if returned else "?"))
    return found


def token_flags() -> int:
    """C_GetTokenInfo's flags of the standing token, straight from SoftHSM2."""
    module = raw.Module(SOFTHSM2)
    module.initialize()
    try:
        return module.get_token_info(module.find_slot("standing")).flags
    finally:
        module.finalize()


def case_file(directory: Path, logins: list[tuple[str, str]]) -> Path:
    """A case in the OASIS format that opens a session and logs in as each (user type,
    PIN) given, each expecting CKR_PIN_INCORRECT."""
    tries = "".join(
        f'<C_Login><Session value="${{Session}}"/><UserType value="{user}"/>'
        f'<Pin value="{pin}"/></C_Login><C_Login rv="PIN_INCORRECT"/>\n' for user, pin in logins)
    path = directory / "hostile-1.xml"
    path.write_text(
        '<PKCS11>\n<C_Initialize/><C_Initialize rv="OK"/>\n'
        '<C_GetSlotList><TokenPresent value="true"/><SlotList/></C_GetSlotList>'
        '<C_GetSlotList rv="OK"><SlotList length="${SlotList.length}"/></C_GetSlotList>\n'
        '<C_GetSlotList><TokenPresent value="true"/><SlotList length="${SlotList.length}"/>'
        '</C_GetSlotList><C_GetSlotList rv="OK"><SlotList><SlotID value="${SlotList.SlotID[0]}"'
        '/></SlotList></C_GetSlotList>\n'
        '<C_OpenSession><SlotID value="${SlotList.SlotID[0]}"/>'
        '<Flags value="RW_SESSION|SERIAL_SESSION"/></C_OpenSession>'
        '<C_OpenSession rv="OK"><Session value="${Session}"/></C_OpenSession>\n'
        f'{tries}<C_Finalize/><C_Finalize rv="OK"/>\n</PKCS11>\n')
    return path


# Five user and three SO logins with a wrong PIN written in the file, interleaved.
HOSTILE = [("USER", WRONG), ("SO", WRONG)] * 3 + [("USER", WRONG)] * 2


def test_hostile_case_never_logs_in_on_a_standing_token(spied, tmp_path):
    """A replayed case that logs in with a PIN of its own, and as the SO, is SKIP on a
    token that is not a throwaway, before any call: the only C_Logins are the run's own,
    as the user with the vendor's PIN, and the token's PIN counters are untouched."""
    case = case_file(tmp_path, HOSTILE)
    done = subprocess.run([*CLI, "replay", str(vendor_file(tmp_path)), "--case", str(case),
                           "--output", str(tmp_path / "out")],
                          capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    cases = json.loads((tmp_path / "out" / "standing" / "results.json").read_text())["cases"]
    hostile = next(c for c in cases if "hostile-1" in c["id"])
    assert hostile["status"] == "SKIP", hostile
    assert "call 5 C_Login with a PIN written in the case file" in hostile["message"], hostile
    # The controller's login and the worker's, with the vendor's PIN (the official cases
    # that log in need mechanisms this vendor file does not claim).
    assert logins(spied) == [("CKU_USER", "CKR_OK")] * 2
    assert WRONG not in spied.read_text(errors="replace")
    assert not token_flags() & (raw.CKF_USER_PIN_COUNT_LOW | raw.CKF_SO_PIN_COUNT_LOW)


def test_hostile_case_tries_each_pin_once_on_a_throwaway(spied, tmp_path, monkeypatch):
    """On a throwaway token the case runs, until its first refused PIN: that stops the
    case and the run (no other login of any kind follows), and the results say so."""
    case = case_file(tmp_path, HOSTILE)
    done = subprocess.run([*CLI, "replay", str(vendor_file(tmp_path, "softhsm2")),
                           "--case", str(case), "--output", str(tmp_path / "out")],
                          capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    wrong = [entry for entry in logins(spied) if entry[1] != "CKR_OK"]
    assert wrong == [("CKU_USER", "CKR_PIN_INCORRECT")]
    document = json.loads((tmp_path / "out" / "standing" / "results.json").read_text())
    hostile = next(c for c in document["cases"] if "hostile-1" in c["id"])
    assert "returned CKR_PIN_INCORRECT; stopping without retrying" in hostile["message"], hostile
    assert "a PIN was refused" in document["run_info"]["incomplete"]["reason"]


SUBCOMMANDS = {
    "run": ["run", "{vendor}", "--output", "{out}", "-k", "digest"],
    "replay": ["replay", "{vendor}", "--output", "{out}"],
    "interop": ["interop", "{vendor}", "--output", "{out}"],
    "bench": ["bench", "{vendor}", "--output", "{out}", "--seconds", "0.05", "-k", "SHA256"],
    "clean": ["clean", "{vendor}", "--dry-run"],
}


def invoke(name: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    args = [a.format(vendor=vendor_file(tmp_path), out=tmp_path / "out")
            for a in SUBCOMMANDS[name]]
    return subprocess.run([*CLI, *args], capture_output=True, text=True, check=False,
                          timeout=300)


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_wrong_pin_costs_one_login_in_every_subcommand(spied, tmp_path, monkeypatch, name):
    monkeypatch.setenv("STANDING_PIN", WRONG)
    done = invoke(name, tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "returned CKR_PIN_INCORRECT" in done.stdout + done.stderr
    assert WRONG not in done.stdout + done.stderr
    assert logins(spied) == [("CKU_USER", "CKR_PIN_INCORRECT")]


@pytest.mark.parametrize("unset", [False, True], ids=["empty", "unset"])
@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_empty_or_unset_pin_is_refused_before_any_call(spied, tmp_path, monkeypatch, name,
                                                        unset):
    if unset:
        monkeypatch.delenv("STANDING_PIN")
    else:
        monkeypatch.setenv("STANDING_PIN", "")
    done = invoke(name, tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stdout + done.stderr, done.stderr
    assert f"environment variable STANDING_PIN is {'not set' if unset else 'empty'}" in lines[0]
    assert not spied.exists(), "the module must not even be loaded"


# ---- secrets never in a repr, an output or an artefact ----------------------------------

def claiming_vendor(tmp_path: Path, fault_vendor: Path) -> Path:
    """The standing token with SoftHSM2's claims (the fault module's vendor file, without
    its known deviations: every failure must show)."""
    data = yaml.safe_load(fault_vendor.read_text())
    data.pop("known_deviations", None)
    data.update(vendor="claiming", title="Standing token, SoftHSM2's claims")
    data["module"]["path"] = (tmp_path / "module").read_text()
    data["token"] = {"label": "standing", "user_pin_env": "STANDING_PIN",
                     "so_pin_env": "STANDING_SO_PIN"}
    path = tmp_path / "claiming.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def assert_no_pin(done: subprocess.CompletedProcess[str], out: Path) -> None:
    for pin in (USER_PIN, SO_PIN):
        assert pin not in done.stdout + done.stderr
        for path in out.rglob("*"):
            if path.is_file():
                assert pin not in path.read_text(errors="replace"), path


def artefact_args(out: Path) -> list[str]:
    return ["--output", str(out), "-l", "-vv", "--junitxml", str(out / "junit.xml"),
            "--alluredir", str(out / "allure")]


def test_pin_reaches_no_artefact_of_a_failing_interop_run(spied, tmp_path, monkeypatch,
                                                          fault_vendor):
    """`interop -l -vv` with client checks failing (RSA signatures one bit off) shows
    every local of the failing frames, the side with its environment among them; neither
    PIN is in the console, the JUnit XML, the Allure results or the reports."""
    monkeypatch.setenv("STANDING_SO_PIN", SO_PIN)
    monkeypatch.setenv("P11_FAULT", "rsa-pkcs-signature-bit-flipped")
    out = tmp_path / "out"
    done = subprocess.run([*CLI, "interop", str(claiming_vendor(tmp_path, fault_vendor)),
                           *artefact_args(out), "-k", "pkcs11_tool or p11tool"],
                          capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 1 and "FAILED" in done.stdout, done.stdout + done.stderr
    # the locals were shown, the PIN in them hidden, and the side's environment copy not shown
    assert "GNUTLS_PIN': ***" in done.stdout and "'PATH': " not in done.stdout, done.stdout
    assert list((out / "allure").glob("*-result.json")), "Allure results must be written"
    assert_no_pin(done, out)


def test_pin_reaches_no_artefact_of_a_failing_replay(spied, tmp_path, monkeypatch,
                                                     fault_vendor):
    """`replay -l -vv` where a case fails (BL-M-1: SoftHSM2 implements PKCS#11 2.40) and
    EXT-M-1 logs in with ${Pin}: neither PIN in any output or artefact."""
    monkeypatch.setenv("STANDING_SO_PIN", SO_PIN)
    out = tmp_path / "out"
    done = subprocess.run([*CLI, "replay", str(claiming_vendor(tmp_path, fault_vendor)),
                           *artefact_args(out)],
                          capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 1 and "FAILED" in done.stdout, done.stdout + done.stderr
    assert list((out / "allure").glob("*-result.json")), "Allure results must be written"
    assert_no_pin(done, out)
    assert ("CKU_USER", "CKR_OK") in logins(spied)


# ---- interruption: a signal to `pkcs11-conformance run` --------------------------------

def run_environments() -> dict[int, dict[str, str]]:
    """The initial environment of every process we may read."""
    found = {}
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            entries = environ.read_bytes().split(b"\0")
        except OSError:
            continue
        found[int(environ.parent.name)] = dict(
            e.decode(errors="replace").split("=", 1) for e in entries if b"=" in e)
    return found


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def wait_for_tests(done_file: Path, process: subprocess.Popen[str], timeout: float) -> None:
    """Until the run has finished a few tests (the results so far are worth keeping)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done_file.exists() and done_file.read_text().count("PASSED") >= 3:
            return
        assert process.poll() is None, done_file.read_text()
        time.sleep(0.2)
    pytest.fail(f"no test had passed after {timeout:g} s: {done_file.read_text()}")


@pytest.mark.parametrize("signals", [[signal.SIGINT], [signal.SIGTERM],
                                     [signal.SIGTERM, signal.SIGINT]],
                         ids=["SIGINT", "SIGTERM", "second-signal"])
def test_signal_stops_the_run_and_leaves_nothing_behind(tmp_path, signals):
    """A SoftHSM2 run, signalled mid-run: it ends promptly with 128 + the signal, no process
    of the run is left, nor its run directory (throwaway tokens, the timeouts file), and
    the results so far are written (marked incomplete). A second signal ends it at once."""
    signum = signals[0]
    out, console = tmp_path / "out", tmp_path / "console.txt"
    with console.open("w") as sink:
        process = subprocess.Popen([*CLI, "run", "--output", str(out), "-n", "2", "-v",
                                    "-k", "keygen or sign or encrypt"],
                                   stdout=sink, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_tests(console, process, 240)
        controller = children(process.pid)[0]
        environments = run_environments()
        run_dir = environments[controller]["PKCS11_CONFORMANCE_RUN_DIR"]
        workers = [environments[w] for w in children(controller) if w in environments]
        timeouts = {w["PKCS11_CONFORMANCE_TIMEOUTS"] for w in workers
                    if "PKCS11_CONFORMANCE_TIMEOUTS" in w}
        assert timeouts and all(t.startswith(run_dir + "/") for t in timeouts), timeouts
        started = time.monotonic()
        for sent in signals:
            process.send_signal(sent)
            time.sleep(0.2)
        code = process.wait(60)
        took = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
    text = console.read_text()
    assert code == 128 + signum, text
    assert took < (3 if len(signals) > 1 else 20), f"{took:.1f} s to stop"
    left = [pid for pid, env in run_environments().items()
            if env.get("PKCS11_CONFORMANCE_RUN_DIR") == run_dir]
    assert left == [], f"processes of the run still there: {left}"
    assert not Path(run_dir).exists() and not any(Path(t).exists() for t in timeouts)
    assert f"interrupted by {signal.Signals(signum).name}" in text, text
    if len(signals) > 1:
        return  # killed at once: whatever results there are, are not asserted
    results = json.loads((out / "softhsm2" / "results.json").read_text())
    assert results["cases"], "the results so far must be written"
    if "incomplete" in results["run_info"]:  # once the plugin marks interrupted runs
        assert results["run_info"]["incomplete"], results["run_info"]
    assert not (out / "softhsm2" / "report.md").exists(), "no report of an interrupted run"


# ---- clean: only what the run ledger proves is the suite's --------------------------------

FOREIGN = """
import os, sys, pkcs11
from pkcs11 import Attribute, KeyType, ObjectClass
token = pkcs11.lib(sys.argv[1]).get_token(token_label="standing")
with token.open(rw=True, user_pin=os.environ["STANDING_PIN"]) as session:
    for label, value in (("pkcs11-conformance-customer-backup", b"customer data"),
                         ("pkcs11-conformance-left-behind", b"a forged twin")):
        session.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: True,
                               Attribute.LABEL: label, Attribute.VALUE: value})
    session.generate_keypair(KeyType.RSA, 2048, store=True, label="customer-key")
"""
# A run that stopped before removing what it made: objects through the target's session.
INTERRUPTED_RUN = """
import sys
from pkcs11 import Attribute, KeyType, ObjectClass
from conformance import raw
from conformance.isolation import raw_module
from conformance.loading import load_vendor
from conformance.target import open_target
target = open_target(load_vendor(sys.argv[1]))
session = target.login_session()
session.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: True,
                       Attribute.LABEL: "pkcs11-conformance-left-behind", Attribute.VALUE: b"ours"})
session.generate_keypair(KeyType.RSA, 2048, store=True, label="pkcs11-conformance-rsa")
session.generate_key(KeyType.AES, 256, store=True, label="pkcs11-conformance-aes")
with raw_module(target) as child:  # the raw layer's objects, made in an isolated child
    handle = child.open_session(child.slot, raw.CKF_SERIAL_SESSION | raw.CKF_RW_SESSION)
    child.login_user(handle)
    child.create_object(handle, {raw.CKA_CLASS: 0, raw.CKA_TOKEN: True,
                                 raw.CKA_LABEL: b"pkcs11-conformance-raw", raw.CKA_VALUE: b"raw"})
"""


def token_objects() -> list[tuple[str, int, str]]:
    """(label, class, digest of the public contents) of every token object."""
    done = subprocess.run([sys.executable, "-c", """
import hashlib, os, sys, pkcs11
from pkcs11 import Attribute
from pkcs11.exceptions import PKCS11Error
token = pkcs11.lib(sys.argv[1]).get_token(token_label="standing")
with token.open(user_pin=os.environ["STANDING_PIN"]) as session:
    for obj in session.get_objects({Attribute.TOKEN: True}):
        seen = b""
        for attribute in (Attribute.VALUE, Attribute.MODULUS):
            try:
                seen += obj[attribute]
            except PKCS11Error:
                pass
        print(obj[Attribute.LABEL], int(obj[Attribute.CLASS]), hashlib.sha256(seen).hexdigest())
""", SOFTHSM2], capture_output=True, text=True, check=True)
    return sorted(tuple(line.rsplit(" ", 2)) for line in done.stdout.splitlines())


def test_clean_removes_only_what_the_run_ledger_proves(tmp_path, monkeypatch):
    """Foreign objects, one labelled like the suite's and one a same-label twin of an
    object the suite made, are left byte-identical with the reason; the objects an
    interrupted run made (recorded with their key material in its ledger) are destroyed."""
    private_softhsm2(tmp_path, monkeypatch)
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "standing",
                    "--so-pin", SO_PIN, "--pin", USER_PIN], check=True, capture_output=True)
    monkeypatch.setenv("STANDING_PIN", USER_PIN)
    (tmp_path / "module").write_text(SOFTHSM2)
    vendor, out = vendor_file(tmp_path), tmp_path / "out"
    subprocess.run([sys.executable, "-c", FOREIGN, SOFTHSM2], check=True)
    foreign = token_objects()
    subprocess.run([sys.executable, "-c", INTERRUPTED_RUN, str(vendor)], check=True,
                   env={**os.environ, OBJECTS_ENV: str(out / OBJECTS_FILE)})
    assert len(token_objects()) == len(foreign) + 5

    dry = subprocess.run([*CLI, "clean", str(vendor), "--output", str(out), "--dry-run"],
                         capture_output=True, text=True, check=False)
    assert dry.returncode == 0, dry.stderr
    assert sorted(re.findall(r"would destroy (\S+)", dry.stdout)) == [
        "pkcs11-conformance-aes", "pkcs11-conformance-left-behind",
        "pkcs11-conformance-raw", "pkcs11-conformance-rsa", "pkcs11-conformance-rsa"], dry.stdout
    assert sorted(re.findall(r"left (\S+): no entry of", dry.stdout)) == [
        "pkcs11-conformance-customer-backup", "pkcs11-conformance-left-behind"], dry.stdout
    assert len(token_objects()) == len(foreign) + 5

    done = subprocess.run([*CLI, "clean", str(vendor), "--output", str(out)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "5 object(s) left by earlier runs destroyed, 2 left" in done.stdout, done.stdout
    assert token_objects() == foreign


@pytest.mark.parametrize("command", ["run", "replay", "interop"])
def test_second_run_into_one_output_directory_is_refused(tmp_path, command):
    """Two runs writing into one --output would overwrite each other's results: while one
    holds the directory, another is refused before it starts (one line, exit 2)."""
    out = tmp_path / "out"
    out.mkdir()
    with (out / ".pkcs11-conformance.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        done = subprocess.run([*CLI, command, str(REPO / "vendors" / "softhsm2.yaml"),
                               "--output", str(out)],
                              capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is being written by another run" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not list(out.glob("*/results.json"))
