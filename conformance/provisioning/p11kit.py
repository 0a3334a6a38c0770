"""SoftHSM2 behind `p11-kit server`, reached through p11-kit-client.so: a stand-in for a
network-attached HSM, where every call crosses p11-kit's RPC (shared/MODULES.md)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import quote

from .softhsm2 import SoftHSM2Token

PROVIDER = "/usr/lib/softhsm/libsofthsm2.so"
UNIX_PATH_MAX = 107  # sun_path holds 108 bytes with the terminating NUL


class P11KitServer(SoftHSM2Token):
    """The SoftHSM2 token of the base class, served over a private Unix socket by a
    p11-kit server this process starts and stops."""

    kind = "p11-kit-server"
    _socket_dir: Path | None = None
    tools = (("softhsm2-util", "softhsm2"), ("p11-kit", "p11-kit"))

    def build(self, directory: Path) -> None:
        server = self.tool("p11-kit")
        super().build(directory)
        socket = directory / "p11-kit.socket"
        if len(str(socket)) > UNIX_PATH_MAX:  # a long TMPDIR: the socket goes to /tmp
            self._socket_dir = Path(tempfile.mkdtemp(prefix="pkcs11-conformance-", dir="/tmp"))
            socket = self._socket_dir / "p11-kit.socket"
        self.start([server, "server", "--foreground", "--provider", PROVIDER,
                    "--name", str(socket), f"pkcs11:token={quote(self.token.label, safe='')}"],
                   "p11-kit server", socket.exists, directory / "p11-kit-server.log")
        os.environ["P11_KIT_SERVER_ADDRESS"] = f"unix:path={socket}"

    def remove(self) -> None:
        super().remove()
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
