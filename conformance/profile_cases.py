"""The OASIS PKCS#11 Profiles conformance test cases, replayed against a module.

A test case (PKCS#11 Profiles v3.1/v3.2 section 3, in the XML format of section 4) is a
sequence of calls, each a request element followed by the expected response element of
the same name. The replay makes each call through the ctypes layer, in a child process
of its own that loads the module afresh (the case begins with C_Initialize and ends with
C_Finalize), and compares every answer under the permitted-variation rules (section
3.1): the items of section 3.1.1 may vary, as may the number and order of entries in
slot and mechanism lists (3.1.2); everything else must match.

A `${Name}` in a response binds the value the module returned; in a request it is the
value bound last. `${Pin}` is the vendor's user PIN, read from the environment variable
its vendor file names; it never appears in a result. Every C_Login goes through the run's
PIN guard (target.login): a credential refused once is never tried again. On a token that
is not a throwaway a case that logs in as the SO, or with a PIN written in the case file,
is not run at all (refusal(), before any call): a wrong PIN there costs a try of a real
token's counter.

Where the specification's text and its XML disagree, the replay does not guess: it
applies the policy written in CASE_ISSUES and reports the disagreement with the result.
A divergence is either the module's (its answer differs where the rules allow no
variation) or the case's (the case assumes something the text does not fix); the first
module divergence fails the case, case divergences alone make it not applicable.
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import os
import re
import signal
import xml.etree.ElementTree as ET
from ctypes import byref, create_string_buffer
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pkcs11 import Attribute, KeyType, ObjectClass

from . import names, raw
from .isolation import ModuleCrashed, ModuleTimedOut
from .loading import PROFILES_DIR
from .target import CASE_FILE, PIN_REFUSED, Credential, Secret, WrongPin, login

OFFICIAL_DIR = PROFILES_DIR / "oasis" / "pkcs11-v3.2" / "mandatory"
# SHA-256 of the OASIS Standard files (docs.oasis-open.org/pkcs11/pkcs11-profiles/v3.2/os/
# test-cases/pkcs11-v3.2/mandatory/): the shipped copies are checked against these.
OFFICIAL = {
    "BL-M-1-32.xml": "2940efd182466707e195f5a6220fd48cd2c156eb509cf1e973e0daa2fc77dc6e",
    "EXT-M-1-32.xml": "209646066cb9c9d9af75d51f49fbd0c4546b5154ff5bb81c5072b1a0959c95c6",
    "AUTH-M-1-32.xml": "0cad0935a8d49e5215e8d8da2da23fc3381c926cfa23a3447be76f119ecac6e5",
    "CERT-M-1-32.xml": "496dc6acf7c827c6007f29dffd19916ea455d7b1cbf91beb40ecb70b82aae6d1",
}
# The profile each mandatory case belongs to (Profiles v3.2 sections 5.1.1, 5.3.1, 5.4.1,
# 5.5.1), as the ids of profiles/*.yaml.
PROFILE_OF = {"BL-M-1": "baseline-provider", "EXT-M-1": "extended-provider",
              "AUTH-M-1": "authentication-token", "CERT-M-1": "public-certificates-token"}

# Section 3.1.1: the items a conformant module may answer differently.
VARIABLE = {"LibraryDescription", "LibraryVersion", "ManufacturerID", "SlotDescription",
            "HardwareVersion", "FirmwareVersion", "serialNumber", "label", "model", "utcTime",
            "SlotID", "Object", "Session", "Data", "EncryptedData", "RandomData"}
VARIABLE_ATTRIBUTES = {"VALUE", "PUBLIC_EXPONENT", "PRIVATE_EXPONENT", "PRIME_1", "PRIME_2",
                       "EXPONENT_1", "EXPONENT_2", "COEFFICIENT", "PRIME", "SUBPRIME", "BASE",
                       "EC_POINT", "UNIQUE_ID"}

# Where the text of the Profiles specification and its XML disagree, and what the
# replay does there (reported with every result the issue touches).
CASE_ISSUES = {
    "illustrative-numbers": (
        "TokenInfo counters, PIN lengths, memory sizes and MechanismInfo key sizes are one "
        "module's answers in the XML ('illustrative', section 3), yet not variable in 3.1.1"),
    "flags": (
        "Flags are not variable in 3.1.1, yet the XML's describe one module: the case's flags "
        "must be set and no undefined bit, another defined flag is the case's divergence"),
    "unpublished-key": (
        "AUTH-M-1's MODULUS and Signature come from an unpublished key: a modulus of the same "
        "length, and a signature that verifies with the module's public key, are accepted"),
    "find-order": (
        "the case relies on the order of C_FindObjects results, which PKCS#11 leaves to the "
        "module (3.1.2 lets order vary only for slot, mechanism and interface lists)"),
    "label-nul": (
        "CERT-M-1 gives CKA_LABEL a length of 22 bytes and a value of 21 characters: the value "
        "is accepted with or without one trailing NUL"),
    "unbound": "the case uses a symbol it never binds (BL-M-1-31's SlotID[1], for one)",
}

HANDLE = re.compile(r"^\$\{([^}]+)\}$")
FLAG_SETS = {
    "slot": {"TOKEN_PRESENT": raw.CKF_TOKEN_PRESENT,
             "REMOVABLE_DEVICE": raw.CKF_REMOVABLE_DEVICE, "HW_SLOT": raw.CKF_HW_SLOT},
    "token": {name: getattr(raw, f"CKF_{name}") for name in (
        "RNG", "WRITE_PROTECTED", "LOGIN_REQUIRED", "USER_PIN_INITIALIZED",
        "RESTORE_KEY_NOT_NEEDED", "CLOCK_ON_TOKEN", "PROTECTED_AUTHENTICATION_PATH",
        "DUAL_CRYPTO_OPERATIONS", "TOKEN_INITIALIZED", "SECONDARY_AUTHENTICATION",
        "USER_PIN_COUNT_LOW", "USER_PIN_FINAL_TRY", "USER_PIN_LOCKED",
        "USER_PIN_TO_BE_CHANGED", "SO_PIN_COUNT_LOW", "SO_PIN_FINAL_TRY", "SO_PIN_LOCKED",
        "SO_PIN_TO_BE_CHANGED", "ERROR_STATE")},
    "session": {"RW_SESSION": raw.CKF_RW_SESSION, "SERIAL_SESSION": raw.CKF_SERIAL_SESSION},
    "mechanism": {name: getattr(raw, f"CKF_{name}") for name in (
        "HW", "MESSAGE_ENCRYPT", "MESSAGE_DECRYPT", "MESSAGE_SIGN", "MESSAGE_VERIFY",
        "MULTI_MESSAGE", "FIND_OBJECTS", "ENCRYPT", "DECRYPT", "DIGEST", "SIGN", "SIGN_RECOVER",
        "VERIFY", "VERIFY_RECOVER", "GENERATE", "GENERATE_KEY_PAIR", "WRAP", "UNWRAP", "DERIVE",
        "EC_F_P", "EC_F_2M", "EC_ECPARAMETERS", "EC_OID", "EC_UNCOMPRESS", "EC_COMPRESS",
        "EC_CURVENAME", "EXTENSION")},
    "info": {},
}
SPECIAL_NUMBERS: dict[str, int] = {  # section 4.3.4
    "EffectivelyInfinite": 0, "UnavailableInformation": raw.CK_UNAVAILABLE_INFORMATION,
    "EFFECTIVELY_INFINITE": 0, "UNAVAILABLE_INFORMATION": raw.CK_UNAVAILABLE_INFORMATION}
USER_TYPES = {"SO": raw.CKU_SO, "USER": raw.CKU_USER, "CONTEXT_SPECIFIC": raw.CKU_CONTEXT_SPECIFIC}
VENDOR_PIN = "${Pin}"
BOOLEAN_ATTRIBUTES = {"TOKEN", "PRIVATE", "MODIFIABLE", "SENSITIVE", "EXTRACTABLE", "ENCRYPT",
                      "DECRYPT", "SIGN", "VERIFY", "WRAP", "UNWRAP", "DERIVE", "LOCAL",
                      "TRUSTED", "COPYABLE", "DESTROYABLE", "ALWAYS_SENSITIVE",
                      "NEVER_EXTRACTABLE", "SIGN_RECOVER", "VERIFY_RECOVER", "ALWAYS_AUTHENTICATE"}
TEXT_ATTRIBUTES = {"LABEL", "APPLICATION", "URL"}
# The numbers of TokenInfo and MechanismInfo that section 3.1.1 does not list as variable.
ILLUSTRATIVE = {"MaxSessionCount", "SessionCount", "MaxRwSessionCount", "RwSessionCount",
                "MaxPinLen", "MinPinLen", "TotalPublicMemory", "FreePublicMemory",
                "TotalPrivateMemory", "FreePrivateMemory", "MinKeySize", "MaxKeySize"}


class CaseError(Exception):
    """A test case file that is not in the format: file, element and problem."""


@dataclass(frozen=True)
class Step:
    index: int  # 1-based call number
    function: str
    request: ET.Element
    response: ET.Element


@dataclass(frozen=True)
class Case:
    path: Path
    name: str  # the file name without .xml, e.g. BL-M-1-32
    steps: tuple[Step, ...]

    @property
    def id(self) -> str:
        """The case id without its version suffix: BL-M-1."""
        return re.sub(r"-\d+$", "", self.name)


def load(path: Path) -> Case:
    """Read a test case file; CaseError names the file, the element and the problem."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise CaseError(f"{path}: not a readable XML file: {exc}") from None
    if _local(root.tag) != "PKCS11":
        raise CaseError(f"{path}: the root element is <{_local(root.tag)}>, not <PKCS11> "
                        "(Profiles section 4.4)")
    children = list(root)
    if len(children) % 2:
        raise CaseError(f"{path}: {len(children)} call elements; each request needs its "
                        "response (section 4.3.5)")
    steps = []
    for number, (request, response) in enumerate(zip(children[::2], children[1::2],
                                                     strict=True), 1):
        name = _local(request.tag)
        if _local(response.tag) != name or "rv" not in response.attrib or "rv" in request.attrib:
            raise CaseError(f"{path}: call {number} <{name}>: a request must be followed by "
                            f"<{name} rv=...>, found <{_local(response.tag)}>")
        steps.append(Step(number, name, request, response))
    return Case(path, path.stem, tuple(steps))


def refusal(case: Case, throwaway: bool) -> str:
    """Why `case` must not run on this token, decided from the file before any call: on a
    token that is not a throwaway, the SO never logs in and no PIN but the vendor's is
    tried (a wrong one costs a try of the token's PIN counter, and may lock it)."""
    if throwaway:
        return ""
    for step in case.steps:
        if step.function != "C_Login":
            continue
        user, pin = _child(step.request, "UserType"), _child(step.request, "Pin")
        user_type = "" if user is None else user.attrib.get("value", "").removeprefix("CKU_")
        if user_type == "SO":
            return (f"call {step.index} C_Login as CKU_SO: the SO logs in only on a throwaway "
                    "token (token.provision), and this token is not one")
        if pin is not None and pin.attrib.get("value") != VENDOR_PIN:
            return (f"call {step.index} C_Login with a PIN written in the case file: only "
                    f"the vendor's PIN ({VENDOR_PIN}) is tried on a token that is not a "
                    "throwaway (token.provision), as a wrong one costs a try of its PIN "
                    "counter")
    return ""


def official_cases() -> list[Path]:
    return [OFFICIAL_DIR / name for name in OFFICIAL]


def verify_official() -> list[str]:
    """The shipped official files whose SHA-256 differs from the OASIS Standard's."""
    return [name for name, digest in OFFICIAL.items()
            if hashlib.sha256((OFFICIAL_DIR / name).read_bytes()).hexdigest() != digest]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


# ---- results ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Divergence:
    step: int
    function: str
    item: str
    expected: str
    got: str
    by: str  # "module" or "case"
    issue: str = ""  # a CASE_ISSUES key, for the case's divergences

    def text(self) -> str:
        why = f" [the case's: {self.issue}]" if self.by == "case" else " [the module's]"
        return (f"call {self.step} {self.function}: {self.item}: expected {self.expected}, "
                f"got {self.got}{why}")


@dataclass
class Outcome:
    divergences: list[Divergence] = field(default_factory=list)
    issues: set[str] = field(default_factory=set)  # CASE_ISSUES the replay applied
    calls: int = 0  # calls made before the replay ended
    stopped: str = ""  # why it stopped before the end, if it did
    interface: str = ""  # the C_GetInterface version called through, if any
    refused: str = ""  # why the case was not run on this token (refusal()), no call made
    wrong_pin: str = ""  # the vendor's PIN was refused: the run must stop

    @property
    def module_divergences(self) -> list[Divergence]:
        return [d for d in self.divergences if d.by == "module"]

    def as_dict(self) -> dict[str, Any]:
        return {"divergences": [d.__dict__ for d in self.divergences],
                "issues": sorted(self.issues), "calls": self.calls, "stopped": self.stopped,
                "interface": self.interface, "refused": self.refused,
                "wrong_pin": self.wrong_pin}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Outcome:
        return cls([Divergence(**d) for d in data["divergences"]], set(data["issues"]),
                   data["calls"], data["stopped"], data["interface"], data["refused"],
                   data["wrong_pin"])


class _Stop(Exception):
    """The replay cannot go on (a call failed, a symbol is unbound)."""


# ---- the replay ------------------------------------------------------------------------

class Replay:
    """Runs one case against a module loaded in this process through the ctypes layer;
    `token_label` names the token under test, whose slot is the one a case's
    `${SlotList.SlotID[0]}` binds (section 3.1.2: the list may hold more slots).
    `pin_env` names the variable of the vendor's user PIN (`${Pin}`)."""

    def __init__(self, module: raw.Module, module_path: str, token_label: str,
                 pin_env: str | None) -> None:
        self.module, self.module_path, self.token_label = module, module_path, token_label
        self.pin_env = pin_env
        value = os.environ.get(pin_env) if pin_env else None
        self.pin = Secret(value) if value else None
        self.bound: dict[str, Any] = {}
        self.outcome = Outcome()
        self.public: dict[str, bytes] = {}  # MODULUS, PUBLIC_EXPONENT read in the case
        self.missing: dict[str, str] = {}  # symbols a response should have bound, and why not
        self.found: list[int] = []  # what the last C_FindObjects returned
        self.step: Step | None = None

    # -- bookkeeping --------------------------------------------------------------------

    def diverge(self, item: str, expected: object, got: object, by: str = "module",
                issue: str = "") -> None:
        assert self.step is not None
        self.outcome.divergences.append(Divergence(self.step.index, self.step.function, item,
                                                   str(expected), str(got), by, issue))
        if issue:
            self.outcome.issues.add(issue)

    def resolve(self, text: str) -> Any:
        match = HANDLE.match(text)
        if match is None:
            return text
        symbol = match.group(1)
        if symbol == "Pin":
            if self.pin is None:
                raise _Stop("the case logs in with ${Pin}, and the vendor file's user PIN "
                            "variable is empty or not set")
            return self.pin
        if symbol in self.missing:
            raise _Stop(f"${{{symbol}}} is not bound: {self.missing[symbol]}")
        if symbol not in self.bound:
            self.diverge(f"${{{symbol}}}", "a value bound earlier", "never bound", "case",
                         "unbound")
            raise _Stop(f"${{{symbol}}} is used before any response binds it")
        return self.bound[symbol]

    def value(self, element: ET.Element, name: str) -> Any:
        child = _child(element, name)
        if child is None or "value" not in child.attrib:
            raise _Stop(f"the request has no <{name} value=...>")
        return self.resolve(child.attrib["value"])

    def bind(self, expected: str, got: Any) -> None:
        """A `${...}` in a response binds what the module returned. Only items that may
        vary come here (lengths of lists, handles), so a literal is not compared."""
        match = HANDLE.match(expected)
        if match is not None:
            self.bound[match.group(1)] = got

    def check_rv(self, rv: int) -> None:
        assert self.step is not None
        expected = self.step.response.attrib["rv"]
        got = raw.ckr_name(rv).removeprefix("CKR_")
        if got != expected.removeprefix("CKR_"):
            self.diverge("rv", expected, got)
            if expected.removeprefix("CKR_") == "OK":
                raise _Stop(f"{self.step.function} returned {got}")

    # -- driving ------------------------------------------------------------------------

    def run(self, case: Case) -> Outcome:
        for step in case.steps:
            self.step = step
            handler = getattr(self, f"_{step.function}", None)
            if handler is None:
                self.outcome.stopped = (f"call {step.index}: the replay does not implement "
                                        f"{step.function}")
                break
            try:
                handler(step.request, step.response)
            except _Stop as stop:
                self.outcome.stopped = f"call {step.index} {step.function}: {stop}"
                break
            finally:
                self.outcome.calls = step.index
        return self.outcome

    def compare_struct(self, expected: ET.Element, got: dict[str, Any], kind: str) -> None:
        """The fields of a CK_INFO, CK_SLOT_INFO, CK_TOKEN_INFO or CK_MECHANISM_INFO: as
        child elements (v3.2) or, for numbers, attributes of the element (v3.1)."""
        fields = [(_local(c.tag), c.attrib) for c in expected]
        fields += [(name, {"value": value}) for name, value in expected.attrib.items()]
        for name, attributes in fields:
            if name not in got:
                self.diverge(name, "a field of the structure", "no such field", "case")
                continue
            if name in VARIABLE:
                continue
            actual = got[name]
            if "major" in attributes:
                wanted = (int(attributes["major"]), int(attributes.get("minor", "0")))
                if actual != wanted:
                    self.diverge(name, "{}.{}".format(*wanted), "{}.{}".format(*actual))
            elif name == "Flags":
                self.compare_flags(attributes.get("value", "0"), actual, kind)
            else:
                wanted_number = _number(attributes.get("value", ""))
                if wanted_number != actual:
                    illustrative = name in ILLUSTRATIVE
                    self.diverge(name, attributes.get("value"), _show_number(actual),
                                 "case" if illustrative else "module",
                                 "illustrative-numbers" if illustrative else "")

    def compare_flags(self, text: str, got: int, kind: str) -> None:
        """The "flags" policy: a flag the case shows must be set, and a bit PKCS#11 does not
        define for this structure (CK_INFO defines none) must not; another defined flag
        set is the case's divergence."""
        table = FLAG_SETS[kind]
        wanted = _flags(text, table)
        missing, extra = wanted & ~got, got & ~wanted
        undefined = extra & ~sum(table.values())
        if missing or undefined:
            self.diverge("Flags", _flag_names(wanted, table), _flag_names(got, table))
        elif extra:
            self.diverge("Flags", _flag_names(wanted, table), _flag_names(got, table), "case",
                         "flags")

    def ask(self, call: Any, *args: Any) -> Any:
        """A raw-layer call whose CKR is checked against the case's rv; None if it failed."""
        try:
            result = call(*args)
        except raw.CKRError as exc:
            self.check_rv(exc.rv)
            return None
        self.check_rv(raw.CKR_OK)
        return result

    # -- the functions ------------------------------------------------------------------

    def _C_Initialize(self, request: ET.Element, response: ET.Element) -> None:
        self.ask(self.module.initialize)

    def _C_Finalize(self, request: ET.Element, response: ET.Element) -> None:
        self.check_rv(self.module.call("C_Finalize", None))

    def _C_GetInfo(self, request: ET.Element, response: ET.Element) -> None:
        info = self.ask(self.module.get_info)
        expected = _child(response, "Info")
        if info is not None and expected is not None:
            self.compare_struct(expected, {
                "CryptokiVersion": info.cryptoki_version, "ManufacturerID": info.manufacturer_id,
                "Flags": info.flags, "LibraryDescription": info.library_description,
                "LibraryVersion": info.library_version}, "info")

    def _list_call(self, function: str, first: Any, request: ET.Element,
                   response: ET.Element, list_name: str) -> list[int] | None:
        """C_GetSlotList / C_GetMechanismList: a NULL list for the length, or a buffer of
        the length the request gives. Returns the list, or None after a length query."""
        element = _child(request, list_name)
        length = None if element is None or "length" not in element.attrib else int(
            self.resolve(element.attrib["length"]))
        count = raw.CK_ULONG(length or 0)
        buffer = None if length is None else (raw.CK_ULONG * max(length, 1))()
        self.check_rv(self.module.call(function, first, buffer, byref(count)))
        expected = _child(response, list_name)
        if buffer is None:  # a list's length may vary (section 3.1.2): bound, not compared
            if expected is not None and "length" in expected.attrib:
                self.bind(expected.attrib["length"], int(count.value))
            return None
        return [int(x) for x in buffer[: count.value]]

    def _C_GetSlotList(self, request: ET.Element, response: ET.Element) -> None:
        present = _boolean(str(self.value(request, "TokenPresent")))
        slots = self._list_call("C_GetSlotList", int(present), request, response, "SlotList")
        if slots is None:
            return
        ours = [s for s in slots if self._label(s) == self.token_label]
        expected = _child(response, "SlotList")
        wanted = [] if expected is None else [c.attrib.get("value", "") for c in expected]
        if wanted and not ours:
            self.diverge("SlotList", f"the token {self.token_label!r}", f"slots {slots}")
            raise _Stop("the token under test is not in the slot list")
        # Section 3.1.2: entries and order may vary; the first entry is the token's slot.
        order = ours[:1] + [s for s in slots if s not in ours[:1]]
        for text, slot in zip(wanted, order, strict=False):
            self.bind(text, slot)

    def _label(self, slot: int) -> str:
        try:
            return self.module.get_token_info(slot).label
        except raw.CKRError:
            return ""

    def _C_GetSlotInfo(self, request: ET.Element, response: ET.Element) -> None:
        slot = int(self.value(request, "SlotID"))
        info = self.ask(self.module.get_slot_info, slot)
        expected = _child(response, "SlotInfo") or _child(response, "Info")
        if info is not None and expected is not None:
            self.compare_struct(expected, {
                "SlotDescription": info.slot_description, "ManufacturerID": info.manufacturer_id,
                "Flags": info.flags, "HardwareVersion": info.hardware_version,
                "FirmwareVersion": info.firmware_version}, "slot")

    def _C_GetTokenInfo(self, request: ET.Element, response: ET.Element) -> None:
        slot = int(self.value(request, "SlotID"))
        t = self.ask(self.module.get_token_info, slot)
        expected = _child(response, "TokenInfo") or _child(response, "Info")
        if t is not None and expected is not None:
            self.compare_struct(expected, {
                "label": t.label, "ManufacturerID": t.manufacturer_id, "model": t.model,
                "serialNumber": t.serial_number, "Flags": t.flags,
                "MaxSessionCount": t.max_session_count, "SessionCount": t.session_count,
                "MaxRwSessionCount": t.max_rw_session_count,
                "RwSessionCount": t.rw_session_count, "MaxPinLen": t.max_pin_len,
                "MinPinLen": t.min_pin_len, "TotalPublicMemory": t.total_public_memory,
                "FreePublicMemory": t.free_public_memory,
                "TotalPrivateMemory": t.total_private_memory,
                "FreePrivateMemory": t.free_private_memory,
                "HardwareVersion": t.hardware_version, "FirmwareVersion": t.firmware_version,
                "utcTime": t.utc_time}, "token")

    def _C_GetMechanismList(self, request: ET.Element, response: ET.Element) -> None:
        slot = int(self.value(request, "SlotID"))
        got = self._list_call("C_GetMechanismList", slot, request, response, "MechanismList")
        expected = _child(response, "MechanismList")
        if got is None or expected is None:
            return
        for entry in expected:  # section 3.1.2: other entries and any order are allowed
            name = entry.attrib.get("value", "")
            if _mechanism(name) not in got:
                self.diverge("MechanismList", f"{name} among the mechanisms",
                             f"{len(got)} mechanisms without it")

    def _C_GetMechanismInfo(self, request: ET.Element, response: ET.Element) -> None:
        slot = int(self.value(request, "SlotID"))
        mechanism = _mechanism(str(self.value(request, "Type")))
        info = self.ask(self.module.get_mechanism_info, slot, mechanism)
        expected = _child(response, "MechanismInfo") or _child(response, "Info")
        if info is not None and expected is not None:
            self.compare_struct(expected, {"MinKeySize": info.min_key_size,
                                           "MaxKeySize": info.max_key_size,
                                           "Flags": info.flags}, "mechanism")

    def _C_OpenSession(self, request: ET.Element, response: ET.Element) -> None:
        slot = int(self.value(request, "SlotID"))
        flags = _flags(str(self.value(request, "Flags")), FLAG_SETS["session"])
        handle = raw.CK_ULONG(0)
        self.check_rv(self.module.call("C_OpenSession", slot, flags, None, None, byref(handle)))
        session = _child(response, "Session")
        if session is not None:
            self.bind(session.attrib.get("value", ""), int(handle.value))

    def _session(self, request: ET.Element) -> int:
        return int(self.value(request, "Session"))

    def _C_Login(self, request: ET.Element, response: ET.Element) -> None:
        session = self._session(request)
        user_name = str(self.value(request, "UserType")).removeprefix("CKU_")
        if user_name not in USER_TYPES:
            raise _Stop(f"unknown user type {user_name!r}")
        given = self.value(request, "Pin")
        vendors = isinstance(given, Secret)
        pin = given.reveal() if vendors else str(given)
        credential = Credential(self.module_path, self.token_label, user_name,
                                f"${self.pin_env}" if vendors else CASE_FILE, Secret(pin))
        encoded = pin.encode()
        try:
            rv = login(credential, lambda: self.module.call(
                "C_Login", session, USER_TYPES[user_name], encoded, len(encoded)))
        except WrongPin as exc:  # this credential was refused before: not tried again
            raise _Stop(str(exc)) from None
        if raw.ckr_name(rv) in PIN_REFUSED:  # the vendor's PIN or the case's: stop the run
            self.outcome.wrong_pin = (f"{credential.describe()} returned {raw.ckr_name(rv)}; "
                                      "stopping without retrying so the token is not locked")
            raise _Stop(self.outcome.wrong_pin)
        self.check_rv(rv)

    def _simple(self, function: str, argument: int) -> None:
        self.check_rv(self.module.call(function, argument))

    def _C_Logout(self, request: ET.Element, response: ET.Element) -> None:
        self._simple("C_Logout", self._session(request))

    def _C_CloseSession(self, request: ET.Element, response: ET.Element) -> None:
        self._simple("C_CloseSession", self._session(request))

    def _C_CloseAllSessions(self, request: ET.Element, response: ET.Element) -> None:
        self._simple("C_CloseAllSessions", int(self.value(request, "SlotID")))

    def _C_FindObjectsFinal(self, request: ET.Element, response: ET.Element) -> None:
        self._simple("C_FindObjectsFinal", self._session(request))

    def _C_FindObjectsInit(self, request: ET.Element, response: ET.Element) -> None:
        template = _child(request, "Template")
        values = {} if template is None else {
            _attribute(a.attrib["type"]): _attribute_value(a.attrib["type"],
                                                           self.resolve(a.attrib["value"]))
            for a in template}
        attributes, _buffers = self.module._template(values)
        self.check_rv(self.module.call("C_FindObjectsInit", self._session(request), attributes,
                                       len(values)))

    def _C_FindObjects(self, request: ET.Element, response: ET.Element) -> None:
        element = _child(request, "Object")
        most = int(self.resolve(element.attrib.get("length", "1"))) if element is not None else 1
        batch, count = (raw.CK_ULONG * max(most, 1))(), raw.CK_ULONG(0)
        self.check_rv(self.module.call("C_FindObjects", self._session(request), batch, most,
                                       byref(count)))
        found = [int(x) for x in batch[: count.value]]
        self.found = found
        expected = _child(response, "Object")
        wanted = [] if expected is None else list(expected)
        if len(found) != len(wanted):
            self.diverge("Object count", len(wanted), len(found))
        for index, entry in enumerate(wanted):
            text = entry.attrib.get("value", "")
            symbol = HANDLE.match(text)
            if index < len(found):
                self.bind(text, found[index])
            elif symbol is not None:
                call = self.step.index if self.step else 0
                self.missing[symbol.group(1)] = (f"C_FindObjects (call {call}) returned "
                                                 f"{len(found)} objects")

    def _C_GetAttributeValue(self, request: ET.Element, response: ET.Element) -> None:
        session, handle = self._session(request), int(self.value(request, "Object"))
        template = _child(request, "Template")
        asked = [] if template is None else list(template)
        sizes = [(_attribute(a.attrib["type"]),
                  int(self.resolve(a.attrib["length"])) if "length" in a.attrib else None)
                 for a in asked]
        expected = _child(response, "Template")
        wanted = [] if expected is None else [dict(e.attrib) for e in expected]
        handle = self._in_found_order(request, session, handle, wanted)
        rv, results = self.module.get_attribute_value_into(session, handle, sizes)
        self.check_rv(rv)
        for attributes, (_, length, value) in zip(wanted, results, strict=False):
            self.compare_attribute(attributes, length, value)

    def _label_fits(self, session: int, handle: int, wanted: dict[str, str]) -> bool:
        rv, [(_, length, value)] = self.module.get_attribute_value_into(
            session, handle, [(_attribute("LABEL"), 256)])
        if rv != raw.CKR_OK:
            return False
        if "value" in wanted:
            label = _attribute_bytes("LABEL", wanted["value"])
            return value in (label, label + b"\0")
        return length == int(self.resolve(wanted.get("length", "-1")))

    def _in_found_order(self, request: ET.Element, session: int, handle: int,
                        wanted: list[dict[str, str]]) -> int:
        """The "find-order" policy: when the case asks an object found by C_FindObjects for
        a CKA_LABEL that object does not have, and another object of the same result has
        it, the case's symbol is bound to that object instead (and the issue reported)."""
        label = next((w for w in wanted if w.get("type") == "LABEL"), None)
        if label is None or handle not in self.found or self._label_fits(session, handle,
                                                                         label):
            return handle
        others = [h for h in self.found if h != handle and self._label_fits(session, h, label)]
        if not others:
            return handle
        element = _child(request, "Object")
        symbol = HANDLE.match(element.attrib.get("value", "")) if element is not None else None
        if symbol is not None:
            self.bound[symbol.group(1)] = others[0]
        self.outcome.issues.add("find-order")
        return others[0]

    def compare_attribute(self, wanted: dict[str, str], length: int, value: bytes | None
                          ) -> None:
        kind = wanted["type"]
        if kind in ("MODULUS", "PUBLIC_EXPONENT") and value is not None:
            self.public[kind] = value
        if "length" in wanted and "value" not in wanted:
            expected_length = int(self.resolve(wanted["length"]))
            if length != expected_length and kind not in VARIABLE_ATTRIBUTES:
                self.diverge(f"{kind} length", expected_length, length)
            return
        if "value" not in wanted or kind in VARIABLE_ATTRIBUTES:
            return
        expected = _attribute_bytes(kind, wanted["value"])
        if value == expected:
            return
        if kind == "LABEL" and value == expected + b"\0":
            self.outcome.issues.add("label-nul")
            return
        if kind == "MODULUS" and value is not None and len(value) == len(expected):
            self.outcome.issues.add("unpublished-key")
            return
        shown = "nothing" if value is None else _show_bytes(kind, value)
        self.diverge(kind, _show_bytes(kind, expected), shown)

    def _C_SignInit(self, request: ET.Element, response: ET.Element) -> None:
        mechanism_element = _child(request, "Mechanism")
        if mechanism_element is None:
            raise _Stop("the request has no <Mechanism>")
        self.signing = str(self.value(mechanism_element, "Type"))
        mechanism = raw.CK_MECHANISM(_mechanism(self.signing), None, 0)
        key = int(self.value(request, "Key"))
        self.check_rv(self.module.call("C_SignInit", self._session(request), byref(mechanism),
                                       key))

    def _C_Sign(self, request: ET.Element, response: ET.Element) -> None:
        data = bytes.fromhex(str(self.value(request, "Data")))
        element = _child(request, "Signature")
        size = int(self.resolve(element.attrib["length"])) if element is not None and (
            "length" in element.attrib) else None
        length = raw.CK_ULONG(size or 0)
        buffer = None if size is None else create_string_buffer(max(size, 1))
        self.check_rv(self.module.call("C_Sign", self._session(request), data, len(data),
                                       buffer, byref(length)))
        expected = _child(response, "Signature")
        if buffer is None or expected is None or "value" not in expected.attrib:
            return
        signature, wanted = buffer.raw[: length.value], bytes.fromhex(expected.attrib["value"])
        if signature == wanted:
            return
        if self._verifies(signature, data):
            self.outcome.issues.add("unpublished-key")
            return
        self.diverge("Signature", f"{len(wanted)} bytes that verify with the public key",
                     f"{len(signature)} bytes that do not")

    def _verifies(self, signature: bytes, data: bytes) -> bool:
        """RSA PKCS#1 v1.5 verification with the MODULUS and PUBLIC_EXPONENT the module
        returned earlier in the case, the hash of the signing mechanism."""
        digest = {"SHA256_RSA_PKCS": hashes.SHA256(), "SHA384_RSA_PKCS": hashes.SHA384(),
                  "SHA512_RSA_PKCS": hashes.SHA512(), "SHA1_RSA_PKCS": hashes.SHA1(),
                  "SHA224_RSA_PKCS": hashes.SHA224()}.get(getattr(self, "signing", ""))
        if digest is None or set(self.public) != {"MODULUS", "PUBLIC_EXPONENT"}:
            return False
        key = rsa.RSAPublicNumbers(int.from_bytes(self.public["PUBLIC_EXPONENT"], "big"),
                                   int.from_bytes(self.public["MODULUS"], "big")).public_key()
        try:
            key.verify(signature, data, padding.PKCS1v15(), digest)
        except InvalidSignature:
            return False
        return True


# ---- value encodings (section 4.3) -----------------------------------------------------

def _child(element: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in element if _local(c.tag) == name), None)


def _boolean(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise _Stop(f"{text!r} is not a boolean (section 4.6.1)")
    return text.lower() == "true"


def _number(text: str) -> int:
    if text in SPECIAL_NUMBERS:
        return SPECIAL_NUMBERS[text]
    return int(text, 16) if text.lower().startswith("0x") else int(text)


def _show_number(value: int) -> str:
    return "UnavailableInformation" if value == raw.CK_UNAVAILABLE_INFORMATION else str(value)


def _flags(text: str, table: dict[str, int]) -> int:
    total = 0
    for part in re.split(r"[|\s]+", text.strip()):
        if not part:
            continue
        if part.lower().startswith("0x") or part.isdigit():
            total |= _number(part)
        elif part.removeprefix("CKF_") in table:
            total |= table[part.removeprefix("CKF_")]
        else:
            raise _Stop(f"unknown flag {part!r}")
    return total


def _flag_names(value: int, table: dict[str, int]) -> str:
    named = [name for name, bit in table.items() if value & bit]
    rest = value & ~sum(table.values())
    return "|".join(named + ([hex(rest)] if rest else [])) or "0x0"


def _mechanism(name: str) -> int:
    if name.lower().startswith("0x") or name.isdigit():
        return _number(name)
    full = name if name.startswith("CKM_") else f"CKM_{name}"
    if full not in names.MECHANISMS:
        raise _Stop(f"unknown mechanism {name!r}")
    return int(names.MECHANISMS[full])


def _attribute(name: str) -> int:
    try:
        return int(Attribute[name.removeprefix("CKA_")])
    except KeyError:
        raise _Stop(f"unknown attribute type {name!r}") from None


def _attribute_value(kind: str, text: str) -> bool | int | bytes:
    kind = kind.removeprefix("CKA_")
    if kind in BOOLEAN_ATTRIBUTES:
        return _boolean(text)
    if kind == "CLASS":
        return int(ObjectClass[text.removeprefix("CKO_")]) if not text[:1].isdigit() else (
            _number(text))
    if kind == "KEY_TYPE":
        return int(KeyType[text.removeprefix("CKK_")]) if not text[:1].isdigit() else (
            _number(text))
    return _attribute_bytes(kind, text)


def _attribute_bytes(kind: str, text: str) -> bytes:
    if kind.removeprefix("CKA_") in TEXT_ATTRIBUTES:
        return text.encode("utf-8")
    return bytes.fromhex(text)


def _show_bytes(kind: str, value: bytes) -> str:
    if kind in TEXT_ATTRIBUTES:
        return repr(value.decode("utf-8", "replace"))
    return f"{len(value)} bytes {value[:8].hex()}..." if len(value) > 8 else value.hex()


# ---- running a case in a child process -------------------------------------------------

def _serve(conn: Connection, case_path: str, module_path: str, init_reserved: str | None,
           token_label: str, pin_env: str | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the process that asked stops this one
    module = raw.Module(module_path, init_reserved)
    # As a PKCS#11 3.x application: the function list of the module's highest "PKCS 11"
    # interface when it has C_GetInterface (a 3.x module may answer C_GetInfo through
    # C_GetFunctionList's list with 2.40), else C_GetFunctionList's.
    interface = module.use_interface()
    outcome = Replay(module, module_path, token_label, pin_env).run(load(Path(case_path)))
    outcome.interface = "{}.{}".format(*interface) if interface else ""
    conn.send(outcome.as_dict())


def replay(case: Case, module_path: str, init_reserved: str | None, token_label: str,
           pin_env: str | None, timeout: float, throwaway: bool = False) -> Outcome:
    """Replay `case` in a spawned child process; a crash or a hang raises ModuleCrashed or
    ModuleTimedOut, and this process goes on. A case that may not run on this token
    (refusal()) is not started: its outcome says why. WrongPin when the vendor's PIN was
    refused."""
    refused = refusal(case, throwaway)
    if refused:
        return Outcome(refused=refused)
    outcome = _replay_in_child(case, module_path, init_reserved, token_label, pin_env, timeout)
    if outcome.wrong_pin:
        raise WrongPin(outcome.wrong_pin)
    return outcome


def _replay_in_child(case: Case, module_path: str, init_reserved: str | None,
                     token_label: str, pin_env: str | None, timeout: float) -> Outcome:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe(duplex=False)
    process = context.Process(target=_serve, args=(child, str(case.path), module_path,
                                                   init_reserved, token_label, pin_env),
                              daemon=True)
    process.start()
    child.close()
    try:
        if not parent.poll(timeout):
            process.kill()
            raise ModuleTimedOut(f"{case.name} did not finish within {timeout:g} s")
        try:
            return Outcome.from_dict(parent.recv())
        except EOFError:
            process.join(5)
            raise ModuleCrashed(f"the module process died while replaying {case.name} "
                                f"(exit code {process.exitcode})") from None
    finally:
        with contextlib.suppress(Exception):
            process.join(5)
        if process.is_alive():
            process.kill()
        parent.close()


def summary(case: Case, outcome: Outcome) -> str:
    """One line: the first divergence, how many follow, and the case issues applied."""
    module = outcome.module_divergences
    parts = [f"{case.name}: called through "
             + (f"C_GetInterface's PKCS 11 {outcome.interface} function list"
                if outcome.interface else "C_GetFunctionList's function list")]
    if module:
        parts.append(f"first divergence: {module[0].text()}")
        if len(outcome.divergences) > 1:
            parts.append("then " + "; ".join(d.text() for d in outcome.divergences
                                              if d is not module[0])[:700])
    elif outcome.divergences:
        parts.append("; ".join(d.text() for d in outcome.divergences)[:700])
    if outcome.stopped:
        parts.append(f"stopped at {outcome.stopped}")
    if outcome.issues:
        parts.append("where the specification's text and its XML disagree: "
                     + ", ".join(sorted(outcome.issues)))
    return ". ".join(parts)

