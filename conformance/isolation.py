"""The ctypes layer (raw.py) run in a child process that may die.

A raw check changes process-wide module state (C_Initialize, login) and may hit a module
bug that kills the process. So the module is loaded afresh in a spawned child; the test
calls methods on a proxy and each call crosses a pipe. A crash or a hang becomes an
exception naming the call, and the test process lives on.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from . import raw, uri
from .target import (
    OBJECTS_ENV,
    PIN_REFUSED,
    PROOF,
    Credential,
    Secret,
    Target,
    WrongPin,
    digest_proof,
    login,
    record,
    token_id,
)

CALL_TIMEOUT = 60.0  # seconds one call may take before the child is killed
# Children are forked from a server process that has imported this module and never loads
# a PKCS#11 module (spawning an interpreter for each check cost about 0.3 s); each child
# still loads the module afresh, in the environment of the process that asked for it.
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload([__name__])


class ModuleCrashed(Exception):
    """The child process died inside a module call."""


class ModuleTimedOut(Exception):
    """A module call did not return in time; the child was killed."""


def _serve(conn: Connection, environment: dict[str, str], path: str,
           init_reserved: str | None, label: str, pin_env: str,
           so_pin_env: str | None = None, token_uri: str | None = None,
           ledger: str | None = None) -> None:
    """Child side: load and initialize the module, find the token, answer calls.

    `environment` is the asking process's (the module reads its configuration, the token
    directory for one, from there). `so_pin_env` is given only for a throwaway token:
    without it `login_so` is refused. With `token_uri` (the vendor's token.uri) the token
    is found by its attributes. With `ledger` (a token that is not a throwaway) the token
    objects made are recorded there."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the process that asked stops this one
    os.environ.clear()
    os.environ.update(environment)
    module = raw.Module(path, init_reserved)
    module.initialize()
    if token_uri is None:
        slots = [s for s in module.get_slot_list(True)
                 if module.get_token_info(s).label == label]
    else:
        wanted, info = uri.parse(token_uri), module.get_info()
        slots = [s for s in module.get_slot_list(True)
                 if wanted.matches_library(info.manufacturer_id, info.library_description,
                                           info.library_version)
                 and _token_matches(wanted, module.get_token_info(s), s)]
    conn.send(slots[0] if slots else None)
    while True:
        request = conn.recv()
        if request is None:
            module.finalize()
            return
        name, args = request
        try:
            if name == "login_user":  # the PIN stays in this process's environment
                _login(module, path, label, args[0], "USER", pin_env)
                result = None
            elif name == "login_so":  # likewise; never on a token that is not a throwaway
                if not so_pin_env:
                    raise PermissionError("C_Login as CKU_SO is done only on a throwaway "
                                          "token whose vendor file names token.so_pin_env")
                _login(module, path, label, args[0], "SO", so_pin_env)
                result = None
            else:
                result = getattr(module, name)(*args)
                if ledger and name in MAKERS and slots:
                    _record(module, slots[0], args[0], result, Path(ledger))
            conn.send(("ok", result))
        except raw.CKRError as exc:
            conn.send(("ckr", (exc.function, exc.rv)))
        except WrongPin as exc:
            conn.send(("wrong-pin", str(exc)))
        except Exception as exc:  # the harness's own mistake: report, keep serving
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


def _login(module: raw.Module, path: str, label: str, session: int, user: str,
           pin_env: str) -> None:
    """C_Login with the PIN in `pin_env`, under the run's PIN guard (target.login)."""
    pin = os.environ.get(pin_env, "")
    if not pin:
        raise WrongPin(f"environment variable {pin_env} is empty or not set; C_Login as "
                       f"CKU_{user} not called")
    credential = Credential(path, label, user, f"${pin_env}", Secret(pin))
    rv = login(credential, lambda: module.call("C_Login", session, getattr(raw, f"CKU_{user}"),
                                                pin.encode(), len(pin.encode())))
    if raw.ckr_name(rv) in PIN_REFUSED:
        raise WrongPin(f"{credential.describe()} returned {raw.ckr_name(rv)}; stopping "
                       "without retrying so the token is not locked")
    if rv != raw.CKR_OK:
        raise raw.CKRError("C_Login", rv)


# The raw-layer calls that make objects (their result: the new handle, or a pair).
MAKERS = {"create_object", "generate_key", "generate_key_pair", "copy_object", "unwrap_key",
          "derive_key"}


def _record(module: raw.Module, slot: int, session: int, made: Any, ledger: Path) -> None:
    """Record in the run ledger the token objects among the handles `made` (best effort: a
    read that fails leaves the object unrecorded, so `clean` leaves it)."""
    token = module.get_token_info(slot)
    entries = []
    for handle in made if isinstance(made, tuple) else (made,):
        with contextlib.suppress(raw.CKRError):
            _, values = module.get_attribute_values(
                session, handle, [raw.CKA_CLASS, raw.CKA_TOKEN, raw.CKA_LABEL, *map(int, PROOF)])
            read = {kind: value or b"" for kind, _, value in values}
            if read[raw.CKA_TOKEN][:1] in (b"", b"\0"):
                continue
            made_proof = digest_proof(int.from_bytes(read[raw.CKA_CLASS], sys.byteorder),
                                      ((int(a), read[int(a)]) for a in PROOF))
            if made_proof is not None:
                entries.append((token_id(token.label, token.serial_number),
                                read[raw.CKA_LABEL].decode("utf-8", "replace"), made_proof))
    record(ledger, entries)


def _token_matches(wanted: uri.PKCS11URI, info: raw.TokenInfo, slot: int) -> bool:
    return wanted.matches_token(info.label, info.manufacturer_id, info.serial_number,
                                info.model, slot)


class RawModule:
    """Proxy to a raw.Module in a child process; `slot` is the token's slot id."""

    def __init__(self, conn: Connection, process: Any, slot: int) -> None:
        self._conn, self._process, self.slot = conn, process, slot

    def _call(self, name: str, *args: Any) -> Any:
        self._conn.send((name, args))
        try:
            if not self._conn.poll(CALL_TIMEOUT):
                self._process.kill()
                raise ModuleTimedOut(f"{name} did not return within {CALL_TIMEOUT:g} s")
            kind, value = self._conn.recv()
        except (EOFError, ConnectionResetError):
            self._process.join(5)
            raise ModuleCrashed(f"the module process died in {name} "
                                f"(exit code {self._process.exitcode})") from None
        if kind == "ckr":
            raise raw.CKRError(*value)
        if kind == "wrong-pin":
            raise WrongPin(value)
        if kind == "error":
            raise RuntimeError(f"harness error in {name}: {value}")
        return value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args: self._call(name, *args)

    def login_user(self, session: int) -> None:
        """C_Login as CKU_USER with the vendor's user PIN, which the test never sees."""
        self._call("login_user", session)

    def login_so(self, session: int) -> None:
        """C_Login as CKU_SO with the SO PIN from the environment variable the vendor file
        names (token.so_pin_env), which the test never sees. Only for a throwaway token
        (token.provision): otherwise the child refuses and this raises RuntimeError."""
        self._call("login_so", session)


@contextmanager
def raw_module(target: Target) -> Iterator[RawModule]:
    context = _CONTEXT
    parent, child = context.Pipe()
    token = target.vendor.token
    so_pin_env = token.so_pin_env if token.provision is not None else None
    ledger = os.environ.get(OBJECTS_ENV) if target.throwaway is None else None
    arguments = (child, dict(os.environ), target.vendor.module.path, target.init_reserved,
                 token.label, token.user_pin_env, so_pin_env, token.uri and token.uri.text,
                 ledger)
    process = context.Process(target=_serve, args=arguments, daemon=True)
    process.start()
    child.close()
    try:
        if not parent.poll(CALL_TIMEOUT):
            raise ModuleTimedOut("loading the module did not finish in time")
        try:
            slot = parent.recv()
        except EOFError:
            process.join(5)
            raise ModuleCrashed("the module process died while loading and initializing "
                                f"the module (exit code {process.exitcode})") from None
        if slot is None:
            raise RuntimeError(f"token {token.name()} not found by the child process")
        yield RawModule(parent, process, slot)
    finally:
        if process.is_alive():
            with contextlib.suppress(OSError):
                parent.send(None)
            process.join(10)
            if process.is_alive():
                process.kill()
        parent.close()
