"""A fresh NSS database for NSS softokn (shared/MODULES.md).

softokn finds its database through the C_Initialize pReserved string; the database
password is the user PIN of the "NSS Certificate DB" token, which has no SO PIN.
"""

from __future__ import annotations

from pathlib import Path

from .base import Throwaway


class NSSDatabase(Throwaway):
    kind = "nss"
    tools = (("certutil", "libnss3-tools"),)

    def build(self, directory: Path) -> None:
        certutil = self.tool("certutil")
        database = directory / "nssdb"
        database.mkdir()
        user_pin, _ = self.new_pins()
        password = directory / "password"
        password.write_text(user_pin + "\n")
        try:
            self.run([certutil, "-N", "-d", f"sql:{database}", "-f", str(password)],
                     "certutil -N (create the database)")
        finally:
            password.unlink()
        self.init_reserved = (f"configdir='sql:{database}' certPrefix='' keyPrefix='' "
                              "secmod='secmod.db' flags=")
