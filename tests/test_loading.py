"""Vendor and profile files: every mistake is one line naming the file, key and problem."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO

from conformance.loading import ConfigError, load_profile, load_vendor, resolve_profile

GOOD_VENDOR = """\
schema: 1
vendor: acme-hsm
title: ACME HSM
module: {path: /usr/lib/softhsm/libsofthsm2.so, expect_library_version: "2.6"}
token: {label: conformance, user_pin_env: PKCS11_USER_PIN, provision: softhsm2}
profiles: [ca-root-key]
functions: [C_GetInfo]
claims:
  CKM_SHA256: {}
  CKM_RSA_PKCS_KEY_PAIR_GEN: {key_sizes: [2048, 3072]}
known_deviations:
  - {test: "digest/*", url: "https://example.org/bug/1", reason: "a reason",
     observed: {code: CKR_GENERAL_ERROR}}
"""

# (what is wrong, text replaced in GOOD_VENDOR -> new text, key named, problem named)
VENDOR_MISTAKES = [
    ("unknown mechanism", "CKM_SHA256: {}", "CKM_SHA265: {}", "claims.CKM_SHA265",
     "unknown mechanism (did you mean CKM_SHA256?)"),
    ("unknown top-level key", "title: ACME HSM", "title: ACME HSM\ncolour: red", "colour",
     "unknown key"),
    ("missing required key", "title: ACME HSM\n", "", "title", "missing required key"),
    ("id differs from file stem", "vendor: acme-hsm", "vendor: other-hsm", "vendor",
     "differs from the file name"),
    ("id not kebab-case", "vendor: acme-hsm", "vendor: Acme_HSM", "vendor",
     "not a kebab-case id"),
    ("wrong schema", "schema: 1", "schema: 2", "schema", "unsupported schema"),
    ("missing module file", "/usr/lib/softhsm/libsofthsm2.so", "/nonexistent/lib.so",
     "module.path", "does not exist"),
    ("unset variable in module path", "/usr/lib/softhsm/libsofthsm2.so",
     '"${NO_SUCH_VARIABLE_X}/lib.so"', "module.path", "NO_SUCH_VARIABLE_X is not set"),
    ("deviation without url", 'url: "https://example.org/bug/1", ', "", "known_deviations[0].url",
     "missing required key"),
    ("deviation url not a link", "https://example.org/bug/1", "see the bug tracker",
     "known_deviations[0].url", "is not a link"),
    ("deviation linking a source file", "https://example.org/bug/1",
     "https://github.com/softhsm/SoftHSMv2/blob/develop/src/lib/SoftHSM.cpp",
     "known_deviations[0].url", "links source code or a repository"),
    ("deviation linking a repository tree", "https://example.org/bug/1",
     "https://github.com/opencryptoki/opencryptoki/tree/v3.8.1", "known_deviations[0].url",
     "links source code or a repository"),
    ("deviation without an observation", ",\n     observed: {code: CKR_GENERAL_ERROR}", "",
     "known_deviations[0].observed", "missing required key"),
    ("observation of an unknown code", "CKR_GENERAL_ERROR}", "CKR_GENERAL_EROR}",
     "known_deviations[0].observed.code", "unknown return value 'CKR_GENERAL_EROR'"),
    ("observation of both code and message", "{code: CKR_GENERAL_ERROR}",
     "{code: CKR_GENERAL_ERROR, message: x}", "known_deviations[0].observed",
     "exactly one of code"),
    ("observation pattern not a regular expression", "{code: CKR_GENERAL_ERROR}",
     "{message: '(unclosed'}", "known_deviations[0].observed.message",
     "is not a regular expression"),
    ("deviation pattern list empty", 'test: "digest/*"', "test: []",
     "known_deviations[0].test", "must not be an empty list"),
    ("deviation pattern not a string", 'test: "digest/*"', "test: [digest/x, 3]",
     "known_deviations[0].test[1]", "expected a string"),
    ("key sizes not a list", "{key_sizes: [2048, 3072]}", "{key_sizes: 2048}",
     "claims.CKM_RSA_PKCS_KEY_PAIR_GEN.key_sizes", "expected a list"),
    ("key size of wrong type", "[2048, 3072]", "[2048, big]",
     "claims.CKM_RSA_PKCS_KEY_PAIR_GEN.key_sizes[1]", "expected an integer, got a string"),
    ("unknown claim parameter", "{key_sizes: [2048, 3072]}", "{modulus: [2048]}",
     "claims.CKM_RSA_PKCS_KEY_PAIR_GEN.modulus", "unknown parameter"),
    ("unknown curve", "CKM_SHA256: {}", "CKM_ECDSA: {curves: [p256]}",
     "claims.CKM_ECDSA.curves[0]", "unknown value 'p256'"),
    ("duplicate value", "[2048, 3072]", "[2048, 2048]",
     "claims.CKM_RSA_PKCS_KEY_PAIR_GEN.key_sizes", "lists a value twice"),
    ("unknown function", "[C_GetInfo]", "[C_GetInfos]", "functions[0]",
     "unknown function 'C_GetInfos' (did you mean C_GetInfo?)"),
    ("unknown profile", "[ca-root-key]", "[ca-root]", "profiles[0]", "unknown profile 'ca-root'"),
    ("unknown provisioner", "provision: softhsm2", "provision: yes-please", "token.provision",
     "unknown provisioner"),
    ("PIN given instead of a variable name", "user_pin_env: PKCS11_USER_PIN",
     "user_pin_env: '1234 5678'", "token.user_pin_env", "is not an environment variable name"),
    ("version not quoted", 'expect_library_version: "2.6"', "expect_library_version: 2.6",
     "module.expect_library_version", "expected a quoted version string"),
    ("timeout not a number", "title: ACME HSM", "title: ACME HSM\ntimeout_seconds: soon",
     "timeout_seconds", "expected a positive number of seconds"),
    ("token-only keys on a standing token", ", provision: softhsm2}",
     "}\nkeys: {token_objects: true}", "keys.token_objects", "need a throwaway token"),
    ("re-initialization interval not a count", "title: ACME HSM",
     "title: ACME HSM\nkeys: {reinitialize_every: 0}", "keys.reinitialize_every",
     "expected a positive number of tests"),
    ("unknown key policy", "title: ACME HSM", "title: ACME HSM\nkeys: {session: false}",
     "keys.session", "unknown key"),
    ("duplicate key", "title: ACME HSM", "title: ACME HSM\ntitle: Again", "",
     "duplicate key 'title'"),
    ("broken YAML", "claims:\n", "claims: [\n", "", "not valid YAML: line"),
    ("not a mapping", GOOD_VENDOR, "- just\n- a list\n", "", "expected a mapping"),
    ("claims not a mapping",
     "  CKM_SHA256: {}\n  CKM_RSA_PKCS_KEY_PAIR_GEN: {key_sizes: [2048, 3072]}\n",
     "  - CKM_SHA256\n", "claims", "expected a mapping, got a list"),
    # Ranges: impossible values are refused here, not blamed on the module later.
    ("timeout not a number (NaN)", "title: ACME HSM", "title: ACME HSM\ntimeout_seconds: .nan",
     "timeout_seconds", "got nan"),
    ("timeout infinite", "title: ACME HSM", "title: ACME HSM\ntimeout_seconds: .inf",
     "timeout_seconds", "got inf"),
    ("timeout beyond a day", "title: ACME HSM", "title: ACME HSM\ntimeout_seconds: 1.0e+300",
     "timeout_seconds", "up to 86400, got 1e+300"),
    ("key size beyond CK_ULONG", "[2048, 3072]", "[2048, 1000000000000000000000000000000]",
     "claims.CKM_RSA_PKCS_KEY_PAIR_GEN.key_sizes[1]", "got an integer of 100 bits"),
    ("AES key size not an AES key size", "CKM_SHA256: {}", "CKM_AES_ECB: {key_sizes: [64]}",
     "claims.CKM_AES_ECB.key_sizes[0]", "one of 128, 192, 256 bits"),
    ("GCM tag longer than 128 bits", "CKM_SHA256: {}", "CKM_AES_GCM: {tag_bits: [129]}",
     "claims.CKM_AES_GCM.tag_bits[0]", "between 1 and 128, got 129"),
    ("even public exponent", "[2048, 3072]}", "[2048, 3072], public_exponents: [4]}",
     "claims.CKM_RSA_PKCS_KEY_PAIR_GEN.public_exponents[0]", "is even"),
    ("re-initialization interval endless", "title: ACME HSM",
     "title: ACME HSM\nkeys: {reinitialize_every: 99999999999}", "keys.reinitialize_every",
     "up to 1000000, got 99999999999"),
    ("nesting deeper than the bound", "claims:\n", "x: " + "[" * 200 + "]" * 200 + "\nclaims:\n",
     "", "nested deeper than 32 levels"),
    ("a number too long to read", "title: ACME HSM", "title: ACME HSM\ntimeout_seconds: "
     + "1" * 4500, "", "not valid YAML"),
]


@pytest.mark.parametrize(("old", "new", "key", "problem"),
                         [m[1:] for m in VENDOR_MISTAKES], ids=[m[0] for m in VENDOR_MISTAKES])
def test_vendor_mistake_is_named(write, old, new, key, problem):
    assert old in GOOD_VENDOR
    path = write("acme-hsm.yaml", GOOD_VENDOR.replace(old, new, 1))
    with pytest.raises(ConfigError) as caught:
        load_vendor(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert key in message and problem in message, message
    assert "\n" not in message


def test_good_vendor_loads(write):
    vendor = load_vendor(write("acme-hsm.yaml", GOOD_VENDOR))
    assert vendor.claims["CKM_RSA_PKCS_KEY_PAIR_GEN"] == {"key_sizes": (2048, 3072)}
    assert vendor.known_deviations[0].matches("digest/test_digest.py::test_x[CKM_SHA256]")
    assert vendor.known_deviations[0].observed.code == "CKR_GENERAL_ERROR"
    assert vendor.token.provision == "softhsm2"


def test_module_override_replaces_path(write):
    path = write("acme-hsm.yaml", GOOD_VENDOR.replace("/usr/lib/softhsm/libsofthsm2.so",
                                                      "/nonexistent.so"))
    with pytest.raises(ConfigError, match="--module: module file '/also/missing.so'"):
        load_vendor(path, "/also/missing.so")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="missing.yaml: file not found"):
        load_vendor(tmp_path / "missing.yaml")


GOOD_PROFILE = """\
schema: 1
profile: tiny
title: Tiny
source: nowhere in particular
functions: [C_GetInfo]
objects: [CKO_PROFILE]
required:
  CKM_SHA256: {}
optional:
  CKM_SHA512: {}
"""

PROFILE_MISTAKES = [
    ("unknown object class", "[CKO_PROFILE]", "[CKO_PROFILES]", "objects[0]",
     "unknown object class"),
    ("required and optional", "CKM_SHA512: {}", "CKM_SHA256: {}", "optional.CKM_SHA256",
     "also listed under required"),
    ("unknown mechanism", "CKM_SHA512: {}", "CKM_SHA1024: {}", "optional.CKM_SHA1024",
     "unknown mechanism"),
    ("id differs from stem", "profile: tiny", "profile: small", "profile",
     "differs from the file name"),
]


@pytest.mark.parametrize(("old", "new", "key", "problem"),
                         [m[1:] for m in PROFILE_MISTAKES], ids=[m[0] for m in PROFILE_MISTAKES])
def test_profile_mistake_is_named(write, old, new, key, problem):
    path = write("tiny.yaml", GOOD_PROFILE.replace(old, new, 1))
    with pytest.raises(ConfigError) as caught:
        load_profile(path)
    assert f"{path}: {key}: " in str(caught.value) and problem in str(caught.value)


def test_unknown_profile_option_lists_known_ones():
    known = r"--profile: unknown profile 'nope' \(known: .*ca-root-key"
    with pytest.raises(ConfigError, match=known):
        resolve_profile("nope")


def test_every_shipped_file_loads():
    from conformance.loading import REFERENCE_VENDOR, available_profiles

    for path in available_profiles().values():
        load_profile(path)
    vendor = load_vendor(REFERENCE_VENDOR)
    assert vendor.id == "softhsm2" and vendor.token.provision == "softhsm2"


@pytest.mark.parametrize("args", [["run", "{bad}"], ["run", "--profile", "nope"]],
                         ids=["bad vendor file", "unknown profile"])
def test_cli_reports_config_error_without_traceback(write, args):
    bad = write("acme-hsm.yaml", GOOD_VENDOR.replace("CKM_SHA256: {}", "CKM_SHA265: {}"))
    argv = [a.replace("{bad}", str(bad)) for a in args]
    done = subprocess.run([sys.executable, "-m", "conformance.cli", *argv],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.startswith("pkcs11-conformance: ")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize("path", sorted((REPO / "vendors").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_committed_vendor_file_loads(path):
    """Each known deviation of every vendor file links a report or spec passage (never
    source code) and declares what it expects to observe: loading enforces both."""
    try:
        vendor = load_vendor(path)
    except ConfigError as exc:
        if exc.key != "module.path":  # a module not installed here is not the file's fault
            raise
        return
    for deviation in vendor.known_deviations:
        assert deviation.observed.code or deviation.observed.message, deviation
        assert len(deviation.reason.split()) >= 5, deviation  # a sentence, not a token


def test_pin_typed_as_the_variable_name_is_not_echoed(write):
    path = write("acme-hsm.yaml", GOOD_VENDOR.replace("user_pin_env: PKCS11_USER_PIN",
                                                      "user_pin_env: '31415926'"))
    with pytest.raises(ConfigError) as caught:
        load_vendor(path)
    assert caught.value.key == "token.user_pin_env" and "31415926" not in str(caught.value)


@pytest.mark.parametrize("name", ["acme-hsm.yml.txt", "acme-hsm", "acme-hsm.json"])
def test_vendor_file_of_another_name_is_refused_not_skipped(write, name):
    path = write(name, GOOD_VENDOR)
    with pytest.raises(ConfigError, match="not a YAML file: name it <id>.yaml"):
        load_vendor(path)


def test_file_larger_than_the_bound_is_refused_unread(write):
    from conformance.loading import MAX_FILE_BYTES

    path = write("acme-hsm.yaml", GOOD_VENDOR + "#" * MAX_FILE_BYTES)
    with pytest.raises(ConfigError, match="larger than"):
        load_vendor(path)


def test_committed_profiles_and_vendor_claims_are_within_the_bounds():
    """The bounds refuse impossible values, never a real declaration's."""
    from conformance.loading import available_profiles

    for path in available_profiles().values():
        load_profile(path)
    for path in sorted((REPO / "vendors").glob("*.yaml")):
        try:
            load_vendor(path)
        except ConfigError as exc:
            assert exc.key == "module.path", exc


def test_output_directory_is_checked_before_anything_runs(tmp_path):
    from conformance.loading import writable_directory

    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="--output: .* is an existing file"):
        writable_directory(tmp_path / "file")
    with pytest.raises(ConfigError, match="-o: .* is not a writable directory"):
        writable_directory(tmp_path / "file" / "below", "-o")
    assert writable_directory(tmp_path / "new" / "dir").is_dir()
    assert list((tmp_path / "new" / "dir").iterdir()) == []  # the probe file is gone

