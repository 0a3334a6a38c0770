"""A private SoftHSM2 token directory and configuration (shared/MODULES.md)."""

from __future__ import annotations

import os
from pathlib import Path

from .base import Throwaway


class SoftHSM2Token(Throwaway):
    """SoftHSM2 reads SOFTHSM2_CONF when the module is initialized, so this runs before
    the module is loaded in this process (and before any daemon that loads it)."""

    kind = "softhsm2"
    tools: tuple[tuple[str, str], ...] = (("softhsm2-util", "softhsm2"),)

    def build(self, directory: Path) -> None:
        tool = self.tool("softhsm2-util")
        tokens = directory / "tokens"
        tokens.mkdir()
        conf = directory / "softhsm2.conf"
        conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                        "log.level = ERROR\nslots.removable = false\n")
        os.environ["SOFTHSM2_CONF"] = str(conf)
        user_pin, so_pin = self.new_pins()
        self.run([tool, "--init-token", "--free", "--label", self.token.label,
                  "--so-pin", so_pin, "--pin", user_pin], "softhsm2-util --init-token")
