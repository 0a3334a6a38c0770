"""Throwaway tokens: created for a run, used, and removed.

Only a vendor file whose token says `provision: <kind>` gets one; any other token is
used as it is and never initialized. Each process (each xdist worker) provisions its own
token, because SoftHSM2 rewrites its token file on every login and two processes on one
token directory fail intermittently (shared/MODULES.md).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from .model import TokenSpec


class ProvisioningError(Exception):
    """The throwaway token could not be made; the message says what was tried."""


class SoftHSM2Token:
    """A private SoftHSM2 token directory and configuration under a temp dir.

    SoftHSM2 reads SOFTHSM2_CONF when the module is initialized, so this must run before
    the module is loaded in this process. The PINs are random and reach the suite only
    through the environment variables the vendor file names.
    """

    def __init__(self, token: TokenSpec) -> None:
        self.token = token
        self.directory: Path | None = None

    def create(self) -> None:
        tool = shutil.which("softhsm2-util")
        if tool is None:
            raise ProvisioningError(
                "provision: softhsm2: softhsm2-util is not on PATH "
                "(install the softhsm2 package)")
        self.directory = Path(tempfile.mkdtemp(prefix="pkcs11-conformance-"))
        tokens = self.directory / "tokens"
        tokens.mkdir()
        conf = self.directory / "softhsm2.conf"
        conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                        "log.level = ERROR\nslots.removable = false\n")
        user_pin, so_pin = secrets.token_hex(8), secrets.token_hex(8)
        os.environ["SOFTHSM2_CONF"] = str(conf)
        os.environ[self.token.user_pin_env] = user_pin
        if self.token.so_pin_env:
            os.environ[self.token.so_pin_env] = so_pin
        done = subprocess.run(
            [tool, "--init-token", "--free", "--label", self.token.label,
             "--so-pin", so_pin, "--pin", user_pin],
            capture_output=True, text=True, check=False)
        if done.returncode != 0:
            self.remove()
            # stderr only: the command line carries the PINs.
            raise ProvisioningError(
                f"provision: softhsm2: softhsm2-util --init-token failed "
                f"(exit {done.returncode}): {done.stderr.strip() or done.stdout.strip()}")

    def remove(self) -> None:
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


def provisioner(token: TokenSpec) -> SoftHSM2Token | None:
    """The throwaway-token maker the vendor file asks for, or None to use the token as is."""
    if token.provision == "softhsm2":
        return SoftHSM2Token(token)
    return None
