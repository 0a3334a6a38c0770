"""Onboarding a module: probe (real SoftHSM2), the p11-kit module registry, PKCS#11 URIs
(RFC 7512) for tokens, and explain."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SOFTHSM2, private_softhsm2

from conformance import modules, probe, uri
from conformance import raw as ck
from conformance.loading import ConfigError, load_vendor

CLI = [sys.executable, "-m", "conformance.cli"]
SO_PIN, USER_PIN = "so-secret-4711", "user-secret-4711"


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, check=False, cwd=cwd)


def assert_usage_error(done: subprocess.CompletedProcess[str], text: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], done.stderr


# --- RFC 7512 URIs -----------------------------------------------------------------------


def test_uri_attributes_are_percent_decoded():
    parsed = uri.parse("pkcs11:token=My%20Token;manufacturer=ACME%2C%20Inc.;serial=00ff;"
                       "model=X%2FY;library-manufacturer=A&B;library-description=lib;"
                       "library-version=3;slot-id=17;object=key%201;type=private;id=%01%A0"
                       "?module-name=softhsm2&module-path=/usr/lib/x.so")
    assert (parsed.token, parsed.manufacturer, parsed.serial, parsed.model) == (
        "My Token", "ACME, Inc.", "00ff", "X/Y")
    assert (parsed.library_manufacturer, parsed.library_description) == ("A&B", "lib")
    assert parsed.library_version == (3, 0) and parsed.slot_id == 17
    assert (parsed.object, parsed.type, parsed.id) == ("key 1", "private", b"\x01\xa0")
    assert (parsed.module_name, parsed.module_path) == ("softhsm2", "/usr/lib/x.so")
    assert parsed.names_object()
    assert uri.parse("PKCS11:token=%C3%A9t%C3%A9").token == "été"
    assert uri.parse("pkcs11:").token is None  # matches any token


def test_uri_matches_every_given_attribute_and_ignores_blank_padding():
    query = uri.parse("pkcs11:token=conf;serial=42;library-version=2.6")
    assert query.matches_token("conf" + " " * 28, "Any", "42  ", "Model")
    assert not query.matches_token("conf", "Any", "43", "Model")
    assert not query.matches_token("other", "Any", "42", "Model")
    assert query.matches_library("SoftHSM", "Implementation", (2, 6))
    assert not query.matches_library("SoftHSM", "Implementation", (2, 5))
    assert uri.parse("pkcs11:slot-id=3").matches_token("a", "b", "c", "d", 3)
    assert not uri.parse("pkcs11:slot-id=3").matches_token("a", "b", "c", "d", 4)


def test_token_uri_round_trips():
    text = uri.token_uri("My token; 100% (test)", "ACME/EU", "0001  ", "Model?")
    assert " " not in text and text.count(";") == 3
    parsed = uri.parse(text)
    assert (parsed.token, parsed.manufacturer, parsed.serial, parsed.model) == (
        "My token; 100% (test)", "ACME/EU", "0001", "Model?")


@pytest.mark.parametrize(("text", "problem"), [
    ("token=x", "is not a PKCS#11 URI"),
    ("pkcs11:colour=red", "unknown path attribute 'colour'"),
    ("pkcs11:module-name=x", "it belongs in the query"),
    ("pkcs11:token=a;token=b", "token: given twice"),
    ("pkcs11:token=a%2", "'%' must be followed by two hex digits"),
    ("pkcs11:token=a%zz", "'%' must be followed by two hex digits"),
    ("pkcs11:token=%FF", "not UTF-8"),
    ("pkcs11:token=my token", "' ' must be percent-encoded as %20"),
    ("pkcs11:token", "expected name=value"),
    ("pkcs11:library-version=2.x", "not MAJOR or MAJOR.MINOR"),
    ("pkcs11:slot-id=-1", "not a decimal number"),
    ("pkcs11:type=key", "is not one of cert, data, private, public, secret-key"),
    ("pkcs11:token=a?pin-value=1234", "pin-value is refused: PINs come only from the "
                                      "environment"),
    ("pkcs11:token=a?pin-source=file:/pin", "pin-source is refused"),
    ("pkcs11:token=a?colour=red", "unknown query attribute 'colour'"),
], ids=lambda v: v if v.startswith(("pkcs11", "token")) else "")
def test_uri_mistakes_are_named(text, problem):
    with pytest.raises(uri.URIError, match=re.escape(problem)):
        uri.parse(text)


# --- token.uri in vendor files -----------------------------------------------------------


VENDOR = """\
schema: 1
vendor: acme
title: ACME
module: {path: /usr/lib/softhsm/libsofthsm2.so}
token: {TOKEN, user_pin_env: ACME_PIN}
claims: {}
"""


def vendor_file(write, token: str) -> Path:
    return write("acme.yaml", VENDOR.replace("TOKEN", token))


def test_vendor_token_by_uri(write):
    vendor = load_vendor(vendor_file(
        write, 'uri: "pkcs11:token=conf;serial=0a1b?module-name=libsofthsm2"'))
    assert vendor.token.label == "conf"
    assert vendor.token.uri is not None and vendor.token.uri.serial == "0a1b"


@pytest.mark.parametrize(("token", "key", "problem"), [
    ('label: conf, uri: "pkcs11:token=conf"', "token", "give exactly one of label and uri"),
    ("so_pin_env: SO", "token", "give exactly one of label and uri"),
    ('uri: "pkcs11:token=a?pin-value=1"', "token.uri", "pin-value is refused"),
    ('uri: "token=a"', "token.uri", "is not a PKCS#11 URI"),
    ('uri: "pkcs11:token=a;object=k"', "token.uri", "names an object"),
    ('uri: "pkcs11:serial=1", provision: softhsm2', "token.uri", "needs its label"),
    ('uri: "pkcs11:token=a?module-name=opensc-pkcs11"', "token.uri",
     "module-name 'opensc-pkcs11' does not name the module"),
    ('uri: "pkcs11:token=a?module-path=/usr/lib"', "token.uri",
     "module-path '/usr/lib' is not the module"),
], ids=["both", "neither", "pin-value", "not a URI", "object", "provision without label",
        "other module name", "other module path"])
def test_vendor_token_uri_mistakes_are_named(write, token, key, problem):
    with pytest.raises(ConfigError) as caught:
        load_vendor(vendor_file(write, token))
    assert caught.value.key == key and problem in caught.value.problem, str(caught.value)


# --- the p11-kit module registry ---------------------------------------------------------


@pytest.fixture
def user_modules(tmp_path, monkeypatch):
    """A private home with a user module config directory (the system ones stay as they
    are, read only)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    directory = tmp_path / ".config" / "pkcs11" / "modules"
    directory.mkdir(parents=True)
    (directory / "mine.module").write_text(
        f"# a comment\nmodule: {SOFTHSM2}\nenable-in: p11-kit-proxy, firefox\n"
        "x-init-reserved: slots=1\n")
    (directory / "relative.module").write_text("module: libnot-installed-here.so\n")
    (directory / "remote-only.module").write_text("remote: |ssh host p11-kit remote\n")
    (directory / "README").write_text("module: /not/a/module/config.so\n")
    return directory


def test_user_module_configs_are_listed(user_modules):
    found = modules.registered()
    assert "README" not in found
    mine = found["mine"]
    assert mine.path == SOFTHSM2 and mine.files == (user_modules / "mine.module",)
    assert mine.words("enable-in") == ("p11-kit-proxy", "firefox")
    assert mine.settings["x-init-reserved"] == "slots=1"
    module_dir = modules.default_module_dir()
    assert module_dir is not None
    assert found["relative"].path == str(module_dir / "libnot-installed-here.so")
    assert found["remote-only"].path is None


def test_user_config_overrides_and_merges_with_system(user_modules):
    package = modules.PACKAGE_DIR / "softhsm2.module"
    if not package.is_file():
        pytest.skip("the softhsm2 package registers no p11-kit module here")
    (user_modules / "softhsm2.module").write_text("disable-in: chromium\n")
    entry = modules.registered()["softhsm2"]
    assert entry.files[0] == user_modules / "softhsm2.module" and package in entry.files
    assert entry.words("disable-in") == ("chromium",)
    assert entry.module == modules.parse_config(package)["module"]  # filled in from there


def test_user_config_none_hides_user_modules(user_modules):
    (user_modules.parent / "pkcs11.conf").write_text("user-config: none\n")
    assert "mine" not in modules.registered()


def test_module_names_resolve_in_one_place(user_modules, write):
    assert modules.resolve("mine") == SOFTHSM2
    assert modules.resolve(SOFTHSM2) == SOFTHSM2
    with pytest.raises(modules.ModuleNotFound, match="registered: .*mine"):
        modules.resolve("nosuch")
    with pytest.raises(modules.ModuleNotFound, match="has no 'module:' setting"):
        modules.resolve("remote-only")
    with pytest.raises(modules.ModuleNotFound, match="does not exist"):
        modules.resolve("relative")
    vendor = vendor_file(write, "label: conf")
    assert load_vendor(vendor, "mine").module.path == SOFTHSM2  # --module NAME
    with pytest.raises(ConfigError, match="--module: 'nosuch' is neither a module file"):
        load_vendor(vendor, "nosuch")


def test_modules_command_lists_them(user_modules):
    done = cli("modules")
    assert done.returncode == 0, done.stderr
    assert f"mine: {SOFTHSM2}" in done.stdout
    assert "enable-in: p11-kit-proxy, firefox" in done.stdout
    assert "x-init-reserved: slots=1" in done.stdout
    assert "libnot-installed-here.so  (file missing)" in done.stdout
    assert str(user_modules) in done.stdout


# --- probe on a real SoftHSM2 token ------------------------------------------------------


@pytest.fixture
def standing(tmp_path, monkeypatch):
    """A private SoftHSM2 token directory with one initialized token, 'standing'."""
    private_softhsm2(tmp_path, monkeypatch)
    init_token("standing")
    return tmp_path


def init_token(label: str) -> None:
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label,
                    "--so-pin", SO_PIN, "--pin", USER_PIN], check=True, capture_output=True)


def token_uris(stdout: str) -> list[str]:
    return re.findall(r"^\s+(pkcs11:token=standing;\S+)$", stdout, re.MULTILINE)


def test_probe_prints_identity_and_writes_a_draft_that_loads(standing):
    draft = standing / "acme-hsm.yaml"
    done = cli("probe", "--module", SOFTHSM2, "-o", str(draft))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "C_GetInfo: Cryptoki 2.40, 'SoftHSM' 'Implementation of PKCS11'" in done.stdout
    assert "Probed token: 'standing'" in done.stdout
    assert re.search(r"^  CKM_AES_GCM +16\.\.32 bytes; encrypt decrypt$", done.stdout, re.M)
    assert len(token_uris(done.stdout)) == 1
    vendor = load_vendor(draft)  # as written: claims nothing
    assert vendor.id == "acme-hsm" and not vendor.claims and not vendor.functions
    assert vendor.module.path == SOFTHSM2 and vendor.module.expect_library_version == "2.6"
    assert vendor.token.uri is not None and vendor.token.uri.text == token_uris(done.stdout)[0]
    text = draft.read_text()
    assert "# CKM_AES_GCM: {key_sizes: [128, 192, 256], tag_bits: [128]}    # advertised: " \
           "16..32 bytes; encrypt decrypt" in text
    assert "  # - C_SignRecover\n" in text
    # Every suggestion loads once uncommented: the claim lines and function lines.
    claimed = re.sub(r"^  # (CKM_\w+: \{|- C_\w+$)", r"  \1", text, flags=re.MULTILINE)
    draft.write_text(claimed)
    vendor = load_vendor(draft)
    advertised = re.findall(r"^  (CKM_\w+) ", done.stdout, re.MULTILINE)
    assert sorted(vendor.claims) == sorted(advertised) and len(advertised) > 50
    assert vendor.claims["CKM_RSA_PKCS_KEY_PAIR_GEN"]["key_sizes"] == (1024, 2048, 3072, 4096)
    assert "C_GenerateKeyPair" in vendor.functions and len(vendor.functions) == 68


def test_probe_finds_the_token_by_label_or_uri(standing):
    init_token("standing")  # two tokens with one label: only the URI tells them apart
    done = cli("probe", "--module", SOFTHSM2, "--token", "standing")
    assert_usage_error(done, "--token: 2 tokens labelled 'standing'; give a URI with the "
                             "serial")
    assert_usage_error(cli("probe", "--module", SOFTHSM2), "2 initialized tokens; choose "
                                                           "one with --token")
    listed = cli("probe", "--module", SOFTHSM2, "--token", "pkcs11:token=standing;serial=x")
    uris = sorted(set(re.findall(r"pkcs11:token=standing;manufacturer=[^ ,)]+",
                                 listed.stderr)))
    assert len(uris) == 2, listed.stderr
    for wanted in uris:
        done = cli("probe", "--token", wanted + "?module-path=" + SOFTHSM2)
        assert done.returncode == 0, done.stderr
        serial = uri.parse(wanted).serial
        assert f"serial {serial};" in done.stdout.split("Probed token")[0]
        slot = re.search(r"Probed token: 'standing' in slot (\d+)", done.stdout)
        assert slot and re.search(rf"slot {slot.group(1)}: .*\n.*serial {serial};",
                                  done.stdout)


def test_vendor_token_uri_picks_one_of_two_tokens_with_one_label(standing, monkeypatch):
    init_token("standing")
    probed = cli("probe", "--module", SOFTHSM2, "--token", "pkcs11:serial=none")
    wanted = sorted(set(re.findall(r"pkcs11:token=standing;manufacturer=[^ ,)]+",
                                   probed.stderr)))[1]
    vendor = standing / "twin.yaml"
    vendor.write_text(VENDOR.replace("acme", "twin").replace("TOKEN", f'uri: "{wanted}"')
                      .replace("claims: {}", "functions: [C_Digest, C_GetMechanismList]\n"
                               "claims: {CKM_SHA256: {}}"))
    monkeypatch.setenv("ACME_PIN", USER_PIN)
    results = standing / "results.json"
    done = subprocess.run([sys.executable, "-m", "pytest", "--vendor", str(vendor),
                           "--results", str(results), "-p", "no:cacheprovider", "-q",
                           "-k", "test_digest_single_part or mechanism_list_includes_other"],
                          capture_output=True, text=True, check=False, cwd=standing)
    assert done.returncode in (0, 1) and results.exists(), done.stdout + done.stderr
    document = json.loads(results.read_text())
    assert document["run_info"]["token"]["serial"] == uri.parse(wanted).serial
    ran = {c["id"]: c["status"] for c in document["cases"]}
    assert set(ran.values()) == {"PASS", "SKIP"}, ran  # SHA-256 ran, the rest unclaimed
    assert ran["mechanisms/test_mechanism_info.py::test_mechanism_list_includes_other_"
               "claimed_mechanisms"] == "PASS"  # the raw layer found the token too
    by_label = vendor.read_text().replace(f'uri: "{wanted}"', "label: standing")
    vendor.write_text(by_label)
    done = cli("run", str(vendor), "--output", str(standing / "o"))
    assert done.returncode == 2 and "token.label: 2 tokens labelled 'standing'" in done.stderr


@pytest.mark.parametrize(("args", "problem"), [
    (["--module", "nosuch-module"], "--module: 'nosuch-module' is neither a module file"),
    (["--module", "/etc/hostname"], "--module: cannot load PKCS#11 module '/etc/hostname'"),
    (["--module", "/no/such/lib.so"], "--module: module file '/no/such/lib.so' does not "
                                      "exist"),
    ([], "--module: give the module to probe"),
    (["--module", SOFTHSM2, "--token", "nope"], "--token: no token labelled 'nope'"),
    (["--module", SOFTHSM2, "--token", "pkcs11:token=standing?pin-value=1"],
     "--token: pin-value is refused"),
    (["--module", SOFTHSM2, "--token", "pkcs11:library-version=9.9"],
     "--token: no token matching"),
    (["--module", SOFTHSM2, "--token", "pkcs11:token=standing?module-name=opensc-pkcs11"],
     "--token: module-name 'opensc-pkcs11' does not name the module"),
    (["--module", SOFTHSM2, "-o", "Not_Kebab.yaml"], "-o: 'Not_Kebab.yaml': name the draft"),
    (["--module", SOFTHSM2, "-o", "exists.yaml"], "-o: 'exists.yaml' exists"),
    (["--module", SOFTHSM2, "-o", "no/such/dir/acme.yaml"], "does not exist"),
    (["--colour", "red"], "unrecognized arguments: --colour red"),
], ids=["unknown name", "not a module", "missing file", "no module", "unknown label",
        "PIN in URI", "other library", "other module", "bad file name", "existing file",
        "missing directory", "misspelt option"])
def test_probe_mistakes_are_one_line(standing, args, problem):
    (standing / "exists.yaml").write_text("keep me\n")
    assert_usage_error(cli("probe", *args, cwd=standing), problem)
    assert (standing / "exists.yaml").read_text() == "keep me\n"


def test_probe_without_module_configuration_is_one_line(standing, monkeypatch):
    monkeypatch.setenv("SOFTHSM2_CONF", str(standing / "missing.conf"))
    assert_usage_error(cli("probe", "--module", SOFTHSM2), "C_Initialize returned")


def test_probe_draft_to_standard_output(standing):
    done = cli("probe", "--module", SOFTHSM2, "-o", "-")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# Draft vendor declaration") and "Module:" in done.stderr
    assert "\nvendor: softhsm\n" in done.stdout


def info(flags: int, low: int = 0, high: int = 0) -> ck.MechanismInfo:
    return ck.MechanismInfo(low, high, flags)


@pytest.mark.parametrize(("name", "mechanism_info", "problem"), [
    ("CKM_SHA256", info(ck.CKF_DIGEST | ck.CKF_SIGN),
     "CKF_SIGN contradicts a digest mechanism"),
    ("CKM_AES_CBC", info(ck.CKF_ENCRYPT, 16, 32),
     "lacks CKF_ENCRYPT|CKF_DECRYPT for a cipher mechanism"),
    ("CKM_RSA_PKCS_KEY_PAIR_GEN", info(ck.CKF_GENERATE_KEY_PAIR | ck.CKF_GENERATE, 512, 4096),
     "CKF_GENERATE contradicts a key pair generation mechanism"),
    ("CKM_SHA256_HMAC", info(ck.CKF_HW), "no function flag"),
    ("CKM_RSA_PKCS_PSS", info(ck.CKF_SIGN | ck.CKF_VERIFY, 4096, 1024),
     "inverted key size range 4096..1024"),
    ("CKM_EC_KEY_PAIR_GEN", info(ck.CKF_GENERATE_KEY_PAIR), "empty key size range 0..0"),
    ("CKM_AES_KEY_GEN", info(ck.CKF_GENERATE, 128, 256), "looks like bits"),
])
def test_suspicious_mechanism_information_is_flagged(name, mechanism_info, problem):
    found = probe.suspicious(probe.Mechanism(1, name, mechanism_info))
    assert any(problem in f for f in found), found


def test_sound_mechanism_information_is_not_flagged():
    for name, mechanism_info in [
        ("CKM_SHA256", info(ck.CKF_DIGEST)),
        ("CKM_AES_GCM", info(ck.CKF_ENCRYPT | ck.CKF_DECRYPT, 16, 32)),
        ("CKM_RSA_PKCS", info(ck.CKF_SIGN | ck.CKF_VERIFY | ck.CKF_HW, 1024, 4096)),
        ("CKM_AES_GCM", info(ck.CKF_MESSAGE_ENCRYPT | ck.CKF_MESSAGE_DECRYPT, 16, 32)),
    ]:
        assert probe.suspicious(probe.Mechanism(1, name, mechanism_info)) == []


# --- explain -----------------------------------------------------------------------------


def test_explain_a_case_id():
    done = cli("explain", "sign/test_sign_rsa.py::test_sign_rsa_pss_hash_verifies_with_"
                          "cryptography[CKM_SHA256_RSA_PKCS_PSS-key_bits=2048-salt_length=32-"
                          "single-part]")
    assert done.returncode == 0, done.stderr
    out = " ".join(done.stdout.split())
    assert "Spec clause: PKCS#11 v2.40 curr, PKCS #1 RSA PSS signature with hashing " \
           "(v3.0 for SHA-3)" in out
    assert "Checks: the signature over the message" in out
    assert "Mechanisms: CKM_SHA256_RSA_PKCS_PSS in this case" in out
    assert "salt_length (the claimed and profile-listed salt_lengths)" in out
    assert "independent implementation" in out
    assert "Area note: (sign) a signature or MAC made by the module" in out


def test_explain_a_test_name():
    done = cli("explain", "test_mechanism_info_refuses_unknown_mechanism")
    assert done.returncode == 0, done.stderr
    out = " ".join(done.stdout.split())
    assert done.stdout.startswith("mechanisms/test_mechanism_info.py::test_mechanism_info_"
                                  "refuses_unknown_mechanism\n")
    assert "Spec clause: PKCS#11 v2.40 base §5.5.6 C_GetMechanismInfo" in out
    assert "Functions: C_GetMechanismInfo" in out
    assert "A refusal with another CKR code than the one named fails as well." in out
    assert "Area note: (mechanisms)" in out


@pytest.mark.parametrize(("test_id", "problem"), [
    ("test_digest_single_part_matchs_hashlib",
     "no test named 'test_digest_single_part_matchs_hashlib' (did you mean "
     "test_digest_single_part_matches_hashlib?)"),
    ("sign/test_nothing.py::test_x", "no suite file 'sign/test_nothing.py'"),
    ("digest/test_digest.py::test_sign_rsa_pkcs_digest_info_verifies_with_cryptography",
     "no test named"),
    ("what is this?", "is not a test id"),
])
def test_explain_mistakes_are_one_line(test_id, problem):
    assert_usage_error(cli("explain", test_id), problem)
