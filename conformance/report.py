"""Reports rendered from results JSON: the per-vendor report (Markdown and
self-contained HTML), and the entry points of `pkcs11-conformance report` (per-vendor
reports, the cross-vendor comparison matrix, the diff of two runs of one vendor)."""

from __future__ import annotations

import calendar
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import bench, results
from .aggregate import (
    FAILED,
    PASSING,
    STATUSES,
    Document,
    Outcome,
    Row,
    by_row,
    outcome,
    skipped_unclaimed,
)
from .render import (
    MARKDOWN_BUDGET,
    Cell,
    esc,
    html_table,
    link,
    md_cell,
    md_link,
    md_table,
    num_cell,
    page,
    text_cell,
)

VERDICT_TEXT = {"met": "conformant", "not met": "NOT conformant",
                "incomplete": "not verified (requirements without checks)"}
VERDICT_BADGE = {"met": "b-met", "not met": "b-notmet", "incomplete": "b-incomplete"}
REPORTED = (*FAILED, "XPASS")  # listed one by one under Failures
MARKDOWN_FAILURES = 300  # more than this are counted, and listed in the HTML only


class ReportError(Exception):
    """A usage error of `pkcs11-conformance report`, told in one line (exit code 2)."""


# ---------------------------------------------------------------------------- data


def _seconds(start: str, end: str) -> float | None:
    try:
        parse = [calendar.timegm(time.strptime(t, "%Y-%m-%dT%H:%M:%SZ")) for t in (start, end)]
    except (TypeError, ValueError):
        return None
    return float(parse[1] - parse[0])


def _failing(cases: list[dict[str, str]]) -> str:
    known = sum(c["status"] == "XFAIL" for c in cases)
    text = f"{len(cases)} failing case{'s' if len(cases) > 1 else ''}"
    return text + (f", {known} a known deviation" if known == 1 else
                   f", {known} known deviations" if known else "")


def identity(doc: Document) -> list[tuple[str, str]]:
    info = doc["run_info"]
    module, token, suite = info["module"], info["token"], info["suite"]
    wall = _seconds(info["start"], info["end"])
    rows = [
        ("vendor", f"{info['vendor']['title']} ({info['vendor']['id']}), declared in "
                   f"{info['vendor']['file']} (sha256 {info['vendor']['sha256'][:12]})"),
        ("module", f"{module['manufacturer_id']} {module['library_description']} "
                   f"{module['library_version']} (Cryptoki {module['cryptoki_version']})"),
        ("module path", str(module["path"])),
        ("token", f"{token['label']} / {token['manufacturer_id']} {token['model']} "
                  f"(firmware {token['firmware_version']}, hardware {token['hardware_version']})"
                  + (", throwaway token" if token.get("throwaway") else "")),
        ("suite", f"pkcs11-conformance {suite['version']}"
                  + (f" (git {suite['git_sha'][:12]})" if suite.get("git_sha") else "")),
        ("profiles", ", ".join(f"{p['id']} (sha256 {p['sha256'][:12]})"
                               for p in info["profiles"]) or "none"),
        ("bindings", ", ".join(f"{k} {v}" for k, v in info["bindings"].items())),
        ("host", f"{info['host']['platform']}"),
        ("run", f"{info['start']} to {info['end']}"
                + (f" ({wall:.0f} s wall time)" if wall is not None else "")),
    ]
    if info.get("mechanisms") is not None:
        rows.append(("advertised", f"{len(info['mechanisms'])} mechanisms in "
                                   "C_GetMechanismList"))
    rows.append(("summary", ", ".join(f"{n} {s}" for s, n in doc["summary"].items())))
    return rows


def area_rows(doc: Document) -> list[dict[str, Any]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for case in doc["cases"]:
        grouped[case["area"]].append(case)
    out = []
    for area, cases in [*sorted(grouped.items()), ("total", doc["cases"])]:
        req = [c for c in cases if c["requirement"] == "required" and c["applicable"]]
        opt = [c for c in cases if c["requirement"] != "required" and c["status"] != "SKIP"]
        out.append({
            "area": area,
            "required": _of(sum(c["status"] in PASSING for c in req), len(req)),
            "optional": _of(sum(c["status"] in PASSING for c in opt), len(opt)),
            "unclaimed": sum(skipped_unclaimed(c) for c in cases),
            "statuses": Counter(c["status"] for c in cases),
            "time": f"{sum(c['duration'] for c in cases):.2f} s",
        })
    return out


def _of(part: int, whole: int) -> str:
    return f"{part} of {whole}" if whole else "-"


def failures(doc: Document) -> list[dict[str, Any]]:
    return [c for c in doc["cases"] if c["status"] in REPORTED]


def deviations(doc: Document) -> list[tuple[str, str, list[dict[str, Any]]]]:
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for case in doc["cases"]:
        if case["known_deviation"]:
            grouped[case["known_deviation"]["reason"], case["known_deviation"]["url"]].append(
                case)
    return [(reason, url, cases) for (reason, url), cases in sorted(grouped.items())]


def skips(doc: Document) -> list[tuple[str, int, str]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for case in doc["cases"]:
        if case["status"] == "SKIP":
            grouped[case["message"] or "(no reason given)"].append(case)
    ordered = sorted(grouped.items(), key=lambda item: (-len(item[1]), item[0]))
    return [(reason, len(cases), ", ".join(sorted({c["area"] for c in cases})))
            for reason, cases in ordered]


def profile_case_rows(doc: Document) -> tuple[list[dict[str, Any]], list[str]]:
    """The OASIS test cases of the run (area oasis), and the keys of the places where the
    specification's text and its XML disagree that their results mention."""
    from .profile_cases import CASE_ISSUES

    cases = [c for c in doc["cases"] if c["area"] == "oasis"]
    mentioned = " ".join(c["message"].partition("disagree")[2] for c in cases)
    return cases, [key for key in CASE_ISSUES if key in mentioned]


NO_REPORT = "no upstream report found"
FINDINGS_NOTE = "Every check that did not pass, once per rule, most severe first."
MISSING_NOTE = ("What a judged profile requires and the vendor file does not claim: not "
                "run, and the profile is not met.")
SEVERITY_TEXT = {
    "must": "must: the spec says shall or names the one code; counts against profiles",
    "should": "should: a SHOULD, or a code the function may return but not the one named",
    "strict": "strict: a caller obligation the module does not enforce",
    "robustness": "robustness: the module mishandles a caller's contract violation",
}


def missing_claims(doc: Document) -> list[str]:
    """Each requirement a judged profile makes and the vendor does not claim, once."""
    return sorted({m for v in doc["verdicts"] for m in v.get("missing", [])})


def _finding_statuses(finding: dict[str, Any]) -> str:
    return ", ".join(f"{n} {s}" for s, n in finding["statuses"].items())


def _upstream(finding: dict[str, Any], as_link: Any) -> str:
    """The finding's upstream link, and whether the failure is the one it describes."""
    if finding["link"] is None:
        return NO_REPORT
    text = str(as_link(finding["link"]))
    if finding["deviation_matched"] is False:
        text += " (declared as a known deviation, but what was observed differs)"
    return text


def _case_name(case: dict[str, Any]) -> str:
    return str(case["id"]).partition("[")[2].rstrip("]") or str(case["id"])


def slowest(doc: Document, count: int = 10) -> list[dict[str, Any]]:
    return sorted(doc["cases"], key=lambda c: -c["duration"])[:count]


def _tests(cases: Sequence[dict[str, Any]]) -> str:
    names = sorted({c["id"].split("[")[0] for c in cases})
    return ", ".join(names)


# ------------------------------------------------------------------------ markdown


def render_markdown(doc: Document) -> str:
    vendor = doc["run_info"]["vendor"]
    lines = [f"# PKCS#11 conformance: {vendor['title']}", ""]
    lines += md_table(["", ""], [[f"**{k}**", md_cell(v)] for k, v in identity(doc)])

    lines += ["", "## Profile verdicts", ""]
    if doc["verdicts"]:
        rows = []
        for v in doc["verdicts"]:
            why = "; ".join(f"{f['requirement']} ({_failing(f['cases'])})" for f in v["failing"])
            if v.get("missing"):
                why += ("; " if why else "") + f"{len(v['missing'])} not claimed (MISSING)"
            if v["unchecked"]:
                why += ("; " if why else "") + "no checks yet for " + ", ".join(v["unchecked"])
            rows.append([md_cell(v["profile"]), f"**{VERDICT_TEXT[v['status']]}**",
                         f"{v['passed']} of {v['required_cases']}", md_cell(why or "-")])
        lines += md_table(["profile", "verdict", "required cases passed",
                           "failing requirements"], rows)
    else:
        lines.append("No profile was judged in this run.")
    if doc["run_info"].get("incomplete"):
        lines += ["", "**This run was interrupted: the results are incomplete and judge "
                  "nothing.**"]

    found = doc["findings"]
    lines += ["", f"## Findings ({len(found)} rules)", "",
              f"{FINDINGS_NOTE} Severities: " + "; ".join(SEVERITY_TEXT.values()) + ".", ""]
    if found:
        lines += md_table(["severity", "rule", "cases", "spec clause", "observed", "upstream",
                           "reproduce one"], [
            [f["severity"], f"`{md_cell(f['rule'])}`", md_cell(_finding_statuses(f)),
             md_cell(f["spec"]), md_cell(f["observed"][0][:300]),
             _upstream(f, lambda u: md_link(u, u)),
             f"`{md_cell(f['reproduce'])}`"] for f in found])
    else:
        lines.append("None.")
    missing = missing_claims(doc)
    lines += ["", f"## Required but not claimed (MISSING, {len(missing)})", "",
              MISSING_NOTE, ""]
    lines += [f"- {md_cell(m)}" for m in missing] or ["None."]

    lines += ["", "## Areas", "",
              "Required: cases a judged profile requires, passed of all. Optional claimed: "
              "cases no profile requires that ran because the vendor claims them. Not "
              "claimed: skipped, never counted as a pass.", ""]
    area_table = []
    for a in area_rows(doc):
        bold = "**" if a["area"] == "total" else ""
        area_table.append([f"{bold}{a['area']}{bold}", a["required"], a["optional"],
                           str(a["unclaimed"]), *(str(a["statuses"][s]) for s in STATUSES),
                           a["time"]])
    lines += md_table(["area", "required passed", "optional claimed passed", "not claimed",
                       *STATUSES, "time"], area_table, numeric=range(1, 5 + len(STATUSES)))

    oasis, issues = profile_case_rows(doc)
    if oasis:
        from .profile_cases import CASE_ISSUES

        lines += ["", "## OASIS Profiles test cases", "",
                  "Replayed call by call under the permitted variations (Profiles v3.2 "
                  "section 3.1); the first divergence, or why the case did not apply.", ""]
        lines += md_table(["case", "status", "first divergence or reason"], [
            [md_cell(_case_name(c)), c["status"], md_cell(c["message"][:700] or "-")]
            for c in oasis])
        if issues:
            lines += ["", "Where the specification's text and its XML disagree (the replay's "
                      "policy for each):", ""]
            lines += [f"- **{key}**: {md_cell(CASE_ISSUES[key])}" for key in issues]

    failed = failures(doc)
    lines += ["", f"## Failures ({len(failed)})", ""]
    if failed:
        lines += md_table(["case", "status", "spec clause", "message"], [
            [f"`{md_cell(c['id'])}`", c["status"], md_cell(c["spec"]), md_cell(c["message"])]
            for c in failed[:MARKDOWN_FAILURES]])
        if len(failed) > MARKDOWN_FAILURES:
            lines += ["", f"... and {len(failed) - MARKDOWN_FAILURES} more, listed in "
                          "index.html and results.json."]
    else:
        lines.append("None.")

    known = deviations(doc)
    lines += ["", f"## Known deviations ({sum(len(c) for _, _, c in known)} cases)", ""]
    if known:
        lines += md_table(["reason", "link", "cases", "tests"], [
            [md_cell(reason), md_link(url, url), str(len(cases)), md_cell(_tests(cases))]
            for reason, url, cases in known], numeric=[2])
    else:
        lines.append("None.")

    skipped = skips(doc)
    lines += ["", f"## Skipped, by reason ({sum(n for _, n, _ in skipped)} cases)", ""]
    if skipped:
        lines += md_table(["reason", "cases", "areas"],
                          [[md_cell(r), str(n), md_cell(a)] for r, n, a in skipped],
                          numeric=[1])
    else:
        lines.append("None.")

    lines += ["", "## Durations", "", "Time per area is in the Areas table. Slowest cases:", ""]
    lines += md_table(["case", "status", "time"], [
        [f"`{md_cell(c['id'])}`", c["status"], f"{c['duration']:.3f} s"] for c in slowest(doc)],
        numeric=[2])
    if doc.get("bench"):
        lines += bench.markdown_section(doc["bench"])
    text = "\n".join(lines) + "\n"
    if len(text.encode()) > MARKDOWN_BUDGET:  # never break a job summary
        text = text.encode()[:MARKDOWN_BUDGET].decode(errors="ignore").rsplit("\n", 1)[0]
        text += "\n\n(truncated to fit a job summary: see index.html)\n"
    return text


# ---------------------------------------------------------------------------- html


def outcome_cell(result: Outcome, href: str | None = None) -> Cell:
    content = esc(result.text)
    if href:
        content = f'<a href="{esc(href)}">{content}</a>'
    return Cell(content, f"c c-{result.kind}", result.detail)


def _status(status: str) -> str:
    return f'<span class="status-{esc(status)}">{esc(status)}</span>'


def _verdict_badge(status: str | None) -> str:
    if status is None:
        return '<span class="badge b-none">not judged</span>'
    return f'<span class="badge {VERDICT_BADGE[status]}">{esc(VERDICT_TEXT[status])}</span>'


def _rows_section(doc: Document) -> list[str]:
    """Every row (area, subject, parameters) with its outcome: the matrix links here."""
    parts = ['<h2 id="rows">Results by area and mechanism</h2>',
             '<p class="note">One row per area, mechanism (or function) under test and '
             "parameter set; the comparison matrix links to these rows.</p>"]
    grouped = by_row(doc["cases"])
    areas: dict[str, list[Row]] = defaultdict(list)
    for row in grouped:
        areas[row.area].append(row)
    for area, rows in sorted(areas.items()):
        body: list[Sequence[Cell] | str] = []
        for row in rows:
            cases = grouped[row]
            required_by = sorted({p for c in cases for p in c["required_by"]})
            result = outcome(cases)
            listed = [c for c in cases if c["status"] not in ("PASS", "SKIP")]
            details = f'<span class="muted">{esc(result.detail)}</span>'
            if listed:
                details += '<ul class="compact">' + "".join(
                    f"<li>{_status(c['status'])} <span class=id>"
                    f"{esc(c['id'].split('::', 1)[-1])}</span>"
                    + (f'<br><span class="muted">{esc(c["message"])}</span>'
                       if c["status"] != "XFAIL" else "") + "</li>" for c in listed) + "</ul>"
            label = esc(row.subject) + (
                f' <span class="muted">{esc(row.parameters)}</span>' if row.parameters else "")
            body.append(f'<tr id="{esc(row.anchor)}">' + "".join(c.html() for c in [
                Cell(label), text_cell("required: " + ", ".join(required_by)
                                       if required_by else "optional"),
                outcome_cell(result), Cell(details)]) + "</tr>")
        parts.append(f'<h3 id="area-{esc(area)}">{esc(area)}</h3>')
        parts.append(html_table(["subject and parameters", "requirement",
                                 Cell("outcome", "c", header=True), "cases"], body,
                                css="zebra rows"))
    return parts


def render_html(doc: Document) -> str:
    info = doc["run_info"]
    vendor = info["vendor"]
    title = f"PKCS#11 conformance: {vendor['title']}"
    module = info["module"]
    subtitle = (f"{module['manufacturer_id']} {module['library_description']} "
                f"{module['library_version']} · suite {info['suite']['version']} · "
                f"{info['start']}")
    body: list[str] = []

    cards = []
    for v in doc["verdicts"]:
        cards.append(f'<div class="card"><div class="small">{esc(v["profile"])}</div>'
                     f'<div>{_verdict_badge(v["status"])}</div><div class="small">'
                     f'{v["passed"]} of {v["required_cases"]} required cases pass</div></div>')
    counts = doc["summary"]
    cards.append('<div class="card"><div class="small">cases</div><div class="big">'
                 f'{sum(counts.values())}</div><div class="small">'
                 + esc(", ".join(f"{n} {s}" for s, n in counts.items())) + "</div></div>")
    body.append(f'<div class="cards">{"".join(cards)}</div>')

    body.append('<h2 id="identity">Identity</h2>')
    body.append(html_table([], [[Cell(esc(k), header=True), text_cell(v)]
                                for k, v in identity(doc)], css="kv"))

    body.append('<h2 id="verdicts">Profile verdicts</h2>')
    if doc["verdicts"]:
        rows = []
        for v in doc["verdicts"]:
            items = [f"<li><code>{esc(f['requirement'])}</code> {esc(_failing(f['cases']))}"
                     "</li>" for f in v["failing"]]
            if v.get("missing"):
                items.append(f'<li><a href="#missing">{len(v["missing"])} not claimed '
                             "(MISSING)</a></li>")
            if v["unchecked"]:
                items.append("<li>no checks yet for " + ", ".join(
                    f"<code>{esc(u)}</code>" for u in v["unchecked"]) + "</li>")
            rows.append([Cell(f"{esc(v['profile'])}<br><span class=muted>{esc(v['title'])}"
                              "</span>"),
                         Cell(_verdict_badge(v["status"])),
                         num_cell(f"{v['passed']} of {v['required_cases']}"),
                         Cell(f'<ul class="compact">{"".join(items)}</ul>' if items else "-")])
        body.append(html_table(["profile", "verdict", "required cases passed",
                                "failing requirements"], rows))
    else:
        body.append("<p>No profile was judged in this run.</p>")
    if info.get("incomplete"):
        body.append('<p class="note"><b>This run was interrupted: the results are '
                    "incomplete and judge nothing.</b></p>")

    found = doc["findings"]
    body.append(f'<h2 id="findings">Findings ({len(found)} rules)</h2>')
    body.append(f'<p class="note">{FINDINGS_NOTE}</p><ul class=compact>' + "".join(
                    f"<li>{esc(t)}</li>" for t in SEVERITY_TEXT.values()) + "</ul>")
    if found:
        body.append(html_table(["severity", "rule, clause and what was observed", "cases",
                                "upstream"], [
            [text_cell(f["severity"]),
             Cell(f"<span class=id>{esc(f['rule'])}</span><br>{esc(f['spec'])}<br>"
                  f"<span class=muted>{esc(f['observed'][0])}</span><details><summary "
                  f"class=muted>reproduce one</summary><code>{esc(f['reproduce'])}</code>"
                  "</details>"),
             text_cell(_finding_statuses(f)), Cell(_upstream(f, link))] for f in found],
            css="zebra findings"))
    else:
        body.append("<p>None: every check that ran passed.</p>")
    missing = missing_claims(doc)
    body.append(f'<h2 id="missing">Required but not claimed (MISSING, {len(missing)})</h2>')
    body.append(f'<p class="note">{MISSING_NOTE}</p>')
    body.append('<ul class="compact">' + "".join(f"<li>{esc(m)}</li>" for m in missing)
                + "</ul>" if missing else "<p>None.</p>")

    body.append('<h2 id="areas">Areas</h2>')
    body.append('<p class="note">Required: cases a judged profile requires, passed of all. '
                "Optional claimed: cases no profile requires that ran because the vendor "
                "claims them. Not claimed: skipped, never counted as a pass.</p>")
    table: list[Sequence[Cell] | str] = []
    for a in area_rows(doc):
        cells = [Cell(f'<a href="#area-{esc(a["area"])}">{esc(a["area"])}</a>'
                      if a["area"] != "total" else "total"),
                 num_cell(a["required"]), num_cell(a["optional"]), num_cell(a["unclaimed"]),
                 *(num_cell(a["statuses"][s]) for s in STATUSES), num_cell(a["time"])]
        row = "<tr>" + "".join(c.html() for c in cells) + "</tr>"
        table.append(row.replace("<tr>", '<tr class="total">') if a["area"] == "total" else row)
    body.append(html_table(["area", Cell("required passed", "num", header=True),
                            Cell("optional claimed passed", "num", header=True),
                            Cell("not claimed", "num", header=True),
                            *(Cell(s, "num", header=True) for s in STATUSES),
                            Cell("time", "num", header=True)], table, css="zebra areas"))

    failed = failures(doc)
    oasis, issues = profile_case_rows(doc)
    if oasis:
        from .profile_cases import CASE_ISSUES

        body.append('<h2 id="oasis">OASIS Profiles test cases</h2>')
        body.append('<p class="note">Replayed call by call under the permitted variations '
                    "(Profiles v3.2 section 3.1); the first divergence, or why the case did "
                    "not apply.</p>")
        body.append(html_table(["case", "status", "first divergence or reason"], [
            [text_cell(_case_name(c)), Cell(_status(c["status"])),
             text_cell(c["message"] or "-")] for c in oasis]))
        if issues:
            body.append("<p>Where the specification's text and its XML disagree (the "
                        "replay's policy for each):</p><ul>" + "".join(
                            f"<li><b>{esc(key)}</b>: {esc(CASE_ISSUES[key])}</li>"
                            for key in issues) + "</ul>")
    body.append(f'<h2 id="failures">Failures ({len(failed)})</h2>')
    if failed:
        body.append(html_table(["case", "status", "spec clause", "message"], [
            [Cell(f"<span class=id>{esc(c['id'])}</span>"), Cell(_status(c["status"])),
             text_cell(c["spec"]), text_cell(c["message"])] for c in failed], css="zebra fails"))
    else:
        body.append("<p>None: every case that ran met its expectation.</p>")

    known = deviations(doc)
    body.append(f'<h2 id="deviations">Known deviations ({sum(len(c) for _, _, c in known)} '
                "cases)</h2>")
    if known:
        body.append('<p class="note">Declared in the vendor file with a link each; expected '
                    "to fail, and an unexpected pass is reported.</p>")
        body.append(html_table(["reason", "link", Cell("cases", "num", header=True)], [
            [Cell(f"{esc(reason)}<details><summary class=muted>cases</summary>"
                  '<ul class="compact">' + "".join(
                      f"<li>{_status(c['status'])} <span class=id>{esc(c['id'])}</span></li>"
                      for c in cases) + "</ul></details>"),
             Cell(link(url)), num_cell(len(cases))] for reason, url, cases in known],
            css="zebra dev"))
    else:
        body.append("<p>None.</p>")

    skipped = skips(doc)
    body.append(f'<h2 id="skips">Skipped, by reason ({sum(n for _, n, _ in skipped)} '
                "cases)</h2>")
    if skipped:
        body.append(html_table(["reason", Cell("cases", "num", header=True), "areas"], [
            [text_cell(r), num_cell(n), text_cell(a)] for r, n, a in skipped]))
    else:
        body.append("<p>None.</p>")

    body.append('<h2 id="durations">Durations</h2>')
    wall = _seconds(info["start"], info["end"])
    body.append('<p class="note">'
                + (f"Wall time of the run: {wall:.0f} s. " if wall is not None else "")
                + f"Sum of case times: {sum(c['duration'] for c in doc['cases']):.1f} s; per "
                "area in the Areas table. Slowest cases:</p>")
    body.append(html_table(["case", "status", Cell("time", "num", header=True)], [
        [Cell(f"<span class=id>{esc(c['id'])}</span>"), Cell(_status(c["status"])),
         num_cell(f"{c['duration']:.3f} s")] for c in slowest(doc)]))

    body += _rows_section(doc)
    toc = [("verdicts", "Verdicts"), ("findings", "Findings"), ("missing", "Missing"),
           ("areas", "Areas"), ("failures", "Failures"),
           ("deviations", "Known deviations"), ("skips", "Skips"),
           ("durations", "Durations"), ("rows", "By mechanism"), ("identity", "Identity")]
    if doc.get("bench"):
        body += bench.html_section(doc["bench"])
        toc.append(("performance", "Performance"))
    return page(title, subtitle, body, toc)


def write_vendor_report(doc: Document, directory: Path) -> list[Path]:
    return write_pages(directory, render_markdown(doc), render_html(doc))


def write_pages(directory: Path, markdown: str, html: str) -> list[Path]:
    """A report's report.md and index.html in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / "report.md", directory / "index.html"]
    written[0].write_text(markdown)
    written[1].write_text(html)
    return written


# --------------------------------------------------------------------- entry points


def _load(paths: Sequence[Path]) -> list[tuple[Path, Document]]:
    loaded = []
    for path in paths:
        try:
            loaded.append((path, bench.attach(results.load(path), path)))
        except (OSError, ValueError) as exc:
            raise ReportError(f"{path}: cannot read results: {exc}") from None
    return loaded


def write_reports(paths: Sequence[Path], output: Path, profile: str | None = None,
                  allow_mixed_versions: bool = False) -> list[Path]:
    """Per-vendor reports in OUTPUT/<vendor>/, and with more than one results file the
    comparison matrix (OUTPUT/matrix.html, OUTPUT/matrix.md)."""
    from .comparison import write_matrix
    from .interop.report import is_interop, write_interop_report
    from .loading import writable_directory

    loaded = _load(paths)
    by_vendor: dict[str, Path] = {}
    for path, document in loaded:
        vendor = document["run_info"]["vendor"]["id"]
        if vendor in by_vendor:
            raise ReportError(f"two results files for vendor {vendor}: {by_vendor[vendor]} and "
                              f"{path} (compare runs of one vendor with --diff OLD NEW)")
        by_vendor[vendor] = path
    versions = {str(p): d["run_info"]["suite"]["version"] for p, d in loaded}
    mixed = len(set(versions.values())) > 1
    if mixed and not allow_mixed_versions:
        raise ReportError("results of different suite versions are not compared side by side: "
                          + ", ".join(f"{p} ({v})" for p, v in versions.items())
                          + "; rerun with one version, or pass --allow-mixed-versions")
    if profile is not None:
        judged = {p["id"] for _, d in loaded for p in d["run_info"]["profiles"]}
        if profile not in judged:
            raise ReportError(f"--profile {profile}: no results file was judged against it "
                              f"(profiles judged: {', '.join(sorted(judged)) or 'none'})")
    writable_directory(output, "-o")  # every file checked first; nothing written before
    written = []
    interop = None
    vendors = []
    for _, document in loaded:
        if is_interop(document):  # a run between modules: its own report, a matrix section
            interop = document
            written += write_interop_report(document, output / "interop")
            continue
        vendors.append(document)
        vendor = document["run_info"]["vendor"]["id"]
        shown = document if profile is None else _only_profile(document, profile)
        written += write_vendor_report(shown, output / vendor)
    if len(vendors) > 1:
        written += write_matrix(vendors, output, profile, versions if mixed else None,
                                interop=interop)
    return written


def _only_profile(document: Document, profile: str) -> Document:
    """The document as the per-vendor report shows it with --profile: that profile's
    verdict alone, and a case counts as required only when that profile requires it."""
    run_info = {**document["run_info"],
                "profiles": [p for p in document["run_info"]["profiles"] if p["id"] == profile]}
    cases = [{**c, "required_by": [p for p in c["required_by"] if p == profile],
              "requirement": "required" if profile in c["required_by"] else "optional"}
             for c in document["cases"]]
    return {**document, "run_info": run_info, "cases": cases,
            "verdicts": [v for v in document["verdicts"] if v["profile"] == profile]}


def write_diff(old: Path, new: Path, output: Path) -> list[Path]:
    """OUTPUT/diff.md and OUTPUT/diff.html: what changed between two runs of one vendor."""
    from .comparison import render_diff_html, render_diff_markdown
    from .loading import writable_directory

    (_, before), (_, after) = _load([old, new])
    vendors = [d["run_info"]["vendor"]["id"] for d in (before, after)]
    if vendors[0] != vendors[1]:
        raise ReportError(f"--diff compares two runs of one vendor: {old} is {vendors[0]}, "
                          f"{new} is {vendors[1]}")
    writable_directory(output, "-o")
    written = [output / "diff.md", output / "diff.html"]
    written[0].write_text(render_diff_markdown(before, after, old, new))
    written[1].write_text(render_diff_html(before, after, old, new))
    return written
