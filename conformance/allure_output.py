"""Allure results in the suite's own vocabulary (used by the plugin when allure-pytest
writes results, `--alluredir DIR`).

- labels: parentSuite = vendor id, epic = each profile that requires the case,
  feature = area, story = the mechanism (or function, object class) under test;
- status: PASS passed; FAIL and XPASS failed; ERROR, CRASH and TIMEOUT broken; SKIP and
  XFAIL skipped; the message starts with the suite's status ("FAIL: ...") so that
  categories.json can tell non-conformance, harness errors and module crashes apart;
- environment.properties: the module and token under test, the suite version.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from pathlib import Path
from typing import Any

from allure_commons.model2 import Label, Link, StatusDetails, TestResult

from .aggregate import subject

STATUS = {"PASS": "passed", "FAIL": "failed", "MISSING": "failed", "XPASS": "failed",
          "ERROR": "broken",
          "CRASH": "broken", "TIMEOUT": "broken", "SKIP": "skipped", "XFAIL": "skipped"}
OURS = ("parentSuite", "epic", "feature", "story")

CATEGORIES = [
    {"name": "Non-conformance (FAIL)", "matchedStatuses": ["failed"],
     "messageRegex": r"FAIL(: [\s\S]*)?"},
    {"name": "Required but not claimed (MISSING)", "matchedStatuses": ["failed"],
     "messageRegex": r"MISSING(: [\s\S]*)?"},
    {"name": "Module crashes and hangs (CRASH, TIMEOUT)", "matchedStatuses": ["broken"],
     "messageRegex": r"(CRASH|TIMEOUT)(: [\s\S]*)?"},
    {"name": "Harness errors (ERROR)", "matchedStatuses": ["broken"],
     "messageRegex": r"ERROR(: [\s\S]*)?"},
    {"name": "Known deviations that no longer happen (XPASS)", "matchedStatuses": ["failed"],
     "messageRegex": r"XPASS(: [\s\S]*)?"},
    {"name": "Known deviations (XFAIL)", "matchedStatuses": ["skipped"],
     "messageRegex": r"XFAIL(: [\s\S]*)?"},
]


def labels(record: dict[str, Any], vendor: str) -> list[tuple[str, str]]:
    out = [("parentSuite", vendor)]
    out += [("epic", profile) for profile in record["required_by"]]
    out += [("feature", record["area"]), ("story", subject(record))]
    return out


def apply(result: Any, record: dict[str, Any], vendor: str, nodeid: str) -> None:
    """Make an Allure test result say what the results JSON says about the case."""
    result.labels = [label for label in result.labels if label.name not in OURS]
    result.labels += [Label(name=name, value=value) for name, value in labels(record, vendor)]
    deviation = record.get("known_deviation")
    if deviation and not any(link.url == deviation["url"] for link in result.links):
        result.links.append(Link(type="issue", url=deviation["url"], name=deviation["reason"]))
    status = record["status"]
    result.status = STATUS[status]
    if status != "PASS":
        text = f"{status}: {record['message']}" if record["message"] else status
        if result.statusDetails is None:
            result.statusDetails = StatusDetails(message=text)
        else:
            result.statusDetails.message = text
    if not result.fullName:  # a case decided without running (required, not claimed)
        result.fullName = nodeid
    digest = hashlib.md5(nodeid.encode(), usedforsecurity=False).hexdigest()
    result.historyId = result.historyId or digest
    result.testCaseId = result.testCaseId or digest


def crash_result(record: dict[str, Any], vendor: str, nodeid: str) -> Any:
    """The result of a case whose worker process died: nothing else writes one."""
    now = int(time.time() * 1000)
    result = TestResult(name=nodeid.rsplit("::", 1)[-1], uuid=str(uuid.uuid4()), start=now,
                        stop=now)
    apply(result, record, vendor, nodeid)
    return result


def _property(text: object) -> str:
    return (str(text).replace("\\", "\\\\").replace("\n", "\\n").replace("=", "\\=")
            .replace(":", "\\:"))


def environment(run_info: dict[str, Any]) -> dict[str, str]:
    module, token, suite = run_info["module"], run_info["token"], run_info["suite"]
    out = {
        "vendor": f"{run_info['vendor']['id']} ({run_info['vendor']['title']})",
        "module.path": str(module["path"]),
        "module.library": f"{module['manufacturer_id']} {module['library_description']} "
                          f"{module['library_version']}",
        "module.cryptoki": str(module["cryptoki_version"]),
        "token": f"{token['label']} / {token['manufacturer_id']} {token['model']}",
        "token.firmware": str(token["firmware_version"]),
        "token.serial": str(token["serial"]),
        "suite": f"pkcs11-conformance {suite['version']}"
                 + (f" ({suite['git_sha'][:12]})" if suite.get("git_sha") else ""),
        "profiles": ", ".join(p["id"] for p in run_info["profiles"]) or "none",
    }
    if run_info.get("mechanisms") is not None:
        out["module.mechanisms"] = f"{len(run_info['mechanisms'])} advertised"
    out.update({f"binding.{k}": str(v) for k, v in run_info["bindings"].items()})
    return out


def write_environment(directory: Path, run_info: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "environment.properties").write_text("".join(
        f"{_property(k)}={_property(v)}\n" for k, v in environment(run_info).items()))
    (directory / "categories.json").write_text(json.dumps(CATEGORIES, indent=1) + "\n")
