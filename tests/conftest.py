"""Shared helpers for the project's own tests (not the conformance suites)."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SOFTHSM2 = "/usr/lib/softhsm/libsofthsm2.so"

# The reference module must be installed (.ci/run installs it): a missing module fails
# these tests instead of skipping them.
assert Path(SOFTHSM2).is_file() and shutil.which("softhsm2-util"), (
    "SoftHSM2 is required for the project's tests: apt-get install softhsm2")


def private_softhsm2(directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point SoftHSM2 (SOFTHSM2_CONF) at a token directory of the test's own in
    `directory`, before any module load; tokens are then made with softhsm2-util."""
    (directory / "tokens").mkdir()
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {directory / 'tokens'}\n"
                    "objectstore.backend = file\nlog.level = ERROR\n")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))


# ---- the fault-injecting module (faults/p11fault.c), for test_faults and test_interop ----

def _load_builder():
    spec = importlib.util.spec_from_file_location("p11fault_build", REPO / "faults" / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def shared(tmp_path_factory, request) -> Path:
    """A directory of this test run that every xdist worker sees: beside the workers'
    temp directories, named after the run's id, so no other run's results are reused."""
    workerinput = getattr(request.config, "workerinput", None)
    if workerinput is None:
        return tmp_path_factory.mktemp("p11fault")
    directory = tmp_path_factory.getbasetemp().parent / f"p11fault-{workerinput['testrunuid']}"
    directory.mkdir(exist_ok=True)
    return directory


@pytest.fixture(scope="session")
def fault_vendor(shared) -> Path:
    """The vendor file of the fault module: SoftHSM2's claims, functions, profiles and
    known deviations, with the freshly built module as module.path."""
    library = _load_builder().build(shared)
    vendor = yaml.safe_load((REPO / "vendors" / "softhsm2.yaml").read_text())
    vendor.update(vendor="p11fault", title="p11fault over SoftHSM 2")
    vendor["module"]["path"] = str(library)
    path = shared / "p11fault.yaml"
    with locked(shared / "p11fault.yaml.lock"):
        path.write_text(yaml.safe_dump(vendor, sort_keys=False))
    return path



@pytest.fixture
def write(tmp_path):
    """Write a dedented text file under tmp_path and return its path."""
    def writer(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path
    return writer


def pytest_terminal_summary(terminalreporter):
    """The detection rate of the fault self-test (tests/test_faults.py), when it ran: the
    faults caught, the faults missed, and how many new failures each fault caused."""
    judged = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call" or "test_fault_is_caught[" not in getattr(
                    report, "nodeid", ""):
                continue
            fault = report.nodeid.rsplit("[", 1)[1].rstrip("]")
            found = [json.loads(v) for k, v in report.user_properties if k == "p11fault"]
            judged[fault] = found[0]["new_failures"] if found else 0
    if judged:
        caught = sorted(f for f, n in judged.items() if n)
        missed = sorted(f for f, n in judged.items() if not n)
        terminalreporter.write_line(
            f"p11fault detection rate: {len(caught)}/{len(judged)} faults caught "
            f"({100 * len(caught) / len(judged):.0f}%)"
            + (f"; missed: {', '.join(missed)}" if missed else ""))
        terminalreporter.write_line("p11fault new failures per fault: " + ", ".join(
            f"{fault} {judged[fault]}" for fault in sorted(judged)))
