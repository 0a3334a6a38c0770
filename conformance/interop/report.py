"""The report of an interop run: the pairwise matrix (cell A -> B: what module A made and
module B used), the clients table, and every failure with its message; in Markdown (fits
a job summary) and self-contained HTML, and as a section of the comparison matrix."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..render import Cell, esc, html_table, link, md_cell, md_table, page, text_cell

Document = dict[str, Any]

PAIRWISE = {  # test -> what a column of the per-check table calls it
    "test_signature_verifies_in_other_module": "signatures",
    "test_ciphertext_decrypts_in_other_module": "ciphertexts",
    "test_wrapped_key_unwraps_in_other_module": "secret key migration",
    "test_wrapped_private_key_signs_in_other_module": "private key migration",
}
CLIENTS = {
    "test_pkcs11_tool_lists_and_signs": "pkcs11-tool",
    "test_p11tool_lists_exports_and_signs": "p11tool",
    "test_openssl_engine_signs": "OpenSSL engine",
    "test_openssl_makes_root_certificate_with_token_key": "root certificate",
    "test_root_certificate_stored_beside_its_key": "certificate on token",
}
FAILING = ("FAIL", "ERROR", "CRASH", "TIMEOUT", "XPASS")


@dataclass
class Tally:
    passed: int = 0
    failed: int = 0
    deviations: int = 0
    skipped: int = 0
    reason: str = ""  # the skip reason, when every case was skipped

    def add(self, case: dict[str, Any]) -> None:
        status = case["status"]
        if status == "PASS":
            self.passed += 1
        elif status == "XFAIL":
            self.deviations += 1
        elif status == "SKIP":
            self.skipped += 1
            self.reason = self.reason or case["message"]
        else:
            self.failed += 1

    @property
    def ran(self) -> int:
        return self.passed + self.failed + self.deviations

    def text(self) -> str:
        if not self.ran:
            return "not both claimed" if self.skipped else "—"
        parts = [f"{self.passed}/{self.ran} pass"]
        if self.failed:
            parts.append(f"{self.failed} fail")
        if self.deviations:
            parts.append(f"{self.deviations} known deviation")
        return ", ".join(parts)

    def short(self) -> str:
        """For the terminal: passed/ran, then F failed and X known deviations."""
        if not self.ran:
            return "-"
        return " ".join([f"{self.passed}/{self.ran}"] + [f"{self.failed}F"] * bool(self.failed)
                        + [f"{self.deviations}X"] * bool(self.deviations))

    def css(self) -> str:
        if not self.ran:
            return "c c-na"
        return "c c-fail" if self.failed else "c c-deviation" if self.deviations else "c c-pass"


def vendors(document: Document) -> list[str]:
    return list(document["run_info"]["vendors"])


def _tallies(document: Document, tests: Iterable[str]) -> dict[tuple[str, ...], Tally]:
    """Per (between..., test) and per (between...) over `tests`."""
    wanted, out = set(tests), dict[tuple[str, ...], Tally]()
    for case in document["cases"]:
        if case["test"] not in wanted or "between" not in case:
            continue
        between = tuple(case["between"])
        for key in (between, (*between, case["test"])):
            out.setdefault(key, Tally()).add(case)
    return out


def _pair_tally(tallies: dict[tuple[str, ...], Tally], key: tuple[str, ...]) -> Tally:
    return tallies.get(key, Tally())


def matrix_lines(document: Document) -> list[str]:
    """The pairwise matrix and the clients as plain text, for the terminal."""
    names = vendors(document)
    pairs = _tallies(document, PAIRWISE)
    width = max([len(n) for n in names] + [12])
    lines = ["pairwise (row: made in; column: used in; passed/ran, F failed, X known "
             "deviation):", " " * width + "  " + "  ".join(n.ljust(width) for n in names)]
    for a in names:
        cells = [("" if a == b else _pair_tally(pairs, (a, b)).short()).ljust(width)
                 for b in names]
        lines.append(a.ljust(width) + "  " + "  ".join(cells))
    lines.append("clients:")
    if not any(case["test"] in CLIENTS for case in document["cases"]):
        lines.append("  none ran")
    for name in names:
        row = ", ".join(f"{label} {_status(document, name, test)}"
                        for test, label in CLIENTS.items())
        lines.append(f"  {name}: {row}")
    for vendor, reason in document["run_info"].get("not_run", {}).items():
        lines.append(f"not run: {vendor}: {reason}")
    return lines


def _status(document: Document, vendor: str, test: str) -> str:
    case = _case(document, vendor, test)
    return str(case["status"]) if case else "-"


def _case(document: Document, vendor: str, test: str) -> dict[str, Any] | None:
    return next((c for c in document["cases"]
                 if c["test"] == test and c.get("between") == [vendor]), None)


STATUS_CSS = {"PASS": "c c-pass", "XFAIL": "c c-deviation", "SKIP": "c c-unclaimed"}


def _failures(document: Document) -> list[dict[str, Any]]:
    return [c for c in document["cases"] if c["status"] in FAILING]


def _deviations(document: Document) -> list[dict[str, Any]]:
    return [c for c in document["cases"] if c["status"] == "XFAIL"]


def _modules_rows(document: Document) -> list[list[str]]:
    rows = []
    for vendor, info in document["run_info"].get("modules", {}).items():
        module = info["module"]
        rows.append([vendor, f"{module['manufacturer_id']} {module['library_description']} "
                     f"{module['library_version']}", module["path"]])
    return rows


def _summary(document: Document) -> str:
    counts = ", ".join(f"{v} {k}" for k, v in document["summary"].items())
    run = document["run_info"]
    return (f"suite {run['suite']['version']}, {run['start']} to {run['end']}; "
            f"{len(document['cases'])} cases: {counts}")


# ---- Markdown -------------------------------------------------------------------------

def pairwise_markdown(document: Document, link_prefix: str = "") -> list[str]:
    """The pairwise matrix and the clients table (also a section of matrix.md)."""
    names = vendors(document)
    pairs = _tallies(document, PAIRWISE)
    lines = ["Row: the module that signs, encrypts or wraps; column: the module that "
             "verifies, decrypts or unwraps. Each cell counts the cases both modules "
             "claim.", ""]
    lines += md_table(["made in \\ used in", *names], [
        [a, *("—" if a == b else md_cell(_pair_tally(pairs, (a, b)).text()) for b in names)]
        for a in names])
    lines += ["", "By check:", ""]
    lines += md_table(["route", *PAIRWISE.values()], [
        [f"{a} → {b}", *(md_cell(_pair_tally(pairs, (a, b, t)).text()) for t in PAIRWISE)]
        for a in names for b in names if a != b])
    lines += ["", "Clients (each a process of its own, loading the module):", ""]
    lines += md_table(["module", *CLIENTS.values()], [
        [name, *(_status(document, name, test) for test in CLIENTS)] for name in names])
    if link_prefix:
        lines += ["", f"Every case and failure: [interop report]({link_prefix}report.md)."]
    return lines


def render_markdown(document: Document) -> str:
    run = document["run_info"]
    lines = ["# Interoperability between modules and clients", "", _summary(document), ""]
    lines += md_table(["vendor", "module", "path"], [[md_cell(c) for c in r]
                                                     for r in _modules_rows(document)])
    lines += ["", "## Pairwise and clients", "", *pairwise_markdown(document)]
    failures = _failures(document)
    lines += ["", f"## Failures ({len(failures)})", ""]
    lines += md_table(["case", "status", "message"], [
        [f"`{md_cell(c['id'])}`", c["status"], md_cell(c["message"][:400])]
        for c in failures]) if failures else ["None."]
    deviations = _deviations(document)
    if deviations:
        lines += ["", f"## Known deviations ({len(deviations)})", ""]
        lines += md_table(["case", "deviation"], [
            [f"`{md_cell(c['id'])}`", md_cell(c["message"][:300])] for c in deviations])
    if run.get("not_run"):
        lines += ["", "## Not run", ""]
        lines += [f"- {vendor}: {md_cell(reason)}" for vendor, reason in run["not_run"].items()]
    return "\n".join(lines) + "\n"


# ---- HTML -----------------------------------------------------------------------------

def pairwise_html(document: Document, link_prefix: str = "") -> list[str]:
    names = vendors(document)
    pairs = _tallies(document, PAIRWISE)

    def cell(tally: Tally) -> Cell:
        return Cell(esc(tally.text()), tally.css(), tally.reason)
    body = ['<p class="note">Row: the module that signs, encrypts or wraps; column: the '
            "module that verifies, decrypts or unwraps. Each cell counts the cases both "
            "modules claim.</p>"]
    body.append(html_table([Cell("made in \\ used in", header=True), *names], [
        [Cell(esc(a), header=True), *(text_cell("—", "c c-na") if a == b
                                      else cell(_pair_tally(pairs, (a, b))) for b in names)]
        for a in names]))
    body.append("<h3>By check</h3>")
    body.append(html_table(["route", *PAIRWISE.values()], [
        [text_cell(f"{a} → {b}"), *(cell(_pair_tally(pairs, (a, b, t))) for t in PAIRWISE)]
        for a in names for b in names if a != b]))
    body.append("<h3>Clients</h3>")
    rows = []
    for name in names:
        row = [text_cell(name)]
        for test in CLIENTS:
            case = _case(document, name, test)
            status = case["status"] if case else "-"
            row.append(Cell(esc(status), STATUS_CSS.get(status, "c c-fail" if case else "c c-na"),
                            case["message"] if case else ""))
        rows.append(row)
    body.append(html_table(["module", *CLIENTS.values()], rows))
    if link_prefix:
        body.append(f'<p class="note">Every case and failure: '
                    f'{link(link_prefix + "index.html", "interop report")}.</p>')
    return body


def render_html(document: Document) -> str:
    run = document["run_info"]
    body = [f'<p class="note">{esc(_summary(document))}</p>',
            html_table(["vendor", "module", "path"],
                       [[text_cell(c) for c in r] for r in _modules_rows(document)]),
            '<h2 id="pairwise">Pairwise and clients</h2>', *pairwise_html(document)]
    failures = _failures(document)
    body.append(f'<h2 id="failures">Failures ({len(failures)})</h2>')
    body.append(html_table(["case", "status", "message"], [
        [Cell(f'<span class="id">{esc(c["id"])}</span>'), text_cell(c["status"], "c c-fail"),
         text_cell(c["message"])] for c in failures]) if failures else "<p>None.</p>")
    deviations = _deviations(document)
    if deviations:
        body.append(f'<h2 id="deviations">Known deviations ({len(deviations)})</h2>')
        body.append(html_table(["case", "deviation"], [
            [Cell(f'<span class="id">{esc(c["id"])}</span>'), text_cell(c["message"])]
            for c in deviations]))
    if run.get("not_run"):
        body.append('<h2 id="not-run">Not run</h2>')
        body.append(html_table(["vendor", "why"], [[text_cell(v), text_cell(r)]
                                                   for v, r in run["not_run"].items()]))
    return page("PKCS#11 interoperability between modules and clients", _summary(document),
                body, [("pairwise", "Pairwise and clients"), ("failures", "Failures")])


def write_interop_report(document: Document, directory: Path) -> list[Path]:
    from ..report import write_pages

    return write_pages(directory, render_markdown(document), render_html(document))


def is_interop(document: Document) -> bool:
    return bool(document["run_info"].get("kind") == "interop")
