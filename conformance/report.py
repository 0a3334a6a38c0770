"""Per-vendor report (Markdown and self-contained HTML) rendered from a results JSON."""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

STATUSES = ("PASS", "FAIL", "ERROR", "CRASH", "TIMEOUT", "XFAIL", "XPASS", "SKIP")
VERDICT_TEXT = {"met": "conformant", "not met": "NOT conformant",
                "incomplete": "not verified (requirements without checks)"}


def _failing(cases: list[dict[str, str]]) -> str:
    known = sum(c["status"] == "XFAIL" for c in cases)
    text = f"{len(cases)} failing case{'s' if len(cases) > 1 else ''}"
    return text + (f", {known} a known deviation" if known == 1 else
                   f", {known} known deviations" if known else "")


def _sections(doc: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """The report as (heading, column names, rows), shared by both renderings."""
    info, cases = doc["run_info"], doc["cases"]
    module, token = info["module"], info["token"]
    identity = [
        ["vendor", f"{info['vendor']['title']} ({info['vendor']['id']})"],
        ["module", f"{module['manufacturer_id']} {module['library_description']} "
                   f"{module['library_version']} (Cryptoki {module['cryptoki_version']})"],
        ["token", f"{token['label']} / {token['manufacturer_id']} {token['model']} "
                  f"(firmware {token['firmware_version']})"
                  + (", throwaway token" if token.get("throwaway") else "")],
        ["suite", f"pkcs11-conformance {info['suite']['version']}"
                  + (f" ({info['suite']['git_sha'][:12]})" if info["suite"]["git_sha"] else "")],
        ["bindings", ", ".join(f"{k} {v}" for k, v in info["bindings"].items())],
        ["run", f"{info['start']} to {info['end']} on {info['host']['platform']}"],
        ["summary", ", ".join(f"{n} {s}" for s, n in doc["summary"].items())],
    ]
    verdicts = []
    for v in doc["verdicts"]:
        why = "; ".join(f"{f['requirement']} ({_failing(f['cases'])})" for f in v["failing"])
        if v["unchecked"]:
            why += ("; " if why else "") + "no checks yet for " + ", ".join(v["unchecked"])
        verdicts.append([v["profile"], VERDICT_TEXT[v["status"]],
                         f"{v['passed']}/{v['required_cases']}", why or "-"])

    by_area: dict[str, Counter[str]] = defaultdict(Counter)
    required: dict[str, Counter[str]] = defaultdict(Counter)
    for case in cases:
        by_area[case["area"]][case["status"]] += 1
        if case["requirement"] == "required":
            required[case["area"]]["total"] += 1
            required[case["area"]]["pass"] += case["status"] in ("PASS", "XPASS")
    areas = [[area, f"{required[area]['pass']}/{required[area]['total']}",
              *(str(counts[s]) for s in STATUSES),
              f"{sum(c['duration'] for c in cases if c['area'] == area):.2f} s"]
             for area, counts in sorted(by_area.items())]

    failures = [[c["id"], c["status"], c["spec"], c["message"]] for c in cases
                if c["status"] in ("FAIL", "ERROR", "CRASH", "TIMEOUT", "XPASS")]
    deviations = [[c["id"], c["known_deviation"]["reason"], c["known_deviation"]["url"]]
                  for c in cases if c["known_deviation"]]
    skip_reasons = Counter(c["message"] for c in cases if c["status"] == "SKIP")
    skips = [[reason, str(n)] for reason, n in sorted(skip_reasons.items())]
    return [
        ("Identity", ["", ""], identity),
        ("Profile verdicts", ["profile", "verdict", "required cases passed", "why"], verdicts),
        ("Areas", ["area", "required passed", *STATUSES, "time"], areas),
        ("Failures", ["case", "status", "spec clause", "message"], failures),
        ("Known deviations", ["case", "reason", "link"], deviations),
        ("Skipped, by reason", ["reason", "cases"], skips),
    ]


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(doc: dict[str, Any]) -> str:
    vendor = doc["run_info"]["vendor"]
    lines = [f"# PKCS#11 conformance: {vendor['title']}", ""]
    for heading, columns, rows in _sections(doc):
        lines += [f"## {heading}", ""]
        if not rows:
            lines += ["None.", ""]
            continue
        lines.append("| " + " | ".join(columns) + " |")
        lines.append("|" + "---|" * len(columns))
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
        lines.append("")
    return "\n".join(lines)


_CSS = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:78rem;padding:0 1rem;
color:#1b1f24}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td{word-break:break-word}
.conformant{color:#1a7f37;font-weight:600}.NOT{color:#cf222e;font-weight:600}
.not{color:#9a6700;font-weight:600}
"""


def _html_cell(text: str) -> str:
    if text.startswith(("http://", "https://")):
        return f'<a href="{html.escape(text)}">{html.escape(text)}</a>'
    css = text.split()[0] if text in VERDICT_TEXT.values() else ""
    return f'<span class="{css}">{html.escape(text)}</span>' if css else html.escape(text)


def render_html(doc: dict[str, Any]) -> str:
    vendor = doc["run_info"]["vendor"]
    title = f"PKCS#11 conformance: {vendor['title']}"
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>"
             f"{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    for heading, columns, rows in _sections(doc):
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if not rows:
            parts.append("<p>None.</p>")
            continue
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns) if any(columns) else ""
        body = "".join("<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in row) + "</tr>"
                       for row in rows)
        parts.append(f"<table>{'<tr>' + head + '</tr>' if head else ''}{body}</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_vendor_report(doc: dict[str, Any], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / "report.md", directory / "index.html"]
    written[0].write_text(render_markdown(doc))
    written[1].write_text(render_html(doc))
    return written
