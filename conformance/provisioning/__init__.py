"""Throwaway tokens: created for a run, used, and removed.

Only a vendor file whose token says `provision: <kind>` gets one; any other token is
used as it is and never initialized. Each process (each xdist worker) provisions its own
token and starts its own daemons, because SoftHSM2 rewrites its token file on every login
and two processes on one token directory fail intermittently (shared/MODULES.md).

A provisioner creates the token before the module is loaded in this process (modules read
their configuration from the environment at C_Initialize), puts random PINs into the
environment variables the vendor file names, and may give C_Initialize arguments
(`init_reserved`). `remove` stops every daemon it started, by PID, and deletes its files.
"""

from __future__ import annotations

from ..model import Vendor
from .base import RUN_DIR_ENV, ProvisioningError, Throwaway
from .nss import NSSDatabase
from .opencryptoki import OpenCryptokiSwToken
from .p11kit import P11KitServer
from .softhsm2 import SoftHSM2Token
from .tpm2 import Tpm2Token

__all__ = ["KINDS", "RUN_DIR_ENV", "ProvisioningError", "Throwaway", "provisioner"]

KINDS: dict[str, type[Throwaway]] = {
    "softhsm2": SoftHSM2Token,
    "nss": NSSDatabase,
    "p11-kit-server": P11KitServer,
    "opencryptoki": OpenCryptokiSwToken,
    "tpm2": Tpm2Token,
}


def provisioner(vendor: Vendor) -> Throwaway | None:
    """The throwaway-token maker the vendor file asks for, or None to use the token as is."""
    kind = vendor.token.provision
    return KINDS[kind](vendor.token, vendor.module.path) if kind else None
