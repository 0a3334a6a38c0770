"""The module and token under test, opened once per process through python-pkcs11."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pkcs11
from pkcs11 import Attribute
from pkcs11.exceptions import (
    PinExpired,
    PinIncorrect,
    PinInvalid,
    PinLenRange,
    PinLocked,
    PKCS11Error,
)

from . import initargs, raw
from .cbuild import BuildError
from .crosscheck import Keys
from .model import Vendor
from .names import mechanism_name
from .provisioning import RUN_DIR_ENV, ProvisioningError, Throwaway, provisioner
from .uri import token_uri


class TargetError(Exception):
    """The module or token could not be reached; the message says what was tried."""


class WrongPin(TargetError):
    """A PIN was refused (CKR_PIN_INCORRECT, CKR_PIN_LEN_RANGE, ...): the run stops here
    and never retries, so no token is locked."""


# ---- the PIN guard: every C_Login the suite makes goes through login() ----------------

# C_Login's answers that judge the PIN itself (PKCS#11 v2.40 §5.6.7, §5.1): after one, the
# credential is never tried again in the run.
PIN_REFUSED = frozenset({"CKR_PIN_INCORRECT", "CKR_PIN_INVALID", "CKR_PIN_LEN_RANGE",
                         "CKR_PIN_EXPIRED", "CKR_PIN_LOCKED"})
_PYTHON_PKCS11_REFUSALS = {PinIncorrect: "CKR_PIN_INCORRECT", PinInvalid: "CKR_PIN_INVALID",
                           PinLenRange: "CKR_PIN_LEN_RANGE", PinExpired: "CKR_PIN_EXPIRED",
                           PinLocked: "CKR_PIN_LOCKED"}
LEDGER = "logins"  # in the run directory: what each credential's C_Login returned
CASE_FILE = "the case file"  # the source of a PIN written in an OASIS case


class Secret(str):
    """A PIN: its repr and str() are *** (so no traceback, `pytest -l`'s locals, assertion
    rewriting or dataclass repr shows it, nor a dict that holds it); reveal() gives the
    value. Being a str, it goes as it is into a child's environment (os.fsencode and
    str.encode read the value)."""

    __slots__ = ()

    def reveal(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__


@dataclass(frozen=True)
class Credential:
    """One PIN for one user type on one token; `source` says where the PIN came from
    ($VARIABLE, or CASE_FILE)."""

    module: str
    label: str
    user: str  # USER, SO, CONTEXT_SPECIFIC
    source: str
    pin: Secret = field(repr=False, compare=False)

    @property
    def key(self) -> str:
        """Its name in the ledger. A PIN from the environment is not part of it (a digest
        of a short PIN would give the PIN away); a PIN written in a case file is public."""
        parts = [os.path.realpath(self.module), self.label, self.user, self.source]
        if self.source == CASE_FILE:
            parts.append(self.pin.reveal())
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()

    def describe(self) -> str:
        return (f"C_Login as CKU_{self.user} on token {self.label!r} with the PIN from "
                f"{self.source}")


class _Ledger:
    """What C_Login returned for each credential in this run, shared by every process of
    the run (controller, xdist workers, isolated children, replays) through a locked file
    in the run directory; a process outside a run keeps it in memory."""

    def __init__(self) -> None:
        self._memory: dict[str, str] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def held(self) -> Iterator[dict[str, str]]:
        run_dir = os.environ.get(RUN_DIR_ENV)
        if not run_dir or not os.path.isdir(run_dir):
            with self._lock:
                yield self._memory
            return
        with self._lock, open(Path(run_dir) / LEDGER, "a+", encoding="ascii") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, or we die
            handle.seek(0)
            known = dict(line.split(" ", 1) for line in handle.read().splitlines())
            before = dict(known)
            try:
                yield known
            finally:
                handle.writelines(f"{k} {v}\n" for k, v in known.items() if before.get(k) != v)


_LEDGER = _Ledger()


def login(credential: Credential, call: Callable[[], int]) -> int:
    """Make one C_Login (`call`, which returns its CK_RV) under the run's PIN guard: a
    credential whose PIN was refused once in this run is never tried again (WrongPin, no
    call); the first attempt of a credential holds the ledger, so processes of one run
    never try an unproven PIN at the same time."""
    with _LEDGER.held() as known:
        earlier = known.get(credential.key)
        if earlier in PIN_REFUSED:
            raise WrongPin(f"{credential.describe()} returned {earlier} earlier in this run; "
                           "not tried again, so the token is not locked")
        rv = call()
        name = raw.ckr_name(rv)
        if name == "CKR_OK" or name in PIN_REFUSED:
            known[credential.key] = name
    return rv


def vendor_pin(vendor: Vendor, so: bool = False) -> Secret:
    """The user PIN (or SO PIN) from the environment variable the vendor file names; an
    unset or empty one is refused here, before any module call."""
    key = "so_pin_env" if so else "user_pin_env"
    name = vendor.token.so_pin_env if so else vendor.token.user_pin_env
    value = os.environ.get(name) if name else None
    if not value:
        state = "is empty" if value == "" else "is not set"
        raise TargetError(f"{vendor.source}: token.{key}: environment variable {name} "
                          f"{state} (the PIN comes only from it); nothing was called")
    return Secret(value)


@dataclass
class Target:
    vendor: Vendor
    lib: Any
    token: Any
    throwaway: Throwaway | None = None
    init_reserved: str | None = None  # C_Initialize pReserved the module is given
    _session: Any = field(default=None, repr=False)
    _raw: raw.Module | None = field(default=None, repr=False)
    _keys: Keys | None = field(default=None, repr=False)
    # What the suites keep between tests (key objects): emptied by reinitialize().
    _caches: list[dict[Any, Any]] = field(default_factory=list, repr=False)

    def login_session(self) -> Any:
        """This process's one logged-in RW session, kept open for the whole run.

        Login state belongs to the process, and closing the session that logged in logs
        every session out; so log in exactly once, and stop at the first wrong PIN.
        """
        if self._session is None:
            credential = Credential(self.vendor.module.path, self.token.label, "USER",
                                    f"${self.vendor.token.user_pin_env}",
                                    vendor_pin(self.vendor))

            def call() -> int:
                try:
                    self._session = self.token.open(rw=True,
                                                    user_pin=credential.pin.reveal())
                except tuple(_PYTHON_PKCS11_REFUSALS) as exc:
                    return _rv(_PYTHON_PKCS11_REFUSALS[type(exc)])
                return raw.CKR_OK

            returned = raw.ckr_name(login(credential, call))
            if returned in PIN_REFUSED:
                raise WrongPin(f"{credential.describe()} returned {returned}; stopping "
                               "without retrying so the token is not locked")
            ledger = os.environ.get(OBJECTS_ENV)
            if ledger and self.throwaway is None:  # a throwaway's objects go with it
                self._session = RecordingSession(self._session, Path(ledger))
        return self._session

    @property
    def keys(self) -> Keys:
        """The keys this process generated once and reuses (until a re-initialization)."""
        if self._keys is None:
            self._keys = Keys(self.login_session())
        return self._keys

    def cache(self) -> dict[Any, Any]:
        """A dict for objects a fixture keeps between tests; emptied when the module is
        re-initialized, as the handles in it are then gone."""
        kept: dict[Any, Any] = {}
        self._caches.append(kept)
        return kept

    def current_session(self) -> Any:
        """The logged-in session for fixtures that outlive a test: the session itself, or
        under keys.reinitialize_every one that always leads to the current session."""
        if self.vendor.keys.reinitialize_every:
            return CurrentSession(self)
        return self.login_session()

    def reinitialize(self) -> None:
        """C_Finalize and C_Initialize, then find the token again: every handle of the
        process (sessions, objects, the login) is gone, so are the kept keys. For a module
        that frees what it holds only at C_Finalize (keys.reinitialize_every)."""
        self._session, self._keys = None, None
        for kept in self._caches:
            kept.clear()
        self.lib.reinitialize()
        self.token = _find_token(self.vendor, self.lib)

    def end_operations(self) -> None:
        """Best effort, after every test, to end any operation it left active in the shared
        session, so one module error does not turn the tests after it into
        CKR_OPERATION_ACTIVE failures (a module keeps an operation active after
        CKR_BUFFER_TOO_SMALL, v2.40 section 5.2). Calls go through the ctypes layer to the
        module instance python-pkcs11 loaded: each Final with a large buffer, which ends
        an active operation; every return value is ignored. (Init with a NULL mechanism,
        v3.0's way to cancel, crashes NSS softokn 3.87 in C_DigestInit.)"""
        if self._session is None:
            return
        if self._raw is None:
            self._raw = raw.Module(self.vendor.module.path)
        handle, buffer, length = self._session.handle, ctypes.create_string_buffer(16384), \
            ctypes.c_ulong(16384)
        for operation in ("Encrypt", "Decrypt", "Digest", "Sign"):
            length.value = 16384
            self._raw.call(f"C_{operation}Final", handle, buffer, ctypes.byref(length))
        self._raw.call("C_VerifyFinal", handle, bytes(64), 64)
        self._raw.call("C_FindObjectsFinal", handle)

    def info(self) -> dict[str, Any]:
        """C_GetInfo, C_GetTokenInfo and C_GetMechanismList (as spec names), as recorded
        in results and the report header."""
        token = self.token
        try:
            advertised: list[str] | None = sorted(
                mechanism_name(m) for m in token.slot.get_mechanisms())
        except PKCS11Error:  # recorded as unknown; the mechanisms area reports the error
            advertised = None
        return {
            "module": {
                "path": self.vendor.module.path,
                "cryptoki_version": ".".join(map(str, self.lib.cryptoki_version)),
                "manufacturer_id": self.lib.manufacturer_id,
                "library_description": self.lib.library_description,
                "library_version": ".".join(map(str, self.lib.library_version)),
            },
            "token": {
                "label": token.label,
                "manufacturer_id": token.manufacturer_id,
                "model": token.model,
                "serial": token.serial.decode("ascii", "replace").strip(),
                "flags": int(token.flags),
                "hardware_version": ".".join(map(str, token.hardware_version)),
                "firmware_version": ".".join(map(str, token.firmware_version)),
                "throwaway": self.throwaway is not None,
            },
            "mechanisms": advertised,
        }

    def close(self) -> None:
        if self._session is not None:
            with contextlib.suppress(PKCS11Error):  # the module goes with the process anyway
                self._session.close()
            self._session = None
        if self.throwaway is not None:
            self.throwaway.remove()


# ---- the run ledger of token objects: what `clean` may remove ----------------------------

# The file (beside the results) where a run on a token that is not a throwaway records
# each token object it makes, so `clean` can later prove which objects are the suite's.
OBJECTS_ENV = "PKCS11_CONFORMANCE_OBJECTS"
OBJECTS_FILE = "created-objects.jsonl"
# What proves an object is one the suite made: key material or contents it generated, or
# the module's unique id; a label can be given to anything.
PROOF = (Attribute.MODULUS, Attribute.EC_POINT, Attribute.VALUE, Attribute.CHECK_VALUE,
         Attribute.UNIQUE_ID)


def digest_proof(object_class: int, values: Iterable[tuple[int, bytes]]) -> str | None:
    """A digest of an object's class and its PROOF attribute values (attribute type, raw
    value), None if it has none."""
    digest, found = hashlib.sha256(str(object_class).encode()), False
    for attribute, value in values:
        if value:
            found = True
            digest.update(f"|{attribute}=".encode() + value)
    return digest.hexdigest() if found else None


def proof(obj: Any) -> str | None:
    """digest_proof of a python-pkcs11 object (attributes it lacks or hides are skipped)."""
    def read(attribute: Attribute) -> bytes:
        try:
            value = obj[attribute]
        except (PKCS11Error, KeyError, NotImplementedError):
            return b""
        return value if isinstance(value, bytes) else str(value or "").encode()
    return digest_proof(int(obj[Attribute.CLASS]), ((int(a), read(a)) for a in PROOF))


def token_id(label: str, serial: str) -> dict[str, str]:
    return {"label": label.rstrip(), "serial": serial.strip()}


def record(path: Path, entries: Iterable[tuple[dict[str, str], str, str]]) -> None:
    """Append (token_id, object label, proof) entries to the ledger at `path`: processes of
    one run append to it at once, each with one locked write."""
    lines = "".join(json.dumps({"token": token, "label": label, "proof": made}) + "\n"
                    for token, label, made in entries)
    if lines:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as ledger:
            fcntl.flock(ledger, fcntl.LOCK_EX)
            ledger.write(lines)


def objects_made(path: Path, token: Any) -> dict[str, str]:
    """proof -> label of the objects the ledger at `path` records on `token`."""
    if not path.is_file():
        return {}
    wanted, made = token_id(token.label, _serial(token)), {}
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry["token"] == wanted:
            made[entry["proof"]] = entry["label"]
    return made


class RecordingSession:
    """A logged-in session whose create_object, generate_key and generate_keypair record
    the token objects they make in the run ledger (OBJECTS_ENV)."""

    def __init__(self, session: Any, ledger: Path) -> None:
        self._session, self._ledger = session, ledger

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def _made(self, objects: Iterable[Any]) -> None:
        token = self._session.token
        found = [(obj[Attribute.LABEL], proof(obj)) for obj in objects if obj[Attribute.TOKEN]]
        record(self._ledger, [(token_id(token.label, _serial(token)), label, made)
                              for label, made in found if made is not None])

    def create_object(self, *args: Any, **kwargs: Any) -> Any:
        obj = self._session.create_object(*args, **kwargs)
        self._made([obj])
        return obj

    def generate_key(self, *args: Any, **kwargs: Any) -> Any:
        key = self._session.generate_key(*args, **kwargs)
        self._made([key])
        return key

    def generate_keypair(self, *args: Any, **kwargs: Any) -> Any:
        pair = self._session.generate_keypair(*args, **kwargs)
        self._made(pair)
        return pair


class CurrentSession:
    """Stands for the target's logged-in session of the moment (see current_session)."""

    def __init__(self, target: Target) -> None:
        self._target = target

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target.login_session(), name)


def open_target(vendor: Vendor, threads: bool = False) -> Target:
    """Provision the token if the vendor file says it is a throwaway, load the module,
    find the token by label or URI. `threads`: the module is told (CKF_OS_LOCKING_OK)
    that it will be called from several threads."""
    throwaway = provisioner(vendor)
    if throwaway is None:
        vendor_pin(vendor)  # an unset or empty PIN is refused before the module is loaded
    else:
        try:
            throwaway.create()
        except ProvisioningError as exc:
            raise TargetError(f"{vendor.source}: token.{exc}") from None
    try:
        reserved = init_reserved(vendor, throwaway)
        try:
            lib = pkcs11.lib(initargs.loadable(vendor.module.path, reserved, threads))
        except BuildError as exc:
            raise TargetError(f"{vendor.source}: module.init_reserved: {exc}") from None
        except PKCS11Error as exc:
            raise TargetError(f"{vendor.source}: module.path: cannot load "
                              f"{vendor.module.path!r} as a PKCS#11 module: {exc}") from None
        token = _find_token(vendor, lib)
    except BaseException:
        if throwaway is not None:
            throwaway.remove()
        raise
    return Target(vendor, lib, token, throwaway, reserved)


def init_reserved(vendor: Vendor, throwaway: Throwaway | None) -> str | None:
    """The C_Initialize pReserved string: the vendor file's, else the provisioner's."""
    if vendor.module.init_reserved is not None:
        return vendor.module.init_reserved
    return throwaway.init_reserved if throwaway is not None else None


def _find_token(vendor: Vendor, lib: Any) -> Any:
    """The one token the vendor file names: by token.label, or by every attribute its
    token.uri gives (token, manufacturer, serial, model, slot-id, library-*)."""
    spec, present = vendor.token, list(lib.get_tokens())
    if spec.uri is None:
        key, wanted = "token.label", f"labelled {spec.label!r}"
        found = [t for t in present if t.label == spec.label]
        listed = ", ".join(sorted(repr(t.label) for t in present))
    else:
        key, wanted = "token.uri", f"matching {spec.uri.text!r}"
        library = spec.uri.matches_library(lib.manufacturer_id, lib.library_description,
                                           lib.library_version)
        found = [t for t in present if library and spec.uri.matches_token(
            t.label, t.manufacturer_id, _serial(t), t.model, t.slot.slot_id)]
        listed = ", ".join(sorted(token_uri(t.label, t.manufacturer_id, _serial(t), t.model)
                                  for t in present))
    if len(found) == 1:
        return found[0]
    if found:
        raise TargetError(f"{vendor.source}: {key}: {len(found)} tokens {wanted} in "
                          f"{vendor.module.path}; name one by its serial in token.uri "
                          f"(tokens present: {listed})")
    raise TargetError(f"{vendor.source}: {key}: no token {wanted} in {vendor.module.path} "
                      f"(tokens present: {listed or 'none'})")


def _rv(name: str) -> int:
    return next(rv for rv, known in raw.CKR.items() if known == name)


def _serial(token: Any) -> str:
    return bytes(token.serial).decode("ascii", "replace").strip()
