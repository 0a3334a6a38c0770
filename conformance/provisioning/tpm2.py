"""tpm2-pkcs11 on the swtpm TPM 2.0 simulator, through the tpm2-abrmd resource manager
(shared/MODULES.md).

Three daemons, all started here as children and stopped by PID: swtpm on two free
loopback ports, a D-Bus daemon of our own (tpm2-abrmd registers its name on a bus, and the
machine's buses are not ours to use), and tpm2-abrmd on that bus, which without it key
creation runs out of TPM object contexts. The token store (an SQLite file) is made by
`tpm2_ptool`. Each process of the run (the controller, each xdist worker) gets its own.
"""

from __future__ import annotations

import functools
import os
import secrets
import socket
import subprocess
from pathlib import Path

from .base import ProvisioningError, Throwaway

TCTI = "tabrmd:bus_name=com.intel.tss2.Tabrmd,bus_type=session"
BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>{address}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


class Tpm2Token(Throwaway):
    kind = "tpm2"
    tools = (("swtpm", "swtpm"), ("dbus-daemon", "dbus-daemon"), ("dbus-send", "dbus-bin"),
             ("tpm2-abrmd", "tpm2-abrmd"), ("tpm2_ptool", "libtpm2-pkcs11-tools"))
    # Not shared: two processes initializing tpm2-pkcs11 on one store at once get "database
    # is locked" from its SQLite store (measured), so each process has its own TPM.

    def build(self, directory: Path) -> None:
        swtpm, ptool = self.tool("swtpm"), self.tool("tpm2_ptool")
        state, store, home = directory / "tpm", directory / "store", directory / "home"
        for path in (state, store, home):
            path.mkdir()
        port = self._start_swtpm(swtpm, state, directory)
        # An abstract socket: a path under a long TMPDIR can exceed the 108 bytes a Unix
        # socket name may have. The bus prints its address once it listens.
        bus = f"unix:abstract=pkcs11-conformance-{secrets.token_hex(8)}"
        config, log = directory / "bus.conf", directory / "dbus.log"
        config.write_text(BUS_CONFIG.format(address=bus))
        self.start([self.tool("dbus-daemon"), f"--config-file={config}", "--nofork",
                    "--print-address=1"], "dbus-daemon",
                   lambda: "abstract=" in log.read_text(errors="replace"), log)
        os.environ["DBUS_SESSION_BUS_ADDRESS"] = bus
        self.start([self.tool("tpm2-abrmd"), "--session", "--allow-root",
                    f"--tcti=swtpm:host=127.0.0.1,port={port}", "--max-transients=100"],
                   "tpm2-abrmd", self._abrmd_on_bus, directory / "tpm2-abrmd.log")
        os.environ.update({
            "TPM2TOOLS_TCTI": TCTI, "TPM2_PKCS11_TCTI": TCTI, "TPM2_PKCS11_STORE": str(store),
            "TPM2_PKCS11_BACKEND": "esysdb",
            "TSS2_LOG": "all+NONE",  # the TSS logs every refused call to stderr otherwise
        })
        user_pin, so_pin = self.new_pins()
        # tpm2_ptool is a Python 3 program of the system's Python; HOME keeps its files here.
        env = {**os.environ, "HOME": str(home)}
        self.run([ptool, "init", f"--path={store}"], "tpm2_ptool init", env)
        self.run([ptool, "addtoken", "--pid=1", f"--sopin={so_pin}", f"--userpin={user_pin}",
                  f"--label={self.token.label}", f"--path={store}"], "tpm2_ptool addtoken",
                 env)

    def _start_swtpm(self, swtpm: str, state: Path, directory: Path) -> int:
        """swtpm on a free port pair: ports are picked by binding port 0, so another
        program may take one before swtpm does; then swtpm exits and another pair is tried."""
        for _ in range(5):
            port = _free_port_pair()
            try:
                self.start([swtpm, "socket", "--tpm2",
                            "--server", f"type=tcp,port={port},bindaddr=127.0.0.1",
                            "--ctrl", f"type=tcp,port={port + 1},bindaddr=127.0.0.1",
                            "--tpmstate", f"dir={state}", "--flags", "not-need-init,startup-clear"],
                           "swtpm", functools.partial(_listening, port + 1),
                           directory / "swtpm.log")
                return port
            except ProvisioningError:
                if not self._daemons or self._daemons[-1].poll() is None:
                    raise
                self._daemons.pop()
        raise ProvisioningError(f"provision: {self.kind}: swtpm found no free port pair")

    def _abrmd_on_bus(self) -> bool:
        done = subprocess.run(
            ["dbus-send", "--session", "--dest=org.freedesktop.DBus", "--print-reply",
             "/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner",
             "string:com.intel.tss2.Tabrmd"], capture_output=True, text=True, check=False)
        return "boolean true" in done.stdout


def _free_port_pair() -> int:
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port < 65535 and _free(port + 1):
            return port


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
