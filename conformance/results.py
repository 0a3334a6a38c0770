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
from .aggregate import FAILED, PASSING
from .model import Profile, Vendor
from .returncodes import SEVERITIES
from .suite import NOT_APPLICABLE

# 2: MISSING, severities, observed codes, known deviations that match, findings.
FORMAT = 2


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
                 report: pytest.TestReport, measured: dict[str, Any] | None = None) -> None:
    """One phase of a case; `measured` is what the plugin took from a failure (code,
    severity, crash, the known deviation's match, xpass)."""
    entry = cases.setdefault(report.nodeid, {"case": payload, "phases": {}, "duration": 0.0})
    entry["phases"][report.when] = {
        "outcome": report.outcome,
        "message": failure_message(report),
        "wasxfail": getattr(report, "wasxfail", None),
        "measured": measured or {},
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


def failure_message(report: pytest.TestReport) -> str:
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
    if case.get("action") == "missing":
        return "MISSING", case["reason"]
    setup, call, teardown = (phases.get(w) for w in ("setup", "call", "teardown"))
    if setup and setup["outcome"] == "failed":
        return "ERROR", setup["message"]
    if setup and setup["outcome"] == "skipped":
        return "SKIP", setup["message"]
    if call is None:
        return "ERROR", "the test never ran (interrupted)"
    measured = call.get("measured", {})
    if measured.get("crash"):  # the raw layer's child process died or hung
        return ("TIMEOUT" if measured["crash"] == "timeout" else "CRASH"), call["message"]
    if measured.get("xpass"):
        return "XPASS", call["message"]
    if call["outcome"] == "failed":
        return "FAIL", measured.get("message", call["message"])
    if call["outcome"] == "skipped":
        if call["wasxfail"] is not None:
            return "XFAIL", measured.get("message", call["message"])
        return "SKIP", call["message"]
    if teardown and teardown["outcome"] == "failed":
        return "ERROR", teardown["message"]
    return "PASS", ""


def finish_records(cases: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    records = []
    for nodeid, entry in cases.items():
        case = entry["case"]
        status, message = _status(case, entry["phases"], entry.get("crash"),
                                  entry.get("timed_out", False))
        phases = entry["phases"]
        measured = (phases.get("call") or phases.get("setup") or {}).get("measured", {})
        applies = not (status == "SKIP" and message.startswith(NOT_APPLICABLE))
        deviation = case["known_deviation"]
        if deviation and status in ("FAIL", "XFAIL"):
            deviation = {**deviation, "matched": status == "XFAIL"}
        records.append({
            "id": case["id"], "nodeid": nodeid, "area": case["area"], "test": case["test"],
            "mechanisms": case["mechanisms"], "functions": case["functions"],
            "objects": case["objects"],
            "parameters": case["parameters"], "requirement": case["requirement"],
            "required_by": case["required_by"], "status": status,
            "expected_status": case["expected_status"] if applies else "SKIP",
            "severity": severity(status, case.get("severity", "must"), measured),
            "observed": measured.get("code"),
            "quarantined": measured.get("quarantined"),
            "message": message, "applicable": applies,
            "spec": case["spec"], "known_deviation": deviation,
            "duration": round(entry["duration"], 6),
            **({"between": case["between"]} if "between" in case else {}),
        })
    return sorted(records, key=lambda r: r["id"])


def severity(status: str, declared: str, measured: dict[str, Any]) -> str:
    """A check's declared severity, or the one its return-code judgement decided (a
    permitted code that is not the named one is a `should` finding in a `must` check)."""
    if status in ("FAIL", "XFAIL") and declared == "must":
        return str(measured.get("severity", declared))
    return declared


def counts_against(record: dict[str, Any]) -> bool:
    """A required case that keeps its profile from being met: a `must` finding (a FAIL,
    a known deviation, a crash, a hang, a harness error), not a MISSING claim (listed on
    its own) and not a lower-severity finding (reported in its own section)."""
    return (record["status"] not in (*PASSING, "MISSING")
            and record.get("severity", "must") == "must")


def verdicts(run: dict[str, Any], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per profile: met only when every required case passed (a `must` finding fails it),
    every requirement is claimed (MISSING otherwise, once per requirement) and every
    requirement of the profile is checked by at least one case. No number across
    profiles."""
    out = []
    for profile in run["profiles"]:
        pid = profile["id"]
        required = [r for r in records if pid in r["required_by"] and r["applicable"]]
        demanded = set(profile["functions"] + profile["objects"] + profile["mechanisms"])
        failing: dict[str, list[dict[str, str]]] = {}
        missing = sorted({r["message"] for r in required if r["status"] == "MISSING"})
        for record in required:
            if counts_against(record):
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
        status = "not met" if failing or missing else "incomplete" if unchecked else "met"
        if run.get("incomplete"):  # an interrupted run judges nothing
            status = "incomplete"
        out.append({
            "profile": pid, "title": profile["title"], "status": status,
            "required_cases": len(required),
            "passed": sum(r["status"] in PASSING for r in required),
            "failing": [{"requirement": k, "cases": v} for k, v in sorted(failing.items())],
            "missing": missing,
            "unchecked": unchecked,
            "interrupted": bool(run.get("incomplete")),
        })
    return out


FINDING_STATUSES = (*FAILED, "XFAIL", "XPASS")  # what a vendor's findings list


def reproduce(run: dict[str, Any], case: dict[str, Any]) -> str:
    """The command that runs this one case again (on a throwaway token, as the run did)."""
    if run.get("kind") == "interop":
        files = " ".join(f"--interop {run['modules'][v]['file']}"
                         for v in case.get("between", []) if v in run["modules"])
        return f"pytest {files} '{case['nodeid']}'"
    return f"pytest --vendor {run['vendor']['file']} 'conformance/suites/{case['id']}'"


def findings(run: dict[str, Any], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a vendor can act on: the cases that did not pass, grouped by rule (the check,
    not its parametrized cases) and by the known deviation that covers them, each with its
    clause, severity, what was observed, its upstream link (None: no upstream report found),
    whether the failure matched what the deviation declares, and the command that
    reproduces one."""
    groups: dict[tuple[str, str, bool], list[dict[str, Any]]] = {}
    for record in records:
        if record["status"] in FINDING_STATUSES:
            deviation = record["known_deviation"] or {}
            key = (record["id"].partition("[")[0], deviation.get("url", ""),
                   bool(deviation.get("matched", True)))
            groups.setdefault(key, []).append(record)
    out = []
    for (rule, url, matched), cases in groups.items():
        statuses: dict[str, int] = {}
        for case in cases:
            statuses[case["status"]] = statuses.get(case["status"], 0) + 1
        observed = list(dict.fromkeys(c["message"] for c in cases))
        out.append({
            "rule": rule, "area": cases[0]["area"], "spec": cases[0]["spec"],
            "severity": min((c["severity"] for c in cases), key=SEVERITIES.index),
            "statuses": dict(sorted(statuses.items())), "cases": len(cases),
            "observed": observed[:3], "more_observations": max(0, len(observed) - 3),
            "link": url or None, "deviation_matched": matched if url else None,
            "reproduce": reproduce(run, cases[0]),
            "example": cases[0]["id"],
        })
    return sorted(out, key=lambda f: (SEVERITIES.index(f["severity"]), f["rule"],
                                      f["link"] or ""))


def verdict_lines(verdicts: list[dict[str, Any]]) -> list[str]:
    lines = []
    for v in verdicts:
        head = {"met": "MET", "not met": "NOT MET", "incomplete": "INCOMPLETE"}[v["status"]]
        line = f"{v['profile']}: {head} ({v['passed']}/{v['required_cases']} required cases pass)"
        if v["failing"]:
            line += "; failing: " + ", ".join(f["requirement"] for f in v["failing"])
        if v["missing"]:
            line += f"; {len(v['missing'])} requirements not claimed (MISSING)"
        if v.get("interrupted"):
            line += "; the run was interrupted: no verdict"
        if v["unchecked"]:
            line += "; not checked by this suite version: " + ", ".join(v["unchecked"])
        lines.append(line)
    return lines


def write(path: Path, run: dict[str, Any], records: list[dict[str, Any]]) -> None:
    counts: dict[str, int] = {}
    for record in records:
        counts[record["status"]] = counts.get(record["status"], 0) + 1
    document = {"format": FORMAT, "run_info": run, "summary": dict(sorted(counts.items())),
                "verdicts": verdicts(run, records), "findings": findings(run, records),
                "cases": records}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")


def load(path: str | Path) -> dict[str, Any]:
    """A results file, refused in one line (ValueError) unless it has this format's
    shape: the reports build pages and directory names from what it holds."""
    from .loading import INTEROP_RESULTS, VENDOR_RESULTS, shape_problem, shown

    if Path(path).stat().st_size > 1 << 30:  # the largest real ones are a few megabytes
        raise ValueError(f"{path}: larger than 1 GiB; not a results file")
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except RecursionError:
        raise ValueError(f"{path}: nested too deeply to be a results file") from None
    found = document.get("format") if isinstance(document, dict) else None
    if found != FORMAT:
        raise ValueError(f"{path}: not a pkcs11-conformance results file of format {FORMAT}"
                         + (f" (it has format {shown(found)})" if found is not None else ""))
    interop = isinstance(document.get("run_info"), dict) \
        and document["run_info"].get("kind") == "interop"
    problem = shape_problem(document, INTEROP_RESULTS if interop else VENDOR_RESULTS)
    if problem:
        raise ValueError(f"{path}: {problem}")
    return dict(document)
