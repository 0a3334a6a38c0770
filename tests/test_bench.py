"""`pkcs11-conformance bench` on the SoftHSM2 reference: figures per operation, one session
and several in threads, and the reports that show them."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO

CLI = [sys.executable, "-m", "conformance.cli"]


def test_bench_measures_each_claimed_operation_and_the_reports_show_it(tmp_path):
    done = subprocess.run([*CLI, "bench", "--output", str(tmp_path), "--seconds", "0.05",
                           "--threads", "2", "-k", "SHA256"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    document = json.loads((tmp_path / "softhsm2" / "bench.json").read_text())
    results = document["results"]
    operations = {(r["mechanism"], r["operation"]) for r in results}
    # The reference claims these, so they are measured (SHA256 selects them with -k).
    assert {("CKM_SHA256", "digest"), ("CKM_SHA256_RSA_PKCS", "sign"),
            ("CKM_SHA256_RSA_PKCS", "verify"), ("CKM_SHA256_HMAC", "sign")} <= operations
    for result in results:
        assert "error" not in result, result
        for figures, sessions in ((result["single"], 1), (result["concurrent"], 2)):
            assert figures["sessions"] == sessions and figures["operations"] >= 3
            assert figures["ops_per_second"] > 0
            assert 0 < figures["p50_ms"] <= figures["p99_ms"]
    assert "[1/" in done.stderr  # the progress display
    # A conformance results file beside it: the vendor report gains a Performance section.
    (tmp_path / "softhsm2" / "results.json").write_text(
        (REPO / "reports" / "softhsm2" / "results.json").read_text())
    shown = subprocess.run([*CLI, "report", str(tmp_path / "softhsm2" / "results.json"),
                            "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    report = (tmp_path / "out" / "softhsm2" / "report.md").read_text()
    assert "## Performance" in report and "| CKM_SHA256 · digest |" in report
    assert 'id="performance"' in (tmp_path / "out" / "softhsm2" / "index.html").read_text()
    # With another vendor's results and bench beside them: the matrix compares the figures.
    other = tmp_path / "nss"
    other.mkdir()
    for name in ("results.json", "bench.json"):
        (other / name).write_text((REPO / "reports" / "nss" / name).read_text())
    shown = subprocess.run([*CLI, "report", str(tmp_path / "softhsm2" / "results.json"),
                            str(other / "results.json"), "-o", str(tmp_path / "out")],
                           capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    matrix = (tmp_path / "out" / "matrix.md").read_text()
    performance = matrix.split("## Performance (operations per second, one session)")[1]
    assert "| operation | softhsm2 | nss |" in performance
    assert "| CKM_SHA256 · digest |" in performance
