"""Reports: the comparison matrix, the diff of two runs, the Markdown budget, the HTML in
a real browser, and the Allure output of a small run.

The results documents are copies of the committed SoftHSM2 reference results, edited:
a second "vendor" with some statuses changed, a run of another suite version."""

from __future__ import annotations

import copy
import json
import re
import shutil
import struct
import subprocess
import sys
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO
from test_runs import small_vendor

from conformance import results
from conformance.aggregate import Comparison, by_row, required, subject
from conformance.report import write_reports

CLI = [sys.executable, "-m", "conformance.cli"]
REFERENCE = REPO / "reports" / "softhsm2" / "results.json"
PSS_ROW = "sign · CKM_SHA256_RSA_PKCS_PSS · key_sizes=2048, salt_lengths=32"
MIB = 1024 * 1024
PSS_CASE = ("sign/test_sign_rsa.py::test_sign_rsa_pss_hash_verifies_with_cryptography"
            "[CKM_SHA256_RSA_PKCS_PSS-key_bits=2048-salt_length=32-single-part]")


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    return results.load(REFERENCE)


def variant(document: dict[str, Any], vendor: str, edit: Any = None) -> dict[str, Any]:
    """A copy under another vendor id, edited case by case (edit returns False to drop
    a case), with summary and verdicts recomputed as a run would write them."""
    out = copy.deepcopy(document)
    out["run_info"]["vendor"].update(id=vendor, title=vendor.upper())
    if edit is not None:
        out["cases"] = [c for c in out["cases"] if edit(c) is not False]
    out["summary"] = dict(sorted(Counter(c["status"] for c in out["cases"]).items()))
    out["verdicts"] = results.verdicts(out["run_info"], out["cases"])
    return out


def dump(document: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(document))
    return path


def fail(case: dict[str, Any], message: str = "C_SignInit returned CKR_MECHANISM_INVALID"
         ) -> None:
    case.update(status="FAIL", message=message)


@pytest.fixture(scope="module")
def acme(reference) -> dict[str, Any]:
    """Fails the PSS row, does not claim SHA-1 digests, has no random results, and fails
    (or lacks) two cases ca-root-key requires."""
    required_passing = [c["id"] for c in reference["cases"]
                        if required(c, "ca-root-key") and c["status"] == "PASS"]
    failing, missing = required_passing[0], required_passing[1]

    def edit(case: dict[str, Any]) -> bool:
        if case["id"] == missing or case["area"] == "random":
            return False
        if case["id"] in (failing, PSS_CASE):
            fail(case)
        if case["mechanisms"][:1] == ["CKM_SHA_1"] and case["area"] == "digest":
            case.update(status="SKIP", message="CKM_SHA_1 not claimed by vendor acme-hsm")
        return True

    document = variant(reference, "acme-hsm", edit)
    document["test_ids"] = {"failing": failing, "missing": missing}
    return document


def test_matrix_rows_cells_and_interop(reference, acme):
    documents = {"softhsm2": reference, "acme-hsm": acme}
    every = Comparison.of(documents)
    rows = {row.label: row for row in every.rows}
    pss = rows[PSS_ROW]
    assert every.cell(pss, "softhsm2").text == "pass"
    assert every.cell(pss, "acme-hsm").text == "fail (1 of 5)"
    sha1 = next(row for label, row in rows.items() if label.startswith("digest · CKM_SHA_1"))
    assert every.cell(sha1, "acme-hsm").text == "not claimed"
    random = next(row for row in every.rows if row.area == "random")
    assert every.cell(random, "acme-hsm").kind == "missing"
    deviation = next(row for row in every.rows if row.subject == "CKO_PROFILE")
    assert every.cell(deviation, "softhsm2").text == "known deviation"
    unclaimed = next(row for row in every.rows if row.subject == "C_GetInterface")
    assert every.cell(unclaimed, "softhsm2").text == "MISSING: required, not claimed"
    not_applicable = next(row for row in every.rows
                          if every.cell(row, "softhsm2").kind == "na")
    assert every.cell(not_applicable, "softhsm2").text == "n.a."

    # Interop: required cases passing on every vendor; a missing result is a failure.
    alone = Comparison.of({"softhsm2": reference}, "ca-root-key")
    both = Comparison.of(documents, "ca-root-key")
    solo, pair = alone.interop(alone.required_ids), both.interop(both.required_ids)
    assert pair.total == solo.total and pair.passed == solo.passed - 2
    ids = acme["test_ids"]
    assert both.interop([ids["failing"]]).passed == both.interop([ids["missing"]]).passed == 0


def test_profile_restricts_rows_to_its_requirements(reference, acme):
    documents = {"softhsm2": reference, "acme-hsm": acme}
    for profile in ("baseline-provider", "ca-root-key"):
        comparison = Comparison.of(documents, profile)
        # acme-hsm's cases are a subset of the reference's, with the same requirements
        assert {i for ids in comparison.rows.values() for i in ids} == {
            c["id"] for c in reference["cases"] if profile in c["required_by"]}
    assert len(Comparison.of(documents, "baseline-provider").rows) < len(
        Comparison.of(documents).rows)


def test_report_command_writes_matrix_with_links_and_heat_map(reference, acme, tmp_path):
    files = [dump(reference, tmp_path / "a.json"), dump(acme, tmp_path / "b.json")]
    out = tmp_path / "out"
    done = subprocess.run([*CLI, "report", *map(str, files), "-o", str(out)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("matrix.html", "matrix.md", "softhsm2/index.html", "acme-hsm/report.md"):
        assert (out / name).is_file(), name
    page = (out / "matrix.html").read_text()
    row = by_row(acme["cases"])
    anchor = next(r.anchor for r in row if r.label == PSS_ROW)
    assert f'href="acme-hsm/index.html#{anchor}"' in page
    assert f'id="{anchor}"' in (out / "acme-hsm" / "index.html").read_text()
    # the heat map is inline SVG with the numbers as text; the page fetches nothing
    svg = re.search(r'<svg class="heat".*?</svg>', page, re.S)
    assert svg and ">100%<" in svg.group(0) and "acme-hsm" in svg.group(0)
    for external in ("<script", "<link", " src=", "@import", "url("):
        assert external not in page, external
    for section in ("p-ca-root-key", "p-baseline-provider", "all"):
        assert f'id="{section}"' in page
    markdown = (out / "matrix.md").read_text()
    assert f"| {PSS_ROW} | [pass](softhsm2/index.html#{anchor}) | " \
           f"[fail (1 of 5)](acme-hsm/index.html#{anchor}) |" in markdown


def test_report_profile_option_filters_the_matrix(reference, acme, tmp_path):
    files = [dump(reference, tmp_path / "a.json"), dump(acme, tmp_path / "b.json")]
    done = subprocess.run([*CLI, "report", *map(str, files), "-o", str(tmp_path / "o"),
                           "--profile", "baseline-provider"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    markdown = (tmp_path / "o" / "matrix.md").read_text()
    assert "## Rows (required by baseline-provider)" in markdown
    assert "module · C_GetInterface" in markdown and PSS_ROW not in markdown
    page = (tmp_path / "o" / "matrix.html").read_text()
    assert 'id="p-baseline-provider"' in page and 'id="p-ca-root-key"' not in page
    done = subprocess.run([*CLI, "report", *map(str, files), "-o", str(tmp_path / "o"),
                           "--profile", "no-such-profile"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "no-such-profile" in done.stderr


def test_report_profile_option_with_one_results_file_shows_that_verdict_alone(reference,
                                                                             tmp_path):
    done = subprocess.run([*CLI, "report", str(REFERENCE), "-o", str(tmp_path),
                           "--profile", "ca-root-key"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr
    markdown = (tmp_path / "softhsm2" / "report.md").read_text()
    verdicts = markdown.split("## ", 2)[1]  # the first section: the verdicts
    assert "ca-root-key" in markdown and "baseline-provider" not in verdicts
    done = subprocess.run([*CLI, "report", str(REFERENCE), "-o", str(tmp_path),
                           "--profile", "no-such-profile"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 2 and "no-such-profile" in done.stderr


def test_mixed_suite_versions_are_refused_unless_allowed(reference, tmp_path):
    newer = variant(reference, "other-hsm")
    newer["run_info"]["suite"]["version"] = "9.9.9"
    files = [dump(reference, tmp_path / "old.json"), dump(newer, tmp_path / "new.json")]
    done = subprocess.run([*CLI, "report", *map(str, files), "-o", str(tmp_path / "o")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    for text in ("old.json", "new.json", reference["run_info"]["suite"]["version"], "9.9.9",
                 "--allow-mixed-versions"):
        assert text in lines[0], text
    assert not (tmp_path / "o").exists()
    done = subprocess.run([*CLI, "report", *map(str, files), "-o", str(tmp_path / "o"),
                           "--allow-mixed-versions"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert '<div class="banner">MIXED SUITE VERSIONS' in (tmp_path / "o" / "matrix.html"
                                                           ).read_text()
    assert "> **WARNING: MIXED SUITE VERSIONS" in (tmp_path / "o" / "matrix.md").read_text()


def test_two_runs_of_one_vendor_go_to_diff_not_matrix(reference, tmp_path):
    files = [dump(reference, tmp_path / "a.json"), dump(reference, tmp_path / "b.json")]
    done = subprocess.run([*CLI, "report", *map(str, files), "-o", str(tmp_path / "o")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "--diff" in done.stderr


def test_diff_of_two_runs(reference, tmp_path):
    old = copy.deepcopy(reference)
    old["run_info"]["mechanisms"] = ["CKM_AES_GCM", "CKM_SHA256"]
    baseline_xfails = {c["id"] for c in reference["cases"]
                       if "baseline-provider" in c["required_by"] and c["status"] == "XFAIL"}
    baseline_missing = {c["id"] for c in reference["cases"]
                        if "baseline-provider" in c["required_by"] and c["status"] == "MISSING"}
    regressed = next(c["id"] for c in reference["cases"] if c["status"] == "PASS")
    claimed = next(c["id"] for c in reference["cases"] if c["status"] == "SKIP"
                   and c["applicable"])

    def edit(case: dict[str, Any]) -> None:
        if case["id"] == regressed:
            fail(case, "C_Digest returned CKR_GENERAL_ERROR")
        elif case["id"] in baseline_xfails | baseline_missing or case["id"] == claimed:
            case.update(status="PASS", message="", known_deviation=None)

    new = variant(reference, "softhsm2", edit)
    new["run_info"]["vendor"] = reference["run_info"]["vendor"]
    new["run_info"]["mechanisms"] = ["CKM_AES_GCM", "CKM_SHA256", "CKM_SHA3_256"]
    files = [dump(old, tmp_path / "old.json"), dump(new, tmp_path / "new.json")]
    done = subprocess.run([*CLI, "report", "--diff", *map(str, files), "-o", str(tmp_path)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    markdown = (tmp_path / "diff.md").read_text()
    sections = dict(re.findall(r"^## ([^(\n]+?) \((\d+)\)$", markdown, re.M))
    assert sections == {"New failures": "1", "Fixes": str(len(baseline_xfails)),
                        "Newly claimed": str(1 + len(baseline_missing)),
                        "No longer claimed": "0",
                        "Other status changes": "0"}, sections
    assert f"`{regressed}` | PASS | FAIL | C_Digest returned CKR_GENERAL_ERROR |" in markdown
    assert f"`{claimed}` | SKIP | PASS |" in markdown
    assert "- newly advertised: CKM_SHA3_256" in markdown
    assert "| baseline-provider | NOT conformant | conformant |" in markdown
    assert "Newly claimed" in (tmp_path / "diff.html").read_text()

    # Results written before the mechanism list was recorded say so.
    older = copy.deepcopy(reference)
    older["run_info"].pop("mechanisms", None)
    dump(older, tmp_path / "older.json")
    subprocess.run([*CLI, "report", "--diff", str(tmp_path / "older.json"),
                    str(tmp_path / "new.json"), "-o", str(tmp_path / "d2")], check=True,
                   capture_output=True)
    assert "not recorded in OLD" in (tmp_path / "d2" / "diff.md").read_text()
    other = variant(reference, "someone-else")
    done = subprocess.run([*CLI, "report", "--diff", str(tmp_path / "old.json"),
                           str(dump(other, tmp_path / "x.json")), "-o", str(tmp_path / "d3")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "one vendor" in done.stderr


def test_markdown_fits_a_job_summary(reference, acme, tmp_path):
    """Plain tables under 1 MiB, even for many vendors (the matrix drops detail to fit)."""
    documents = [reference, acme] + [variant(acme, f"vendor-{n}") for n in range(10)]
    written = write_reports([dump(d, tmp_path / f"{n}.json") for n, d in enumerate(documents)],
                            tmp_path / "out")
    markdown = [p for p in written if p.suffix == ".md"]
    assert len(markdown) == len(documents) + 1
    for path in markdown:
        text = path.read_text()
        assert len(text.encode()) < MIB, path
        assert not re.search(r"<(table|div|details|svg|span|br)\b", text), path
        assert all(line.count("|") >= 2 for line in text.splitlines()
                   if line.startswith("|")), path


PNG = b"\x89PNG\r\n\x1a\n"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Chromium is needed to check the HTML reports in a real browser: "
                    "apt-get install chromium")
    return found


def browse(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", *args, page.as_uri()],
        capture_output=True, text=True, check=False, timeout=180)


def png_is_a_picture(path: Path, width: int, height: int) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG, path
    assert struct.unpack(">II", data[16:24]) == (width, height)
    idat, pos = b"", 8
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    pixels = zlib.decompress(idat)
    top = pixels[: len(pixels) // 4]  # the header band, tables and heat map are up there
    assert len(set(top)) > 50, "the screenshot is (nearly) one colour"


def test_html_reports_render_in_chromium(reference, acme, tmp_path):
    files = [dump(reference, tmp_path / "a.json"), dump(acme, tmp_path / "b.json")]
    out = tmp_path / "out"
    write_reports(files, out)
    failures = sum(c["status"] in ("FAIL", "ERROR", "CRASH", "TIMEOUT", "XPASS")
                   for c in acme["cases"])
    expected = {
        out / "matrix.html": ["PKCS#11 interoperability matrix", "acme-hsm", "softhsm2",
                              "Required cases passing on every vendor", "<svg",
                              "fail (1 of 5)", "known deviation"],
        out / "acme-hsm" / "index.html": ["PKCS#11 conformance: ACME-HSM", "Profile verdicts",
                                          "NOT conformant", f"Failures ({failures})",
                                          "Findings (", "Required but not claimed",
                                          "Known deviations", "Skipped, by reason",
                                          "Durations", "Results by area and mechanism"],
    }
    for page, texts in expected.items():
        done = browse(page, tmp_path / "chromium", "--dump-dom")
        assert done.returncode == 0, done.stderr[-2000:]
        for text in texts:
            assert text in done.stdout, f"{page.name}: {text!r} not in the rendered DOM"
        shot = tmp_path / f"{page.parent.name}-{page.stem}.png"
        done = browse(page, tmp_path / "chromium", f"--screenshot={shot}",
                      "--window-size=1280,2000")
        assert shot.is_file(), done.stderr[-2000:]
        png_is_a_picture(shot, 1280, 2000)


def test_allure_output_of_a_small_run(tmp_path):
    """Labels (vendor, profiles, area, subject), statuses that categories.json tells
    apart, module info as the environment; a crashed worker's case is there too."""
    profile = tmp_path / "digests.yaml"
    profile.write_text("schema: 1\nprofile: digests\ntitle: Digests\nsource: a test\n"
                       "required: {CKM_SHA384: {}, CKM_SHA256: {}}\n")
    (tmp_path / "test_crash.py").write_text("import os\n\ndef test_dies():\n    os.abort()\n")
    vendor = small_vendor(tmp_path, "")  # SHA-384 required, not claimed: MISSING
    allure = tmp_path / "allure"
    run = [sys.executable, "-m", "pytest", "--vendor", str(vendor), "--profile", str(profile),
           "-p", "no:cacheprovider", "-n", "2"]
    done = subprocess.run([*run, "-k", "digest", "--results", str(tmp_path / "r.json"),
                           "--alluredir", str(allure)],
                          capture_output=True, text=True, check=False, cwd=tmp_path)
    document = json.loads((tmp_path / "r.json").read_text())
    assert done.returncode == 1, done.stdout + done.stderr
    found = [json.loads(p.read_text()) for p in allure.glob("*-result.json")]
    assert len(found) == len(document["cases"])
    categories = json.loads((allure / "categories.json").read_text())
    names = {c["name"]: c for c in categories}
    assert {"Non-conformance (FAIL)", "Harness errors (ERROR)",
            "Required but not claimed (MISSING)",
            "Module crashes and hangs (CRASH, TIMEOUT)"} <= set(names)

    def category(result: dict[str, Any]) -> list[str]:
        message = (result.get("statusDetails") or {}).get("message", "")
        return [c["name"] for c in categories if result["status"] in c["matchedStatuses"]
                and re.fullmatch(c["messageRegex"], message)]

    cases = {c["id"].split("::", 1)[1]: c for c in document["cases"]}
    seen: Counter[str] = Counter()
    for result in found:
        case = cases[result["name"]]
        labels = [(x["name"], x["value"]) for x in result["labels"]]
        assert ("parentSuite", "small") in labels and ("feature", case["area"]) in labels
        assert ("story", subject(case)) in labels
        assert sorted(v for k, v in labels if k == "epic") == case["required_by"]
        status = {"PASS": "passed", "MISSING": "failed", "SKIP": "skipped"}[case["status"]]
        assert result["status"] == status, (result, case)
        if case["status"] == "MISSING":
            assert result["statusDetails"]["message"] == f"MISSING: {case['message']}"
            assert category(result) == ["Required but not claimed (MISSING)"]
            assert result["fullName"] and result["historyId"]
        seen[case["status"]] += 1
    assert seen["MISSING"] == 6 and seen["PASS"] and seen["SKIP"]
    assert sum(("epic", "digests") in [(x["name"], x["value"]) for x in r["labels"]]
               for r in found) == sum("digests" in c["required_by"] for c in cases.values())

    environment = (allure / "environment.properties").read_text()
    module = document["run_info"]["module"]
    assert f"module.library={module['manufacturer_id']} {module['library_description']}" \
           in environment
    assert "vendor=small (Small)" in environment and "suite=pkcs11-conformance" in environment
    assert "module.path=/usr/lib/softhsm/libsofthsm2.so" in environment
    # C_GetMechanismList is recorded, as spec names
    advertised = document["run_info"]["mechanisms"]
    assert "CKM_SHA256" in advertised and all(m.startswith("CKM_") for m in advertised)

    crashed = tmp_path / "crash"
    done = subprocess.run([*run, str(tmp_path / "test_crash.py"), "--results",
                           str(tmp_path / "r2.json"), "--alluredir", str(crashed)],
                          capture_output=True, text=True, check=False, cwd=tmp_path)
    [result] = [json.loads(p.read_text()) for p in crashed.glob("*-result.json")]
    assert result["status"] == "broken" and result["name"] == "test_dies", result
    assert category(result) == ["Module crashes and hangs (CRASH, TIMEOUT)"], result
