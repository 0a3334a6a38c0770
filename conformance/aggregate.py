"""Aggregation of results documents, shared by the per-vendor report, the comparison
matrix and the diff: rows (area, subject, parameters), cell outcomes, interop shares.

A row groups the cases of one area that exercise one subject (the mechanism under test,
else the function, else the object class) with one set of parameters, e.g.
"sign · CKM_SHA256_RSA_PKCS_PSS · key_sizes=2048, salt_lengths=32".
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Case = dict[str, Any]
Document = dict[str, Any]

STATUSES = ("PASS", "FAIL", "MISSING", "ERROR", "CRASH", "TIMEOUT", "XFAIL", "XPASS", "SKIP")
FAILED = ("FAIL", "ERROR", "CRASH", "TIMEOUT")
PASSING = ("PASS", "XPASS")  # as in the verdicts: an XPASS meets the requirement
BAD = (*FAILED, "XPASS")  # what makes a run exit 1 when no profile is judged


def subject(case: Case) -> str:
    for key in ("mechanisms", "functions", "objects"):
        if case.get(key):
            return str(case[key][0])
    return str(case["test"])


def _natural(value: object) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int | float) and not isinstance(value, bool) else (
        1, str(value))


@dataclass(frozen=True)
class Row:
    area: str
    subject: str
    parameters: str
    order: tuple[Any, ...] = field(compare=False, hash=False, repr=False)

    @property
    def label(self) -> str:
        return " · ".join(p for p in (self.area, self.subject, self.parameters) if p)

    @property
    def anchor(self) -> str:
        raw = ".".join(p for p in (self.area, self.subject,
                                   self.parameters.replace(", ", ".")) if p)
        return "r." + re.sub(r"[^A-Za-z0-9_=.-]", "-", raw)


def row_of(case: Case) -> Row:
    params = sorted(case.get("parameters", {}).items())
    return Row(case["area"], subject(case), ", ".join(f"{k}={v}" for k, v in params),
               (case["area"], subject(case), tuple((k, _natural(v)) for k, v in params)))


def skipped_unclaimed(case: Case) -> bool:
    return bool(case["status"] == "SKIP" and case.get("applicable", True))


@dataclass(frozen=True)
class Outcome:
    """What one vendor's cases of one row amount to."""

    kind: str  # pass, fail, deviation, unclaimed, na, missing
    text: str
    detail: str  # the status counts, for a tooltip


def outcome(cases: Sequence[Case]) -> Outcome:
    if not cases:
        return Outcome("missing", "no result", "no result for these cases in this run")
    counts = Counter(c["status"] for c in cases)
    detail = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])
    ran = len(cases) - counts["SKIP"] - counts["MISSING"]
    bad = sum(counts[s] for s in FAILED)
    if bad:
        return Outcome("fail", f"fail ({bad} of {ran})", detail)
    if counts["XFAIL"]:
        return Outcome("deviation", "known deviation", detail)
    if ran:
        return Outcome("pass", "pass", detail)
    if counts["MISSING"]:
        return Outcome("unclaimed", "MISSING: required, not claimed", detail)
    if any(skipped_unclaimed(c) for c in cases):
        return Outcome("unclaimed", "not claimed", detail)
    return Outcome("na", "n.a.", detail)


def required(case: Case, profile: str | None) -> bool:
    """Required by that profile, or by any profile the run was judged against."""
    if profile is None:
        return bool(case.get("requirement") == "required")
    return profile in case.get("required_by", [])


def by_row(cases: Iterable[Case]) -> dict[Row, list[Case]]:
    out: dict[Row, list[Case]] = defaultdict(list)
    for case in cases:
        out[row_of(case)].append(case)
    return dict(sorted(out.items(), key=lambda item: item[0].order))


@dataclass(frozen=True)
class Share:
    passed: int
    total: int

    @property
    def ratio(self) -> float | None:
        return self.passed / self.total if self.total else None

    def text(self) -> str:
        if not self.total:
            return "-"
        return f"{self.passed}/{self.total} ({percent(self.passed, self.total)})"


def percent(part: int, whole: int) -> str:
    """A share rounded down, so anything short of all reads below 100%."""
    if not whole:
        return "-"
    value = 100 * part // whole
    return f"{value}%"


def share(cases: Iterable[Case]) -> Share:
    """Cases passing, of the cases that ran (skips are not counted either way)."""
    ran = [c for c in cases if c["status"] != "SKIP"]
    return Share(sum(c["status"] in PASSING for c in ran), len(ran))


@dataclass
class Comparison:
    """Several vendors' results aligned by case id, optionally restricted to what one
    profile requires."""

    vendors: list[str]
    documents: dict[str, Document]
    profile: str | None = None
    cases: dict[str, dict[str, Case]] = field(default_factory=dict)  # vendor -> id -> case
    rows: dict[Row, list[str]] = field(default_factory=dict)  # row -> case ids
    required_ids: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, documents: Mapping[str, Document], profile: str | None = None) -> Comparison:
        vendors = list(documents)
        cases = {v: {c["id"]: c for c in documents[v]["cases"]} for v in vendors}
        if profile is None:
            selected = {i for v in vendors for i in cases[v]}
        else:
            selected = {i for v in vendors for i, c in cases[v].items() if required(c, profile)}
        # A case that crashed lost its metadata in that run: take it from a run that has it.
        described: dict[str, Case] = {}
        for vendor in vendors:
            for case_id, case in cases[vendor].items():
                if case_id in selected and (case_id not in described or described[
                        case_id].get("requirement") == "unknown"):
                    described[case_id] = case
        rows: dict[Row, list[str]] = defaultdict(list)
        for case_id, case in described.items():
            rows[row_of(case)].append(case_id)
        ordered = dict(sorted(((r, sorted(ids)) for r, ids in rows.items()),
                              key=lambda item: item[0].order))
        required_ids = {i for v in vendors for i, c in cases[v].items()
                        if i in selected and required(c, profile)}
        return cls(vendors, dict(documents), profile, cases, ordered, required_ids)

    def cell(self, row: Row, vendor: str) -> Outcome:
        return outcome([self.cases[vendor][i] for i in self.rows[row]
                        if i in self.cases[vendor]])

    def interop(self, ids: Iterable[str]) -> Share:
        """Required cases passing on every vendor; a missing result is a failure."""
        wanted = [i for i in ids if i in self.required_ids]
        passed = sum(all(self.cases[v].get(i, {}).get("status") in PASSING for v in self.vendors)
                     for i in wanted)
        return Share(passed, len(wanted))

    def areas(self) -> dict[str, list[Row]]:
        out: dict[str, list[Row]] = defaultdict(list)
        for row in self.rows:
            out[row.area].append(row)
        return dict(sorted(out.items()))

    def area_share(self, area: str, vendor: str) -> Share:
        ids = [i for row in self.rows if row.area == area for i in self.rows[row]]
        return share(self.cases[vendor][i] for i in ids if i in self.cases[vendor])

    def area_ids(self, area: str) -> list[str]:
        return [i for row in self.rows if row.area == area for i in self.rows[row]]


def verdict_of(document: Document, profile: str) -> dict[str, Any] | None:
    return next((v for v in document["verdicts"] if v["profile"] == profile), None)


def profiles_of(documents: Iterable[Document]) -> list[tuple[str, str]]:
    """(id, title) of every profile any of the runs was judged against, first seen first."""
    seen: dict[str, str] = {}
    for document in documents:
        for profile in document["run_info"]["profiles"]:
            seen.setdefault(profile["id"], profile["title"])
    return list(seen.items())
