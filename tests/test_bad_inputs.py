"""A corpus of bad inputs across every subcommand: each is refused before any module is
loaded, with exit code 2 and one line naming the file, key or value, never a traceback.

The corpus runs in this process through cli.main (fast); a few entries run again through
the installed `pkcs11-conformance` command, all at once, to prove the real entry point.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import SOFTHSM2

from conformance import cli, results
from conformance.loading import MAX_FILE_BYTES, VENDOR_RESULTS, shape_problem

ENTRY = Path(sys.executable).with_name("pkcs11-conformance")
MODULE_FILE = str(Path(SOFTHSM2).resolve())  # as /proc/self/maps names it once loaded
PIN = "98765432"  # a PIN typed where a variable name belongs: never echoed

VENDOR = f"""\
schema: 1
vendor: acme-hsm
title: ACME HSM
module: {{path: {SOFTHSM2}}}
token: {{label: conformance, user_pin_env: ACME_PIN, provision: softhsm2}}
claims:
  CKM_SHA256: {{}}
  CKM_AES_KEY_GEN: {{key_sizes: [128, 256]}}
  CKM_RSA_PKCS_KEY_PAIR_GEN: {{key_sizes: [2048], public_exponents: [65537]}}
  CKM_SHA256_RSA_PKCS_PSS: {{key_sizes: [2048], salt_lengths: [32]}}
  CKM_AES_GCM: {{key_sizes: [128], tag_bits: [128]}}
"""
STANDING = VENDOR.replace(", provision: softhsm2", "")  # a token used as it is: PIN needed

PROFILE = """\
schema: 1
profile: tiny
title: Tiny
source: nowhere in particular
required:
  CKM_SHA256: {}
"""

CASE_XML = """<?xml version="1.0"?>
<PKCS11>
  <C_Initialize/>
  <C_Initialize rv="CKR_OK"/>
</PKCS11>
"""


def vendor(old: str, new: str, text: str = VENDOR) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def results_document(vendor_id: str = "acme-hsm") -> dict[str, Any]:
    """The smallest results document of this format that `report` renders."""
    return {
        "format": results.FORMAT,
        "run_info": {
            "suite": {"version": "0.1.0", "git_sha": None},
            "vendor": {"id": vendor_id, "title": "ACME HSM", "file": "acme-hsm.yaml",
                       "sha256": "0" * 64},
            "profiles": [],
            "module": {"path": "/opt/acme.so", "manufacturer_id": "ACME",
                       "library_description": "HSM", "library_version": "1.0",
                       "cryptoki_version": "2.40"},
            "token": {"label": "t", "manufacturer_id": "ACME", "model": "m",
                      "firmware_version": "1.0", "hardware_version": "1.0"},
            "bindings": {"python": "3"}, "host": {"platform": "Linux"},
            "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:01:00Z"},
        "summary": {"PASS": 1}, "verdicts": [], "findings": [],
        "cases": [{
            "id": "digest/test_digest.py::test_x[CKM_SHA256]",
            "nodeid": "conformance/suites/digest/test_digest.py::test_x[CKM_SHA256]",
            "area": "digest", "test": "test_x", "mechanisms": ["CKM_SHA256"],
            "functions": [], "objects": [], "parameters": {}, "requirement": "optional",
            "required_by": [], "status": "PASS", "expected_status": "PASS", "message": "",
            "applicable": True, "spec": "", "known_deviation": None, "duration": 0.1}],
    }


def edited(edit: Callable[[dict[str, Any]], Any], vendor_id: str = "acme-hsm") -> str:
    document = results_document(vendor_id)
    edit(document)
    return json.dumps(document)


GOOD_RESULTS = json.dumps(results_document())


@dataclass
class Bad:
    """One bad invocation: `argv` ({tmp} is the test's directory), the files it finds
    there, the environment it runs in, and what its one line must name."""

    what: str
    argv: list[str]
    names: tuple[str, ...]
    files: dict[str, str | bytes] = field(default_factory=dict)
    env: dict[str, str | None] = field(default_factory=dict)


def run_vendor(text: str, *names: str, env: dict[str, str | None] | None = None,
               what: str = "") -> Bad:
    return Bad(what, ["run", "{tmp}/acme-hsm.yaml"], ("acme-hsm.yaml", *names),
               {"acme-hsm.yaml": text}, env or {})


def report(text: str | bytes, *names: str, what: str = "") -> Bad:
    return Bad(what, ["report", "{tmp}/results.json", "-o", "{tmp}/out"],
               ("results.json", *names), {"results.json": text})


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = document
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value
    return edit


DEEP_YAML = "deep: " + "[" * 5000 + "]" * 5000 + "\n"
CORPUS: list[Bad] = [
    # ---- vendor files (run) ----
    run_vendor(vendor("title: ACME HSM", "title: ACME HSM\ntimeout_seconds: .nan"),
               "timeout_seconds", "nan", what="timeout NaN"),
    run_vendor(vendor("title: ACME HSM", "title: ACME HSM\ntimeout_seconds: .inf"),
               "timeout_seconds", "inf", what="timeout infinite"),
    run_vendor(vendor("title: ACME HSM", "title: ACME HSM\ntimeout_seconds: 1.0e+300"),
               "timeout_seconds", "1e+300", what="timeout 1e300"),
    run_vendor(vendor("title: ACME HSM", "title: ACME HSM\ntimeout_seconds: -5"),
               "timeout_seconds", "-5", what="timeout negative"),
    run_vendor(vendor("title: ACME HSM", "title: ACME HSM\ntimeout_seconds: 0"),
               "timeout_seconds", "got 0", what="timeout zero"),
    run_vendor(vendor("title: ACME HSM", "title: ACME HSM\ntimeout_seconds: soon"),
               "timeout_seconds", "'soon'", what="timeout a word"),
    run_vendor(vendor("key_sizes: [2048]", "key_sizes: [1000000000000000000000000000000]"),
               "claims.CKM_RSA_PKCS_KEY_PAIR_GEN.key_sizes[0]", "100 bits",
               what="key size 10**30"),
    run_vendor(vendor("key_sizes: [2048]", "key_sizes: [65536]"),
               "claims.CKM_RSA_PKCS_KEY_PAIR_GEN.key_sizes[0]", "65536",
               what="RSA modulus too large"),
    run_vendor(vendor("key_sizes: [128, 256]", "key_sizes: [128, 100]"),
               "claims.CKM_AES_KEY_GEN.key_sizes[1]", "100", what="AES key size"),
    run_vendor(vendor("key_sizes: [2048]", "key_sizes: [-2048]"),
               "claims.CKM_RSA_PKCS_KEY_PAIR_GEN.key_sizes[0]", "-2048",
               what="negative key size"),
    run_vendor(vendor("tag_bits: [128]", "tag_bits: [256]"),
               "claims.CKM_AES_GCM.tag_bits[0]", "256", what="GCM tag too long"),
    run_vendor(vendor("salt_lengths: [32]", "salt_lengths: [99999999999]"),
               "claims.CKM_SHA256_RSA_PKCS_PSS.salt_lengths[0]", "99999999999",
               what="PSS salt too long"),
    run_vendor(vendor("public_exponents: [65537]", "public_exponents: [65536]"),
               "public_exponents[0]", "65536", what="even public exponent"),
    run_vendor(vendor("key_sizes: [2048]", "key_sizes: [2048.5]"),
               "key_sizes[0]", "a number", what="fractional key size"),
    run_vendor(vendor("title: ACME HSM", "title: ACME HSM\nkeys: {reinitialize_every: 0}"),
               "keys.reinitialize_every", "got 0", what="reinitialize every 0"),
    run_vendor(vendor("title: ACME HSM",
                      "title: ACME HSM\nkeys: {reinitialize_every: 1000000000000}"),
               "keys.reinitialize_every", "1000000000000", what="reinitialize huge"),
    run_vendor(vendor("title: ACME HSM", "title: ACME HSM\nkeys: {reinitialize_every: yes}"),
               "keys.reinitialize_every", "True", what="reinitialize a boolean"),
    run_vendor(vendor("claims:\n", DEEP_YAML + "claims:\n"), "nested deeper than",
               what="deeply nested flow YAML"),
    run_vendor(vendor("claims:\n", "deep:\n" + "".join("  " * i + f"k{i}:\n"
                                                       for i in range(40)) + "claims:\n"),
               "line 39:", "nested deeper than", what="deeply nested block YAML"),
    run_vendor(VENDOR + "# " + "x" * MAX_FILE_BYTES + "\n", "larger than",
               what="file too large"),
    run_vendor(vendor("title: ACME HSM", "title: ACME HSM\ntimeout_seconds: " + "9" * 5000),
               "not valid YAML", what="endless integer"),
    run_vendor(vendor("claims:\n", "claims: [\n"), "not valid YAML: line",
               what="broken YAML"),
    run_vendor("- a\n- list\n", "expected a mapping", what="top level a list"),
    run_vendor(vendor("title: ACME HSM", "title: ACME HSM\ntitle: Again"),
               "duplicate key 'title'", what="duplicate key"),
    run_vendor("{[1]: 2}\n", "a key must be a plain value", what="a list as a key"),
    run_vendor(vendor("provision: softhsm2", "provision: {kind: softhsm2}"), "token.provision",
               "unknown provisioner {'kind': 'softhsm2'}", what="provision a mapping"),
    run_vendor(VENDOR + "known_deviations: {}\n", "known_deviations", "expected a list",
               what="known deviations an empty mapping"),
    run_vendor(VENDOR + "keys: []\n", "keys", "expected a mapping", what="keys an empty list"),
    run_vendor(VENDOR + "profiles: ''\n", "profiles", "expected a list",
               what="profiles an empty string"),
    run_vendor(vendor("title: ACME HSM", "title: ACME HSM\ncolour: red"), "colour",
               "unknown key", what="unknown key"),
    run_vendor(vendor("vendor: acme-hsm", "vendor: other-hsm"), "vendor", "'other-hsm'",
               what="id differs from the file name"),
    run_vendor(vendor("CKM_SHA256: {}", "CKM_SHA265: {}"), "claims.CKM_SHA265",
               what="unknown mechanism"),
    run_vendor(vendor("user_pin_env: ACME_PIN", f"user_pin_env: '{PIN}'"),
               "token.user_pin_env", "not an environment variable name",
               what="PIN typed into user_pin_env"),
    run_vendor(vendor(SOFTHSM2, '"${NO_SUCH_VARIABLE_17}/lib.so"'), "module.path",
               "NO_SUCH_VARIABLE_17", env={"NO_SUCH_VARIABLE_17": None},
               what="unset variable in module.path"),
    run_vendor(vendor(SOFTHSM2, "/nonexistent/acme.so"), "module.path",
               "/nonexistent/acme.so", what="module file missing"),
    run_vendor(STANDING, "token.user_pin_env", "ACME_PIN", "is empty",
               env={"ACME_PIN": ""}, what="empty PIN variable"),
    run_vendor(STANDING, "token.user_pin_env", "ACME_PIN", "is not set",
               env={"ACME_PIN": None}, what="unset PIN variable"),
    run_vendor(b"schema: 1\nvendor: \xff\xfe\n", "cannot read", what="not UTF-8"),
    Bad("vendor file with another suffix", ["run", "{tmp}/acme-hsm.yml.txt"],
        ("acme-hsm.yml.txt", "not a YAML file"), {"acme-hsm.yml.txt": VENDOR}),
    Bad("vendor file missing", ["run", "{tmp}/nothing-here.yaml"],
        ("nothing-here.yaml", "file not found")),
    Bad("vendor file without a suffix, missing", ["run", "{tmp}/acme"],
        ("acme", "not a YAML file")),
    Bad("--output an existing file", ["run", "{tmp}/acme-hsm.yaml", "--output", "{tmp}/f"],
        ("--output", "f'", "existing file"), {"acme-hsm.yaml": VENDOR, "f": "x"}),
    Bad("--output under a file", ["run", "{tmp}/acme-hsm.yaml", "--output", "{tmp}/f/sub"],
        ("--output", "f/sub", "not a writable directory"), {"acme-hsm.yaml": VENDOR, "f": ""}),
    Bad("--module missing", ["run", "{tmp}/acme-hsm.yaml", "--module", "/nonexistent.so"],
        ("--module", "/nonexistent.so"), {"acme-hsm.yaml": VENDOR}),
    Bad("--profile unknown", ["run", "{tmp}/acme-hsm.yaml", "--profile", "nope"],
        ("--profile", "'nope'"), {"acme-hsm.yaml": VENDOR}),
    Bad("--profile file broken", ["run", "{tmp}/acme-hsm.yaml", "--profile", "{tmp}/tiny.yaml"],
        ("tiny.yaml", "required.CKM_SHA1024"),
        {"acme-hsm.yaml": VENDOR, "tiny.yaml": PROFILE.replace("CKM_SHA256", "CKM_SHA1024")}),
    Bad("profile key size out of range",
        ["run", "{tmp}/acme-hsm.yaml", "--profile", "{tmp}/tiny.yaml"],
        ("tiny.yaml", "required.CKM_AES_KEY_GEN.key_sizes[0]", "512"),
        {"acme-hsm.yaml": VENDOR,
         "tiny.yaml": PROFILE.replace("CKM_SHA256: {}", "CKM_AES_KEY_GEN: {key_sizes: [512]}")}),
    Bad("profile deeply nested", ["run", "{tmp}/acme-hsm.yaml", "--profile", "{tmp}/tiny.yaml"],
        ("tiny.yaml", "nested deeper than"),
        {"acme-hsm.yaml": VENDOR, "tiny.yaml": PROFILE + DEEP_YAML}),
    Bad("unknown option of ours", ["run", "--profile"], ("--profile", "expected one argument")),
    # ---- replay ----
    Bad("case file missing", ["replay", "--case", "{tmp}/nothing.xml"],
        ("nothing.xml", "not a readable XML file")),
    Bad("case file not XML", ["replay", "--case", "{tmp}/case.xml"],
        ("case.xml", "not a readable XML file"), {"case.xml": "<PKCS11><C_Initialize>"}),
    Bad("case file with another root", ["replay", "--case", "{tmp}/case.xml"],
        ("case.xml", "<Other>"), {"case.xml": "<Other/>"}),
    Bad("case file with a request but no response", ["replay", "--case", "{tmp}/case.xml"],
        ("case.xml", "1 call elements"),
        {"case.xml": "<PKCS11><C_Initialize/></PKCS11>"}),
    Bad("replay vendor file with another suffix",
        ["replay", "{tmp}/acme-hsm.txt", "--case", "{tmp}/case.xml"],
        ("acme-hsm.txt", "not a YAML file"), {"acme-hsm.txt": VENDOR, "case.xml": CASE_XML}),
    Bad("replay --output an existing file",
        ["replay", "{tmp}/acme-hsm.yaml", "--case", "{tmp}/case.xml", "--output", "{tmp}/f"],
        ("--output", "existing file"),
        {"acme-hsm.yaml": VENDOR, "case.xml": CASE_XML, "f": ""}),
    # ---- interop ----
    Bad("interop vendor file missing", ["interop", "{tmp}/nothing.yaml"],
        ("nothing.yaml", "file not found")),
    Bad("interop vendor file with another suffix", ["interop", "{tmp}/acme-hsm.yaml.bak"],
        ("acme-hsm.yaml.bak", "not a YAML file"), {"acme-hsm.yaml.bak": VENDOR}),
    Bad("interop with an empty PIN", ["interop", "{tmp}/acme-hsm.yaml"],
        ("acme-hsm.yaml", "ACME_PIN", "is empty"), {"acme-hsm.yaml": STANDING},
        {"ACME_PIN": ""}),
    Bad("interop --output an existing file",
        ["interop", "{tmp}/acme-hsm.yaml", "--output", "{tmp}/f"],
        ("--output", "existing file"), {"acme-hsm.yaml": VENDOR, "f": ""}),
    Bad("interop with no vendor", ["interop"], ("interop", "required")),
    # ---- bench ----
    *(Bad(f"bench --seconds {value}", ["bench", "--seconds", value], ("--seconds", value))
      for value in ("nan", "inf", "-1", "0", "1e9", "soon")),
    *(Bad(f"bench --threads {value}", ["bench", "--threads", value], ("--threads", value))
      for value in ("0", "-3", "1e3", "100000", "two")),
    Bad("bench --output an existing file", ["bench", "{tmp}/acme-hsm.yaml", "--output",
                                            "{tmp}/f"],
        ("--output", "not a writable directory"), {"acme-hsm.yaml": VENDOR, "f": ""}),
    Bad("bench vendor timeout NaN", ["bench", "{tmp}/acme-hsm.yaml"],
        ("acme-hsm.yaml", "timeout_seconds", "nan"),
        {"acme-hsm.yaml": vendor("title: ACME HSM", "title: ACME HSM\ntimeout_seconds: .nan")}),
    Bad("bench with an unset PIN", ["bench", "{tmp}/acme-hsm.yaml"],
        ("acme-hsm.yaml", "ACME_PIN", "is not set"), {"acme-hsm.yaml": STANDING},
        {"ACME_PIN": None}),
    # ---- clean ----
    Bad("clean vendor file missing", ["clean", "{tmp}/nothing.yaml"],
        ("nothing.yaml", "file not found")),
    Bad("clean vendor file with another suffix", ["clean", "{tmp}/acme-hsm.yml.txt"],
        ("acme-hsm.yml.txt", "not a YAML file"), {"acme-hsm.yml.txt": STANDING}),
    Bad("clean with an empty PIN", ["clean", "{tmp}/acme-hsm.yaml"],
        ("acme-hsm.yaml", "ACME_PIN", "is empty"), {"acme-hsm.yaml": STANDING},
        {"ACME_PIN": ""}),
    Bad("clean --module missing", ["clean", "{tmp}/acme-hsm.yaml", "--module", "/none.so"],
        ("--module", "/none.so"), {"acme-hsm.yaml": STANDING}),
    # ---- probe ----
    Bad("probe without a module", ["probe"], ("--module", "give the module")),
    Bad("probe a missing module", ["probe", "--module", "/nonexistent/acme.so"],
        ("--module", "/nonexistent/acme.so")),
    Bad("probe slot-id beyond CK_ULONG",
        ["probe", "--module", SOFTHSM2, "--token", "pkcs11:slot-id=99999999999999999999999"],
        ("--token", "slot-id", "99999999999999999999999")),
    Bad("probe slot-id not ASCII digits",
        ["probe", "--module", SOFTHSM2, "--token", "pkcs11:slot-id=\u00b2"],
        ("--token", "slot-id", "\u00b2")),
    Bad("probe library-version beyond a byte",
        ["probe", "--module", SOFTHSM2, "--token", "pkcs11:library-version=300.1"],
        ("--token", "library-version", "300.1")),
    Bad("probe URI with a PIN", ["probe", "--module", SOFTHSM2, "--token",
                                 f"pkcs11:token=x?pin-value={PIN}"],
        ("--token", "pin-value is refused")),
    Bad("probe URI with a broken escape",
        ["probe", "--module", SOFTHSM2, "--token", "pkcs11:token=%zz"],
        ("--token", "token", "%zz")),
    Bad("probe -o an existing file", ["probe", "--module", SOFTHSM2, "-o",
                                      "{tmp}/acme-hsm.yaml"],
        ("-o", "acme-hsm.yaml", "exists"), {"acme-hsm.yaml": VENDOR}),
    Bad("probe -o not a vendor id", ["probe", "--module", SOFTHSM2, "-o", "{tmp}/Acme_HSM.yaml"],
        ("-o", "Acme_HSM.yaml", "kebab-case")),
    Bad("probe -o in a missing directory",
        ["probe", "--module", SOFTHSM2, "-o", "{tmp}/no/acme-hsm.yaml"],
        ("-o", "does not exist")),
    # ---- modules, explain, the command itself ----
    Bad("modules with an argument", ["modules", "extra"], ("unrecognized arguments", "extra")),
    Bad("modules with an unknown option", ["modules", "--all"],
        ("unrecognized arguments", "--all")),
    Bad("explain an unknown test", ["explain", "test_nope_nothing"],
        ("explain", "test_nope_nothing")),
    Bad("explain a missing suite file", ["explain", "sign/test_nope.py::test_x"],
        ("explain", "sign/test_nope.py")),
    Bad("explain not a test id", ["explain", "::["], ("explain", "'::['")),
    Bad("explain an endless id", ["explain", "x" * 5000], ("explain", "5000 characters")),
    Bad("no subcommand", [], ("required",)),
    Bad("unknown subcommand", ["frobnicate"], ("invalid choice", "frobnicate")),
    # ---- results files (report) ----
    report("{not json", "cannot read results", what="not JSON"),
    report(b"\xff\xfe{}", "cannot read results", what="not UTF-8 JSON"),
    report("[1, 2, 3]", "not a pkcs11-conformance results file", what="a JSON list"),
    report(edited(_set("format", 1)), "format 2", "format 1", what="an older format"),
    report(edited(_set("format", KeyError)), "format 2", what="no format"),
    report(edited(_set("run_info.vendor.id", "../../..")), "run_info.vendor.id", "'../../..'",
           what="vendor id climbing out of -o"),
    report(edited(_set("run_info.vendor.id", "/tmp/elsewhere")), "run_info.vendor.id",
           "'/tmp/elsewhere'", what="vendor id an absolute path"),
    report(edited(_set("run_info.vendor.id", 17)), "run_info.vendor.id", "17",
           what="vendor id a number"),
    report(edited(_set("run_info", [])), "run_info", "expected an object",
           what="run_info a list"),
    report(edited(_set("cases", {})), "cases", "expected a list", what="cases an object"),
    report(edited(_set("cases.0.status", KeyError)), "cases[0].status", "missing",
           what="a case without status"),
    report(edited(_set("cases.0.duration", "slow")), "cases[0].duration", "a string",
           what="a case duration a string"),
    report(edited(_set("verdicts", [{"profile": "p", "title": "t", "status": "great",
                                     "required_cases": 1, "passed": 1, "unchecked": [],
                                     "failing": []}])),
           "verdicts[0].status", "'great'", what="an unknown verdict"),
    report(edited(_set("summary", {"PASS": "many"})), "summary.PASS", "a string",
           what="a summary count a string"),
    report(edited(_set("findings", [{"rule": "r"}])), "findings[0]", "missing",
           what="a finding without its fields"),
    report(edited(_set("run_info.profiles", [{"id": "../x", "title": "t", "sha256": "0"}])),
           "run_info.profiles[0].id", what="a profile id climbing out"),
    report(edited(_set("verdicts", [{"profile": "p", "title": "t", "status": "met",
                                     "required_cases": 1, "passed": 1, "unchecked": [],
                                     "failing": [], "missing": None}])),
           "verdicts[0].missing", "null", what="a verdict's missing list null"),
    report(edited(_set("run_info.mechanisms", [0])), "run_info.mechanisms[0]", "an integer",
           what="an advertised mechanism a number"),
    report(edited(_set("findings", KeyError)), "findings", "missing", what="no findings"),
    report("[" * 100000 + "]" * 100000, "nested too deeply", what="deeply nested JSON"),
    report('{"format": ' + "9" * 5000 + "}", "cannot read results", what="endless number"),
    Bad("bench.json beside the results not JSON",
        ["report", "{tmp}/results.json", "-o", "{tmp}/out"],
        ("bench.json", "not a readable JSON file"),
        {"results.json": GOOD_RESULTS, "bench.json": "{"}),
    Bad("bench.json beside the results of the wrong shape",
        ["report", "{tmp}/results.json", "-o", "{tmp}/out"],
        ("bench.json", "run_info"),
        {"results.json": GOOD_RESULTS,
         "bench.json": json.dumps({"format": "pkcs11-conformance-bench/1", "run_info": []})}),
    Bad("report a missing file", ["report", "{tmp}/nothing.json"],
        ("nothing.json", "cannot read results")),
    Bad("report a directory", ["report", "{tmp}"], ("cannot read results",)),
    Bad("report -o an existing file", ["report", "{tmp}/results.json", "-o", "{tmp}/f"],
        ("-o", "existing file"), {"results.json": GOOD_RESULTS, "f": ""}),
    Bad("report two files of one vendor",
        ["report", "{tmp}/a.json", "{tmp}/b.json", "-o", "{tmp}/out"],
        ("two results files for vendor acme-hsm",), {"a.json": GOOD_RESULTS,
                                                     "b.json": GOOD_RESULTS}),
    Bad("report --profile not judged",
        ["report", "{tmp}/results.json", "--profile", "nope", "-o", "{tmp}/out"],
        ("--profile nope",), {"results.json": GOOD_RESULTS}),
    Bad("report --diff with one file", ["report", "--diff", "{tmp}/results.json"],
        ("--diff takes two results files",), {"results.json": GOOD_RESULTS}),
    Bad("report --diff of two vendors",
        ["report", "--diff", "{tmp}/a.json", "{tmp}/b.json", "-o", "{tmp}/out"],
        ("a.json is acme-hsm", "b.json is other-hsm"),
        {"a.json": GOOD_RESULTS, "b.json": json.dumps(results_document("other-hsm"))}),
    Bad("report --diff with a bad new file",
        ["report", "--diff", "{tmp}/a.json", "{tmp}/b.json", "-o", "{tmp}/out"],
        ("b.json", "cases[0].applicable"),
        {"a.json": GOOD_RESULTS, "b.json": edited(_set("cases.0.applicable", "yes"))}),
    Bad("report --diff -o an existing file",
        ["report", "--diff", "{tmp}/a.json", "{tmp}/b.json", "-o", "{tmp}/a.json"],
        ("-o", "existing file"), {"a.json": GOOD_RESULTS, "b.json": GOOD_RESULTS}),
]


def prepare(bad: Bad, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    for name, content in bad.files.items():
        path = tmp / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    monkeypatch.setenv("ACME_PIN", "1234")
    for name, value in bad.env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    return [arg.replace("{tmp}", str(tmp)) for arg in bad.argv]


def mapped() -> set[str]:
    """The files mapped into this process (a loaded PKCS#11 module is one of them)."""
    return {line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines()
            if "/" in line}


def check(bad: Bad, code: int | None, stderr: str, tmp: Path) -> None:
    assert code == 2, f"{bad.what}: exit {code}: {stderr}"
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"{bad.what}: not one line:\n{stderr}"
    line = lines[0]
    assert line.startswith("pkcs11-conformance"), line
    for name in bad.names:
        assert name.replace("{tmp}", str(tmp)) in line, f"{bad.what}: {name!r} not in {line!r}"
    assert PIN not in line, f"{bad.what}: the PIN is echoed: {line}"


def test_the_corpus_is_large_and_distinct():
    assert len(CORPUS) >= 60
    assert len({b.what for b in CORPUS}) == len(CORPUS)
    assert len({(tuple(b.argv), repr(b.files), repr(b.env)) for b in CORPUS}) == len(CORPUS)
    covered = {b.argv[0] if b.argv else "" for b in CORPUS}
    assert {"run", "report", "bench", "probe", "modules", "clean", "explain", "replay",
            "interop"} <= covered
    assert any("--diff" in b.argv for b in CORPUS)


@pytest.mark.parametrize("bad", CORPUS, ids=lambda b: b.what)
def test_bad_input_is_one_line_and_exit_2(bad, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = prepare(bad, tmp_path, monkeypatch)
    before = mapped()
    try:
        code: int | None = cli.main(argv)
    except SystemExit as exit_:  # argparse's own exit
        code = int(exit_.code) if exit_.code is not None else 0
    check(bad, code, capsys.readouterr().err, tmp_path)
    assert MODULE_FILE not in mapped() - before, f"{bad.what}: the module was loaded"
    written = {p.name for p in tmp_path.rglob("*")} - set(bad.files)
    assert not written - {"out"}, f"{bad.what}: wrote {written}"
    if (tmp_path / "out").exists():
        assert not any((tmp_path / "out").iterdir()), f"{bad.what}: wrote into -o"


def test_the_smallest_results_document_is_rendered(tmp_path):
    """The corpus's results files differ from a good one only in what each breaks."""
    assert shape_problem(results_document(), VENDOR_RESULTS) is None
    path = tmp_path / "results.json"
    path.write_text(GOOD_RESULTS)
    assert cli.main(["report", str(path), "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "acme-hsm" / "index.html").exists()


# One of each subcommand through the installed command (a process of its own each, run
# at once): what the corpus proves in-process holds for the real entry point.
THROUGH_THE_COMMAND = ("timeout NaN", "key size 10**30", "deeply nested flow YAML",
                       "vendor file with another suffix", "PIN typed into user_pin_env",
                       "case file with another root", "interop vendor file missing",
                       "bench --seconds nan", "bench --threads 0", "clean with an empty PIN",
                       "probe slot-id beyond CK_ULONG", "modules with an argument",
                       "explain not a test id", "vendor id climbing out of -o",
                       "a JSON list", "report --diff of two vendors")


def test_the_installed_command_refuses_them_too(tmp_path, monkeypatch):
    chosen = [b for b in CORPUS if b.what in THROUGH_THE_COMMAND]
    assert len(chosen) == len(THROUGH_THE_COMMAND)
    running = []
    for index, bad in enumerate(chosen):
        tmp = tmp_path / str(index)
        tmp.mkdir()
        with monkeypatch.context() as patch:
            argv = prepare(bad, tmp, patch)
            running.append((bad, tmp, subprocess.Popen(
                [str(ENTRY), *argv], cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True)))
    for bad, tmp, process in running:
        _, stderr = process.communicate(timeout=120)
        check(bad, process.returncode, stderr, tmp)


def test_a_vendor_id_climbing_out_of_the_output_writes_nowhere(tmp_path):
    """The id is refused before anything is written: not under -o, not above it."""
    path = tmp_path / "results.json"
    path.write_text(edited(_set("run_info.vendor.id", "../../..")))
    before = sorted(tmp_path.rglob("*"))
    assert cli.main(["report", str(path), "-o", str(tmp_path / "a" / "b" / "out")]) == 2
    assert sorted(tmp_path.rglob("*")) == before


def test_debug_adds_the_traceback_to_the_same_line(tmp_path, capsys):
    argv = ["run", str(tmp_path / "acme-hsm.yml.txt")]
    assert cli.main(argv) == 2
    line = capsys.readouterr().err
    assert cli.main(["--debug", *argv]) == 2
    shown = capsys.readouterr().err
    assert "Traceback" in shown and shown.endswith(line) and "Traceback" not in line
