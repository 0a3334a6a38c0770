"""openCryptoki's software token (swtok) in a private mount and IPC namespace
(shared/MODULES.md).

openCryptoki 3.8 keeps its configuration, token store, locks and daemon socket at fixed
paths (/etc/opencryptoki, /var/lib/opencryptoki, /run, /var/log) and its slot table in
System V shared memory. So this process moves into namespaces of its own (as root) and
mounts temp directories over those paths there: the machine's own openCryptoki set-up is
never touched, and everything is gone when the last process of the run ends. Processes
this one starts afterwards (xdist workers, isolated children) inherit the namespaces and
share the one token and `pkcsslotd`, which openCryptoki supports.
"""

from __future__ import annotations

import ctypes
import grp
import os
import sys
from pathlib import Path

from .. import raw
from .base import ProvisioningError, Throwaway

CLONE_NEWNS, CLONE_NEWIPC = 0x00020000, 0x08000000
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 0x40000
SLOT = 3  # swtok's slot in the default configuration, kept for familiarity
FACTORY_SO_PIN = "87654321"  # what a fresh swtok accepts (openCryptoki's documentation)
SOCKET = "/run/pkcsslotd.socket"


class OpenCryptokiSwToken(Throwaway):
    kind = "opencryptoki"
    tools = (("pkcsslotd", "opencryptoki"),)
    shared = True  # the processes the run starts are in its namespaces already
    # pkcsslotd ignores SIGTERM while a client is attached; nothing here needs it to save
    # state, so it is killed.
    kill_daemons = True

    @classmethod
    def missing(cls) -> str | None:
        absent = super().missing()
        if absent is not None:
            return absent
        if os.geteuid() != 0:
            return (f"provision: {cls.kind}: needs root, to give openCryptoki's fixed paths "
                    "a private mount namespace")
        try:
            grp.getgrnam("pkcs11")
        except KeyError:
            return (f"provision: {cls.kind}: group pkcs11 does not exist "
                    "(reinstall the opencryptoki package)")
        return None

    def build(self, directory: Path) -> None:
        slotd = self.tool("pkcsslotd")
        self._private_paths(directory)
        # Ready once its socket exists (it creates it last). Not probed by connecting:
        # pkcsslotd 3.8 removes its socket when a client closes without a request.
        self.start([slotd, "-f"], "pkcsslotd", Path(SOCKET).exists,
                   directory / "pkcsslotd.log")
        user_pin, so_pin = self.new_pins()
        # In a child, so this process loads the module only once, for the tests.
        self.run([sys.executable, "-c", INITIALIZE, self.module_path, self.token.label],
                 "token initialization", {**os.environ, "OCK_SO": so_pin, "OCK_USER": user_pin})

    def _private_paths(self, directory: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)

        def call(what: str, result: int) -> None:
            if result != 0:
                error = ctypes.get_errno()
                raise ProvisioningError(f"provision: {self.kind}: {what}: "
                                        f"{os.strerror(error)}")

        def mount(source: str, target: str, kind: str | None, flags: int) -> None:
            call(f"mount {source} on {target}", libc.mount(
                source.encode(), target.encode(), kind.encode() if kind else None, flags,
                None))

        call("unshare(CLONE_NEWNS | CLONE_NEWIPC)", libc.unshare(CLONE_NEWNS | CLONE_NEWIPC))
        mount("none", "/", None, MS_REC | MS_PRIVATE)  # nothing mounted here leaks out
        for target in ("/dev/shm", "/run", "/var/log"):
            mount("tmpfs", target, "tmpfs", 0)
        pkcs11 = grp.getgrnam("pkcs11").gr_gid
        etc, store, lock = directory / "etc", directory / "lib", Path("/run/lock/opencryptoki")
        for path in (etc, store / "swtok" / "TOK_OBJ", lock, Path("/var/log/opencryptoki")):
            path.mkdir(parents=True, exist_ok=True)
        for path in (store, store / "swtok", store / "swtok" / "TOK_OBJ", lock):
            os.chown(path, 0, pkcs11)
            path.chmod(0o770)
        (etc / "opencryptoki.conf").write_text(
            f"version opencryptoki-3.1\n\nslot {SLOT}\n{{\nstdll = libpkcs11_sw.so\n}}\n")
        mount(str(etc), "/etc/opencryptoki", None, MS_BIND)
        mount(str(store), "/var/lib/opencryptoki", None, MS_BIND)


def _initialize_token(path: str, label: str, so_pin: str, user_pin: str) -> None:
    """A fresh swtok takes the factory SO PIN; both PINs are then set to the run's own,
    and the user logs in once with the new PIN."""
    module = raw.Module(path)
    module.initialize()
    try:
        padded = label.encode().ljust(32)
        factory = FACTORY_SO_PIN.encode()
        module._check("C_InitToken", SLOT, factory, len(factory), padded)
        session = module.open_session(SLOT, raw.CKF_SERIAL_SESSION | raw.CKF_RW_SESSION)
        module.login(session, raw.CKU_SO, factory)
        module._check("C_SetPIN", session, factory, len(factory), so_pin.encode(),
                      len(so_pin))
        module._check("C_InitPIN", session, user_pin.encode(), len(user_pin))
        module.logout(session)
        module.login(session, raw.CKU_USER, user_pin.encode())
        module.logout(session)
        module.close_session(session)
    finally:
        module.finalize()


INITIALIZE = f"""
import os, sys
from {__name__} import _initialize_token
from {raw.__name__} import CKRError
try:
    _initialize_token(sys.argv[1], sys.argv[2], os.environ["OCK_SO"], os.environ["OCK_USER"])
except CKRError as exc:
    sys.exit(str(exc))
"""
