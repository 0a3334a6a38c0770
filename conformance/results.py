"""The results JSON: one record per test case, the run's identity, profile verdicts.

Statuses: PASS, FAIL, SKIP, XFAIL (known deviation), XPASS (a known deviation that
no longer happens), ERROR (the harness or a fixture broke), CRASH (the process running
the test died, e.g. the module segfaulted), TIMEOUT (no result within the vendor's
timeout_seconds).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pytest

from . import __version__
from .model import Profile, Vendor
from .suite import NOT_APPLICABLE

FORMAT = 1
PASSING = ("PASS", "XPASS")


def binding_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("python-pkcs11", "cryptography", "pytest", "pytest-xdist"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _git_sha() -> str | None:
    tree = Path(__file__).resolve().parent.parent
    if not (tree / ".git").exists():
        return None
    done = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=False)
    return done.stdout.strip() or None if done.returncode == 0 else None


def shown(path: Path) -> str:
    """A path as a reader of the report wants it: relative to the working directory or
    the package when under it, so results do not carry one machine's layout."""
    for base in (Path.cwd(), Path(__file__).resolve().parent.parent):
        try:
            return str(path.resolve().relative_to(base))
        except ValueError:
            continue
    return str(path)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def suite_info() -> dict[str, Any]:
    return {"version": __version__, "git_sha": _git_sha()}


def host_info() -> dict[str, str]:
    return {"platform": platform.platform(), "machine": platform.machine(),
            "python": sys.version.split()[0]}


def shown_arguments(args: Iterable[str]) -> list[str]:
    return [shown(Path(a)) if os.path.exists(a) else a for a in args]


def run_info(vendor: Vendor, profiles: Sequence[Profile], target: dict[str, Any],
             started: float, args: Iterable[str]) -> dict[str, Any]:
    return {
        "suite": suite_info(),
        "vendor": {"id": vendor.id, "title": vendor.title, "file": shown(vendor.source),
                   "sha256": _sha256(vendor.source)},
        "profiles": [{
            "id": p.id, "title": p.title, "sha256": _sha256(p.source), "source": p.reference,
            "functions": sorted(p.functions), "objects": sorted(p.objects),
            "mechanisms": sorted(p.required),
        } for p in profiles],
        **target,
        "bindings": binding_versions(),
        "host": host_info(),
        "arguments": shown_arguments(args),
        "start": iso(started),
        "end": iso(time.time()),
    }


def record_phase(cases: dict[str, dict[str, Any]], payload: dict[str, Any],
                 report: pytest.TestReport) -> None:
    entry = cases.setdefault(report.nodeid, {"case": payload, "phases": {}, "duration": 0.0})
    entry["phases"][report.when] = {
        "outcome": report.outcome,
        "message": _message(report),
        "wasxfail": getattr(report, "wasxfail", None),
    }
    entry["duration"] += report.duration


def record_crash(cases: dict[str, dict[str, Any]], nodeid: str, message: str,
                 timed_out: bool = False) -> None:
    """A case whose worker process died (CRASH) or was stopped by the time limit
    (TIMEOUT), with whatever metadata arrived before."""
    path, _, name = nodeid.partition("::")
    case_id = path.split("suites/", 1)[-1] + "::" + name
    extra: dict[str, Any] = {}
    if "interop/test_" in path:  # an interop case: its area and the modules it was between
        area = Path(path).stem.removeprefix("test_")
        case_id = f"{area}/{Path(path).name}::{name}"
        ident = name.partition("[")[2].removesuffix("]")
        extra["between"] = (ident.split("-CKM_")[0].split("->") if "->" in ident
                            else [ident])
    entry = cases.setdefault(nodeid, {"case": {
        "id": case_id, "area": case_id.split("/")[0], "test": name.split("[")[0],
        "mechanisms": [], "functions": [], "objects": [], "parameters": {}, "spec": "",
        "requirement": "unknown", "required_by": [], "action": "run", "reason": "",
        "expected_status": "PASS", "known_deviation": None, **extra}, "phases": {},
        "duration": 0.0})
    entry["crash"] = message
    entry["timed_out"] = timed_out


def _message(report: pytest.TestReport) -> str:
    """The first line of what went wrong, or the skip reason."""
    longrepr = report.longrepr
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple):  # a skip: (path, line, "Skipped: reason")
        return str(longrepr[2]).removeprefix("Skipped: ")
    crash = getattr(longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(longrepr)
    for prefix in ("AssertionError: ", "Failed: "):
        text = text.removeprefix(prefix)
    return text.strip().split("\n")[0]


def _status(case: dict[str, Any], phases: dict[str, dict[str, Any]],
            crash: str | None = None, timed_out: bool = False) -> tuple[str, str]:
    if timed_out:
        return "TIMEOUT", "no result within the vendor's timeout_seconds; the worker was stopped"
    if crash:
        return "CRASH", f"the module process died during the test ({crash})"
    setup, call, teardown = (phases.get(w) for w in ("setup", "call", "teardown"))
    if setup and setup["outcome"] == "failed":
        return "ERROR", setup["message"]
    if setup and setup["outcome"] == "skipped":
        if setup["wasxfail"] is not None:
            return "XFAIL", setup["wasxfail"]
        return "SKIP", setup["message"]
    if call is None:
        return "ERROR", "the test never ran (interrupted)"
    if call["outcome"] == "failed":
        if call["message"].startswith("[XPASS(strict)]"):
            return "XPASS", call["message"]
        return "FAIL", call["message"]
    if call["outcome"] == "skipped":
        if call["wasxfail"] is not None:  # the declared deviation, and what was measured
            observed = call["message"]
            return "XFAIL", call["wasxfail"] + (f"; observed: {observed}" if observed
                                                 and observed not in call["wasxfail"] else "")
        return "SKIP", call["message"]
    if teardown and teardown["outcome"] == "failed":
        return "ERROR", teardown["message"]
    if call["wasxfail"] is not None:
        return "XPASS", call["wasxfail"]
    return "PASS", ""


def finish_records(cases: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    records = []
    for nodeid, entry in cases.items():
        case = entry["case"]
        status, message = _status(case, entry["phases"], entry.get("crash"),
                                  entry.get("timed_out", False))
        if status in ("FAIL", "ERROR"):  # the raw layer's child process died or hung
            if message.startswith(("conformance.isolation.ModuleCrashed", "ModuleCrashed")):
                status = "CRASH"
            elif message.startswith(("conformance.isolation.ModuleTimedOut", "ModuleTimedOut")):
                status = "TIMEOUT"
        applies = not (status == "SKIP" and message.startswith(NOT_APPLICABLE))
        records.append({
            "id": case["id"], "nodeid": nodeid, "area": case["area"], "test": case["test"],
            "mechanisms": case["mechanisms"], "functions": case["functions"],
            "objects": case["objects"],
            "parameters": case["parameters"], "requirement": case["requirement"],
            "required_by": case["required_by"], "status": status,
            "expected_status": case["expected_status"] if applies else "SKIP",
            "message": message, "applicable": applies,
            "spec": case["spec"], "known_deviation": case["known_deviation"],
            "duration": round(entry["duration"], 6),
            **({"between": case["between"]} if "between" in case else {}),
        })
    return sorted(records, key=lambda r: r["id"])


def verdicts(run: dict[str, Any], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per profile: met only when every required case passed and every requirement of
    the profile is checked by at least one case. No number across profiles."""
    out = []
    for profile in run["profiles"]:
        pid = profile["id"]
        required = [r for r in records if pid in r["required_by"] and r["applicable"]]
        demanded = set(profile["functions"] + profile["objects"] + profile["mechanisms"])
        failing: dict[str, list[dict[str, str]]] = {}
        for record in required:
            if record["status"] not in PASSING:
                # Name the requirement of this profile that the case checks.
                marked = record["mechanisms"] + record["functions"] + record["objects"]
                ours = [n for n in marked if n in demanded] or marked or [record["test"]]
                subject = ours[0]
                if record["area"] == "oasis":  # an OASIS test case: named by itself
                    subject = record["id"].partition("[")[2].rstrip("]") or subject
                failing.setdefault(subject, []).append(
                    {"id": record["id"], "status": record["status"],
                     "message": record["message"]})
        covered = {name for r in required
                   for name in r["mechanisms"] + r["functions"] + r["objects"]}
        unchecked = [name for name in profile["functions"] + profile["objects"]
                     + profile["mechanisms"] if name not in covered]
        status = "not met" if failing else "incomplete" if unchecked else "met"
        out.append({
            "profile": pid, "title": profile["title"], "status": status,
            "required_cases": len(required),
            "passed": sum(r["status"] in PASSING for r in required),
            "failing": [{"requirement": k, "cases": v} for k, v in sorted(failing.items())],
            "unchecked": unchecked,
        })
    return out


def verdict_lines(verdicts: list[dict[str, Any]]) -> list[str]:
    lines = []
    for v in verdicts:
        head = {"met": "MET", "not met": "NOT MET", "incomplete": "INCOMPLETE"}[v["status"]]
        line = f"{v['profile']}: {head} ({v['passed']}/{v['required_cases']} required cases pass)"
        if v["failing"]:
            line += "; failing: " + ", ".join(f["requirement"] for f in v["failing"])
        if v["unchecked"]:
            line += "; not checked by this suite version: " + ", ".join(v["unchecked"])
        lines.append(line)
    return lines


def write(path: Path, run: dict[str, Any], records: list[dict[str, Any]]) -> None:
    counts: dict[str, int] = {}
    for record in records:
        counts[record["status"]] = counts.get(record["status"], 0) + 1
    document = {"format": FORMAT, "run_info": run, "summary": dict(sorted(counts.items())),
                "verdicts": verdicts(run, records), "cases": records}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")


def load(path: str | Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(Path(path).read_text())
    if document.get("format") != FORMAT:
        raise ValueError(f"{path}: not a pkcs11-conformance results file of format {FORMAT}")
    return document
