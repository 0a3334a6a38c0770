"""What every throwaway token shares: a temp dir, random PINs, tools and daemons."""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from ..model import TokenSpec

PR_SET_PDEATHSIG = 1
# The directory of the whole run (the pytest controller makes it and removes it at the
# end): throwaway tokens are made in it, so none outlives the run.
RUN_DIR_ENV = "PKCS11_CONFORMANCE_RUN_DIR"


class ProvisioningError(Exception):
    """The throwaway token could not be made; the message says what was tried."""


class Throwaway:
    """Base of the provisioners: `create` before the module is loaded, `remove` after."""

    kind = ""
    tools: tuple[tuple[str, str], ...] = ()  # (program, Debian package) the set-up runs
    # C_Initialize pReserved the module needs for this token (NSS: its database).
    init_reserved: str | None = None

    # One token for the whole run: made by the first process (the pytest controller), and
    # used as it is by the processes it starts (xdist workers, isolated children), which
    # inherit the environment that leads to it. For tokens behind a daemon, where a token
    # per process would cost a daemon set per process.
    shared = False
    kill_daemons = False

    def __init__(self, token: TokenSpec, module_path: str) -> None:
        self.token = token
        self.module_path = module_path  # the module the token is made for
        self.directory: Path | None = None
        self._daemons: list[subprocess.Popen[bytes]] = []

    @property
    def _shared_env(self) -> str:
        return "PKCS11_CONFORMANCE_TOKEN_" + self.kind.upper().replace("-", "_")

    def create(self) -> None:
        if self.shared and os.environ.get(self._shared_env):
            return  # a process of the run that made the token: use it, leave it
        absent = self.missing()
        if absent is not None:
            raise ProvisioningError(absent)
        self.directory = Path(tempfile.mkdtemp(prefix=f"pkcs11-conformance-{self.kind}-",
                                               dir=os.environ.get(RUN_DIR_ENV)))
        try:
            self.build(self.directory)
        except BaseException:
            self.remove()
            raise
        if self.shared:
            os.environ[self._shared_env] = str(self.directory)

    def build(self, directory: Path) -> None:
        raise NotImplementedError

    @classmethod
    def missing(cls) -> str | None:
        """Why this provisioner cannot run on this machine (a tool not installed), or None."""
        absent = [(name, package) for name, package in cls.tools if shutil.which(name) is None]
        if not absent:
            return None
        return (f"provision: {cls.kind}: " + ", ".join(n for n, _ in absent) + " not on PATH "
                f"(install {', '.join(sorted({p for _, p in absent}))})")

    def remove(self) -> None:
        """Stop every daemon started (last first) and delete the temp dir; idempotent.
        Daemons that ignore SIGTERM while clients are attached (`kill_daemons`) are killed."""
        if self.shared and self.directory is not None:
            os.environ.pop(self._shared_env, None)
        while self._daemons:
            process = self._daemons.pop()
            with contextlib.suppress(ProcessLookupError):
                if self.kill_daemons:
                    process.kill()
                else:
                    process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    # -- helpers for the provisioners ----------------------------------------------------

    def new_pins(self) -> tuple[str, str]:
        """Random user and SO PINs, put into the environment variables the vendor file
        names; the PINs reach the suite only from there."""
        user_pin, so_pin = secrets.token_hex(4), secrets.token_hex(4)
        os.environ[self.token.user_pin_env] = user_pin
        if self.token.so_pin_env:
            os.environ[self.token.so_pin_env] = so_pin
        return user_pin, so_pin

    def tool(self, name: str) -> str:
        """The path of `name`, one of this provisioner's `tools`."""
        found = shutil.which(name)
        if found is None:
            raise ProvisioningError(self.missing() or f"provision: {self.kind}: {name} is not "
                                    "on PATH")
        return found

    def run(self, command: Sequence[str], what: str,
            env: Mapping[str, str] | None = None) -> str:
        """Run a set-up command (in `env`, else this process's environment); its command
        line or environment may carry PINs, so a failure reports the tool's own output
        only."""
        done = subprocess.run(list(command), capture_output=True, text=True, check=False,
                              env=None if env is None else dict(env))
        if done.returncode != 0:
            raise ProvisioningError(
                f"provision: {self.kind}: {what} failed (exit {done.returncode}): "
                f"{(done.stderr.strip() or done.stdout.strip())[-2000:]}")
        return done.stdout

    def start(self, command: Sequence[str], what: str, ready: Callable[[], bool],
              log: Path, wait: float = 20.0) -> None:
        """Start a daemon in the foreground as our child, so it is stopped by PID; it is
        sent SIGTERM by the kernel if this process dies first (PR_SET_PDEATHSIG). Waits
        until `ready()` is true."""
        with log.open("wb") as output:
            process = subprocess.Popen(
                list(command), stdin=subprocess.DEVNULL, stdout=output,
                stderr=subprocess.STDOUT, preexec_fn=_die_with_parent, start_new_session=True)
        self._daemons.append(process)
        deadline = time.monotonic() + wait
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                state = (f"exited with {process.returncode}" if process.poll() is not None
                         else f"not ready after {wait:g} s")
                raise ProvisioningError(
                    f"provision: {self.kind}: {what} {state}: "
                    f"{log.read_text(errors='replace').strip()[-2000:]}")
            time.sleep(0.05)


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
