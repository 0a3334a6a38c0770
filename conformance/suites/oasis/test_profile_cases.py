"""The OASIS PKCS#11 Profiles mandatory test cases, replayed against the module.

The four cases of PKCS#11 Profiles v3.2 (BL-M-1, EXT-M-1, AUTH-M-1, CERT-M-1, the OASIS
Standard's XML files in profiles/oasis/), and any further case files given with
`--profile-case FILE` (a vendor's own, in the same format), each replayed call by call by
conformance.profile_cases in a child process and compared under the permitted-variation
rules. A profile in effect whose case this is counts the case among its requirements.

What the token must hold for each official case (made here on a throwaway token, and
removed afterwards; on any other token the case applies only if the token holds it):

- BL-M-1, EXT-M-1: no public token objects (their C_FindObjects expects none); EXT-M-1
  logs in with the user PIN.
- AUTH-M-1: an RSA-2048 key pair whose public key is labelled "testrsa-pub" and private
  key "testrsa-pri", token objects, the private key able to sign with
  CKM_SHA256_RSA_PKCS; the user PIN.
- CERT-M-1: five public token objects, found in this order: an object labelled "Mozilla
  Builtin Roots" (22 bytes with its NUL), then X.509 certificates.
"""

import contextlib
import datetime
import fcntl
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import Attribute, CertificateType, KeyType, MechanismFlag, ObjectClass
from pkcs11.exceptions import PKCS11Error

from conformance import keypolicy
from conformance.crosscheck import der_integer
from conformance.profile_cases import (
    PROFILE_OF,
    CaseError,
    load,
    official_cases,
    replay,
    summary,
)
from conformance.provisioning import RUN_DIR_ENV
from conformance.suite import OBJECT_LABEL_PREFIX, not_applicable, returned

# What each official case exercises, which the vendor must claim (its first mechanism is
# the subject); what the suite uses only to make a case's objects is not among them.
NEEDS = {
    "BL-M-1": {"functions": ("C_GetInfo", "C_GetSlotInfo", "C_GetTokenInfo", "C_OpenSession",
                             "C_FindObjects", "C_CloseAllSessions")},
    "EXT-M-1": {"mechanisms": ("CKM_RSA_PKCS", "CKM_RSA_PKCS_KEY_PAIR_GEN", "CKM_SHA512"),
                "functions": ("C_GetMechanismList", "C_GetMechanismInfo", "C_Login",
                              "C_Logout", "C_FindObjects")},
    "AUTH-M-1": {"mechanisms": ("CKM_SHA256_RSA_PKCS",),
                 "functions": ("C_Login", "C_Logout", "C_FindObjects", "C_GetAttributeValue",
                               "C_SignInit", "C_Sign")},
    "CERT-M-1": {"functions": ("C_FindObjects", "C_GetAttributeValue"),
                 "objects": ("CKO_CERTIFICATE",)},
}
BUILTIN_LABEL = "Mozilla Builtin Roots\0"


def _extra_cases(config) -> list[Path]:
    return [Path(p) for p in config.getoption("profile_case", None) or []]


def pytest_generate_tests(metafunc):
    if "case_path" not in metafunc.fixturenames:
        return
    params = []
    for path in official_cases() + _extra_cases(metafunc.config):
        try:
            case = load(path)
        except CaseError as exc:
            raise pytest.UsageError(f"--profile-case: {exc}") from None
        official = path.parent == official_cases()[0].parent
        needs = NEEDS.get(case.id, {}) if official else {}
        marks = [pytest.mark.mechanism(m) for m in needs.get("mechanisms", ())]
        marks += [pytest.mark.function(f) for f in needs.get("functions", ())]
        marks += [pytest.mark.object_class(o) for o in needs.get("objects", ())]
        # An official case counts for its profile only; a vendor's own case for none.
        marks.append(pytest.mark.profile_case(PROFILE_OF.get(case.id, "") if official else ""))
        params.append(pytest.param(path, id=case.name, marks=marks))
    metafunc.parametrize("case_path", params)


# ---- what each case assumes the token holds ----------------------------------------------

def _public_token_objects(session):
    return [o for o in session.get_objects({Attribute.TOKEN: True})
            if not o[Attribute.PRIVATE]]


def _no_public_objects(session, case_id):
    present = _public_token_objects(session)
    if present:
        not_applicable(f"{case_id} assumes a token without public token objects (its "
                       f"C_FindObjects expects none); this token holds {len(present)}")


def _throwaway_only(target, case_id, what):
    if target.throwaway is None:
        not_applicable(f"{case_id} assumes {what}; the suite makes it only on a throwaway "
                       "token, and this token does not hold it")


def _auth_fixture(target, session, made):
    for label in ("testrsa-pub", "testrsa-pri"):
        if list(session.get_objects({Attribute.LABEL: label, Attribute.TOKEN: True})):
            return  # the token holds the pair the case assumes
    _throwaway_only(target, "AUTH-M-1", "an RSA-2048 key pair labelled testrsa-pub/-pri")
    try:
        public, private = session.generate_keypair(
            KeyType.RSA, 2048, store=True,
            capabilities=keypolicy.usages(MechanismFlag.SIGN | MechanismFlag.VERIFY),
            public_template={Attribute.LABEL: "testrsa-pub",
                             Attribute.PUBLIC_EXPONENT: b"\x01\x00\x01"},
            private_template={Attribute.LABEL: "testrsa-pri"})
    except PKCS11Error as exc:  # the keygen area checks C_GenerateKeyPair itself
        not_applicable(f"AUTH-M-1 assumes an RSA-2048 key pair on the token; making it with "
                       f"C_GenerateKeyPair was refused: {returned(exc)}")
    made += [private, public]


def _certificate(index):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME,
                                         f"pkcs11-conformance CERT-M-1 {index}")])
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(index + 1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))


def _cert_fixture(target, session, made):
    _throwaway_only(target, "CERT-M-1", "five public token objects, the first labelled "
                    "'Mozilla Builtin Roots', then certificates")
    for index in range(5):  # certificates all: the case asks only the first one's label
        certificate = _certificate(index)
        label = BUILTIN_LABEL if index == 0 else f"{OBJECT_LABEL_PREFIX}cert-m-1-{index}"
        try:
            made.append(session.create_object({
                Attribute.CLASS: ObjectClass.CERTIFICATE,
                Attribute.CERTIFICATE_TYPE: CertificateType.X_509, Attribute.TOKEN: True,
                Attribute.PRIVATE: False, Attribute.LABEL: label,
                Attribute.SUBJECT: certificate.subject.public_bytes(),
                Attribute.ISSUER: certificate.issuer.public_bytes(),
                Attribute.SERIAL_NUMBER: der_integer(certificate.serial_number),
                Attribute.VALUE: certificate.public_bytes(serialization.Encoding.DER)}))
        except PKCS11Error as exc:  # the objects area checks C_CreateObject itself
            not_applicable(f"CERT-M-1 assumes five public certificates on the token; making "
                           f"them with C_CreateObject was refused: {returned(exc)}")


def _hold(case, target, session, made):
    """Make what an official case assumes; a vendor's own case brings its own token."""
    if case.path.parent != official_cases()[0].parent:
        return
    if case.id in ("BL-M-1", "EXT-M-1", "CERT-M-1"):
        _no_public_objects(session, case.id)
    if case.id == "AUTH-M-1":
        _auth_fixture(target, session, made)
    elif case.id == "CERT-M-1":
        _cert_fixture(target, session, made)


@contextlib.contextmanager
def _one_at_a_time():
    run_dir = os.environ.get(RUN_DIR_ENV)
    if run_dir is None:
        yield
        return
    with open(Path(run_dir) / "oasis-cases.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture
def made_objects():
    made = []
    yield made
    for obj in reversed(made):
        obj.destroy()


@pytest.mark.function("C_Initialize")  # every case begins with it
def test_profile_case_replays_within_permitted_variations(case_path, target, session,
                                                          made_objects):
    """PKCS#11 v3.2 Profiles sections 3 (Conformance Test Cases), 3.1 (Permitted Test Case
    Variations) and 6 (Conformance): the module answers every call of the test case as
    the XML says, except where section 3.1 lets an answer vary; the first divergence is
    reported with its call, item, expected and actual value."""
    case = load(case_path)
    vendor = target.vendor
    # One case at a time per run: processes sharing a token must not see each other's
    # fixture objects (a case assumes the token holds exactly what it says).
    with _one_at_a_time():
        with keypolicy.applied(vendor.keys):
            _hold(case, target, session, made_objects)
        outcome = replay(case, vendor.module.path, target.init_reserved, target.token.label,
                         vendor.token.user_pin_env, vendor.timeout, target.throwaway is not None)
        for obj in reversed(made_objects):
            obj.destroy()
        made_objects.clear()
    if outcome.refused:
        not_applicable(f"{case.name}: not run on this token: {outcome.refused}")
    if outcome.module_divergences:
        pytest.fail(summary(case, outcome))
    if outcome.stopped and "does not implement" in outcome.stopped:
        not_applicable(f"{case.name}: {outcome.stopped}")
    if outcome.divergences:
        not_applicable(summary(case, outcome))
    assert not outcome.stopped, summary(case, outcome)
