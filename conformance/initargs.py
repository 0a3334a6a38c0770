"""C_Initialize arguments for modules that need them (module.init_reserved).

PKCS#11 v2.40 section 5.4 (C_Initialize) leaves CK_C_INITIALIZE_ARGS.pReserved to the
module; NSS softokn reads its configuration from it and answers CKR_ARGUMENTS_BAD without.
The ctypes layer passes the string itself (raw.Module); python-pkcs11 always passes NULL,
so for it the module is loaded through a forwarding library (initargs.c) that adds the
string. The forwarder is built with gcc on first use and cached.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from . import cbuild

SOURCE = Path(__file__).resolve().parent / "initargs.c"
MODULE_ENV = "PKCS11_CONFORMANCE_MODULE"
RESERVED_ENV = "PKCS11_CONFORMANCE_INIT_RESERVED"


def loadable(module_path: str, reserved: str | None, threads: bool = False) -> str:
    """The path python-pkcs11 should load for `module_path`: the module itself, or the
    forwarder set up (through this process's environment, which child processes
    inherit) to initialize it with `reserved`, and with CKF_OS_LOCKING_OK: python-pkcs11
    passes NULL, which tells a module it will not be called from several threads at once,
    so `threads` (for the benchmark's concurrent sessions) also needs the forwarder."""
    if reserved is None and not threads:
        return module_path
    try:
        exports_interface = hasattr(ctypes.CDLL(module_path), "C_GetInterface")
    except OSError:
        return module_path  # the caller reports the load error against the real path
    options = ["-DFORWARD_INTERFACES"] if exports_interface else []
    forwarder = cbuild.build(SOURCE, cbuild.cache_directory(), options)
    os.environ[MODULE_ENV] = module_path
    if reserved is None:
        os.environ.pop(RESERVED_ENV, None)
    else:
        os.environ[RESERVED_ENV] = reserved
    return str(forwarder)
