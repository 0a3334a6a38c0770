"""Helpers shared by the error-handling checks: handles and keys over the raw layer (the
`raw` fixture's child process); the return-value assertions are in conformance.suite."""

from dataclasses import dataclass

import pytest
from pkcs11 import Attribute, KeyType, ObjectClass

from conformance import keypolicy
from conformance import raw as ck
from conformance.names import mechanism
from conformance.returncodes import WrongReturnCode, severity_of

SERIAL, RW = ck.CKF_SERIAL_SESSION, ck.CKF_SERIAL_SESSION | ck.CKF_RW_SESSION
SHA256 = int(mechanism("CKM_SHA256"))
AES_ECB = int(mechanism("CKM_AES_ECB"))
AES_KEY_GEN = int(mechanism("CKM_AES_KEY_GEN"))
AES_KEY_WRAP = int(mechanism("CKM_AES_KEY_WRAP"))
SHA256_RSA_PKCS = int(mechanism("CKM_SHA256_RSA_PKCS"))
RSA_PKCS = int(mechanism("CKM_RSA_PKCS"))
RSA_KEY_PAIR_GEN = int(mechanism("CKM_RSA_PKCS_KEY_PAIR_GEN"))
EC_KEY_PAIR_GEN = int(mechanism("CKM_EC_KEY_PAIR_GEN"))
CKA_CLASS = int(Attribute.CLASS)
P256 = bytes.fromhex("06082a8648ce3d030107")  # DER of the OID of secp256r1

# The usages each kind of key gets: every one its type allows, so an Init with a
# mechanism of another family meets only the key type (§5.1.6: CKR_KEY_TYPE_INCONSISTENT
# before CKR_KEY_FUNCTION_NOT_PERMITTED).
SECRET_USAGES = (Attribute.ENCRYPT, Attribute.DECRYPT, Attribute.SIGN, Attribute.VERIFY,
                 Attribute.WRAP, Attribute.UNWRAP)
RSA_USAGES = {"public": (Attribute.VERIFY, Attribute.ENCRYPT, Attribute.WRAP),
              "private": (Attribute.SIGN, Attribute.DECRYPT, Attribute.UNWRAP)}
EC_USAGES = {"public": (Attribute.VERIFY,), "private": (Attribute.SIGN,)}


def unissued(issued):
    """A handle value (a CK_ULONG, not CK_INVALID_HANDLE) that is not among `issued`."""
    issued = set(issued)
    return next(v for v in range(0x7FFFFFF0, 0, -1) if v not in issued)


def logged_in(raw):
    """A read/write session of the child process, with the user logged in."""
    session = raw.open_session(raw.slot, RW)
    raw.login_user(session)
    return session


def claimed_bits(target, *mechanisms, preferred):
    """A key size claimed for every one of these mechanisms: `preferred` if it is (or if
    none lists key sizes), else the smallest one they share."""
    common = None
    for name in mechanisms:
        sizes = target.vendor.claims.get(name, {}).get("key_sizes", ())
        if sizes:
            common = set(sizes) if common is None else common & set(sizes)
    if not common or preferred in common:
        return preferred
    return min(common)


def aes_key(raw, target, session, **attributes):
    """An AES session key for CKM_AES_ECB encryption (and whatever `attributes`, CKA_*
    names to values, add); returns its handle."""
    bits = claimed_bits(target, "CKM_AES_KEY_GEN", "CKM_AES_ECB", preferred=128)
    template = {int(Attribute.CLASS): int(ObjectClass.SECRET_KEY),
                int(Attribute.KEY_TYPE): int(KeyType.AES),
                int(Attribute.TOKEN): keypolicy.on_token(),
                int(Attribute.VALUE_LEN): bits // 8, int(Attribute.ENCRYPT): True}
    template.update({int(Attribute[name]): value for name, value in attributes.items()})
    return raw.generate_key(session, AES_KEY_GEN, template)


def any_aes_key(raw, target, session, **attributes):
    """An AES key with every usage an AES key can have, extractable (and `attributes`)."""
    return aes_key(raw, target, session, EXTRACTABLE=True,
                   **{usage.name: True for usage in SECRET_USAGES}, **attributes)


def rsa_bits(target):
    return claimed_bits(target, "CKM_RSA_PKCS_KEY_PAIR_GEN", "CKM_RSA_PKCS", preferred=2048)


def rsa_pair(raw, target, session):
    """An RSA key pair with every usage, the private key CKA_PRIVATE: (public, private)."""
    public = {int(Attribute.TOKEN): keypolicy.on_token(),
              int(Attribute.MODULUS_BITS): rsa_bits(target),
              int(Attribute.PUBLIC_EXPONENT): b"\x01\x00\x01"}
    return _pair(raw, session, RSA_KEY_PAIR_GEN, public, RSA_USAGES)


def ec_pair(raw, session):
    """A P-256 key pair with every usage, the private key CKA_PRIVATE: (public, private)."""
    public = {int(Attribute.TOKEN): keypolicy.on_token(), int(Attribute.EC_PARAMS): P256}
    return _pair(raw, session, EC_KEY_PAIR_GEN, public, EC_USAGES)


def _pair(raw, session, mech, public, usages):
    public.update({int(usage): True for usage in usages["public"]})
    private = {int(Attribute.TOKEN): keypolicy.on_token(), int(Attribute.PRIVATE): True,
               int(Attribute.SENSITIVE): True,
               **{int(usage): True for usage in usages["private"]}}
    return raw.generate_key_pair(session, mech, keypolicy.raw_usages(public, "public"),
                                 keypolicy.raw_usages(private, "private"))


# -- operations the state checks drive ---------------------------------------------------

DATA = b"conformance: operation state"
BLOCK = bytes(range(16))  # one AES block: valid input for CKM_AES_ECB both ways
OUT = 1024  # an output buffer large enough for every operation here

# Function -> (its C_*Init, the mechanism, the key it takes: None, "aes", "rsa-private",
# "rsa-public"). Single-part signatures use CKM_RSA_PKCS (deterministic, claimed widely);
# multi-part ones CKM_SHA256_RSA_PKCS (CKM_RSA_PKCS has no multi-part form).
OPERATIONS = {
    "C_Decrypt": ("C_DecryptInit", "CKM_AES_ECB", "aes"),
    "C_DecryptFinal": ("C_DecryptInit", "CKM_AES_ECB", "aes"),
    "C_DecryptUpdate": ("C_DecryptInit", "CKM_AES_ECB", "aes"),
    "C_Digest": ("C_DigestInit", "CKM_SHA256", None),
    "C_DigestFinal": ("C_DigestInit", "CKM_SHA256", None),
    "C_DigestUpdate": ("C_DigestInit", "CKM_SHA256", None),
    "C_Encrypt": ("C_EncryptInit", "CKM_AES_ECB", "aes"),
    "C_EncryptFinal": ("C_EncryptInit", "CKM_AES_ECB", "aes"),
    "C_EncryptUpdate": ("C_EncryptInit", "CKM_AES_ECB", "aes"),
    "C_Sign": ("C_SignInit", "CKM_RSA_PKCS", "rsa-private"),
    "C_SignFinal": ("C_SignInit", "CKM_SHA256_RSA_PKCS", "rsa-private"),
    "C_SignUpdate": ("C_SignInit", "CKM_SHA256_RSA_PKCS", "rsa-private"),
    "C_Verify": ("C_VerifyInit", "CKM_RSA_PKCS", "rsa-public"),
    "C_VerifyFinal": ("C_VerifyInit", "CKM_SHA256_RSA_PKCS", "rsa-public"),
    "C_VerifyUpdate": ("C_VerifyInit", "CKM_SHA256_RSA_PKCS", "rsa-public"),
}
KEYGEN = {None: (), "aes": ("CKM_AES_KEY_GEN",), "rsa-private": ("CKM_RSA_PKCS_KEY_PAIR_GEN",),
          "rsa-public": ("CKM_RSA_PKCS_KEY_PAIR_GEN",)}
# Functions that write an output (a buffer and its length follow the inputs).
WITH_OUTPUT = {"C_Decrypt", "C_DecryptFinal", "C_DecryptUpdate", "C_Digest", "C_DigestFinal",
               "C_Encrypt", "C_EncryptFinal", "C_EncryptUpdate", "C_Sign", "C_SignFinal"}


def operation_marks(function):
    """The marks of a case that runs `function`: it, its Init, its mechanism and the
    mechanism that makes its key."""
    init, mech, key = OPERATIONS[function]
    return [pytest.mark.function(function), pytest.mark.function(init),
            pytest.mark.mechanism(mech, *KEYGEN[key])]


@dataclass
class Started:
    """An operation initialized in a logged-in session of the child: what the checks
    need to go on with it (a valid input, and a signature for the verify side)."""

    session: int
    mechanism: int
    key: int
    signature: bytes = b""
    modulus_bytes: int = 0


def start(raw, target, function, private=False):
    """A logged-in session with the operation of `function` initialized (a key made for
    it; with `private`, a key with CKA_PRIVATE true)."""
    init, name, kind = OPERATIONS[function]
    session, mech = logged_in(raw), int(mechanism(name))
    started = Started(session, mech, 0)
    if kind == "aes":
        started.key = any_aes_key(raw, target, session, PRIVATE=private)
    elif kind is not None:
        public, private_key = rsa_pair(raw, target, session)
        started.modulus_bytes = rsa_bits(target) // 8
        started.key = private_key if kind == "rsa-private" else public
        if kind == "rsa-public":
            raw.sign_init(session, mech, private_key)
            started.signature = raw.sign(session, DATA)
    if init == "C_DigestInit":
        raw.digest_init(session, mech)
    else:
        INITS[init](raw, session, mech, started.key)
    return started


INITS = {
    "C_DecryptInit": lambda raw, h, mech, key: raw.decrypt_init(h, mech, key),
    "C_EncryptInit": lambda raw, h, mech, key: raw.encrypt_init(h, mech, key),
    "C_SignInit": lambda raw, h, mech, key: raw.sign_init(h, mech, key),
    "C_VerifyInit": lambda raw, h, mech, key: raw.verify_init(h, mech, key),
}


def valid_inputs(function, started):
    """Inputs with which `function` succeeds in its started operation."""
    if function.endswith("Final"):
        return [started.signature] if function == "C_VerifyFinal" else []
    if function == "C_Verify":
        return [DATA, started.signature]
    return [BLOCK] if function.startswith(("C_Encrypt", "C_Decrypt")) else [DATA]


def call(raw, function, started, inputs, size=OUT):
    """One call of `function` in the started operation: (CKR name, output length,
    output); functions without output give (name, 0, b"")."""
    rv, length, output = call_raw(raw, function, started, inputs, size)
    return ck.ckr_name(rv), length, output


def run(raw, function, started, inputs, size=OUT):
    """As call, raising CKRError for anything but CKR_OK (for expect_code); the output."""
    rv, _, output = call_raw(raw, function, started, inputs, size)
    if rv != ck.CKR_OK:
        raise ck.CKRError(function, rv)
    return output


def call_raw(raw, function, started, inputs, size):
    """As call, with the raw CK_RV."""
    if function in WITH_OUTPUT:
        return raw.call_into(function, started.session, inputs, size)
    return raw.call_inputs(function, started.session, inputs), 0, b""


def refusal(condition, function, call, *args, what, severity):
    """For a check of a lower `severity` (strict, robustness; its marker says the same):
    `call(*args)` must be refused with the code the spec names for `condition`. Any other
    answer, CKR_OK included, is a finding of that severity and no higher: the call broke a
    rule of the caller's, so it never decides a profile."""
    try:
        call(*args)
    except ck.CKRError as exc:
        returned = exc.name
    else:
        returned = "CKR_OK"
    if severity_of(function, condition, returned) is not None:
        raise WrongReturnCode(function, condition, returned, severity, what)


def restart(raw, function, started):
    """Initialize the operation of `function` again, with the started operation's key."""
    init = OPERATIONS[function][0]
    if init == "C_DigestInit":
        raw.digest_init(started.session, started.mechanism)
    else:
        INITS[init](raw, started.session, started.mechanism, started.key)
