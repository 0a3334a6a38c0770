"""`pkcs11-conformance`: run the suites against vendor modules, render reports.

Exit codes: 0 every profile met, 1 a requirement failed or is unverified, 2 a usage or
configuration error (told in one line, no traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from pkcs11 import Attribute

from . import __version__, bench, onboarding, profile_cases, provisioning, results
from .comparison import write_matrix
from .loading import (
    REFERENCE_VENDOR,
    ConfigError,
    load_vendor,
    profiles_in_effect,
    writable_directory,
)
from .model import Vendor
from .plugin import SUITES_DIR
from .report import ReportError, write_diff, write_reports, write_vendor_report
from .suite import OBJECT_LABEL_PREFIX
from .target import (
    OBJECTS_ENV,
    OBJECTS_FILE,
    TargetError,
    objects_made,
    open_target,
    proof,
    vendor_pin,
)

USAGE_ERROR = 2
PR_SET_CHILD_SUBREAPER = 36
# After SIGINT the run has this long to stop its tests and write its results; then, as
# after a second signal, everything of the run is killed.
STOP_GRACE = 60.0
# After the controller exits, what is left of its process group has this long to exit.
LINGER = 5.0


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped a run; `signum` is the first signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _pytest(command: list[str], output: Path) -> int:
    """Run a pytest controller in a process group of its own and wait for it.

    SIGINT or SIGTERM to this process: the run's group gets SIGINT (as from a terminal's
    Ctrl-C), so the controller and workers stop their tests, and the controller writes the
    results so far and stops its daemons; a second signal (or no end within STOP_GRACE)
    kills the group at once. Afterwards nothing of the run is left: what remains of the
    group is killed, orphans (this process is their subreaper) are reaped, and the run
    directory, where the run's temp files go (throwaway tokens, the timeouts file), is
    removed. Raises Interrupted after a signal. Token objects the run makes on a token that
    is not a throwaway are recorded in `output`'s run ledger, for `clean`."""
    run_dir = tempfile.mkdtemp(prefix="pkcs11-conformance-run-")
    env = {**os.environ, provisioning.RUN_DIR_ENV: run_dir, "TMPDIR": run_dir,
           OBJECTS_ENV: str((output / OBJECTS_FILE).resolve())}
    received: list[tuple[int, float]] = []  # (signal, when)
    process: subprocess.Popen[bytes] | None = None

    def forward(signum: int, frame: Any) -> None:
        received.append((signum, time.monotonic()))
        if process is not None:
            _signal_group(process.pid, signal.SIGINT if len(received) == 1 else signal.SIGKILL)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1)
    try:
        process = subprocess.Popen(command, env=env, process_group=0)
        if received:  # a signal came before the child existed
            _signal_group(process.pid, signal.SIGINT)
        while True:
            try:
                code = process.wait(0.2)
                break
            except subprocess.TimeoutExpired:
                if received and time.monotonic() - received[0][1] > STOP_GRACE:
                    _signal_group(process.pid, signal.SIGKILL)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if process is not None:
            _end_group(process.pid)
        _reap_orphans()
        shutil.rmtree(run_dir, ignore_errors=True)
    if received:
        raise Interrupted(received[0][0])
    return code


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def _end_group(group: int) -> None:
    """Give what is left of the run's process group LINGER seconds to exit (reaping the
    orphans among them), then kill it."""
    deadline = time.monotonic() + LINGER
    while time.monotonic() < deadline + LINGER:
        _reap()
        try:
            os.killpg(group, 0)
        except (ProcessLookupError, PermissionError):
            return
        if time.monotonic() > deadline:
            _signal_group(group, signal.SIGKILL)
        time.sleep(0.05)


def _reap_orphans() -> None:
    """Reap the run's orphans (this process is their subreaper): daemons whose parent died
    were sent SIGTERM by the kernel; what is alive after LINGER seconds is killed."""
    deadline = time.monotonic() + LINGER
    while _reap() and time.monotonic() < deadline:
        time.sleep(0.05)
    for child in _children():
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
    while _reap() and time.monotonic() < deadline + LINGER:
        time.sleep(0.05)


def _reap() -> bool:
    """Reap every child that has exited; whether any child is still alive."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return False
        if pid == 0:
            return True


def _children() -> list[int]:
    own = str(os.getpid())
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            if stat.read_text().rsplit(")", 1)[1].split()[1] == own:
                found.append(int(stat.parent.name))
    return found


class _Parser(argparse.ArgumentParser):
    """A usage mistake is one line and exit code 2, like every other mistake."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pkcs11-conformance",
        description="PKCS#11 interoperability conformance suite.")
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("--debug", action="store_true",
                        help="with a mistake's one line, its traceback too (before the command)")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="run the suites against vendor modules (default: SoftHSM2 reference)",
        description="Run the conformance suites. Options not listed here go to pytest "
                    "(for example -n 2, -k digest, --junitxml FILE, --alluredir DIR).")
    run.add_argument("vendors", nargs="*", metavar="VENDOR.yaml",
                     help="vendor declarations; none: SoftHSM2 in a throwaway token")
    run.add_argument("--profile", action="append", metavar="ID",
                     help="judge against this profile (repeatable) instead of the vendor's")
    run.add_argument("--module", metavar="PATH|NAME",
                     help="load this module build (or p11-kit module) instead")
    run.add_argument("--output", metavar="DIR", default="reports", type=Path,
                     help="where results and reports go (default: reports/)")
    interop = commands.add_parser(
        "interop", help="keys and data between modules, and each module with its clients",
        description="Pairwise over the modules given (signatures, ciphertexts, wrapped keys "
                    "and public keys made in one and used in the other, both ways), and each "
                    "module with pkcs11-tool, p11tool and OpenSSL's engine, including a root "
                    "certificate ceremony. Writes DIR/interop/results.json, report.md and "
                    "index.html. Options not listed here go to pytest.")
    interop.add_argument("vendors", nargs="+", metavar="VENDOR.yaml")
    interop.add_argument("--output", metavar="DIR", default="reports", type=Path,
                         help="where results and the report go (default: reports/)")
    replay = commands.add_parser(
        "replay", help="the OASIS Profiles test cases alone (BL-M-1, EXT-M-1, AUTH-M-1, "
                       "CERT-M-1) and any of your own in that XML format",
        description="Replay the official PKCS#11 Profiles v3.2 test cases and the given "
                    "CASE.xml files against the vendor's module, comparing every answer "
                    "under the permitted variations; results in DIR/<vendor>/. Options not "
                    "listed here go to pytest.")
    replay.add_argument("vendors", nargs="*", metavar="VENDOR.yaml")
    replay.add_argument("--case", action="append", metavar="CASE.xml", type=Path, default=[],
                        help="a test case of your own in the OASIS XML format (repeatable)")
    replay.add_argument("--output", metavar="DIR", default="reports/profile-cases", type=Path,
                        help="where results and reports go (default: %(default)s)")
    clean = commands.add_parser(
        "clean", help="remove the token objects an interrupted run left behind",
        description="Destroy the token objects that the run ledger of DIR "
                    f"(DIR/{OBJECTS_FILE}, written by run, replay and interop) proves the "
                    "suite made: by their key material, contents or unique id, never by "
                    f"their label. Objects labelled {OBJECT_LABEL_PREFIX}* that the ledger "
                    "does not prove are listed and left; nothing else is touched.")
    clean.add_argument("vendor", metavar="VENDOR.yaml", type=Path)
    clean.add_argument("--module", metavar="PATH|NAME")
    clean.add_argument("--output", metavar="DIR", default="reports", type=Path,
                       help="the --output of the runs whose objects to remove "
                            "(default: %(default)s)")
    clean.add_argument("--dry-run", action="store_true", help="list them, destroy nothing")
    onboarding.add_commands(commands)  # probe, modules, explain
    bench.add_command(commands)
    report = commands.add_parser(
        "report", help="render reports from results files",
        description="Per-vendor reports (DIR/<vendor>/index.html, report.md); with several "
                    "results files also the comparison matrix (DIR/matrix.html, matrix.md); "
                    "with --diff OLD NEW the changes between two runs (DIR/diff.html, diff.md).")
    report.add_argument("results", nargs="+", type=Path, metavar="RESULTS.json")
    report.add_argument("-o", "--output", metavar="DIR", default="reports", type=Path)
    report.add_argument("--profile", metavar="ID",
                        help="only this profile: its verdict alone in the per-vendor "
                        "reports, and matrix rows only for the cases it requires")
    report.add_argument("--allow-mixed-versions", action="store_true",
                        help="compare runs of different suite versions (with a warning)")
    report.add_argument("--diff", action="store_true",
                        help="compare two runs of one vendor: RESULTS.json = OLD NEW")
    return parser


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    """Our arguments, and the ones for pytest. A vendor file is any bare argument that is
    not a test path or a pytest option's value, whatever its name: load_vendor then loads
    or refuses it, never a silent fallback to the reference vendor."""
    known = {"--profile", "--module", "--output", "--case"}
    ours, pytest_args, index = [], [], 0
    while index < len(argv):
        arg = argv[index]
        if arg in known and index + 1 < len(argv):
            ours += argv[index:index + 2]
            index += 2
            continue
        if arg.split("=")[0] in known or _vendor_argument(argv, index) or (
                index == 0 and arg in ("run", "interop", "replay")):
            ours.append(arg)
        else:
            pytest_args.append(arg)
        index += 1
    return ours, pytest_args


# pytest's (and its plugins') options whose value is the next argument.
_PYTEST_VALUED = frozenset((
    "-k", "-m", "-n", "-p", "-o", "-c", "-W", "-r", "--junitxml", "--junit-xml",
    "--alluredir", "--maxfail", "--basetemp", "--rootdir", "--deselect", "--ignore",
    "--ignore-glob", "--confcutdir", "--durations", "--tb", "--numprocesses",
    "--maxprocesses", "--dist", "--max-worker-restart", "--log-file", "--log-level",
    "--log-cli-level", "--override-ini", "--capture", "--import-mode", "--junit-prefix"))


def _vendor_argument(argv: list[str], index: int) -> bool:
    arg = argv[index]
    if index == 0 or arg.startswith("-") or argv[index - 1] in _PYTEST_VALUED:
        return False
    return not (arg.endswith(".py") or "::" in arg or Path(arg).is_dir())


def _run(args: argparse.Namespace, pytest_args: list[str], suites: Path = SUITES_DIR) -> int:
    vendor_files = [Path(v) for v in args.vendors] or [REFERENCE_VENDOR]
    checked = []
    not_run: dict[str, str] = {}  # with several vendors: a module missing here is not run
    for path in vendor_files:  # every file is checked before anything runs
        try:
            vendor = load_vendor(path, args.module)
        except ConfigError as exc:
            if len(vendor_files) == 1 or exc.key not in ("module.path", "--module"):
                raise
            not_run[path.stem] = str(exc)
            continue
        profiles_in_effect(vendor, args.profile)
        if not vendor.token.provision:
            vendor_pin(vendor)  # an unset or empty PIN: one line, before any module call
        missing = vendor.token.provision and provisioning.KINDS[vendor.token.provision].missing()
        if missing and len(vendor_files) > 1:
            not_run[vendor.id] = f"{path}: token.{missing}"
            continue
        checked.append((path, vendor))
    for vendor_id, reason in not_run.items():
        print(f"pkcs11-conformance: {vendor_id}: not run: {reason}", file=sys.stderr)
    with writing_into(args.output):  # a bad --output is told now, not after the run
        return _run_checked(args, pytest_args, suites, checked, not_run)


def _run_checked(args: argparse.Namespace, pytest_args: list[str], suites: Path,
                 checked: list[tuple[Path, Vendor]], not_run: dict[str, str]) -> int:
    """Run the vendors whose files were checked, their interop run when there are several,
    and the matrix."""
    documents = []
    worst = 0
    verdicts: dict[str, list[str]] = {}  # vendor id -> verdict lines, printed at the end
    for path, vendor in checked:
        out = args.output / vendor.id
        results_file = out / "results.json"
        command = [sys.executable, "-m", "pytest", str(suites), "--vendor", str(path),
                   "--results", str(results_file), "-p", "no:cacheprovider"]
        for profile in args.profile or []:
            command += ["--profile", profile]
        if args.module:
            command += ["--module", args.module]
        command += _xdist_defaults(pytest_args)
        print(f"pkcs11-conformance: running {vendor.id} ({path})", flush=True)
        if results_file.exists():
            results_file.unlink()  # never report a previous run's results as this one's
        try:
            code = _pytest(command + pytest_args, args.output)
        except Interrupted as stop:
            _stopped(vendor.id, stop, results_file)
            raise
        if not results_file.exists():
            print(f"pkcs11-conformance: {vendor.id}: no results written "
                  f"(pytest exit code {code})", file=sys.stderr)
            worst = max(worst, USAGE_ERROR if code in (2, 4) else code or USAGE_ERROR)
            continue
        document = bench.attach(results.load(results_file), results_file, this_host_only=True)
        documents.append(document)
        for written in write_vendor_report(document, out):
            print(f"pkcs11-conformance: wrote {written}")
        worst = max(worst, _outcome(document))
        verdicts[vendor.id] = results.verdict_lines(document["verdicts"])
    if len(checked) + len(not_run) > 1 and documents and suites == SUITES_DIR:
        interop_code, interop = _interop([path for path, _ in checked], args.output,
                                         pytest_args)
        worst = max(worst, interop_code)
        for written in write_matrix(documents, args.output, args.profile[0] if args.profile
                                    and len(args.profile) == 1 else None, None, not_run,
                                    interop):
            print(f"pkcs11-conformance: wrote {written}")
    for _, vendor in checked:
        if vendor.id in verdicts:
            print(f"\n{vendor.id} ({vendor.title}):")
            for line in verdicts[vendor.id] or ["no profiles declared"]:
                print(f"  {line}")
    return max(worst, 1) if not_run else worst


def _xdist_defaults(pytest_args: list[str]) -> list[str]:
    """One worker process by default: a module that crashes or hangs then costs one test
    (CRASH or TIMEOUT), not the whole run; and xdist must not give up after 4 crashed
    workers, so a module that crashes in many tests still gets every other test run."""
    added = []
    if not any(a.startswith(("-n", "--numprocesses", "--dist")) or a == "no:xdist"
               for a in pytest_args):
        added += ["-n", "1"]
    if not any(a.startswith("--max-worker-restart") for a in pytest_args):
        added += ["--max-worker-restart", "100000"]
    return added


def _interop(vendor_files: list[Path], output: Path, pytest_args: list[str]
             ) -> tuple[int, dict[str, Any] | None]:
    """The interop run over `vendor_files`: (exit code, its results document)."""
    from .interop.report import matrix_lines, write_interop_report

    results_file = output / "interop" / "results.json"
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
               "--interop-results", str(results_file)]
    for path in vendor_files:
        command += ["--interop", str(path)]
    print(f"pkcs11-conformance: interop between {', '.join(p.stem for p in vendor_files)}",
          flush=True)
    if results_file.exists():
        results_file.unlink()
    try:
        code = _pytest(command + _xdist_defaults(pytest_args) + pytest_args, output)
    except Interrupted as stop:
        _stopped("interop", stop, results_file)
        raise
    if not results_file.exists():
        print(f"pkcs11-conformance: interop: no results written (pytest exit code {code})",
              file=sys.stderr)
        return (USAGE_ERROR if code in (2, 4) else code or USAGE_ERROR), None
    document = results.load(results_file)
    for written in write_interop_report(document, output / "interop"):
        print(f"pkcs11-conformance: wrote {written}")
    print()
    for line in matrix_lines(document):
        print(line)
    return _outcome(document), document


def _stopped(what: str, stop: Interrupted, results_file: Path) -> None:
    """Say where an interrupted run's results are; no report or verdict is made of them."""
    kept = (f"the results so far are in {results_file}" if results_file.exists()
            else "no results written")
    print(f"pkcs11-conformance: {what}: interrupted by {stop}; {kept} (no report made)",
          file=sys.stderr)


def _outcome(document: dict[str, object]) -> int:
    verdicts = document["verdicts"]
    assert isinstance(verdicts, list)
    if verdicts:
        return 0 if all(v["status"] == "met" for v in verdicts) else 1
    summary = document["summary"]
    assert isinstance(summary, dict)
    bad = ("FAIL", "ERROR", "CRASH", "TIMEOUT", "XPASS")
    return 1 if any(summary.get(s) for s in bad) else 0


def _clean(args: argparse.Namespace) -> int:
    vendor = load_vendor(args.vendor, args.module)
    if vendor.token.provision:
        print(f"pkcs11-conformance: {vendor.id}: the token is a throwaway made for each run; "
              "nothing to clean")
        return 0
    ledger = args.output / OBJECTS_FILE
    target = open_target(vendor)
    try:
        made = objects_made(ledger, target.token)
        session = target.login_session()
        ours: list[tuple[Any, str]] = []
        unproven: list[tuple[Any, str]] = []
        for obj in session.get_objects({Attribute.TOKEN: True}):
            label = str(obj[Attribute.LABEL])
            # Only what might be ours is read further (a label the ledger names, or ours).
            if label in made.values() or label.startswith(OBJECT_LABEL_PREFIX):
                (ours if proof(obj) in made else unproven).append((obj, label))
        for obj, label in ours:
            if not args.dry_run:
                obj.destroy()
            print(f"pkcs11-conformance: {'would destroy' if args.dry_run else 'destroyed'} "
                  f"{label}")
        for _, label in unproven:
            print(f"pkcs11-conformance: left {label}: no entry of {ledger} proves this suite "
                  "made it (a label is no proof)")
        print(f"pkcs11-conformance: {len(ours)} object(s) left by earlier runs "
              f"{'to destroy' if args.dry_run else 'destroyed'}, {len(unproven)} left")
    finally:
        target.close()
    return 0


def _report(args: argparse.Namespace) -> int:
    try:
        if args.diff:
            if len(args.results) != 2:
                raise ReportError(f"--diff takes two results files (OLD NEW), not "
                                  f"{len(args.results)}")
            written = write_diff(args.results[0], args.results[1], args.output)
        else:
            written = write_reports(args.results, args.output, args.profile,
                                    args.allow_mixed_versions)
    except ReportError as exc:
        print(f"pkcs11-conformance: {exc}", file=sys.stderr)
        return USAGE_ERROR
    for path in written:
        print(f"pkcs11-conformance: wrote {path}")
    return 0


LOCK_FILE = ".pkcs11-conformance.lock"


@contextlib.contextmanager
def writing_into(directory: Path) -> Iterator[None]:
    """One run at a time writes into an output directory: a second one is refused before
    it starts, instead of the two overwriting each other's results."""
    writable_directory(directory)
    with (directory / LOCK_FILE).open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError("--output", "", f"{str(directory)!r} is being written by "
                              "another run; give this one another --output") from None
        yield


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = argv[:1] == ["--debug"]  # only before the command: pytest has its own --debug
    argv = argv[debug:]
    parser = _parser()
    if argv[:1] in (["run"], ["interop"], ["replay"]) and not {"-h", "--help"} & set(argv):
        ours, pytest_args = _split(argv)
        args = parser.parse_args(ours)
    else:
        args, pytest_args = parser.parse_args(argv), []
    try:
        if args.command == "run":
            return _run(args, pytest_args)
        if args.command == "replay":
            for case in args.case:
                profile_cases.load(case)  # a broken case file is named before anything runs
            args.profile, args.module = None, None
            pytest_args = [*pytest_args, *(f"--profile-case={c.resolve()}" for c in args.case)]
            return _run(args, pytest_args, SUITES_DIR / "oasis")
        if args.command == "interop":
            for path in args.vendors:  # every file is checked before anything runs
                try:
                    vendor = load_vendor(Path(path))
                except ConfigError as exc:  # with several, a module not here is "not run"
                    if len(args.vendors) == 1 or exc.key != "module.path":
                        raise
                    continue
                if not vendor.token.provision:
                    vendor_pin(vendor)
            with writing_into(args.output):
                return _interop([Path(v) for v in args.vendors], args.output, pytest_args)[0]
        if args.command == "clean":
            return _clean(args)
        if args.command == "bench":
            return bench.run(args)
        if args.command in onboarding.COMMANDS:
            return onboarding.run(args)
        return _report(args)
    except (ConfigError, TargetError, profile_cases.CaseError) as exc:
        if debug:
            traceback.print_exc()
        print(f"pkcs11-conformance: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except Interrupted as stop:
        return 128 + stop.signum
    except KeyboardInterrupt:
        print("pkcs11-conformance: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
