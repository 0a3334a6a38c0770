"""The cross-vendor comparison matrix (with its SVG heat map) and the diff between two
runs of one vendor, in self-contained HTML and in Markdown that fits a job summary."""

from __future__ import annotations

import colorsys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import bench
from .aggregate import (
    FAILED,
    PASSING,
    Comparison,
    Document,
    Row,
    Share,
    percent,
    profiles_of,
    skipped_unclaimed,
    verdict_of,
)
from .render import (
    MARKDOWN_BUDGET,
    Cell,
    esc,
    html_table,
    md_cell,
    md_link,
    md_table,
    num_cell,
    page,
    text_cell,
)
from .report import VERDICT_TEXT, _status, _verdict_badge, outcome_cell

LEGEND = [("pass", "pass", "every case that ran passed"),
          ("fail", "fail (n of m)", "n of the m cases that ran failed, errored or crashed"),
          ("deviation", "known deviation", "fails as the vendor declared, with a link"),
          ("unclaimed", "not claimed", "the vendor does not claim it: skipped, never a pass"),
          ("na", "n.a.", "does not apply to this module"),
          ("missing", "no result", "the run has no result for these cases")]
INTEROP_NOTE = ("Interoperability: the share of required cases that pass on every vendor; "
                "a missing result counts as a failure; - where no case is required.")


def _area_text(comparison: Comparison, area: str, vendor: str) -> str:
    if not any(i in comparison.cases[vendor] for i in comparison.area_ids(area)):
        return "no result"
    return comparison.area_share(area, vendor).text()


def _documents(documents: Sequence[Document]) -> dict[str, Document]:
    return {d["run_info"]["vendor"]["id"]: d for d in documents}


# -------------------------------------------------------------------------- heat map


def colour(ratio: float | None) -> str:
    """Red (none pass) through yellow to green (all pass); the curve is steep near the
    top, because in conformance 90% is far from done."""
    if ratio is None:
        return "#eef1f4"
    red, green, blue = colorsys.hls_to_rgb(ratio ** 4 / 3, 0.78, 0.62)
    return f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"


def heatmap(comparison: Comparison, caption: str) -> str:
    """Areas x vendors, colour = share of the cases that ran that pass, with the numbers
    as text; the last column, set apart, is the interoperability share of required
    cases (passing on every vendor)."""
    areas = comparison.areas()
    columns = [*comparison.vendors, "interop (required)"]
    label_w, col_w, row_h, head_h, gap = 130, 150, 38, 46, 14

    def left(index: int) -> int:
        return label_w + col_w * index + (gap if index >= len(comparison.vendors) else 0)

    width, height = left(len(columns)) + 2, head_h + row_h * len(areas) + 2
    out = [f'<svg class="heat" xmlns="http://www.w3.org/2000/svg" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{esc(caption)}"><title>{esc(caption)}</title>']
    for index, name in enumerate(columns):
        shown = name if len(name) <= 20 else name[:19] + "…"
        weight = "700" if index < len(comparison.vendors) else "600"
        out.append(f'<text x="{left(index) + col_w // 2}" y="{head_h - 16}" '
                   f'text-anchor="middle" font-size="13" font-weight="{weight}" '
                   f'fill="#1f2328">{esc(shown)}<title>{esc(name)}</title></text>')
    for line, area in enumerate(areas):
        y = head_h + row_h * line
        out.append(f'<text x="{label_w - 10}" y="{y + row_h // 2 + 5}" text-anchor="end" '
                   f'font-size="13" fill="#1f2328">{esc(area)}</text>')
        ids = comparison.area_ids(area)
        cells: list[tuple[Share, str]] = []
        for vendor in comparison.vendors:
            value = comparison.area_share(area, vendor)
            present = any(i in comparison.cases[vendor] for i in ids)
            cells.append((value, "" if value.total else "no result" if not present
                          else "none ran"))
        interop = comparison.interop(ids)
        cells.append((interop, "" if interop.total else "none required"))
        for index, (value, empty) in enumerate(cells):
            x = left(index)
            tip = f"{area}, {columns[index]}: " + (
                f"{value.passed} of {value.total} pass" if value.total else empty)
            out.append(f'<rect x="{x + 1}" y="{y + 1}" width="{col_w - 2}" height="{row_h - 2}" '
                       f'rx="3" fill="{colour(value.ratio)}"><title>{esc(tip)}</title></rect>')
            big = percent(value.passed, value.total) if value.total else "–"
            small = f"{value.passed}/{value.total}" if value.total else empty
            out.append(f'<text x="{x + col_w // 2}" y="{y + 17}" text-anchor="middle" '
                       f'font-size="13" font-weight="650" fill="#1f2328">{big}</text>')
            out.append(f'<text x="{x + col_w // 2}" y="{y + 31}" text-anchor="middle" '
                       f'font-size="10.5" fill="#3d444d">{esc(small)}</text>')
    out.append("</svg>")
    return "".join(out)


# ---------------------------------------------------------------------------- matrix


def _sections(documents: dict[str, Document], profile: str | None
              ) -> list[tuple[str, str, str | None, Comparison]]:
    """(anchor, heading, profile, comparison) per matrix section."""
    if profile is not None:
        return [(f"p-{profile}", f"Profile {profile}", profile,
                 Comparison.of(documents, profile))]
    out: list[tuple[str, str, str | None, Comparison]] = [
        (f"p-{pid}", f"Profile {pid}", pid, Comparison.of(documents, pid))
        for pid, _ in profiles_of(documents.values())]
    out.append(("all", "All cases", None, Comparison.of(documents)))
    return out


def _href(vendor: str, row: Row) -> str:
    return f"{vendor}/index.html#{row.anchor}"


def _verdict_line(documents: dict[str, Document], profile: str) -> str:
    parts = []
    for vendor, document in documents.items():
        verdict = verdict_of(document, profile)
        parts.append(f"{esc(vendor)} {_verdict_badge(verdict['status'] if verdict else None)}")
    return '<p class="note">Verdicts: ' + " &nbsp; ".join(parts) + "</p>"


def _version_banner(versions: dict[str, str] | None) -> str:
    if not versions:
        return ""
    return ("MIXED SUITE VERSIONS: these runs used different versions of the suite ("
            + ", ".join(f"{p}: {v}" for p, v in versions.items())
            + "); the cases and their meaning may differ, so differences between vendors "
              "may come from the suite, not the modules.")


def render_matrix_html(documents: Sequence[Document], profile: str | None = None,
                       versions: dict[str, str] | None = None,
                       not_run: dict[str, str] | None = None) -> str:
    docs = _documents(documents)
    suite = sorted({d["run_info"]["suite"]["version"] for d in docs.values()})
    body: list[str] = []
    if versions:
        body.append(f'<div class="banner">{esc(_version_banner(versions))}</div>')

    body.append('<h2 id="vendors">Vendors</h2>')
    vendor_rows = []
    for vendor, document in docs.items():
        info = document["run_info"]
        module, token = info["module"], info["token"]
        badges = ('<ul class="plain">' + "".join(
            f"<li>{_verdict_badge(v['status'])} {esc(v['profile'])}</li>"
            for v in document["verdicts"]) + "</ul>") if document["verdicts"] else "none judged"
        vendor_rows.append([
            Cell(f'<a href="{esc(vendor)}/index.html"><b>{esc(vendor)}</b></a><br>'
                 f'<span class="muted">{esc(info["vendor"]["title"])}</span>'),
            text_cell(f"{module['manufacturer_id']} {module['library_description']} "
                      f"{module['library_version']} (Cryptoki {module['cryptoki_version']})"),
            text_cell(f"{token['model']}, firmware {token['firmware_version']}"),
            text_cell(f"suite {info['suite']['version']}, {info['start']}"),
            Cell(badges)])
    body.append(html_table(["vendor", "module", "token", "run", "profile verdicts"],
                           vendor_rows))
    if not_run:
        body.append('<h2 id="not-run">Not run</h2>')
        body.append(html_table(["vendor", "reason"], [
            [text_cell(vendor), text_cell(reason)] for vendor, reason in not_run.items()]))
    body.append('<div class="legend">' + "".join(
        f'<span class="c c-{kind}" title="{esc(tip)}">{esc(text)}</span>'
        for kind, text, tip in LEGEND) + "</div>")
    body.append(f'<p class="note">{esc(INTEROP_NOTE)} Each cell links to that row in the '
                "vendor's report; hover a cell for its status counts.</p>")

    toc = [("vendors", "Vendors")]
    for anchor, heading, pid, comparison in _sections(docs, profile):
        toc.append((anchor, heading))
        total = comparison.interop(comparison.required_ids)
        body.append(f'<h2 id="{esc(anchor)}">{esc(heading)}</h2>')
        if pid is not None:
            title = next((t for p, t in profiles_of(docs.values()) if p == pid), pid)
            body.append(f'<p class="note">{esc(title)}. Rows: the cases this profile '
                        "requires.</p>")
            body.append(_verdict_line(docs, pid))
        else:
            body.append('<p class="note">Every case of every run; required means required by '
                        "any profile a run was judged against.</p>")
        body.append(f'<p class="note"><b>Required cases passing on every vendor: '
                    f"{esc(total.text())}</b></p>")
        body.append(heatmap(comparison, f"{heading}: share of cases passing, per area and "
                                        "vendor"))
        body.append('<p class="note">Colour: the share of the cases that ran and passed, red '
                    "(none) through yellow to green (all); the interop column counts required "
                    "cases passing on every vendor.</p>")
        for area, rows in comparison.areas().items():
            interop = comparison.interop(comparison.area_ids(area))
            shares = ", ".join(f"{v} {_area_text(comparison, area, v)}"
                               for v in comparison.vendors)
            table = []
            for row in rows:
                cells = [Cell(esc(row.subject) + (
                    f' <span class="muted">{esc(row.parameters)}</span>'
                    if row.parameters else ""))]
                cells += [outcome_cell(comparison.cell(row, v), _href(v, row))
                          for v in comparison.vendors]
                cells.append(num_cell(comparison.interop(comparison.rows[row]).text()))
                table.append(cells)
            open_ = " open" if pid is not None else ""
            body.append(
                f"<details{open_}><summary>{esc(area)} <span class=muted>· {len(rows)} rows · "
                f"interop {esc(interop.text())} · {esc(shares)}</span></summary>"
                + html_table(["subject and parameters",
                              *(Cell(esc(v), "c", header=True) for v in comparison.vendors),
                              Cell("interop (required)", "num", header=True)], table,
                             css="zebra matrix")
                + "</details>")
    benches = {v: d["bench"] for v, d in docs.items() if d.get("bench")}
    if benches:
        body += bench.matrix_html(benches)
        toc.append(("performance", "Performance"))
    title = "PKCS#11 interoperability matrix" + (f": {profile}" if profile else "")
    subtitle = (f"{len(docs)} vendors · suite {', '.join(suite)}"
                + (f" · rows required by profile {profile}" if profile else ""))
    return page(title, subtitle, body, toc)


@dataclass(frozen=True)
class _MarkdownPlan:
    links: bool
    rows: str  # all, differing, none


def _matrix_markdown(docs: dict[str, Document], profile: str | None,
                     versions: dict[str, str] | None, plan: _MarkdownPlan,
                     not_run: dict[str, str]) -> str:
    suite = sorted({d["run_info"]["suite"]["version"] for d in docs.values()})
    lines = ["# PKCS#11 interoperability matrix" + (f": {profile}" if profile else ""), ""]
    if versions:
        lines += [f"> **WARNING: {md_cell(_version_banner(versions))}**", ""]
    lines += [f"Suite version {', '.join(suite)}; {len(docs)} vendors. {INTEROP_NOTE}", ""]
    lines += md_table(["vendor", "module", "run"], [
        [md_link(v, f"{v}/index.html") if plan.links else md_cell(v),
         md_cell(f"{d['run_info']['module']['manufacturer_id']} "
                 f"{d['run_info']['module']['library_description']} "
                 f"{d['run_info']['module']['library_version']}"),
         md_cell(f"suite {d['run_info']['suite']['version']}, {d['run_info']['start']}")]
        for v, d in docs.items()])
    if not_run:
        lines += ["", "## Not run", ""]
        lines += md_table(["vendor", "reason"], [[md_cell(v), md_cell(r)]
                                                 for v, r in not_run.items()])

    sections = _sections(docs, profile)
    profiles = [(pid, c) for _, _, pid, c in sections if pid is not None]
    lines += ["", "## Profile verdicts", ""]
    lines += md_table(["profile", *map(md_cell, docs), "required cases passing on every vendor"],
                      [[md_cell(pid), *(
                          VERDICT_TEXT[verdict["status"]] if (verdict := verdict_of(d, pid))
                          else "not judged" for d in docs.values()),
                        c.interop(c.required_ids).text()] for pid, c in profiles],
                      numeric=[len(docs) + 1])

    comparison = sections[0][3] if profile else sections[-1][3]
    scope = f"required by {profile}" if profile else "all cases"
    lines += ["", f"## Areas ({scope})", "",
              "Cases passing of the cases that ran, per vendor; interop over required cases.",
              ""]
    lines += md_table(["area", *map(md_cell, docs), "interop (required)"], [
        [md_cell(area), *(_area_text(comparison, area, v) for v in docs),
         comparison.interop(comparison.area_ids(area)).text()]
        for area in comparison.areas()], numeric=range(1, len(docs) + 2))

    if plan.rows != "none":
        rows = list(comparison.rows)
        if plan.rows == "differing":
            rows = [r for r in rows if len({comparison.cell(r, v).text for v in docs}) > 1
                    or comparison.cell(r, next(iter(docs))).kind != "pass"]
        lines += ["", f"## Rows ({scope})", ""]
        if plan.rows == "differing":
            lines += ["Only rows that are not a pass on every vendor (the full matrix does "
                      "not fit a job summary; see matrix.html).", ""]

        def cell(row: Row, vendor: str) -> str:
            text = comparison.cell(row, vendor).text
            return md_link(text, _href(vendor, row)) if plan.links else text

        lines += md_table(["area · subject · parameters", *map(md_cell, docs),
                           "interop (required)"],
                          [[md_cell(row.label), *(cell(row, v) for v in docs),
                            comparison.interop(comparison.rows[row]).text()] for row in rows],
                          numeric=[len(docs) + 1])
    else:
        lines += ["", "(The rows do not fit a job summary: see matrix.html.)"]
    lines += bench.matrix_markdown({v: d["bench"] for v, d in docs.items() if d.get("bench")})
    return "\n".join(lines) + "\n"


def render_matrix_markdown(documents: Sequence[Document], profile: str | None = None,
                           versions: dict[str, str] | None = None,
                           not_run: dict[str, str] | None = None) -> str:
    """The largest rendering that fits a job summary: with links, without, only the rows
    that differ, only the areas."""
    docs = _documents(documents)
    text = ""
    for plan in (_MarkdownPlan(True, "all"), _MarkdownPlan(False, "all"),
                 _MarkdownPlan(False, "differing"), _MarkdownPlan(False, "none")):
        text = _matrix_markdown(docs, profile, versions, plan, not_run or {})
        if len(text.encode()) <= MARKDOWN_BUDGET:
            break
    return text


def write_matrix(documents: Sequence[Document], output: Path, profile: str | None = None,
                 versions: dict[str, str] | None = None,
                 not_run: dict[str, str] | None = None,
                 interop: Document | None = None) -> list[Path]:
    """The matrix over `documents`; `not_run` lists vendors that did not run, with why;
    `interop` (the results of an interop run, whose report is in OUTPUT/interop/) adds
    the pairwise matrix and the clients table."""
    from .interop.report import pairwise_html, pairwise_markdown

    output.mkdir(parents=True, exist_ok=True)
    written = [output / "matrix.md", output / "matrix.html"]
    markdown = render_matrix_markdown(documents, profile, versions, not_run)
    html = render_matrix_html(documents, profile, versions, not_run)
    if interop is not None:
        markdown += "\n## Pairwise interoperability\n\n" + "\n".join(
            pairwise_markdown(interop, "interop/")) + "\n"
        section = '<h2 id="pairwise">Pairwise interoperability</h2>' + "".join(
            pairwise_html(interop, "interop/"))
        html = html.replace("</main>", section + "</main>", 1)
    written[0].write_text(markdown)
    written[1].write_text(html)
    return written


# ------------------------------------------------------------------------------ diff


def _kind(case: dict[str, object] | None) -> str:
    if case is None:
        return "missing"
    status = case["status"]
    if status in PASSING:
        return "pass"
    if status in FAILED:
        return "fail"
    if status == "XFAIL":
        return "deviation"
    return "unclaimed" if status == "MISSING" or skipped_unclaimed(case) else "na"


@dataclass(frozen=True)
class Change:
    id: str
    old: dict[str, object] | None
    new: dict[str, object] | None

    def message(self) -> str:
        """The newer message, else the older one (a fix has no message of its own)."""
        return str((self.new or {}).get("message") or (self.old or {}).get("message") or "")

    def status(self, side: str) -> str:
        case = self.old if side == "old" else self.new
        return "-" if case is None else str(case["status"])


DIFF_SECTIONS: list[tuple[str, str, str, Callable[[str, str], bool]]] = [
    ("new-failures", "New failures", "failing now, not failing before (or new cases)",
     lambda old, new: new == "fail" and old != "fail"),
    ("fixes", "Fixes", "failing or a known deviation before, passing now",
     lambda old, new: old in ("fail", "deviation") and new == "pass"),
    ("newly-claimed", "Newly claimed", "skipped as not claimed before, run now",
     lambda old, new: old == "unclaimed" and new in ("pass", "fail", "deviation")),
    ("no-longer-claimed", "No longer claimed", "run before, skipped as not claimed now",
     lambda old, new: old in ("pass", "fail", "deviation") and new == "unclaimed"),
]


@dataclass
class Diff:
    old: Document
    new: Document
    sections: dict[str, list[Change]]
    other: list[Change]
    advertised: tuple[list[str], list[str]] | None  # added, removed; None: not recorded
    verdicts: list[tuple[str, str, str, list[str], list[str]]]

    @classmethod
    def of(cls, old: Document, new: Document) -> Diff:
        before = {c["id"]: c for c in old["cases"]}
        after = {c["id"]: c for c in new["cases"]}
        sections: dict[str, list[Change]] = {key: [] for key, *_ in DIFF_SECTIONS}
        other = []
        for case_id in sorted(set(before) | set(after)):
            change = Change(case_id, before.get(case_id), after.get(case_id))
            kinds = _kind(change.old), _kind(change.new)
            for key, _, _, test in DIFF_SECTIONS:
                if test(*kinds):
                    sections[key].append(change)
                    break
            else:
                if change.status("old") != change.status("new"):
                    other.append(change)
        lists = [d["run_info"].get("mechanisms") for d in (old, new)]
        advertised = None
        if lists[0] is not None and lists[1] is not None:
            advertised = (sorted(set(lists[1]) - set(lists[0])),
                          sorted(set(lists[0]) - set(lists[1])))
        verdicts = []
        for pid, _ in profiles_of([old, new]):
            was, now = verdict_of(old, pid), verdict_of(new, pid)
            was_failing = {f["requirement"] for f in was["failing"]} if was else set()
            now_failing = {f["requirement"] for f in now["failing"]} if now else set()
            verdicts.append((pid, VERDICT_TEXT[was["status"]] if was else "not judged",
                             VERDICT_TEXT[now["status"]] if now else "not judged",
                             sorted(now_failing - was_failing), sorted(was_failing - now_failing)))
        return cls(old, new, sections, other, advertised, verdicts)

    def changed_verdicts(self) -> list[tuple[str, str, str, list[str], list[str]]]:
        return [v for v in self.verdicts if v[1] != v[2] or v[3] or v[4]]


def _run_line(document: Document, path: Path) -> list[str]:
    info = document["run_info"]
    return [str(path), f"suite {info['suite']['version']}"
            + (f" ({info['suite']['git_sha'][:12]})" if info["suite"].get("git_sha") else ""),
            f"{info['module']['library_description']} {info['module']['library_version']}",
            info["start"]]


def _advertised_text(diff: Diff) -> tuple[str, str]:
    if diff.advertised is None:
        missing = [side for side, d in (("OLD", diff.old), ("NEW", diff.new))
                   if d["run_info"].get("mechanisms") is None]
        note = (f"not recorded in {' and '.join(missing)} (results from before the suite "
                "recorded C_GetMechanismList)")
        return note, note
    added, removed = diff.advertised
    return ", ".join(added) or "none", ", ".join(removed) or "none"


def render_diff_markdown(old: Document, new: Document, old_path: Path, new_path: Path,
                         limit: int = 300) -> str:
    diff = Diff.of(old, new)
    vendor = new["run_info"]["vendor"]
    lines = [f"# PKCS#11 conformance diff: {vendor['title']}", ""]
    lines += md_table(["run", "results", "suite", "module", "start"], [
        ["old", *map(md_cell, _run_line(old, old_path))],
        ["new", *map(md_cell, _run_line(new, new_path))]])
    lines += ["", ", ".join(f"{len(diff.sections[k])} {t.lower()}"
                            for k, t, _, _ in DIFF_SECTIONS)
              + f", {len(diff.other)} other status changes, "
              f"{len(diff.changed_verdicts())} changed verdicts.", ""]
    lines += ["## Changed verdicts", ""]
    changed = diff.changed_verdicts()
    if changed:
        lines += md_table(["profile", "old", "new", "newly failing requirements",
                           "requirements now met"], [
            [md_cell(p), a, b, md_cell(", ".join(n) or "-"), md_cell(", ".join(f) or "-")]
            for p, a, b, n, f in changed])
    else:
        lines.append("None.")
    added, removed = _advertised_text(diff)
    lines += ["", "## Mechanism list (C_GetMechanismList)", "",
              f"- newly advertised: {md_cell(added)}", f"- no longer advertised: "
              f"{md_cell(removed)}"]
    for key, title, meaning, _ in DIFF_SECTIONS:
        changes = diff.sections[key]
        lines += ["", f"## {title} ({len(changes)})", "", f"{meaning.capitalize()}.", ""]
        lines += _md_changes(changes, limit)
    lines += ["", f"## Other status changes ({len(diff.other)})", "",
              "Any other change of status, including cases only in one of the runs.", ""]
    lines += _md_changes(diff.other, limit)
    return "\n".join(lines) + "\n"


def _md_changes(changes: list[Change], limit: int) -> list[str]:
    if not changes:
        return ["None."]
    lines = md_table(["case", "old", "new", "message"], [
        [f"`{md_cell(c.id)}`", c.status("old"), c.status("new"),
         md_cell(c.message())] for c in changes[:limit]])
    if len(changes) > limit:
        lines += ["", f"... and {len(changes) - limit} more, listed in diff.html."]
    return lines


def render_diff_html(old: Document, new: Document, old_path: Path, new_path: Path) -> str:
    diff = Diff.of(old, new)
    vendor = new["run_info"]["vendor"]
    body = []
    tone = {"new-failures": "bad", "fixes": "good"}
    cards = "".join(
        f'<div class="card"><div class="small">{esc(title)}</div><div class="big '
        f'{tone.get(key, "") if diff.sections[key] else ""}">{len(diff.sections[key])}</div>'
        f'<div class="small"><a href="#{key}">{esc(meaning)}</a></div></div>'
        for key, title, meaning, _ in DIFF_SECTIONS)
    cards += ('<div class="card"><div class="small">Changed verdicts</div><div class="big">'
              f'{len(diff.changed_verdicts())}</div><div class="small"><a href="#verdicts">'
              "profiles whose verdict or failing requirements changed</a></div></div>")
    body.append(f'<div class="cards">{cards}</div>')
    body.append(html_table(["run", "results", "suite", "module", "start"], [
        [text_cell(side), *(text_cell(x) for x in _run_line(d, p))]
        for side, d, p in (("old", old, old_path), ("new", new, new_path))]))
    versions = {d["run_info"]["suite"]["version"] for d in (old, new)}
    if len(versions) > 1:
        body.append('<p class="note">The runs used different suite versions: cases only in '
                    "one of them are listed under other status changes.</p>")
    body.append('<h2 id="verdicts">Changed verdicts</h2>')
    changed = diff.changed_verdicts()
    body.append(html_table(["profile", "old", "new", "newly failing requirements",
                            "requirements now met"], [
        [text_cell(p), text_cell(a), text_cell(b), text_cell(", ".join(n) or "-"),
         text_cell(", ".join(f) or "-")] for p, a, b, n, f in changed])
        if changed else "<p>None.</p>")
    added, removed = _advertised_text(diff)
    body.append('<h2 id="advertised">Mechanism list (C_GetMechanismList)</h2>')
    body.append(html_table([], [[Cell("newly advertised", header=True), text_cell(added)],
                                [Cell("no longer advertised", header=True),
                                 text_cell(removed)]], css="kv"))
    toc = [("verdicts", "Verdicts"), ("advertised", "Mechanism list")]
    for key, title, meaning, _ in [*DIFF_SECTIONS, ("other", "Other status changes",
                                                     "any other change of status", None)]:
        changes = diff.other if key == "other" else diff.sections[key]
        toc.append((key, title))
        body.append(f'<h2 id="{key}">{esc(title)} ({len(changes)})</h2>')
        body.append(f'<p class="note">{esc(meaning.capitalize())}.</p>')
        body.append(html_table(["case", "old", "new", "message"], [
            [Cell(f"<span class=id>{esc(c.id)}</span>"), Cell(_status(c.status("old"))),
             Cell(_status(c.status("new"))),
             text_cell(c.message())] for c in changes], css="zebra diff")
            if changes else "<p>None.</p>")
    return page(f"PKCS#11 conformance diff: {vendor['title']}",
                f"{old_path} → {new_path}", body, toc)
