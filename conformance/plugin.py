"""The pytest plugin: the only module with pytest hooks.

It is registered as a pytest11 entry point, so it is loaded into every pytest run but
stays inert unless `--vendor` is given or the conformance suites are collected (then the
embedded SoftHSM2 reference is the target).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import allure_commons
import pytest
from _pytest.reports import TestReport
from pkcs11.exceptions import PKCS11Error

from . import __version__, allure_output, keypolicy, results
from .isolation import ModuleCrashed, ModuleTimedOut
from .loading import REFERENCE_VENDOR, ConfigError, load_vendor, profiles_in_effect
from .model import (
    Decision,
    KnownDeviation,
    Observation,
    Profile,
    Value,
    Vendor,
    decide,
    parameter_values,
)
from .provisioning import RUN_DIR_ENV
from .raw import CKRError
from .returncodes import SEVERITIES, Severity, UnexpectedReturn
from .suite import returned
from .target import Target, TargetError, WrongPin, open_target

SUITES_DIR = Path(__file__).parent / "suites"
PAYLOAD = "pkcs11_conformance"
# What a failing call measured (returned code, severity, the known deviation's match),
# carried beside the payload from the process that ran the case to the one that records.
OUTCOME = "pkcs11_conformance_outcome"
STOPPED = "pkcs11_conformance_stopped"  # why a worker stopped the run (a refused PIN)
# Known deviations for these areas are matched in interop runs (conformance.interop).
INTEROP_AREAS = ("pairwise/", "clients/")
TIMEOUTS_ENV = "PKCS11_CONFORMANCE_TIMEOUTS"  # key of the case metadata carried in user_properties

# Parametrized fixtures whose values come from claims and profiles, by parameter name.
PARAMETER_FIXTURES = {
    "key_bits": "key_sizes",
    "curve": "curves",
    "hash_name": "hashes",
    "salt_length": "salt_lengths",
    "tag_bits": "tag_bits",
    "public_exponent": "public_exponents",
}


@dataclass(frozen=True)
class Run:
    """What this process tests: stored on the config, per process (xdist worker)."""

    vendor: Vendor
    profiles: tuple[Profile, ...]
    target: Target
    results_path: Path | None
    started: float


@dataclass(frozen=True)
class Case:
    """One collected test case and the outcome rule's decision for it."""

    id: str
    area: str
    test: str
    mechanisms: tuple[str, ...]
    functions: tuple[str, ...]
    objects: tuple[str, ...]
    parameters: dict[str, Value]
    spec: str
    decision: Decision
    severity: Severity

    def payload(self) -> str:
        return json.dumps({
            "id": self.id, "area": self.area, "test": self.test,
            "mechanisms": list(self.mechanisms), "functions": list(self.functions),
            "objects": list(self.objects),
            "parameters": self.parameters, "spec": self.spec, "severity": self.severity,
            "requirement": self.decision.requirement,
            "required_by": list(self.decision.required_by),
            "action": self.decision.action, "reason": self.decision.reason,
            "expected_status": self.decision.expected_status,
            "known_deviation": deviation_payload(self.decision.deviation),
        })


def deviation_payload(deviation: KnownDeviation | None) -> dict[str, Any] | None:
    """A known deviation as the case payload carries it (the interop plugin's too)."""
    if deviation is None:
        return None
    return {"url": deviation.url, "reason": deviation.reason,
            "observed": {"code": deviation.observed.code,
                         "message": deviation.observed.message}}


RUN = pytest.StashKey[Run]()
CASE = pytest.StashKey[Case]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pkcs11-conformance")
    group.addoption("--vendor", metavar="FILE",
                    help="vendor declaration (YAML) to test; default: the SoftHSM2 reference "
                         "in a throwaway token, when the conformance suites are collected")
    group.addoption("--profile", action="append", metavar="ID",
                    help="profile to judge against (repeatable); default: the vendor's profiles")
    group.addoption("--module", metavar="PATH",
                    help="module library to load instead of the vendor file's module.path")
    group.addoption("--profile-case", action="append", metavar="FILE",
                    help="a test case in the OASIS Profiles XML format to replay besides the "
                         "official ones (repeatable)")
    group.addoption("--try-hung", action="store_true",
                    help="run the cases of a mechanism (or function) that already hung; by "
                         "default they are quarantined after its first TIMEOUT")
    group.addoption("--results", metavar="FILE",
                    help="results JSON to write (default: reports/<vendor>/results.json)")


def _inside_suites(arg: str) -> bool:
    path = Path(arg.split("::")[0]).resolve()
    return path == SUITES_DIR or SUITES_DIR in path.parents


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "mechanism(name): the CKM_* mechanism a test exercises")
    config.addinivalue_line("markers", "mechanisms(*names): run once per mechanism, as "
                            "mechanism_name, each with its own parameter values")
    config.addinivalue_line("markers", "function(name): the C_* function a test exercises")
    config.addinivalue_line("markers", "object_class(name): the CKO_* class a test exercises")
    config.addinivalue_line("markers", "profile_case(profile_id): an OASIS test case that "
                            "profile requires (its verdict rests on the case)")
    config.addinivalue_line("markers", "attribute(name): an optional CKA_* behaviour a test "
                            "needs the vendor to claim (vendor file key `attributes`)")
    config.addinivalue_line("markers", "severity(level): what a failure of the check means: "
                            "must (the default), should, strict or robustness")
    vendor_file = config.getoption("vendor")
    if vendor_file is None and not any(_inside_suites(a) for a in config.args):
        return
    if vendor_file and config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args = [str(SUITES_DIR)]  # `pytest --vendor X` alone runs the whole suite
    make_run_dir(config)
    try:
        vendor = load_vendor(vendor_file or REFERENCE_VENDOR, config.getoption("module"))
        profiles = profiles_in_effect(vendor, config.getoption("profile"))
        target = open_target(vendor)
    except (ConfigError, TargetError) as exc:
        pytest.exit(f"pkcs11-conformance: {exc}", returncode=2)
    try:
        if not hasattr(config, "workerinput"):
            target.login_session()  # one login up front: a wrong PIN stops the whole run
    except TargetError as exc:
        target.close()
        pytest.exit(f"pkcs11-conformance: {exc}", returncode=2)
    results_path = config.getoption("results") or f"reports/{vendor.id}/results.json"
    config.stash[RUN] = Run(vendor, profiles, target, Path(results_path), time.time())
    watch_time(config, vendor.timeout)
    keypolicy.use(vendor.keys)
    if vendor.keys.reinitialize_every:
        config.pluginmanager.register(Reinitializer(target, vendor.keys.reinitialize_every),
                                      "pkcs11-conformance-reinitialize")
    config.pluginmanager.import_plugin("conformance.fixtures")
    if not hasattr(config, "workerinput"):
        stop_on_sigterm()
        config.stash[RECORDER] = recorder = Recorder()
        config.pluginmanager.register(recorder, "pkcs11-conformance-recorder")
    if config.getoption("allure_report_dir", None):  # allure-pytest writes results
        allure = AllureOutput(vendor.id, config)
        config.pluginmanager.register(allure, "pkcs11-conformance-allure")
        allure_commons.plugin_manager.register(allure)
        config.add_cleanup(lambda: allure_commons.plugin_manager.unregister(allure))


def _terminated(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def stop_on_sigterm() -> None:
    """SIGTERM (timeout, CI cancellation, systemd) ends the run as Ctrl-C does: pytest
    stops, the workers are shut down, and the results written so far are marked
    incomplete."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)


def make_run_dir(config: pytest.Config) -> None:
    """The directory every throwaway token of the run is made in, removed at the end with
    what a crashed or stopped worker could not remove itself (the controller makes it,
    the workers inherit it)."""
    if not hasattr(config, "workerinput") and RUN_DIR_ENV not in os.environ:
        run_dir = tempfile.mkdtemp(prefix="pkcs11-conformance-run-")
        os.environ[RUN_DIR_ENV] = run_dir
        config.add_cleanup(lambda: shutil.rmtree(os.environ.pop(RUN_DIR_ENV, run_dir),
                                                 ignore_errors=True))


def watch_time(config: pytest.Config, limit: float) -> None:
    """A per-test time limit in every process that runs tests; the controller makes the
    file where a worker notes the test it stops for taking too long (workers inherit it)."""
    if not hasattr(config, "workerinput"):
        handle, name = tempfile.mkstemp(prefix="pkcs11-conformance-timeouts-")
        os.close(handle)
        os.environ[TIMEOUTS_ENV] = name

        def forget() -> None:
            with contextlib.suppress(OSError):
                os.unlink(os.environ.pop(TIMEOUTS_ENV, ""))
        config.add_cleanup(forget)
    config.pluginmanager.register(Watchdog(limit), "pkcs11-conformance-watchdog")


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(RUN, None)
    if run is not None:
        run.target.close()


def hung_subject(item: pytest.Item) -> str:
    """What a hang is blamed on: the mechanism under test, else the first function the
    case exercises ("" when it names neither)."""
    case = item.stash.get(CASE, None)
    return (case.mechanisms or case.functions or ("",))[0] if case else ""


def note_hang(nodeid: str, subject: str) -> None:
    """Tell every process of the run (the controller's file, inherited) that this case
    hung: the controller reports it as TIMEOUT, the workers quarantine its subject."""
    with open(os.environ[TIMEOUTS_ENV], "a", encoding="utf-8") as notes:
        notes.write(f"{nodeid}\t{subject}\n")


def _hangs() -> list[tuple[str, str]]:
    """(case node id, subject) of every case of this run that hung so far."""
    try:
        with open(os.environ[TIMEOUTS_ENV], encoding="utf-8") as notes:
            lines = notes.read().splitlines()
    except (KeyError, OSError):
        return []
    return [(nodeid, subject) for nodeid, _, subject in (line.partition("\t") for line in lines)]


def _stop_hung_test(nodeid: str, subject: str, limit: float) -> None:
    """Runs on a watchdog thread: a C call cannot be interrupted from Python, so the
    process ends. Under xdist the worker is replaced and the run goes on; the note lets
    the controller report TIMEOUT rather than CRASH."""
    note_hang(nodeid, subject)
    sys.stderr.write(f"\npkcs11-conformance: {nodeid} took longer than {limit:g} s; "
                     "stopping this process\n")
    sys.stderr.flush()
    os._exit(3)


class Watchdog:
    """The vendor's per-test time limit (timeout_seconds), in every process that runs
    tests."""

    def __init__(self, limit: float) -> None:
        self.limit = limit

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Any:
        timer = threading.Timer(self.limit, _stop_hung_test,
                                (item.nodeid, hung_subject(item), self.limit))
        timer.daemon = True
        timer.start()
        try:
            return (yield)
        finally:
            timer.cancel()


class Reinitializer:
    """keys.reinitialize_every: C_Finalize and C_Initialize after every so many tests, and
    when the tests of a file are done (its fixtures are torn down then)."""

    def __init__(self, target: Target, every: int) -> None:
        self.target, self.every, self.count = target, every, 0

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Any:
        try:
            return (yield)
        finally:
            self.count += 1
            if nextitem is not None and (self.count >= self.every
                                         or nextitem.path != item.path):
                self.count = 0
                try:
                    self.target.reinitialize()
                except Exception as exc:  # noqa: BLE001 - the process cannot go on
                    # Like a crash: under xdist the worker is replaced and the run goes on.
                    sys.stderr.write(f"\npkcs11-conformance: re-initializing the module "
                                     f"after {item.nodeid} failed: {exc!r}\n")
                    sys.stderr.flush()
                    os._exit(3)


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    run = config.stash.get(RUN, None)
    if run is None:
        return None
    info = run.target.info()
    module, token = info["module"], info["token"]
    return [
        f"pkcs11-conformance {__version__}: vendor {run.vendor.id} ({run.vendor.source}), "
        f"profiles {', '.join(p.id for p in run.profiles) or 'none'}",
        f"module: {module['path']}: {module['manufacturer_id']} "
        f"{module['library_description']} {module['library_version']}, "
        f"Cryptoki {module['cryptoki_version']}",
        f"token: {token['label']!r} {token['manufacturer_id']} {token['model']} "
        f"serial {token['serial']}" + (" (throwaway)" if token["throwaway"] else ""),
        "bindings: " + ", ".join(f"{k} {v}" for k, v in results.binding_versions().items()),
    ]


def _markers(item: pytest.Item, name: str) -> tuple[str, ...]:
    return tuple(str(arg) for mark in item.iter_markers(name) for arg in mark.args)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parameter fixtures (key_bits, curve, ...) take the union of claimed and
    profile-listed values of the test's mechanism. A test marked
    `mechanisms(A, B, ...)` gets `mechanism_name` too, crossed with each mechanism's own
    values, and each case is marked with its mechanism for the outcome rule."""
    run = metafunc.config.stash.get(RUN, None)
    if run is None:
        return
    wanted = [f for f in PARAMETER_FIXTURES if f in metafunc.fixturenames]
    listed = sorted(str(a) for m in metafunc.definition.iter_markers("mechanisms")
                    for a in m.args)
    single = [str(m.args[0]) for m in metafunc.definition.iter_markers("mechanism")]
    if not listed and not (single and wanted):
        return

    def cases(mechanism: str) -> list[tuple[list[Value | None], str]]:
        columns: list[list[Value | None]] = [
            list(parameter_values(run.vendor, run.profiles, mechanism, PARAMETER_FIXTURES[f]))
            or [None] for f in wanted]
        out = []
        for combo in itertools.product(*columns):
            # None: neither claimed nor required; the outcome rule skips that case.
            ids = [f"{f}={'unclaimed' if v is None else v}" for f, v in zip(wanted, combo,
                                                                             strict=True)]
            out.append((list(combo), "-".join(ids)))
        return out

    if listed:
        metafunc.parametrize(["mechanism_name", *wanted], [
            pytest.param(mechanism, *values, marks=pytest.mark.mechanism(mechanism),
                         id="-".join(filter(None, [mechanism, ident])))
            for mechanism in listed for values, ident in cases(mechanism)])
    else:
        generated = cases(single[0])
        metafunc.parametrize(wanted, [v for v, _ in generated],
                             ids=[i for _, i in generated])


def _case(item: pytest.Item, run: Run) -> Case:
    path = Path(str(item.path)).relative_to(SUITES_DIR)
    case_id = f"{path.as_posix()}::{item.name}"
    callspec = getattr(item, "callspec", None)
    given = callspec.params if callspec else {}
    parameters = {PARAMETER_FIXTURES[k]: v for k, v in given.items()
                  if k in PARAMETER_FIXTURES and v is not None}
    mechanisms = _markers(item, "mechanism")
    if "mechanism_name" in given:  # the parametrized mechanism is the one under test
        subject = str(given["mechanism_name"])
        mechanisms = (subject, *(m for m in mechanisms if m != subject))
    unclaimed = [k for k, v in given.items() if k in PARAMETER_FIXTURES and v is None]
    functions, objects = _markers(item, "function"), _markers(item, "object_class")
    case_of = _markers(item, "profile_case")  # an OASIS test case counts for its profile only
    decision = decide(run.vendor, () if case_of else run.profiles, case_id, mechanisms,
                      functions, parameters, objects, _markers(item, "attribute"))
    if case_of:
        owning = tuple(sorted(p.id for p in run.profiles if p.id in case_of))
        if decision.action == "run":
            decision = Decision("run", owning, deviation=decision.deviation)
        elif owning:  # what the case needs is not claimed, and a profile requires the case
            decision = Decision("missing", owning, f"{decision.reason}, and profile "
                                f"{', '.join(owning)} requires this test case")
    if unclaimed and decision.action == "run":  # defensive: an empty parameter list
        decision = Decision("skip", decision.required_by,
                            f"no {unclaimed[0]} claimed for {mechanisms[0]}")
    doc = (getattr(item, "obj", None).__doc__ or "").strip()
    return Case(case_id, path.parts[0], getattr(item, "originalname", item.name), mechanisms,
                functions, objects, parameters, " ".join(doc.split(":")[0].split()),
                decision, severity_of(item))


def severity_of(item: pytest.Item) -> Severity:
    marker = item.get_closest_marker("severity")
    if marker is None:
        return "must"
    level = str(marker.args[0]) if marker.args else ""
    if level not in SEVERITIES:
        raise pytest.UsageError(f"{item.nodeid}: severity({level!r}) is not one of "
                                f"{', '.join(SEVERITIES)}")
    return level


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """All gating happens here, by the outcome rule, before -k/-m deselection."""
    run = config.stash.get(RUN, None)
    if run is None:
        return
    matched: set[str] = set()
    for item in items:
        if SUITES_DIR not in Path(str(item.path)).parents:
            continue
        case = _case(item, run)
        item.stash[CASE] = case
        item.user_properties.append((PAYLOAD, case.payload()))
        decision = case.decision
        if decision.deviation:
            matched.add(str(decision.deviation.matching(case.id)))
        if decision.action == "skip":
            item.add_marker(pytest.mark.skip(reason=decision.reason))
    # The OASIS test cases first: they assume the fresh token a throwaway is, before other
    # checks leave objects on it (a module that makes keys only on the token keeps them).
    items.sort(key=lambda item: SUITES_DIR / "oasis" not in Path(str(item.path)).parents)
    for pattern in (p for d in run.vendor.known_deviations for p in d.patterns):
        if pattern not in matched and not pattern.startswith(INTEROP_AREAS):
            warnings.warn(pytest.PytestWarning(
                f"{run.vendor.source}: known_deviations: {pattern!r} matches no test"),
                stacklevel=1)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    """A required but unclaimed case is MISSING without running: nothing to set up. To
    pytest (the terminal, JUnit) it is a failure whose message starts with MISSING."""
    case = item.stash.get(CASE, None)
    if case is None or case.decision.action != "missing":
        return None
    ihook = item.ihook
    ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    keywords: dict[str, Literal[1]] = {name: 1 for name in item.keywords}
    phases: tuple[tuple[Literal["setup", "call", "teardown"], Literal["passed", "failed"]],
                  ...] = (("setup", "passed"), ("call", "failed"), ("teardown", "passed"))
    for when, outcome in phases:
        longrepr = f"MISSING: {case.decision.reason}" if outcome == "failed" else None
        report = TestReport(item.nodeid, item.location, keywords, outcome, longrepr, when,
                            user_properties=list(item.user_properties))
        ihook.pytest_runtest_logreport(report=report)
    # Tear down what the next item does not need, as pytest's own protocol does.
    item.session._setupstate.teardown_exact(nextitem)
    ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """The call phase of a case: what a failure measured (the code returned, the severity,
    a crash of the raw layer's child), and a known deviation decided by that measurement:
    XFAIL only when the failure shows what the deviation declares; any other failure
    stays a FAIL with the declaration beside it; a pass is an XPASS."""
    report: pytest.TestReport = yield
    payload = next((v for k, v in item.user_properties if k == PAYLOAD), None)
    if (payload is not None and call.excinfo is not None
            and isinstance(call.excinfo.value, WrongPin)):
        # One refused PIN stops everything (no other process may try one on the token);
        # under xdist the controller stops when this worker reports why it stopped.
        item.session.shouldstop = f"a PIN was refused in {item.nodeid}: {call.excinfo.value}"
        report.user_properties.append((STOPPED, item.session.shouldstop))
    if payload is not None and report.when == "setup" and QUARANTINED in item.stash:
        report.user_properties.append((OUTCOME, json.dumps(
            {"quarantined": item.stash[QUARANTINED]})))
    if payload is None or report.when != "call" or report.skipped:
        return report
    case = json.loads(str(payload))
    deviation = case["known_deviation"]
    measured: dict[str, Any] = {"severity": case.get("severity", "must")}
    if report.failed and call.excinfo is not None:
        measured.update(measure(call.excinfo.value))
        if measured.get("crash") == "timeout":  # the raw layer's child hung
            note_hang(item.nodeid, hung_subject(item))
        if deviation:
            observed = Observation(**deviation["observed"])
            matched = observed.matches(measured.get("code"), measured.get(
                "message", results.failure_message(report)))
            measured["deviation_matched"] = matched
            if matched:
                report.outcome = "skipped"
                report.wasxfail = f"known deviation: {deviation['reason']} ({deviation['url']})"
    elif report.passed and deviation:
        measured["xpass"] = True
        report.outcome = "failed"
        report.longrepr = (f"known deviation no longer happens: {deviation['reason']} "
                           f"({deviation['url']})")
    report.user_properties.append((OUTCOME, json.dumps(measured)))
    return report


def measure(exc: BaseException) -> dict[str, Any]:
    """The fields a failure carries: the CKR code returned (from the raw layer, from a
    python-pkcs11 exception, or from a check's own assertion), the severity a return-code
    check decided, and whether the raw layer's child process died or hung."""
    if isinstance(exc, ModuleCrashed | ModuleTimedOut):
        return {"crash": "timeout" if isinstance(exc, ModuleTimedOut) else "crash"}
    if isinstance(exc, UnexpectedReturn):  # its own message, without the class name
        return {"code": exc.returned, "severity": exc.severity,
                "message": str(exc).split("\n")[0]}
    if isinstance(exc, CKRError):
        return {"code": exc.name}
    if isinstance(exc, PKCS11Error):
        name = returned(exc)
        return {"code": name} if name.startswith("CKR_") else {}
    # A check's own failure raised while handling the module's error ("... must succeed:
    # returned CKR_X" in an except block): the code is that error's.
    inner = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if isinstance(exc, AssertionError | pytest.fail.Exception) and inner is not None:
        return {k: v for k, v in measure(inner).items() if k == "code"}
    return {}


class Recorder:
    """Collects every phase of every case, in the process that writes the results (the
    xdist controller, or the only process). Reports from xdist workers arrive here too.

    The case metadata travels in user_properties and is taken out before other plugins
    see the report, so JUnit XML stays plain xunit2."""

    def __init__(self) -> None:
        self.cases: dict[str, dict[str, Any]] = {}
        self.stopped = ""  # why a worker stopped the run, when one did

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties = dict(report.user_properties)
        payload = properties.get(PAYLOAD)
        self.stopped = str(properties.get(STOPPED, self.stopped))
        if payload is not None:
            report.user_properties = [(k, v) for k, v in report.user_properties
                                      if k not in (PAYLOAD, OUTCOME, STOPPED)]
            measured = properties.get(OUTCOME)
            results.record_phase(self.cases, json.loads(str(payload)), report,
                                 json.loads(str(measured)) if measured else {})
        elif str(report.when) == "???" and "crashed" in str(report.longrepr):
            # pytest-xdist reports a worker that died mid-test with a bare report: keep
            # the case (and what it was) so the results show the crash.
            results.record_crash(self.cases, report.nodeid, str(report.longrepr),
                                 timed_out=report.nodeid in _timed_out())


def _timed_out() -> set[str]:
    return {nodeid for nodeid, _ in _hangs()}


QUARANTINED = pytest.StashKey[str]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A hung mechanism is quarantined: once a case of it hit the time limit, its other
    cases are not run (each would cost the limit again), unless --try-hung asks."""
    if CASE not in item.stash or item.config.getoption("try_hung"):
        return
    subject = hung_subject(item)
    hung = next((nodeid for nodeid, s in _hangs() if subject and s == subject), None)
    if hung is not None:
        item.stash[QUARANTINED] = subject
        pytest.skip(f"quarantined: {subject} hung in {hung} (TIMEOUT); --try-hung runs "
                    "such cases anyway")


RECORDER = pytest.StashKey[Recorder]()


class AllureOutput:
    """With `--alluredir`: every Allure test result says what the results JSON says
    (labels, status, message starting with the suite's status), and the controller
    writes the results of cases whose worker died, which nothing else would.

    allure-pytest hands each result to the `report_result` hook of allure_commons just
    before writing it; this is registered there, ahead of the file writer."""

    def __init__(self, vendor: str, config: pytest.Config) -> None:
        self.vendor, self.config = vendor, config
        self.item: pytest.Item | None = None
        self.cases: dict[str, dict[str, Any]] = {}

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Any:
        self.item, self.cases = item, {}
        return (yield)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        item = self.item
        if item is not None and report.nodeid == item.nodeid and CASE in item.stash:
            measured = dict(report.user_properties).get(OUTCOME)
            results.record_phase(self.cases, json.loads(item.stash[CASE].payload()), report,
                                 json.loads(str(measured)) if measured else {})
        elif (str(report.when) == "???" and "crashed" in str(report.longrepr)
              and RECORDER in self.config.stash):
            entry = self.config.stash[RECORDER].cases.get(report.nodeid)
            if entry is not None:  # a worker died: the Recorder took note of the case
                record = results.finish_records({report.nodeid: entry})[0]
                allure_commons.plugin_manager.hook.report_result(
                    result=allure_output.crash_result(record, self.vendor, report.nodeid))

    @allure_commons.hookimpl(tryfirst=True)
    def report_result(self, result: Any) -> None:
        item = self.item
        if item is None or item.nodeid not in self.cases:
            return
        record = results.finish_records({item.nodeid: self.cases[item.nodeid]})[0]
        allure_output.apply(result, record, self.vendor, item.nodeid)
VERDICTS = pytest.StashKey[list[dict[str, Any]]]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    run = config.stash.get(RUN, None)
    if run is None or RECORDER not in config.stash or run.results_path is None:
        return
    run_info = results.run_info(run.vendor, run.profiles, run.target.info(), run.started,
                                config.invocation_params.args)
    records = results.finish_records(config.stash[RECORDER].cases)
    if exitstatus == pytest.ExitCode.INTERRUPTED:  # Ctrl-C, SIGTERM, a refused PIN
        reason = config.stash[RECORDER].stopped or session.shouldstop or "interrupted"
        run_info["incomplete"] = {"reason": str(reason),
                                  "cases_recorded": len(records)}
    results.write(run.results_path, run_info, records)
    allure_dir = config.getoption("allure_report_dir", None)
    if allure_dir:
        allure_output.write_environment(Path(allure_dir), run_info)
    config.stash[VERDICTS] = results.verdicts(run_info, records)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    run, verdicts = config.stash.get(RUN, None), config.stash.get(VERDICTS, None)
    if run is None or verdicts is None:
        return
    terminalreporter.write_sep("=", "pkcs11-conformance verdicts")
    terminalreporter.write_line(f"results: {run.results_path}")
    for line in results.verdict_lines(verdicts):
        terminalreporter.write_line(line)
