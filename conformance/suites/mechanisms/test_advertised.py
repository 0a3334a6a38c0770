"""Module honesty: what the token advertises, claimed or not. C_GetMechanismInfo fills
the whole structure for every mechanism C_GetMechanismList lists, and a mechanism works
for each function its flags announce.

Which cases exist. The mechanism list is read from the target when the suite is
collected (an unclaimed mechanism is tested too: advertising it is itself a claim to
every application that reads the list): `listed_name` is each listed mechanism,
`advertised_name` each listed mechanism that conformance/mechanism_kinds.py knows
(KINDS).

What a case does. It calls, each in a fresh session (closing it ends what the call
began), the function each announced flag names: CKF_ENCRYPT C_EncryptInit, CKF_DECRYPT
C_DecryptInit, CKF_SIGN C_SignInit, CKF_VERIFY C_VerifyInit, CKF_SIGN_RECOVER
C_SignRecoverInit, CKF_VERIFY_RECOVER C_VerifyRecoverInit, CKF_DIGEST C_DigestInit,
CKF_GENERATE C_GenerateKey (secret keys, DSA and DH domain parameters),
CKF_GENERATE_KEY_PAIR C_GenerateKeyPair, CKF_WRAP C_WrapKey of an extractable AES key,
CKF_UNWRAP C_UnwrapKey of what C_WrapKey gave (as a generic secret key, which takes
any length: raw RSA unwraps a modulus-sized value), CKF_DERIVE C_DeriveKey (the
*_ENCRYPT_DATA derivations, ECDH and DH with a peer made by cryptography). Only a
mechanism that announces nothing of these (CKF_UNWRAP without CKF_WRAP, say), or whose
key cannot be made at all, is not applicable.

Keys are made once per worker in one child process (the raw layer), as the vendor's
`keys` policy says (token objects, all usages): secret keys by C_CreateObject with a
fixed value (so a cipher's case does not depend on a key generation mechanism), or by
the family's key generation mechanism where the module refuses to import keys; key
pairs by the family's key pair generation mechanism (DSA and DH with domain parameters
from cryptography). Mechanism parameters are the
commonest form of each: a zero IV, a 96-bit GCM nonce and 128-bit tag, OAEP with SHA-1
and MGF1-SHA1, PSS with the mechanism's own hash, ECDH without a KDF.
"""

from __future__ import annotations

import contextlib
import secrets
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import dsa, ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.utils import CryptographyDeprecationWarning

from conformance import keypolicy
from conformance import raw as ck
from conformance.isolation import raw_module
from conformance.mechanism_kinds import FUNCTION_MASK, KINDS, defined_flags, flag_names
from conformance.names import VENDOR_DEFINED, mechanism, mechanism_name
from conformance.plugin import RUN
from conformance.returncodes import UnexpectedReturn
from conformance.suite import OBJECT_LABEL_PREFIX, not_applicable


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`listed_name`: the target's C_GetMechanismList as spec names; `advertised_name`:
    those KINDS knows. Sorted, so every xdist worker collects the same cases."""
    wanted = [name for name in ("listed_name", "advertised_name")
              if name in metafunc.fixturenames]
    if not wanted:
        return
    run = metafunc.config.stash.get(RUN, None)
    listed = set(run.target.info()["mechanisms"] or ()) if run is not None else set()
    metafunc.parametrize(wanted[0], sorted(listed if wanted[0] == "listed_name"
                                           else listed & set(KINDS)))


# Hash mechanisms, their MGF1 generators (CKG_MGF1_*) and lengths, by the name in a
# mechanism (pkcs11t.h).
HASHES = {"SHA1": (0x220, 1, 20), "SHA224": (0x255, 5, 28), "SHA256": (0x250, 2, 32),
          "SHA384": (0x260, 3, 48), "SHA512": (0x270, 4, 64)}
CKZ_DATA_SPECIFIED = 1
CKD_NULL = 1
CKO_DOMAIN_PARAMETERS = 6
CKK_DH = 2
CKA_PRIME_BITS = 0x133
SECP256R1 = bytes.fromhex("06082A8648CE3D030107")
ED25519 = bytes.fromhex("06032B6570")
SECRET = {ck.CKA_CLASS: ck.CKO_SECRET_KEY}

# Secret key values (the DES ones with odd parity and not weak), by key type.
ALL_USES = (ck.CKA_ENCRYPT, ck.CKA_DECRYPT, ck.CKA_SIGN, ck.CKA_VERIFY, ck.CKA_WRAP,
            ck.CKA_UNWRAP, ck.CKA_DERIVE)
SECRET_KEYS: dict[str, tuple[int, bytes, tuple[int, ...]]] = {
    "AES": (ck.CKK_AES, bytes(range(32)), ALL_USES),
    "DES": (ck.CKK_DES, bytes.fromhex("0123456789ABCDEF"), ALL_USES),
    "DES3": (ck.CKK_DES3, bytes.fromhex("0123456789ABCDEF23456789ABCDEF01456789ABCDEF0123"),
             ALL_USES),
    "GENERIC_SECRET": (ck.CKK_GENERIC_SECRET, bytes(range(64)), (ck.CKA_SIGN, ck.CKA_VERIFY)),
}
SECRET_KEY_GENERATORS = {"AES": "CKM_AES_KEY_GEN", "DES": "CKM_DES_KEY_GEN",
                         "DES3": "CKM_DES3_KEY_GEN",
                         "GENERIC_SECRET": "CKM_GENERIC_SECRET_KEY_GEN"}
SECRET_KEY_GEN = {"CKM_AES_KEY_GEN": {ck.CKA_VALUE_LEN: 32}, "CKM_DES_KEY_GEN": {},
                  "CKM_DES2_KEY_GEN": {}, "CKM_DES3_KEY_GEN": {},
                  "CKM_GENERIC_SECRET_KEY_GEN": {ck.CKA_VALUE_LEN: 32}}
# Domain parameter generators: key type, and the smallest prime size tried (OpenSSL 3
# refuses DSA under 1024 bits; a DH safe prime of 1024 bits can take seconds).
PARAMETER_GEN = {"CKM_DSA_PARAMETER_GEN": (ck.CKK_DSA, 1024),
                 "CKM_DH_PKCS_PARAMETER_GEN": (CKK_DH, 512)}
KEY_PAIR_GEN = {"RSA": "CKM_RSA_PKCS_KEY_PAIR_GEN", "EC": "CKM_EC_KEY_PAIR_GEN",
                "EC_EDWARDS": "CKM_EC_EDWARDS_KEY_PAIR_GEN", "DSA": "CKM_DSA_KEY_PAIR_GEN",
                "DH": "CKM_DH_PKCS_KEY_PAIR_GEN"}

# Flag -> the usage attribute a key pair needs for it, on its public or private half.
PAIR_USAGES = ((ck.CKF_ENCRYPT, "public", ck.CKA_ENCRYPT),
               (ck.CKF_VERIFY, "public", ck.CKA_VERIFY),
               (ck.CKF_VERIFY_RECOVER, "public", ck.CKA_VERIFY_RECOVER),
               (ck.CKF_WRAP, "public", ck.CKA_WRAP),
               (ck.CKF_DECRYPT, "private", ck.CKA_DECRYPT),
               (ck.CKF_SIGN, "private", ck.CKA_SIGN),
               (ck.CKF_SIGN_RECOVER, "private", ck.CKA_SIGN_RECOVER),
               (ck.CKF_UNWRAP, "private", ck.CKA_UNWRAP),
               (ck.CKF_DERIVE, "private", ck.CKA_DERIVE))
# Flag -> the Init function it announces, and which key of a pair that takes.
INIT_PROBES = ((ck.CKF_ENCRYPT, "C_EncryptInit", "public"),
               (ck.CKF_DECRYPT, "C_DecryptInit", "private"),
               (ck.CKF_SIGN, "C_SignInit", "private"),
               (ck.CKF_VERIFY, "C_VerifyInit", "public"),
               (ck.CKF_SIGN_RECOVER, "C_SignRecoverInit", "private"),
               (ck.CKF_VERIFY_RECOVER, "C_VerifyRecoverInit", "public"),
               (ck.CKF_DIGEST, "C_DigestInit", None))


def stored(template: dict[int, Any]) -> dict[int, Any]:
    """A template for an object the probes make: a session object, or a token object
    labelled as the run's where the vendor declares keys.token_objects."""
    if keypolicy.on_token():
        return {**template, ck.CKA_TOKEN: True,
                ck.CKA_LABEL: f"{OBJECT_LABEL_PREFIX}advertised".encode()}
    return {**template, ck.CKA_TOKEN: False}


class NoKey(Exception):
    """No key of a family can be made on this module (import and generation refused)."""


def mechanism_value(name: str) -> int:
    """The mechanism type behind a name names.mechanism_name gave."""
    if name.startswith("CKM_VENDOR_DEFINED+"):
        return VENDOR_DEFINED + int(name.removeprefix("CKM_VENDOR_DEFINED+"), 16)
    return int(name, 16) if name.startswith("0x") else int(mechanism(name))


def key_family(name: str) -> str | None:
    """The key type a mechanism works on (None: a digest, which takes no key)."""
    if "RSA" in name:
        return "RSA"
    for prefix, family in (("CKM_AES_", "AES"), ("CKM_DES3_", "DES3"), ("CKM_DES2_", "DES3"),
                           ("CKM_DES_", "DES"), ("CKM_DSA", "DSA"), ("CKM_DH_", "DH"),
                           ("CKM_EDDSA", "EC_EDWARDS"), ("CKM_EC_EDWARDS", "EC_EDWARDS"),
                           ("CKM_EC", "EC")):
        if name.startswith(prefix):
            return family
    return "GENERIC_SECRET" if "HMAC" in name or "GENERIC_SECRET" in name else None


def parameter(name: str) -> ck.Parameter:
    """The commonest parameter of each cipher, signature and wrapping mechanism (None:
    it takes none)."""
    block = 8 if name.startswith("CKM_DES") else 16
    if name.endswith(("_CBC", "_CBC_PAD")):
        return bytes(block)
    if name == "CKM_AES_CTR":  # CK_AES_CTR_PARAMS: ulCounterBits, cb[16]
        return ck.ulong_bytes(128) + bytes(16)
    if name == "CKM_AES_GCM":  # CK_GCM_PARAMS: pIv, ulIvLen, ulIvBits, pAAD, ulAADLen, ulTagBits
        return (bytes(12), 12, 96, None, 0, 128)
    if name == "CKM_AES_CCM":  # CK_CCM_PARAMS: ulDataLen, pNonce, ulNonceLen, pAAD, ulAADLen,
        return (16, bytes(12), 12, None, 0, 16)  # ulMACLen
    if name == "CKM_AES_CMAC_GENERAL":  # CK_MAC_GENERAL_PARAMS: the MAC length
        return (16,)
    if name == "CKM_RSA_PKCS_OAEP":  # hashAlg, mgf, source, pSourceData, ulSourceDataLen
        return (HASHES["SHA1"][0], HASHES["SHA1"][1], CKZ_DATA_SPECIFIED, None, 0)
    if name.endswith("RSA_PKCS_PSS"):  # hashAlg, mgf, sLen
        hash_name = name.removeprefix("CKM_").removesuffix("_RSA_PKCS_PSS")
        return HASHES.get(hash_name, HASHES["SHA256"])
    return None


def derivation_parameter(name: str) -> ck.Parameter:
    """The *_ENCRYPT_DATA derivations' parameters: 16 bytes of data (a multiple of every
    block size); the CBC ones start with a zero IV."""
    data = bytes(range(16))
    if "_CBC_" in name:  # CK_{AES,DES}_CBC_ENCRYPT_DATA_PARAMS: iv, pData, length
        return (*ck.inline_zeros(8 if name.startswith("CKM_DES") else 16), data, len(data))
    return (data, len(data))  # CK_KEY_DERIVATION_STRING_DATA: pData, ulLen


class Prober:
    """The child process the probes run in, and the keys they use, made once."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.session = raw.open_session(raw.slot, ck.CKF_SERIAL_SESSION | ck.CKF_RW_SESSION)
        raw.login_user(self.session)  # login applies to the probes' sessions too
        self._keys: dict[str, tuple[int, int]] = {}
        self._domain: tuple[int, int, int] | None = None
        self._listed = raw.get_mechanism_list(raw.slot)

    def info(self, name: str) -> ck.MechanismInfo:
        """Read into a zeroed structure: whether the module sets every field is
        test_mechanism_info_sets_every_field's rule, not this one's."""
        return self.raw.get_mechanism_info(self.raw.slot, int(mechanism(name)))

    def domain(self) -> tuple[int, int, int]:
        """DSA domain parameters (p, q, g), within the advertised DSA sizes when the
        module lists CKM_DSA_KEY_PAIR_GEN; DH uses p and g."""
        if self._domain is None:
            bits = 2048
            if int(mechanism("CKM_DSA_KEY_PAIR_GEN")) in self._listed:
                bits = 1024 if self.info("CKM_DSA_KEY_PAIR_GEN").max_key_size < 2048 else 2048
            with warnings.catch_warnings():  # DSA is what the module offers
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                numbers = dsa.generate_parameters(bits).parameter_numbers()
            self._domain = (numbers.p, numbers.q, numbers.g)
        return self._domain

    def announced(self, family: str) -> int:
        """The flags the listed mechanisms of a key family announce together."""
        flags = 0
        for value in self._listed:
            if key_family(mechanism_name(value)) == family:
                flags |= self.raw.get_mechanism_info(self.raw.slot, value).flags
        return flags

    def pair_templates(self, family: str) -> tuple[dict[int, Any], dict[int, Any]]:
        """Key pair templates with the usages the family's listed mechanisms announce
        (a module may refuse a usage it has no mechanism for: tpm2-pkcs11 refuses
        CKA_SIGN_RECOVER)."""
        public: dict[int, Any] = {}
        private: dict[int, Any] = {ck.CKA_SENSITIVE: True}
        announced = self.announced(family)
        for flag, half, usage in PAIR_USAGES:
            if announced & flag:
                (public if half == "public" else private)[usage] = True
        if family == "RSA":
            public |= {ck.CKA_MODULUS_BITS: 2048, ck.CKA_PUBLIC_EXPONENT: b"\x01\x00\x01"}
        elif family == "DSA":
            public |= dict(zip((ck.CKA_PRIME, ck.CKA_SUBPRIME, ck.CKA_BASE),
                               map(to_bytes, self.domain()), strict=True))
        elif family in ("EC", "EC_EDWARDS"):
            public[ck.CKA_EC_PARAMS] = SECP256R1 if family == "EC" else ED25519
        else:  # DH
            prime, _, base = self.domain()
            public |= {ck.CKA_PRIME: to_bytes(prime), ck.CKA_BASE: to_bytes(base)}
        return (stored(keypolicy.raw_usages(public, "public")),
                stored(keypolicy.raw_usages(private, "private")))

    def keys(self, family: str) -> tuple[int, int]:
        """(the key for encryption, verification and wrapping, the key for decryption,
        signing, unwrapping and derivation): one secret key twice, or a key pair."""
        if family not in self._keys:
            if family in SECRET_KEYS:
                key_type, value, uses = SECRET_KEYS[family]
                key = self.secret_key(family, value, dict.fromkeys(uses, True))
                self._keys[family] = (key, key)
            else:
                self._keys[family] = self.raw.generate_key_pair(
                    self.session, int(mechanism(KEY_PAIR_GEN[family])),
                    *self.pair_templates(family))
        return self._keys[family]

    def secret_key(self, family: str, value: bytes, attributes: dict[int, Any]) -> int:
        """A secret key of `family` with this value, imported by C_CreateObject; where the
        module refuses to import keys (a token may), one of the same length generated by
        the family's key generation mechanism. NoKey when both are refused."""
        key_type = SECRET_KEYS[family][0]
        template = stored({**SECRET, ck.CKA_KEY_TYPE: key_type, **attributes})
        try:
            return self.raw.create_object(self.session, {**template, ck.CKA_VALUE: value})
        except ck.CKRError as imported:
            generator = SECRET_KEY_GENERATORS[family]
            length = {} if family.startswith("DES") else {ck.CKA_VALUE_LEN: len(value)}
            try:
                return self.raw.generate_key(self.session, int(mechanism(generator)),
                                             {**template, **length})
            except ck.CKRError as generated:
                raise NoKey(f"no {family} key can be made: C_CreateObject returned "
                            f"{imported.name}, C_GenerateKey({generator}) "
                            f"{generated.name}") from None

    def wrap_target(self) -> int:
        """An extractable 16-byte AES key, the key every wrapping probe wraps."""
        if "wrapped" not in self._keys:
            key = self.secret_key("AES", bytes(range(16, 32)),
                                  {ck.CKA_EXTRACTABLE: True, ck.CKA_SENSITIVE: False})
            self._keys["wrapped"] = (key, key)
        return self._keys["wrapped"][0]

    def peer(self, family: str) -> bytes:
        """A peer's public value for a key agreement with this family's key: an
        uncompressed P-256 point, or a DH public value g^x mod p."""
        if family == "EC":
            point = ec.generate_private_key(ec.SECP256R1()).public_key()
            return point.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        prime, _, base = self.domain()
        return to_bytes(pow(base, secrets.randbelow(prime - 3) + 2, prime))

    def attempt(self, call: str, *args: Any) -> tuple[str, Any]:
        """One probe in a session of its own: the CKR name it returned, and its result."""
        session = self.raw.open_session(self.raw.slot,
                                        ck.CKF_SERIAL_SESSION | ck.CKF_RW_SESSION)
        try:
            return "CKR_OK", getattr(self.raw, call)(session, *args)
        except ck.CKRError as exc:
            return exc.name, None
        finally:
            self.raw.close_session(session)


def to_bytes(number: int) -> bytes:
    return number.to_bytes((number.bit_length() + 7) // 8, "big")


@pytest.fixture(scope="module")
def prober(target) -> Iterator[Prober]:
    with raw_module(target) as raw:
        yield Prober(raw)


@pytest.fixture
def probe_keys(prober, advertised_name) -> tuple[int, int] | None:
    """The keys the mechanism's probes use (a broken key set-up is an ERROR of the
    case, not a failure of the mechanism under test)."""
    family = key_family(advertised_name)
    makes_keys = advertised_name in (*SECRET_KEY_GEN, *PARAMETER_GEN, *KEY_PAIR_GEN.values())
    if family is None or makes_keys:
        return None
    try:
        return prober.keys(family)
    except NoKey as exc:  # the key generator's own case judges the generation
        not_applicable(str(exc))


class AdvertisedRefused(UnexpectedReturn):
    """An announced function refused: the first code travels as a field."""

    def __init__(self, message: str, returned: str) -> None:
        self.returned, self.severity = returned, "must"
        super().__init__(message)


def probes(prober: Prober, name: str, flags: int, keys: tuple[int, int] | None
           ) -> list[tuple[int, str, str, tuple[Any, ...]]]:
    """(flag, function, raw-layer call, its arguments after the session) for each
    announced flag this check can exercise; C_UnwrapKey comes after C_WrapKey."""
    value, family = int(mechanism(name)), key_family(name)
    public, private = keys if keys is not None else (None, None)
    out = [(flag, function, "operation_init",
            (function, value, None if role is None else (public if role == "public"
                                                          else private), parameter(name)))
           for flag, function, role in INIT_PROBES]
    if name in SECRET_KEY_GEN:
        out.append((ck.CKF_GENERATE, "C_GenerateKey", "generate_key",
                    (value, stored({**SECRET, **SECRET_KEY_GEN[name]}))))
    if name in PARAMETER_GEN:
        key_type, smallest = PARAMETER_GEN[name]
        bits = max(prober.info(name).min_key_size, smallest)
        out.append((ck.CKF_GENERATE, "C_GenerateKey", "generate_key",
                    (value, stored({ck.CKA_CLASS: CKO_DOMAIN_PARAMETERS,
                                    ck.CKA_KEY_TYPE: key_type, CKA_PRIME_BITS: bits}))))
    generates = next((f for f, m in KEY_PAIR_GEN.items() if m == name), None)
    if generates is not None:
        out.append((ck.CKF_GENERATE_KEY_PAIR, "C_GenerateKeyPair", "generate_key_pair",
                    (value, *prober.pair_templates(generates))))
    if keys is not None and flags & ck.CKF_WRAP:
        with contextlib.suppress(NoKey):  # no AES key to wrap: the probe cannot run
            out.append((ck.CKF_WRAP, "C_WrapKey", "wrap_key_with",
                        (value, public, prober.wrap_target(), parameter(name))))
    derived = stored({**SECRET, ck.CKA_KEY_TYPE: ck.CKK_GENERIC_SECRET, ck.CKA_VALUE_LEN: 16})
    if keys is not None and flags & ck.CKF_DERIVE and name.endswith("_ENCRYPT_DATA"):
        out.append((ck.CKF_DERIVE, "C_DeriveKey", "derive_key",
                    (value, private, derived, derivation_parameter(name))))
    elif keys is not None and flags & ck.CKF_DERIVE and family in ("EC", "DH"):
        peer = prober.peer(family)
        agreed = (CKD_NULL, 0, None, len(peer), peer) if family == "EC" else peer
        out.append((ck.CKF_DERIVE, "C_DeriveKey", "derive_key",
                    (value, private, derived, agreed)))
    return [probe for probe in out if flags & probe[0]]


@pytest.mark.function("C_GetMechanismList")
def test_advertised_mechanism_works_for_announced_functions(prober, probe_keys,
                                                            advertised_name):
    """PKCS#11 v2.40 base §5.5.5 C_GetMechanismList, §5.5.6 C_GetMechanismInfo, §3.5
    CK_MECHANISM_INFO: the list holds the mechanisms the token supports and the flags say
    which functions each can be used with, so every announced function accepts the
    mechanism with a suitable key (CKR_MECHANISM_INVALID there is the module
    contradicting its own list)."""
    flags = prober.info(advertised_name).flags
    planned = probes(prober, advertised_name, flags, probe_keys)
    if not planned:
        not_applicable(f"{advertised_name} announces no function this check calls "
                       f"(flags {flags:#x})")
    refusals = []
    for _flag, function, call, args in planned:
        code, wrapped = prober.attempt(call, *args)
        if code != "CKR_OK":
            refusals.append((function, code))
        elif call == "wrap_key_with" and flags & ck.CKF_UNWRAP:
            value, _, _, mechanism_parameter = args
            code, _ = prober.attempt("unwrap_key", value, probe_keys[1], wrapped,
                                     stored({**SECRET,
                                             ck.CKA_KEY_TYPE: ck.CKK_GENERIC_SECRET}),
                                     mechanism_parameter)
            if code != "CKR_OK":
                refusals.append(("C_UnwrapKey", code))
    if refusals:
        raise AdvertisedRefused(
            f"{advertised_name} is listed by C_GetMechanismList with flags {flags:#x}, so "
            f"each announced function must accept it: "
            + "; ".join(f"{function}({advertised_name}) returned {code}"
                        for function, code in refusals), refusals[0][1])


@pytest.mark.function("C_GetMechanismInfo")
def test_mechanism_info_sets_every_field(prober, listed_name):
    """PKCS#11 v2.40 base §5.5.6 C_GetMechanismInfo, §3.5 CK_MECHANISM_INFO: the call
    fills the structure pInfo points to. Read into one whose bytes are all 0xA5, no field
    keeps that pattern, flags holds only bits defined for the mechanism (its kind's
    function flags, CKF_HW, CKF_EXTENSION, the message flags, the curve flags of an
    elliptic curve mechanism; any defined bit for a mechanism of no known kind), and
    ulMinKeySize <= ulMaxKeySize."""
    info = prober.raw.get_mechanism_info(prober.raw.slot, mechanism_value(listed_name),
                                         ck.PATTERN_BYTE)
    fields = {"ulMinKeySize": info.min_key_size, "ulMaxKeySize": info.max_key_size,
              "flags": info.flags}
    unset = [field for field, got in fields.items() if got == ck.UNSET]
    assert not unset, (
        f"C_GetMechanismInfo({listed_name}) must set every field of CK_MECHANISM_INFO: "
        f"{', '.join(unset)} kept the caller's bytes ({ck.UNSET:#x})")
    undefined = info.flags & ~defined_flags(listed_name)
    ored = info.flags & ck.UNSET == ck.UNSET
    assert not undefined, (
        f"C_GetMechanismInfo({listed_name}) must set flags to bits defined for it: flags "
        f"{info.flags:#x} hold {undefined:#x} ({flag_names(undefined & FUNCTION_MASK)})"
        + (": every bit of the caller's 0xA5 bytes is still set, so the module ORs its "
           "flags into the structure instead of setting them" if ored else ""))
    assert info.min_key_size <= info.max_key_size, (
        f"C_GetMechanismInfo({listed_name}) ulMinKeySize {info.min_key_size} must not "
        f"exceed ulMaxKeySize {info.max_key_size}")
